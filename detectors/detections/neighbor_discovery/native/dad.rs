//! `ipv6.dad_dos`'s counting: Duplicate Address Detection probes paired with answers
//! from other MACs, and per-link windows of the distinct addresses defended (`dad.py`).
//!
//! Every probe (an NS from ::) is remembered per link and target for `dad_timeout_s`;
//! an NA for the target, or another node's probe for it, within that time answers it.
//! When a window's busiest answering MAC or denied prober reaches `min_targets`, the
//! window's state goes to Python once (its `alerted` flag), with the message that
//! crossed; Python suppresses and writes the alert. The window keeps counting after.

use crate::reduce::windows::KeyedState;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::decode::events::{Event, NdBody};
use crate::decode::topy::Converter;
use crate::reduce::windows::{Lru, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{count, link_of, link_py, local_nd, opt_bytes, setting, Link};

const SAMPLE: usize = 10;
const MAX_TARGETS: usize = 4096;

type Mac = Option<[u8; 6]>;

#[derive(Clone, Copy)]
struct Probe {
    prober: Mac, // MAC of the node running DAD
    ts_ns: i64,
}

/// Counts keyed by MAC in first-seen order (a Python `Counter`).
#[derive(Default)]
struct Counter {
    index: HashMap<Mac, usize, KeyedState>,
    items: Vec<(Mac, u64)>,
}

impl Counter {
    fn add(&mut self, k: Mac) -> u64 {
        let i = *self.index.entry(k).or_insert_with(|| {
            self.items.push((k, 0));
            self.items.len() - 1
        });
        self.items[i].1 += 1;
        self.items[i].1
    }

    /// The `SAMPLE` busiest, most first, ties by MAC (None first): `top` in `dad.py`.
    fn top(&self) -> Vec<(Mac, u64)> {
        let mut ranked = self.items.clone();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(SAMPLE);
        ranked
    }
}

#[derive(Default)]
struct Win {
    start_ns: i64,
    first_ns: i64,
    last_ns: i64,
    targets: HashMap<[u8; 16], (Mac, Mac)>, // target -> (prober, answering MAC)
    by_answerer: Counter,
    by_prober: Counter,
    sources: Vec<[u8; 16]>, // distinct IPv6 sources of the answers, at most SAMPLE
    na: u64,
    ns_from_unspecified: u64,
    alerted: bool,
}

type Handle = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

pub struct Dad {
    timeout_ns: i64,
    min_targets: u64,
    probes: Lru<(Link, [u8; 16]), Probe>,
    links: Windows<Link, Handle>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    Ok(Box::new(Dad {
        timeout_ns: setting(settings, "timeout_ns")?,
        min_targets: count(settings, "min_targets")? as u64,
        probes: Lru::new(count(settings, "max_probes_tracked")?),
        links: Windows::new(
            count(settings, "max_links_tracked")?,
            setting(settings, "window_ns")?,
        ),
    }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Na,
    NsFromUnspecified,
}

impl Dad {
    fn on_ns(
        &mut self,
        ev: &Event,
        link: Link,
        target: [u8; 16],
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let m = match ev {
            Event::Nd(m) => m,
            _ => return Ok(()),
        };
        if m.ip.src != [0; 16] {
            return Ok(());
        }
        let key = (link, target);
        let mac = m.meta.src_mac;
        let ts = m.meta.ts_ns;
        let probe = self.probes.get(&key).copied();
        if let Some(p) = probe {
            if ts.saturating_sub(p.ts_ns) < self.timeout_ns && p.prober != mac {
                return self.answer(ev, link, target, p, Answer::NsFromUnspecified, out);
            }
        }
        let replace = match probe {
            None => true,
            Some(p) => p.prober != mac || ts.saturating_sub(p.ts_ns) >= self.timeout_ns,
        };
        if replace {
            self.probes.put(
                key,
                Probe {
                    prober: mac,
                    ts_ns: ts,
                },
            );
        }
        Ok(())
    }

    fn on_na(
        &mut self,
        ev: &Event,
        link: Link,
        target: [u8; 16],
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let meta = ev.meta();
        let Some(&p) = self.probes.peek(&(link, target)) else {
            return Ok(());
        };
        if meta.ts_ns.saturating_sub(p.ts_ns) >= self.timeout_ns || meta.src_mac == p.prober {
            return Ok(()); // late, or the prober announcing its new address after DAD
        }
        self.answer(ev, link, target, p, Answer::Na, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        ev: &Event,
        link: Link,
        target: [u8; 16],
        probe: Probe,
        kind: Answer,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let Event::Nd(m) = ev else {
            return Ok(());
        };
        let mac = m.meta.src_mac;
        let ts = m.meta.ts_ns;
        let h = self.links.current(
            link,
            ts,
            |t| {
                Rc::new(RefCell::new(Win {
                    start_ns: t,
                    first_ns: t,
                    ..Win::default()
                }))
            },
            |_, _| {}, // DAD windows close silently
        );
        let mut w = h.borrow_mut();
        w.last_ns = ts;
        match kind {
            Answer::Na => w.na += 1,
            Answer::NsFromUnspecified => w.ns_from_unspecified += 1,
        }
        let src = m.ip.src;
        if src != [0; 16] && w.sources.len() < SAMPLE && !w.sources.contains(&src) {
            w.sources.push(src);
        }
        if w.targets.contains_key(&target) || w.targets.len() >= MAX_TARGETS {
            return Ok(());
        }
        w.targets.insert(target, (probe.prober, mac));
        let by_mac = w.by_answerer.add(mac);
        let by_prober = w.by_prober.add(probe.prober);
        // One MAC defending many addresses, or one node denied many (the tool may
        // answer each probe from a new random MAC).
        if by_mac.max(by_prober) >= self.min_targets && !w.alerted {
            w.alerted = true;
            self.alert(ev, link, &w, out)?;
        }
        Ok(())
    }

    /// `("dad", link, event, start_ns, first_ns, last_ns, defended, sample,
    /// answering_macs, top_answering, denied_probers, sources, answers)`: the window
    /// as `DadDos._alert` reads it, with its samples already cut to size.
    fn alert(&self, ev: &Event, link: Link, w: &Win, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py(); // outputs live as long as the batch's list
        let mut targets: Vec<(&[u8; 16], &(Mac, Mac))> = w.targets.iter().collect();
        targets.sort_unstable_by(|a, b| a.0.cmp(b.0));
        targets.truncate(SAMPLE);
        let sample = PyList::empty(py);
        for (t, (p, a)) in targets {
            sample.append((
                opt_bytes(py, Some(t)),
                opt_bytes(py, p.as_ref().map(|m| &m[..])),
                opt_bytes(py, a.as_ref().map(|m| &m[..])),
            ))?;
        }
        let top = |c: &Counter| -> PyResult<Bound<'_, PyList>> {
            let l = PyList::empty(py);
            for (m, n) in c.top() {
                l.append((opt_bytes(py, m.as_ref().map(|m| &m[..])), n))?;
            }
            Ok(l)
        };
        let sources = PyList::new(py, w.sources.iter().map(|s| opt_bytes(py, Some(s))))?;
        let mut answers = Vec::new(); // sorted by name, as `dict(sorted(kinds.items()))`
        if w.na > 0 {
            answers.push(("na", w.na));
        }
        if w.ns_from_unspecified > 0 {
            answers.push(("ns_from_unspecified", w.ns_from_unspecified));
        }
        let event = Converter::new(py)?.event(ev)?;
        let item = PyTuple::new(
            py,
            [
                "dad".into_pyobject(py)?.into_any(),
                link_py(py, &link)?.into_any(),
                event,
                w.start_ns.into_pyobject(py)?.into_any(),
                w.first_ns.into_pyobject(py)?.into_any(),
                w.last_ns.into_pyobject(py)?.into_any(),
                w.targets.len().into_pyobject(py)?.into_any(),
                sample.into_any(),
                w.by_answerer.items.len().into_pyobject(py)?.into_any(),
                top(&w.by_answerer)?.into_any(),
                top(&w.by_prober)?.into_any(),
                sources.into_any(),
                PyList::new(py, answers)?.into_any(),
            ],
        )?;
        out.push(item.into_any())
    }
}

impl Reducer for Dad {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(m) = local_nd(ev) else {
            return Ok(());
        };
        let link = link_of(&m.meta);
        match m.body {
            NdBody::NeighborSolicitation { target } => self.on_ns(ev, link, target, out),
            NdBody::NeighborAdvertisement { target, .. } => self.on_na(ev, link, target, out),
            _ => Ok(()),
        }
    }

    fn tick(&mut self, _py: Python<'_>, now_ns: i64, _out: &mut Outputs<'_>) -> PyResult<()> {
        self.links.close_due(now_ns);
        Ok(())
    }

    fn flush(&mut self, _py: Python<'_>, _now_ns: i64, _out: &mut Outputs<'_>) -> PyResult<()> {
        self.links.close_all();
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.probes.table_stat("neighbor_discovery.dad_probes"),
            self.links.table.table_stat("neighbor_discovery.dad_links"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_ranks_by_count_then_mac_with_none_first() {
        let mut c = Counter::default();
        for k in [Some([3; 6]), None, Some([1; 6]), Some([3; 6])] {
            c.add(k);
        }
        assert_eq!(
            c.top(),
            vec![(Some([3; 6]), 2), (None, 1), (Some([1; 6]), 1)]
        );
    }
}
