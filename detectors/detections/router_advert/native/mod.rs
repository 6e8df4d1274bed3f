//! The Router Advertisement family's per-event counting, in Rust: one reducer per
//! detection, each seeing every local-link ND message natively.
//!
//! Owns what the three reducers share: which ND is the local link (not tunnelled), who
//! sent it (address and MAC, as `NDMessage.sender_mac`), the suppression keys, the
//! suppression-and-budget gate of `rogue` and `evasion` (`Gate`) and the Python shapes
//! of links, offenders and the head of an alert output. `rogue` judges each RA against the policy or the
//! learned routers, `evasion` each ND message's header chain, `flood` counts RAs per link
//! window; each hands Python only alerts that passed suppression and the link budget,
//! bursts and closed windows over a threshold (see each module).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::decode::events::{Event, NdMessage, OptionBody};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_to_py, Burst, Link, LinkBudget, Offender, Seen, Suppressor};
use crate::reducer::Outputs;

mod evasion;
mod flood;
mod rogue;

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[
    ("ra_rogue", rogue::build),
    ("ra_evasion", evasion::build),
    ("ra_flood", flood::build),
];

/// The ND message of a local-link event: tunnelled ND is tunnel signalling, skipped.
#[inline]
pub(crate) fn local_nd(ev: &Event) -> Option<&NdMessage> {
    match ev {
        Event::Nd(nd) if nd.ip.tunnels.is_empty() => Some(nd),
        _ => None,
    }
}

/// The first source link-layer address option's value (`NDMessage.source_lla`).
pub(crate) fn source_lla(nd: &NdMessage) -> Option<&[u8]> {
    nd.options.iter().find_map(|o| match &o.body {
        OptionBody::LinkLayerAddress { address } if o.otype == 1 => Some(&address[..]),
        _ => None,
    })
}

/// A MAC as the shared `Offender` keeps it (six bytes). A source link-layer option of
/// another length (only read on links without an Ethernet source) becomes a 48-bit
/// FNV-1a digest of its length and bytes, so distinct options stay distinct keys. Python
/// writes the alert's identifier and evidence from the event's own `sender_mac()`; only a
/// burst's or flood's sample of offenders shows the digest.
pub(crate) fn mac6(b: &[u8]) -> [u8; 6] {
    if let Ok(m) = <[u8; 6]>::try_from(b) {
        return m;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes();
    for &x in len.iter().chain(b) {
        h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
    }
    let v = h.to_be_bytes();
    [v[2], v[3], v[4], v[5], v[6], v[7]]
}

/// The Ethernet source, or the source link-layer option where the link has none
/// (`NDMessage.sender_mac`).
pub(crate) fn sender_mac(nd: &NdMessage) -> Option<[u8; 6]> {
    match nd.meta.src_mac {
        Some(m) => Some(m),
        None => source_lla(nd).map(mac6),
    }
}

/// Who sent it: (IPv6 source, sender MAC).
pub(crate) fn offender(nd: &NdMessage) -> Offender {
    Offender::new(&nd.ip.src, sender_mac(nd))
}

/// A suppression key with the same equality as the Python identifier
/// (`link|address|mac[|signature]`), without formatting addresses: the native
/// `Suppressor` only hashes it. Python writes the real identifier when it alerts.
/// Fixed-width hex (no `fmt`: this runs for every judged RA of a flood).
pub(crate) fn suppression_key(buf: &mut String, link: &Link, who: &Offender, sig: Option<&str>) {
    buf.clear();
    hex(buf, &link.0.to_be_bytes());
    for v in link.1.as_slice() {
        buf.push('.');
        hex(buf, &v.to_be_bytes());
    }
    buf.push('|');
    hex(buf, who.addr());
    buf.push('|');
    match who.mac {
        Some(m) => hex(buf, &m),
        None => buf.push('-'),
    }
    if let Some(sig) = sig {
        buf.push('|');
        buf.push_str(sig);
    }
}

fn hex(buf: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        buf.push(char::from(DIGITS[usize::from(b >> 4)]));
        buf.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// Suppression and the link budget, as `rogue` and `evasion` apply them to an alert;
/// the bursts the budget closed wait in `bursts` for the reducer to hand over.
pub(crate) struct Gate {
    pub suppress: Suppressor,
    pub budget: LinkBudget,
    key: String,
    pub bursts: Vec<Burst>,
}

impl Gate {
    pub fn new(suppress: Suppressor, budget: LinkBudget) -> Self {
        Gate {
            suppress,
            budget,
            key: String::new(),
            bursts: Vec::new(),
        }
    }

    /// Whether an alert on (link, who, signature suffix) passes suppression and the
    /// link budget.
    pub fn permit(&mut self, ev: &Event, link: &Link, who: Offender, sig: Option<&str>) -> bool {
        suppression_key(&mut self.key, link, &who, sig);
        self.budget
            .permit(&mut self.suppress, &self.key, ev, who, &mut self.bursts)
    }

    /// Packet time reached `now_ns`: close the link windows due.
    pub fn tick(&mut self, now_ns: i64) {
        self.budget.tick(now_ns, &mut self.bursts);
    }

    /// End of input: close every link window.
    pub fn flush(&mut self) {
        self.budget.flush(&mut self.bursts);
    }
}

/// The head of an alert output:
/// `(kind, signature, link, (address, mac), count, first_ns, last_ns, event)`.
pub(crate) fn alert_head<'py>(
    py: Python<'py>,
    kind: &str,
    sig: &str,
    link: &Link,
    who: &Offender,
    seen: &Seen,
    ev: &Event,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    Ok(vec![
        kind.into_pyobject(py)?.into_any(),
        sig.into_pyobject(py)?.into_any(),
        link_to_py(py, link)?.into_any(),
        offender_to_py(py, who)?,
        seen.count.into_pyobject(py)?.into_any(),
        seen.first_ns.into_pyobject(py)?.into_any(),
        seen.last_ns.into_pyobject(py)?.into_any(),
        Converter::new(py)?.event(ev)?,
    ])
}

/// `(address bytes, mac bytes | None)`, as Python's offender tuples.
pub(crate) fn offender_to_py<'py>(py: Python<'py>, o: &Offender) -> PyResult<Bound<'py, PyAny>> {
    let mac = match o.mac {
        Some(m) => PyBytes::new(py, &m).into_any(),
        None => py.None().into_bound(py),
    };
    Ok(PyTuple::new(py, [PyBytes::new(py, o.addr()).into_any(), mac])?.into_any())
}

/// Hands one output to the owning detector (outputs live as long as the batch's list).
pub(crate) fn push(out: &mut Outputs<'_>, item: Bound<'_, PyAny>) -> PyResult<()> {
    let py = out.list().py();
    out.push(item.unbind().into_bound(py))
}

/// Reads one setting from the dict Python builds (`Detector.reducer`).
pub(crate) fn setting<'py, T: FromPyObject<'py>>(
    settings: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<T> {
    settings.get_item(name)?.extract()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::Vlans;

    fn key(vlans: &[u16], mac: Option<[u8; 6]>, sig: Option<&str>) -> String {
        let mut v = Vlans::default();
        for &t in vlans {
            v.push(t);
        }
        let mut buf = String::new();
        suppression_key(&mut buf, &(1, v), &Offender::new(&[0xfe; 16], mac), sig);
        buf
    }

    #[test]
    fn suppression_keys_are_one_to_one_with_identifiers() {
        // VLAN stacks, a missing MAC and the signature suffix all tell keys apart.
        assert_ne!(key(&[1, 2], None, None), key(&[12], None, None));
        assert_ne!(key(&[], None, None), key(&[], Some([0; 6]), None));
        assert_ne!(key(&[], None, None), key(&[], None, Some("kill_router")));
        assert_eq!(key(&[7], Some([1; 6]), None), key(&[7], Some([1; 6]), None));
    }

    #[test]
    fn link_layer_options_of_other_lengths_stay_distinct() {
        assert_eq!(mac6(&[1, 2, 3, 4, 5, 6]), [1, 2, 3, 4, 5, 6]);
        let long = mac6(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_ne!(long, mac6(&[1, 2, 3, 4, 5, 6, 7, 9]));
        assert_ne!(long, [1, 2, 3, 4, 5, 6]);
        assert_ne!(mac6(&[0; 14]), mac6(&[0; 22]));
    }
}
