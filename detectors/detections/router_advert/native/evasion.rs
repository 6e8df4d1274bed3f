//! `ipv6.ra_guard_evasion`'s per-message half
//! (`detectors/detections/router_advert/evasion.py`).
//!
//! Owns, for every local-link ND message: the verdict on its header chain (a first
//! fragment without the whole chain, a Fragment header, or a listed extension header
//! before ICMPv6), the per-(link, source, signature) counts, suppression and the link
//! budget. Most ND has no extension header and costs one test. Python gets an `evasion`
//! output only for an alert that passed suppression and the budget (it writes the
//! evidence from the event), and a `burst` when a link window that folded alerts closes.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::{alert_head, local_nd, offender, push, setting, Gate};
use crate::decode::events::{Event, NdMessage};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, seen_in, Link, LinkBudget, Offender, Seen, Suppressor};
use crate::reduce::windows::Lru;
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

const NH_FRAGMENT: u8 = 44;
const SIGNATURES: [&str; 3] = ["incomplete_chain", "nd_fragment", "ext_headers"];

pub struct EvasionReducer {
    /// Extension headers that must not precede ND (`parameters.ext_headers`).
    ext: [bool; 256],
    sources: Lru<(Link, Offender, u8), Seen>,
    gate: Gate,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let cap: usize = setting(settings, "cap")?;
    let mut ext = [false; 256];
    for h in setting::<Vec<u8>>(settings, "ext_headers")? {
        ext[usize::from(h)] = true;
    }
    Ok(Box::new(EvasionReducer {
        ext,
        sources: Lru::new(cap),
        gate: Gate::new(
            Suppressor::new(
                "ipv6.ra_guard_evasion.suppression",
                setting(settings, "suppress_ns")?,
                cap,
            ),
            LinkBudget::new(
                "router_advert.evasion_links",
                cap,
                setting(settings, "window_ns")?,
                setting(settings, "max_alerts")?,
            ),
        ),
    }))
}

impl EvasionReducer {
    /// Which evasion the chain shows (an index into `SIGNATURES`), if any.
    fn signature(&self, nd: &NdMessage) -> Option<u8> {
        let ip = &nd.ip;
        if let Some(frag) = &ip.fragment {
            if !frag.first_chain_complete {
                return Some(0);
            }
            return Some(1);
        }
        let chain = ip.chain.as_slice();
        if chain.contains(&NH_FRAGMENT) {
            return Some(1);
        }
        if chain.iter().any(|&h| self.ext[usize::from(h)]) {
            return Some(2);
        }
        None
    }

    fn emit_bursts(&mut self, py: Python<'_>, out: &mut Outputs<'_>) -> PyResult<()> {
        if self.gate.bursts.is_empty() {
            return Ok(());
        }
        let mut conv = Converter::new(py)?;
        for b in std::mem::take(&mut self.gate.bursts) {
            push(out, b.to_py(py, &mut conv)?)?;
        }
        Ok(())
    }
}

impl Reducer for EvasionReducer {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(nd) = local_nd(ev) else {
            return Ok(());
        };
        if nd.ip.chain.is_empty() {
            return Ok(()); // the common case: ICMPv6 right after the IPv6 header
        }
        let Some(sig) = self.signature(nd) else {
            return Ok(());
        };
        let ts = nd.meta.ts_ns;
        let link = link_of(ev);
        let who = offender(nd);
        let seen = seen_in(&mut self.sources, (link, who, sig), ts);
        let name = SIGNATURES[usize::from(sig)];
        let permitted = self.gate.permit(ev, &link, who, Some(name));
        self.emit_bursts(py, out)?;
        if !permitted {
            return Ok(());
        }
        let items = alert_head(py, "evasion", name, &link, &who, &seen, ev)?;
        push(out, PyTuple::new(py, items)?.into_any())
    }

    fn tick(&mut self, py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.gate.tick(now_ns);
        self.emit_bursts(py, out)
    }

    fn flush(&mut self, py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.gate.flush();
        self.emit_bursts(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        let s = &self.sources;
        vec![
            s.table_stat("router_advert.evasion_sources"),
            self.gate.suppress.table_stat(),
            self.gate.budget.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.gate.suppress.suppressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{Chain, FragmentInfo, Ipv6Header, Meta, NdBody, Tunnels};

    fn nd(chain: &[u8], fragment: Option<FragmentInfo>) -> NdMessage {
        let mut c = Chain::default();
        for &h in chain {
            c.push(h);
        }
        NdMessage {
            meta: Meta::default(),
            ip: Ipv6Header {
                src: [0; 16],
                dst: [0; 16],
                hop_limit: 255,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 0,
                chain: c,
                upper: 58,
                fragment,
                tunnels: Tunnels::default(),
            },
            icmp_type: 134,
            code: 0,
            checksum_ok: true,
            options: Vec::new(),
            option_errors: Vec::new(),
            body: NdBody::RouterSolicitation,
        }
    }

    #[test]
    fn the_strongest_evasion_names_the_signature() {
        let mut ext = [false; 256];
        for h in [0usize, 43, 60] {
            ext[h] = true;
        }
        let r = EvasionReducer {
            ext,
            sources: Lru::new(4),
            gate: Gate::new(Suppressor::new("s", 1, 4), LinkBudget::new("l", 4, 1, 1)),
        };
        let frag = |complete| {
            Some(FragmentInfo {
                ident: 1,
                count: 2,
                atomic: false,
                first_chain_complete: complete,
                overlap: 0,
            })
        };
        assert_eq!(r.signature(&nd(&[60], frag(false))), Some(0));
        assert_eq!(r.signature(&nd(&[60], frag(true))), Some(1));
        assert_eq!(r.signature(&nd(&[60, 44], None)), Some(1));
        assert_eq!(r.signature(&nd(&[60], None)), Some(2));
        assert_eq!(r.signature(&nd(&[51], None)), None); // AH is allowed
    }
}
