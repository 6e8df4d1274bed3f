//! `ipv6.ndp_spoof`'s per-message work: the link's address-to-MAC bindings, the RFC 4861
//! checks every ND message must pass, and the budget and suppression in front of each
//! verdict (`spoof.py`).
//!
//! Learns bindings the way a neighbour cache does (NA target link-layer option or
//! Ethernet source, NS source link-layer option; routers fixed by the policy or, without
//! one, learned from RAs) and judges each NA that contradicts one: a router's address
//! claimed from another MAC, an override moving an established binding, a binding
//! flapping; plus hop limit 255 and a source link-layer option equal to the Ethernet
//! source on NS, NA, RS and Redirect. Each verdict is counted per offender (`Seen`),
//! then asks the link budget and the suppression (`crate::reduce::budget`); only a
//! verdict they let through goes to Python, which writes the alert, and each link
//! window that folded verdicts goes as one `burst`.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::decode::events::{Event, NdBody, NdMessage};
use crate::decode::topy::Converter;
use crate::reduce::budget::{seen_in, Burst, LinkBudget, Offender, Seen, Suppressor};
use crate::reduce::windows::Lru;
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{count, link_of, lla, local_nd, opt_bytes, setting, Link};

const MAX_HISTORY: usize = 16; // MACs remembered per binding for the evidence

/// The verdicts, as their signature names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sig {
    RouterAddressClaim,
    OverrideConflict,
    Flapping,
    BadHopLimit,
    SllaMismatch,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::RouterAddressClaim => "router_address_claim",
            Sig::OverrideConflict => "override_conflict",
            Sig::Flapping => "flapping",
            Sig::BadHopLimit => "bad_hop_limit",
            Sig::SllaMismatch => "slla_mismatch",
        }
    }
}

struct Binding {
    mac: [u8; 6],
    confirmed_ns: i64, // last time this MAC was (re)asserted
    router: bool,
    changes: Vec<i64>,  // change times within the window
    macs: Vec<[u8; 6]>, // distinct MACs seen, oldest first
}

impl Binding {
    fn new(mac: [u8; 6], ts: i64, router: bool) -> Self {
        Binding {
            mac,
            confirmed_ns: ts,
            router,
            changes: Vec::new(),
            macs: vec![mac],
        }
    }
}

/// What a conflict knows of the binding it contradicts, for the evidence.
struct Conflict {
    old: Vec<u8>,
    binding: Option<(usize, Vec<[u8; 6]>, i64)>, // changes, MACs seen, confirmed
}

/// One identifier's key in `spoof_sources`: the parts `_raise` formats it from.
type SeenKey = (Link, [u8; 16], Option<[u8; 6]>, Sig);

pub struct Spoof {
    ttl_ns: i64,
    flap: usize,
    window_ns: i64,
    hop_limit: i64,
    bindings: Lru<(Link, [u8; 16]), Binding>,
    seen: Lru<SeenKey, Seen>,
    suppress: Suppressor,
    budget: LinkBudget,
    // Policy routers, on every link: the address is theirs on any interface.
    policy_routers: HashMap<[u8; 16], Vec<u8>>,
    learn_routers: bool,
    bursts: Vec<Burst>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let cap = count(settings, "max_bindings_tracked")?;
    let window_ns = setting(settings, "window_ns")?;
    let mut policy_routers = HashMap::new();
    let routers: Vec<(Vec<u8>, Vec<u8>)> = settings.get_item("policy_routers")?.extract()?;
    for (addr, mac) in routers {
        if let Ok(a) = <[u8; 16]>::try_from(addr.as_slice()) {
            policy_routers.insert(a, mac); // a later entry wins, as in the Python dict
        }
    }
    Ok(Box::new(Spoof {
        ttl_ns: setting(settings, "ttl_ns")?,
        flap: count(settings, "flap_changes")?,
        window_ns,
        hop_limit: setting(settings, "hop_limit")?,
        bindings: Lru::new(cap),
        seen: Lru::new(cap),
        suppress: Suppressor::new(
            "ipv6.ndp_spoof.suppression",
            setting(settings, "suppress_ns")?,
            cap,
        ),
        budget: LinkBudget::new(
            "neighbor_discovery.spoof_links",
            cap,
            window_ns,
            count(settings, "max_alerts_per_window")? as u64,
        ),
        policy_routers,
        learn_routers: settings.get_item("learn_routers")?.extract()?,
        bursts: Vec::new(),
    }))
}

fn mac6(b: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(b).ok()
}

impl Spoof {
    fn on_nd(&mut self, ev: &Event, m: &NdMessage, out: &mut Outputs<'_>) -> PyResult<()> {
        if let NdBody::RouterAdvertisement {
            router_lifetime, ..
        } = m.body
        {
            self.learn_router(m, router_lifetime);
            return Ok(());
        }
        if i64::from(m.ip.hop_limit) != self.hop_limit {
            self.raise(ev, m, Sig::BadHopLimit, m.ip.src, None, None, out)?;
        }
        let slla = lla(m, 1);
        if let (Some(eth), Some(s)) = (m.meta.src_mac, slla) {
            if s.len() == 6 && s != eth {
                self.raise(ev, m, Sig::SllaMismatch, m.ip.src, None, None, out)?;
            }
        }
        match m.body {
            NdBody::NeighborSolicitation { .. } if m.ip.src != [0; 16] => {
                if let Some(mac) = slla.and_then(mac6) {
                    self.bind(ev, m, m.ip.src, mac, false, out)?;
                }
            }
            NdBody::NeighborAdvertisement {
                target, override_, ..
            } => {
                // The target link-layer option, else the Ethernet source (`_na_mac`).
                let mac = match lla(m, 2) {
                    None => m.meta.src_mac,
                    Some(t) => mac6(t),
                };
                if let Some(mac) = mac {
                    self.bind(ev, m, target, mac, override_, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Without a policy, the first MAC heard advertising an address owns it.
    fn learn_router(&mut self, m: &NdMessage, router_lifetime: u16) {
        if !self.learn_routers || router_lifetime == 0 {
            return;
        }
        // `ev.source_lla() or ev.meta.src_mac`: an empty option counts as none.
        let mac = match lla(m, 1) {
            Some(s) if !s.is_empty() => mac6(s),
            _ => m.meta.src_mac,
        };
        let Some(mac) = mac else {
            return;
        };
        let key = (link_of(&m.meta), m.ip.src);
        match self.bindings.get(&key) {
            None => {
                self.bindings
                    .put(key, Binding::new(mac, m.meta.ts_ns, true));
            }
            Some(b) if b.mac == mac => b.router = true,
            Some(_) => {}
        }
    }

    fn bind(
        &mut self,
        ev: &Event,
        m: &NdMessage,
        addr: [u8; 16],
        mac: [u8; 6],
        override_: bool,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let ts = m.meta.ts_ns;
        let is_na = matches!(m.body, NdBody::NeighborAdvertisement { .. });
        if let Some(router_mac) = self.policy_routers.get(&addr) {
            if router_mac.as_slice() != mac && is_na {
                let c = Conflict {
                    old: router_mac.clone(),
                    binding: None,
                };
                return self.raise(
                    ev,
                    m,
                    Sig::RouterAddressClaim,
                    addr,
                    Some(mac),
                    Some(c),
                    out,
                );
            }
        }
        let key = (link_of(&m.meta), addr);
        let Some(b) = self.bindings.get(&key) else {
            self.bindings.put(key, Binding::new(mac, ts, false));
            return Ok(());
        };
        if b.mac == mac {
            b.confirmed_ns = ts;
            return Ok(());
        }
        if !is_na {
            return Ok(()); // an NS alone does not move a binding we report on
        }
        if b.router {
            let c = Conflict {
                old: b.mac.to_vec(),
                binding: Some((b.changes.len(), b.macs.clone(), b.confirmed_ns)),
            };
            return self.raise(
                ev,
                m,
                Sig::RouterAddressClaim,
                addr,
                Some(mac),
                Some(c),
                out,
            );
        }
        let established = ts.saturating_sub(b.confirmed_ns) < self.ttl_ns;
        let window_ns = self.window_ns;
        b.changes.retain(|&t| ts.saturating_sub(t) < window_ns);
        b.changes.push(ts);
        if !b.macs.contains(&mac) && b.macs.len() < MAX_HISTORY {
            b.macs.push(mac);
        }
        let old = b.mac;
        b.mac = mac;
        b.confirmed_ns = ts;
        let sig = if b.changes.len() >= self.flap {
            Sig::Flapping
        } else if override_ && established {
            Sig::OverrideConflict
        } else {
            return Ok(());
        };
        let c = Conflict {
            old: old.to_vec(),
            binding: Some((b.changes.len(), b.macs.clone(), b.confirmed_ns)),
        };
        self.raise(ev, m, sig, addr, Some(mac), Some(c), out)
    }

    /// Count the verdict, ask the budget; past both, `("spoof", signature, event,
    /// address, mac, count, first_ns, last_ns, conflict)` for Python, the conflict
    /// `None` or `(old_mac, None | (changes, macs_seen, confirmed_ns))`. Bursts the
    /// budget closed meanwhile go first, as the Python budget raised them first.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        ev: &Event,
        m: &NdMessage,
        sig: Sig,
        addr: [u8; 16],
        mac: Option<[u8; 6]>,
        conflict: Option<Conflict>,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let ts = m.meta.ts_ns;
        let link = link_of(&m.meta);
        let mac = mac.or(m.meta.src_mac);
        // A flapping address is one problem whichever MAC holds it right now.
        let who = if sig == Sig::Flapping { None } else { mac };
        let seen = seen_in(&mut self.seen, (link, addr, who, sig), ts);
        // Any text that tells identifiers apart serves the suppression; Python writes
        // the alert's own.
        let ident = format!(
            "{}|{:?}|{:?}|{:?}|{}",
            link.0,
            link.1.as_slice(),
            addr,
            who,
            sig.name()
        );
        let permitted = self.budget.permit(
            &mut self.suppress,
            &ident,
            ev,
            Offender::new(&addr, mac),
            &mut self.bursts,
        );
        self.push_bursts(out)?;
        if !permitted {
            return Ok(());
        }
        let py = out.list().py(); // outputs live as long as the batch's list
        let conflict = match conflict {
            None => py.None().into_bound(py),
            Some(c) => {
                let binding = match c.binding {
                    None => py.None().into_bound(py),
                    Some((changes, macs, confirmed)) => {
                        let macs = PyList::new(py, macs.iter().map(|m| PyBytes::new(py, m)))?;
                        (changes, macs, confirmed).into_pyobject(py)?.into_any()
                    }
                };
                (PyBytes::new(py, &c.old), binding)
                    .into_pyobject(py)?
                    .into_any()
            }
        };
        let item = PyTuple::new(
            py,
            [
                "spoof".into_pyobject(py)?.into_any(),
                sig.name().into_pyobject(py)?.into_any(),
                Converter::new(py)?.event(ev)?,
                PyBytes::new(py, &addr).into_any(),
                opt_bytes(py, mac.as_ref().map(|m| &m[..])),
                seen.count.into_pyobject(py)?.into_any(),
                seen.first_ns.into_pyobject(py)?.into_any(),
                seen.last_ns.into_pyobject(py)?.into_any(),
                conflict,
            ],
        )?;
        out.push(item.into_any())
    }

    /// Hand over the bursts of closed link windows, in order.
    fn push_bursts(&mut self, out: &mut Outputs<'_>) -> PyResult<()> {
        if self.bursts.is_empty() {
            return Ok(());
        }
        let py = out.list().py();
        let mut conv = Converter::new(py)?;
        for b in std::mem::take(&mut self.bursts) {
            out.push(b.to_py(py, &mut conv)?)?;
        }
        Ok(())
    }
}

impl Reducer for Spoof {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        match local_nd(ev) {
            Some(m) => self.on_nd(ev, m, out),
            None => Ok(()),
        }
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.budget.tick(now_ns, &mut self.bursts);
        self.push_bursts(out)
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.budget.flush(&mut self.bursts);
        self.push_bursts(out)
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.bindings.table_stat("neighbor_discovery.bindings"),
            self.seen.table_stat("neighbor_discovery.spoof_sources"),
            self.suppress.table_stat(),
            self.budget.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.suppress.suppressed()
    }
}
