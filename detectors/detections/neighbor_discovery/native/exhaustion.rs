//! `ipv6.ndp_exhaustion`'s counting: address-resolution NS paired with NAs, targets left
//! unresolved per soliciting node in packet-time windows, and the off-link senders
//! that drove them (`exhaustion.py`).
//!
//! Every NS to a solicited-node group (not DAD, not NUD) opens a pending target until
//! an NA answers it; `tick` expires pending targets `resolve_timeout_s` old into the
//! soliciting node's window. Off-link packets are recorded only while some node has
//! `drivers_after` solicitations outstanding (`armed`), exactly when the Python
//! detection asked for packet events; the decoder builds them anyway, so observing
//! them here costs a branch. A window closes `resolve_timeout_s` after its span (its
//! last targets had that long to be answered) and goes to Python only when it holds
//! `min_unresolved` targets; Python suppresses and writes the alert.

use crate::reduce::windows::KeyedState;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::decode::events::{Event, NdBody};
use crate::reduce::windows::{Lru, Window, Windows};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{count, link_of, link_py, local_nd, opt_bytes, sender_mac, setting, Link, Lla};

const SAMPLE: usize = 10;
const MAX_TARGETS: usize = 65536; // distinct targets remembered per solicitor window
const SOLICITED_NODE: [u8; 13] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]; // ff02::1:ff00:0/104

/// A soliciting node: link, address, MAC.
type Solicitor = (Link, [u8; 16], Option<Lla>);

struct Pending {
    solicitor: Solicitor,
    first_ns: i64,
    first: Sample,
    solicits: u64,
}

/// The first solicitation's record number and destination (the solicited-node
/// address): the alert names this packet (`pcap_cnt`, `dest_ip`).
#[derive(Clone, Copy, Default)]
struct Sample {
    frame: u64,
    dst: [u8; 16],
}

#[derive(Default)]
struct Win {
    start_ns: i64,
    first_ns: i64,
    first: Sample,
    last_ns: i64,
    targets: HashSet<[u8; 16], KeyedState>,
    // Per /64 (first 8 bytes), in first-seen order: `Counter.most_common` breaks ties so.
    prefix_index: HashMap<[u8; 8], usize, KeyedState>,
    prefixes: Vec<([u8; 8], u64)>,
    // Off-link sources, in first-seen order (at most SAMPLE * 10).
    drivers: Vec<([u8; 16], u64)>,
}

type Handle = Rc<RefCell<Win>>;

impl Window for Win {
    fn start_ns(&self) -> i64 {
        self.start_ns
    }
}

pub struct Exhaustion {
    timeout_ns: i64,
    min_unresolved: usize,
    arm_at: i64,
    pending: Lru<(Link, [u8; 16]), Pending>,
    outstanding: Lru<Solicitor, i64>,
    armed: HashSet<Solicitor, KeyedState>,
    windows: Windows<Solicitor, Handle>,
    drivers: Lru<[u8; 16], [u8; 16]>,
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let timeout_ns = setting(settings, "timeout_ns")?;
    let solicitors = count(settings, "max_solicitors_tracked")?;
    Ok(Box::new(Exhaustion {
        timeout_ns,
        min_unresolved: count(settings, "min_unresolved")?,
        arm_at: setting(settings, "drivers_after")?,
        pending: Lru::new(count(settings, "max_pending_tracked")?),
        outstanding: Lru::new(solicitors),
        armed: HashSet::default(),
        windows: Windows::with_grace(solicitors, setting(settings, "window_ns")?, timeout_ns),
        drivers: Lru::new(count(settings, "max_drivers_tracked")?),
    }))
}

impl Exhaustion {
    /// Remember who recently sent to each destination from off-link.
    fn on_packet(&mut self, ev: &Event) {
        let Event::Packet(p) = ev else {
            return;
        };
        let ip = &p.ip;
        let link_local = ip.src[0] == 0xfe && ip.src[1] & 0xc0 == 0x80;
        if !ip.tunnels.is_empty() || link_local || ip.dst[0] == 0xff {
            return;
        }
        if matches!(p.icmp_type, Some(133..=137)) {
            return;
        }
        self.drivers.put(ip.dst, ip.src);
    }

    fn on_ns(&mut self, ev: &Event, target: [u8; 16]) {
        let Event::Nd(m) = ev else {
            return;
        };
        if m.ip.dst[..13] != SOLICITED_NODE || m.ip.src == [0; 16] {
            return; // NUD (unicast) or DAD (from ::): not address resolution
        }
        let link = link_of(&m.meta);
        let key = (link, target);
        if let Some(p) = self.pending.peek_mut(&key) {
            p.solicits += 1; // a retransmission keeps the first time
            return;
        }
        let who: Solicitor = (link, m.ip.src, sender_mac(m));
        let dropped = self.pending.put(
            key,
            Pending {
                solicitor: who.clone(),
                first_ns: m.meta.ts_ns,
                first: Sample {
                    frame: m.meta.frame,
                    dst: m.ip.dst,
                },
                solicits: 1,
            },
        );
        if let Some((_, p)) = dropped {
            self.outstanding(&p.solicitor, -1);
        }
        self.outstanding(&who, 1);
    }

    fn on_na(&mut self, link: Link, target: [u8; 16]) {
        if let Some(done) = self.pending.remove(&(link, target)) {
            self.outstanding(&done.solicitor, -1);
        }
    }

    /// Count a node's open solicitations; record drivers while any node is busy.
    fn outstanding(&mut self, who: &Solicitor, delta: i64) {
        let n = self.outstanding.peek(who).copied().unwrap_or(0) + delta;
        if n > 0 {
            if let Some((evicted, _)) = self.outstanding.put(who.clone(), n) {
                self.armed.remove(&evicted);
            }
        } else {
            self.outstanding.remove(who);
        }
        if n >= self.arm_at {
            self.armed.insert(who.clone());
        } else {
            self.armed.remove(who);
        }
    }

    /// Targets unanswered for `resolve_timeout_s` are unresolved (before windows close).
    fn expire(&mut self, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        let deadline = now_ns.saturating_sub(self.timeout_ns);
        let expired = self
            .pending
            .take_oldest_while(|_, p| p.first_ns <= deadline);
        for ((_, target), p) in expired {
            self.outstanding(&p.solicitor, -1);
            self.unresolved(p.solicitor, target, p.first_ns, p.first, out)?;
        }
        Ok(())
    }

    fn unresolved(
        &mut self,
        who: Solicitor,
        target: [u8; 16],
        ts: i64,
        first: Sample,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let mut closed = Vec::new();
        let h = self.windows.current(
            who,
            ts,
            |t| {
                Rc::new(RefCell::new(Win {
                    start_ns: t,
                    first_ns: t,
                    first,
                    ..Win::default()
                }))
            },
            |k, v| closed.push((k, v)),
        );
        for (k, v) in closed {
            self.close(k, v, out)?;
        }
        let mut w = h.borrow_mut();
        if w.targets.contains(&target) || w.targets.len() >= MAX_TARGETS {
            return Ok(());
        }
        w.targets.insert(target);
        w.last_ns = ts;
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&target[..8]);
        let w = &mut *w;
        match w.prefix_index.get(&prefix) {
            Some(&i) => w.prefixes[i].1 += 1,
            None => {
                w.prefix_index.insert(prefix, w.prefixes.len());
                w.prefixes.push((prefix, 1));
            }
        }
        if let Some(&driver) = self.drivers.peek(&target) {
            match w.drivers.iter().position(|(a, _)| *a == driver) {
                Some(i) => w.drivers[i].1 += 1,
                None if w.drivers.len() < SAMPLE * 10 => w.drivers.push((driver, 1)),
                None => {}
            }
        }
        Ok(())
    }

    /// A window ends: to Python if it crossed the threshold, as `("exhaustion", link,
    /// address, mac, start_ns, first_ns, last_ns, unresolved, prefix, prefix_hits,
    /// prefixes, sample_targets, drivers, first_frame, first_dst)`, the sample the 10
    /// lowest targets, the drivers `[(address, targets)]` in first-seen order, and the
    /// window's first unanswered solicitation's record number and destination.
    fn close(&self, who: Solicitor, h: Handle, out: &mut Outputs<'_>) -> PyResult<()> {
        let py = out.list().py(); // outputs live as long as the batch's list
        let w = h.borrow();
        if w.targets.len() < self.min_unresolved || w.prefixes.is_empty() {
            return Ok(());
        }
        let (link, addr, mac) = who;
        // `most_common(1)`: the highest count, the first seen among equals.
        let mut best = w.prefixes[0];
        for &p in &w.prefixes[1..] {
            if p.1 > best.1 {
                best = p;
            }
        }
        let mut targets: Vec<&[u8; 16]> = w.targets.iter().collect();
        if targets.len() > SAMPLE {
            targets.select_nth_unstable(SAMPLE);
            targets.truncate(SAMPLE);
        }
        targets.sort_unstable();
        let sample = PyList::new(py, targets.iter().map(|t| PyBytes::new(py, &t[..])))?;
        let drivers = PyList::empty(py);
        for (a, n) in &w.drivers {
            drivers.append((PyBytes::new(py, a), *n))?;
        }
        let item = PyTuple::new(
            py,
            [
                "exhaustion".into_pyobject(py)?.into_any(),
                link_py(py, &link)?.into_any(),
                PyBytes::new(py, &addr).into_any(),
                opt_bytes(py, mac.as_ref().map(Lla::as_bytes)),
                w.start_ns.into_pyobject(py)?.into_any(),
                w.first_ns.into_pyobject(py)?.into_any(),
                w.last_ns.into_pyobject(py)?.into_any(),
                w.targets.len().into_pyobject(py)?.into_any(),
                PyBytes::new(py, &best.0).into_any(),
                best.1.into_pyobject(py)?.into_any(),
                w.prefixes.len().into_pyobject(py)?.into_any(),
                sample.into_any(),
                drivers.into_any(),
                w.first.frame.into_pyobject(py)?.into_any(),
                PyBytes::new(py, &w.first.dst).into_any(),
            ],
        )?;
        out.push(item.into_any())
    }

    fn close_due(&mut self, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        for (k, v) in self.windows.close_due(now_ns) {
            self.close(k, v, out)?;
        }
        Ok(())
    }
}

impl Reducer for Exhaustion {
    fn observes(&self) -> Observes {
        Observes {
            nd: true,
            packets: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, _py: Python<'_>, ev: &Event, _out: &mut Outputs<'_>) -> PyResult<()> {
        if let Event::Packet(_) = ev {
            // Drivers are only wanted while some node is busy soliciting.
            if !self.armed.is_empty() {
                self.on_packet(ev);
            }
            return Ok(());
        }
        let Some(m) = local_nd(ev) else {
            return Ok(());
        };
        match m.body {
            NdBody::NeighborSolicitation { target } => self.on_ns(ev, target),
            NdBody::NeighborAdvertisement { target, .. } => self.on_na(link_of(&m.meta), target),
            _ => {}
        }
        Ok(())
    }

    /// `expire`, then the windows due (the family's tick order).
    fn tick(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.expire(now_ns, out)?;
        self.close_due(now_ns, out)
    }

    /// `drain`, then every window: a target still pending counts if it was solicited
    /// again (its first solicitation already went a retransmit interval unanswered).
    fn flush(&mut self, _py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.expire(now_ns, out)?;
        self.close_due(now_ns, out)?;
        for ((_, target), p) in self.pending.drain() {
            self.outstanding(&p.solicitor, -1);
            if p.solicits >= 2 {
                self.unresolved(p.solicitor, target, p.first_ns, p.first, out)?;
            }
        }
        for (k, v) in self.windows.close_all() {
            self.close(k, v, out)?;
        }
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        let w = &self.windows.table;
        vec![
            self.pending
                .table_stat("neighbor_discovery.pending_targets"),
            self.outstanding
                .table_stat("neighbor_discovery.outstanding"),
            w.table_stat("neighbor_discovery.solicitors"),
            self.drivers
                .table_stat("neighbor_discovery.recent_destinations"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{addr, na, ns};
    use super::*;
    use crate::decode::events::{Ipv6Packet, Meta};

    const S: i64 = 1_000_000_000;

    fn reducer(min_unresolved: usize, drivers_after: i64) -> Exhaustion {
        Exhaustion {
            timeout_ns: 3 * S,
            min_unresolved,
            arm_at: drivers_after,
            pending: Lru::new(64),
            outstanding: Lru::new(64),
            armed: HashSet::default(),
            windows: Windows::with_grace(64, 60 * S, 3 * S),
            drivers: Lru::new(64),
        }
    }

    fn packet(ts: i64, src: [u8; 16], dst: [u8; 16]) -> Event {
        let Event::Nd(mut m) = ns(ts, src, dst) else {
            unreachable!()
        };
        m.ip.dst = dst;
        Event::Packet(Ipv6Packet {
            meta: Meta {
                ts_ns: ts,
                ..Meta::default()
            },
            ip: m.ip,
            sport: None,
            dport: None,
            icmp_type: None,
            icmp_code: None,
            tcp_flags: None,
            quoted_src: None,
        })
    }

    fn in_other_64(t: [u8; 16]) -> [u8; 16] {
        let mut t = t;
        t[7] = 9;
        t
    }

    #[test]
    fn unanswered_targets_close_with_the_first_busiest_prefix_and_armed_drivers() {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            let mut r = reducer(3, 2);
            let list = PyList::empty(py);
            let mut out = Outputs::new(list.clone(), None);
            let router = addr(1);
            let driver = {
                let mut d = addr(7);
                d[0] = 0x30;
                d
            };
            // Not armed yet: this packet's destination is not recorded.
            r.observe(py, &packet(0, driver, addr(100)), &mut out)
                .unwrap();
            // Two /64s with two targets each: the first seen wins the tie.
            r.observe(py, &ns(S, router, in_other_64(addr(100))), &mut out)
                .unwrap();
            r.observe(py, &ns(S, router, addr(101)), &mut out).unwrap();
            assert!(!r.armed.is_empty()); // two outstanding
            r.observe(py, &packet(S, driver, addr(102)), &mut out)
                .unwrap();
            r.observe(py, &ns(S, router, addr(102)), &mut out).unwrap();
            r.observe(py, &ns(S, router, in_other_64(addr(103))), &mut out)
                .unwrap();
            // Answered: not unresolved.
            r.observe(py, &ns(S, router, addr(104)), &mut out).unwrap();
            r.observe(py, &na(S, addr(104), [5; 6], addr(104)), &mut out)
                .unwrap();
            r.tick(py, 4 * S, &mut out).unwrap();
            assert!(r.pending.is_empty() && r.outstanding.is_empty() && r.armed.is_empty());
            assert_eq!(list.len(), 0); // the window is still open
            r.flush(py, 5 * S, &mut out).unwrap();
            assert_eq!(list.len(), 1);
            let item = list.get_item(0).unwrap();
            let t = item.downcast::<PyTuple>().unwrap();
            assert_eq!(t.get_item(7).unwrap().extract::<usize>().unwrap(), 4);
            let prefix: Vec<u8> = t.get_item(8).unwrap().extract().unwrap();
            assert_eq!(prefix, in_other_64(addr(100))[..8].to_vec());
            assert_eq!(t.get_item(9).unwrap().extract::<u64>().unwrap(), 2);
            let drivers: Vec<(Vec<u8>, u64)> = t.get_item(12).unwrap().extract().unwrap();
            assert_eq!(drivers, vec![(driver.to_vec(), 1)]);
            // The alert's sample packet: the first unanswered solicitation.
            let Event::Nd(first) = ns(S, router, in_other_64(addr(100))) else {
                unreachable!()
            };
            let dst: Vec<u8> = t.get_item(14).unwrap().extract().unwrap();
            assert_eq!(dst, first.ip.dst.to_vec());
        });
    }

    #[test]
    fn a_retransmitted_target_still_pending_at_the_end_counts() {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            let mut r = reducer(1, 100);
            let list = PyList::empty(py);
            let mut out = Outputs::new(list.clone(), None);
            r.observe(py, &ns(0, addr(1), addr(50)), &mut out).unwrap();
            r.observe(py, &ns(S, addr(1), addr(50)), &mut out).unwrap();
            r.observe(py, &ns(S, addr(1), addr(51)), &mut out).unwrap(); // asked once
            r.flush(py, 2 * S, &mut out).unwrap();
            assert_eq!(list.len(), 1);
            let t = list.get_item(0).unwrap();
            let t = t.downcast::<PyTuple>().unwrap();
            assert_eq!(t.get_item(7).unwrap().extract::<usize>().unwrap(), 1);
        });
    }
}
