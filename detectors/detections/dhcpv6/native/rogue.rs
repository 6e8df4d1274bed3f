//! `ipv6.rogue_dhcpv6`'s verdict on every local-link Advertise and Reply (server to
//! client, UDP 547 -> 546).
//!
//! Owns: who sent it (a policy server matched on address and MAC, and on DUID when the
//! entry names one; or, without `dhcpv6_servers`, a server learned in the first
//! `learn_ns` of DHCPv6 traffic, as routers are learned), what an allowed server hands
//! out (DNS servers and search domains against its entry or its learned baseline), the
//! clients each offending server answered (distinct client DUIDs, bounded), and the
//! per-server suppression and per-link budget. Python gets one `rogue` output per alert
//! that passed both, and one `rogue_burst` per link window that folded alerts.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::decode::events::{Dhcpv6Message, Event};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, link_to_py, Burst, Link, LinkBudget, Offender, Suppressor};
use crate::reduce::py::{any, bytes, opt_bytes};
use crate::reduce::sketch::{hash_bytes, DistinctCounter};
use crate::reduce::windows::{KeyedMap, Lru};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

use super::{addr16, count, local, setting, ADVERTISE, REPLY};

const UNKNOWN: &str = "unknown_server";
const UNLISTED: &str = "unlisted_option";
/// Learned DNS servers and domains per server, and client DUIDs named in evidence.
const MAX_LEARNED_ITEMS: usize = 16;
const SAMPLE: usize = 10;

/// A policy entry, as `rogue.py` hands it.
struct Entry {
    address: [u8; 16],
    mac: [u8; 6],
    duid: Option<Vec<u8>>,
    dns: Option<Vec<[u8; 16]>>,
    domains: Option<Vec<String>>,
}

/// A learned server's baseline: its DUID and what it handed out while learning.
#[derive(Default)]
struct Learned {
    duid: Option<Vec<u8>>,
    dns: Vec<[u8; 16]>,
    domains: Vec<String>,
}

impl Learned {
    fn absorb(&mut self, m: &Dhcpv6Message) {
        for d in &m.dns_servers {
            if !self.dns.contains(d) && self.dns.len() < MAX_LEARNED_ITEMS {
                self.dns.push(*d);
            }
        }
        for d in &m.domains {
            if !self.domains.contains(d) && self.domains.len() < MAX_LEARNED_ITEMS {
                self.domains.push(d.clone());
            }
        }
    }
}

/// One offending server's counts: sightings and the clients it answered.
struct Server {
    first_ns: i64,
    last_ns: i64,
    count: u64,
    clients: DistinctCounter,
    sample: Vec<Vec<u8>>,
}

/// What was wrong: `(check, seen)`; `seen` is a DUID, an address or a domain.
enum Seen {
    Bytes(Vec<u8>),
    Text(String),
    Nothing,
}

pub struct Rogue {
    policy: Option<Vec<Entry>>,
    learn_ns: i64,
    learn_max: usize,
    first_ns: Option<i64>,
    learned: KeyedMap<(Link, Offender), Learned>,
    servers: Lru<(Link, Offender), Server>,
    suppress: Suppressor,
    budget: LinkBudget,
    bursts: Vec<Burst>,
    key: String,
}

fn opt_list<'py, T: FromPyObject<'py>>(
    d: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<Vec<T>>> {
    setting(d, name)
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let servers: Option<Vec<Bound<'_, PyAny>>> = setting(settings, "servers")?;
    let policy = match servers {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|s| {
                    let mac: Vec<u8> = setting(s, "mac")?;
                    let dns: Option<Vec<Vec<u8>>> = opt_list(s, "dns")?;
                    Ok(Entry {
                        address: addr16(&setting::<Vec<u8>>(s, "address")?)?,
                        mac: <[u8; 6]>::try_from(&mac[..]).map_err(|_| {
                            pyo3::exceptions::PyValueError::new_err("expected a 6-byte MAC")
                        })?,
                        duid: setting(s, "duid")?,
                        dns: dns
                            .map(|v| v.iter().map(|a| addr16(a)).collect::<PyResult<_>>())
                            .transpose()?,
                        domains: opt_list(s, "domains")?,
                    })
                })
                .collect::<PyResult<Vec<_>>>()?,
        ),
    };
    let cap = count(settings, "max_servers_tracked")?;
    Ok(Box::new(Rogue {
        policy,
        learn_ns: setting(settings, "learn_ns")?,
        learn_max: count(settings, "learn_max")?,
        first_ns: None,
        learned: KeyedMap::default(),
        servers: Lru::new(cap),
        suppress: Suppressor::new(
            "ipv6.rogue_dhcpv6.suppression",
            setting(settings, "suppress_ns")?,
            cap,
        ),
        budget: LinkBudget::new(
            "dhcpv6.rogue_links",
            count(settings, "max_links_tracked")?,
            setting(settings, "window_ns")?,
            count(settings, "max_alerts")? as u64,
        ),
        bursts: Vec::new(),
        key: String::new(),
    }))
}

/// Everything in `seen` not in `allowed`, as findings of `check`.
fn unlisted_dns(seen: &[[u8; 16]], allowed: &[[u8; 16]], out: &mut Vec<(&'static str, Seen)>) {
    for d in seen.iter().filter(|d| !allowed.contains(d)) {
        out.push(("dns", Seen::Bytes(d.to_vec())));
    }
}

fn unlisted_domains(seen: &[String], allowed: &[String], out: &mut Vec<(&'static str, Seen)>) {
    for d in seen.iter().filter(|d| !allowed.contains(d)) {
        out.push(("domain", Seen::Text(d.clone())));
    }
}

impl Rogue {
    /// The signature and findings for one server message, or None when it is allowed;
    /// with the policy entry it matched.
    fn judge(
        &mut self,
        m: &Dhcpv6Message,
        link: Link,
        who: Offender,
        ts: i64,
    ) -> Option<(&'static str, Vec<(&'static str, Seen)>, Option<usize>)> {
        let mut findings = Vec::new();
        let duid = m.server_id.as_deref();
        if let Some(entries) = &self.policy {
            let mac = m.meta.src_mac;
            let at = entries
                .iter()
                .position(|e| e.address == m.ip.src && Some(e.mac) == mac);
            let Some(i) = at else {
                findings.push(("source", Seen::Nothing));
                return Some((UNKNOWN, findings, None));
            };
            let e = &entries[i];
            if let Some(want) = &e.duid {
                if duid != Some(&want[..]) {
                    findings.push((
                        "duid",
                        duid.map_or(Seen::Nothing, |d| Seen::Bytes(d.to_vec())),
                    ));
                    return Some((UNKNOWN, findings, Some(i)));
                }
            }
            if let Some(dns) = &e.dns {
                unlisted_dns(&m.dns_servers, dns, &mut findings);
            }
            if let Some(domains) = &e.domains {
                unlisted_domains(&m.domains, domains, &mut findings);
            }
            return (!findings.is_empty()).then_some((UNLISTED, findings, Some(i)));
        }
        // Learning, as routers are learned: the first learn_ns of DHCPv6 server traffic.
        let first = *self.first_ns.get_or_insert(ts);
        let in_window = ts.saturating_sub(first) < self.learn_ns;
        if let Some(base) = self.learned.get_mut(&(link, who)) {
            if let (Some(want), Some(got)) = (&base.duid, duid) {
                if want[..] != *got {
                    findings.push(("duid", Seen::Bytes(got.to_vec())));
                    return Some((UNKNOWN, findings, None));
                }
            }
            if in_window {
                base.absorb(m);
                return None;
            }
            unlisted_dns(&m.dns_servers, &base.dns, &mut findings);
            unlisted_domains(&m.domains, &base.domains, &mut findings);
            return (!findings.is_empty()).then_some((UNLISTED, findings, None));
        }
        if in_window && self.learned.len() < self.learn_max {
            let mut base = Learned {
                duid: duid.map(|d| d.to_vec()),
                ..Learned::default()
            };
            base.absorb(m);
            self.learned.insert((link, who), base);
            return None;
        }
        findings.push(("source", Seen::Nothing));
        Some((UNKNOWN, findings, None))
    }

    /// Counts one sighting of an offending server and the client it answered.
    fn count_server(&mut self, link: Link, who: Offender, m: &Dhcpv6Message, ts: i64) {
        let key = (link, who);
        if self.servers.get(&key).is_none() {
            self.servers.put(
                key,
                Server {
                    first_ns: ts,
                    last_ns: ts,
                    count: 0,
                    clients: DistinctCounter::new(64, 12),
                    sample: Vec::new(),
                },
            );
        }
        let Some(s) = self.servers.get(&key) else {
            return;
        };
        s.count += 1;
        s.last_ns = ts;
        // A client is its DUID, or its address when the message names none (counted,
        // not sampled: the sample lists DUIDs only).
        let key = m.client_id.as_deref().unwrap_or(&m.ip.dst);
        if s.clients.add(hash_bytes(key)) && s.sample.len() < SAMPLE {
            if let Some(duid) = &m.client_id {
                s.sample.push(duid.clone());
            }
        }
    }

    fn suppression_key(&mut self, link: &Link, who: &Offender, sig: &str) {
        use std::fmt::Write;
        let k = &mut self.key;
        k.clear();
        let _ = write!(k, "{}|{:?}|", link.0, link.1.as_slice());
        for b in who.addr() {
            let _ = write!(k, "{b:02x}");
        }
        match who.mac {
            Some(m) => m.iter().for_each(|b| {
                let _ = write!(k, "{b:02x}");
            }),
            None => k.push('-'),
        }
        k.push('|');
        k.push_str(sig);
    }

    fn emit_bursts(&mut self, py: Python<'_>, out: &mut Outputs<'_>) -> PyResult<()> {
        if self.bursts.is_empty() {
            return Ok(());
        }
        let mut conv = Converter::new(py)?;
        for b in std::mem::take(&mut self.bursts) {
            let items = [any(py, "rogue_burst")?, b.to_py(py, &mut conv)?];
            let item = PyTuple::new(py, items)?.into_any().unbind();
            out.push(item.into_bound(out.list().py()))?;
        }
        Ok(())
    }

    /// The learned servers of `link` with the learning start, or None with a policy.
    fn learned_py<'py>(&self, py: Python<'py>, link: &Link) -> PyResult<Bound<'py, PyAny>> {
        let Some(first) = self.first_ns.filter(|_| self.policy.is_none()) else {
            return Ok(py.None().into_bound(py));
        };
        let mut keys: Vec<(Vec<u8>, Option<[u8; 6]>)> = self
            .learned
            .keys()
            .filter(|(l, _)| l == link)
            .map(|(_, o)| (o.addr().to_vec(), o.mac))
            .collect();
        keys.sort();
        let list = keys
            .iter()
            .map(|(a, m)| {
                let t = [bytes(py, a), opt_bytes(py, m.as_ref().map(|m| &m[..]))];
                Ok(PyTuple::new(py, t)?.into_any())
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, [any(py, first)?, PyList::new(py, list)?.into_any()])?.into_any())
    }
}

impl Reducer for Rogue {
    fn observes(&self) -> Observes {
        Observes {
            dhcpv6: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        let Some(m) = local(ev) else {
            return Ok(());
        };
        // A server's answer to a client (RFC 8415 7.2: to port 546).
        if !(m.msg_type == ADVERTISE || m.msg_type == REPLY) || m.dport != 546 {
            return Ok(());
        }
        let ts = m.meta.ts_ns;
        let link = link_of(ev);
        let who = Offender::new(&m.ip.src, m.meta.src_mac);
        let Some((sig, findings, entry)) = self.judge(m, link, who, ts) else {
            return Ok(());
        };
        self.count_server(link, who, m, ts);
        self.suppression_key(&link, &who, sig);
        let permitted =
            self.budget
                .permit(&mut self.suppress, &self.key, ev, who, &mut self.bursts);
        self.emit_bursts(py, out)?;
        if !permitted {
            return Ok(());
        }
        let py = out.list().py();
        let Some(s) = self.servers.peek(&(link, who)) else {
            return Ok(());
        };
        let findings = findings
            .into_iter()
            .map(|(check, seen)| {
                let seen = match seen {
                    Seen::Bytes(b) => bytes(py, &b),
                    Seen::Text(t) => any(py, t)?,
                    Seen::Nothing => py.None().into_bound(py),
                };
                Ok(PyTuple::new(py, [any(py, check)?, seen])?.into_any())
            })
            .collect::<PyResult<Vec<_>>>()?;
        let sample = s.sample.iter().map(|c| bytes(py, c)).collect::<Vec<_>>();
        let who_py = PyTuple::new(
            py,
            [
                bytes(py, who.addr()),
                opt_bytes(py, who.mac.as_ref().map(|m| &m[..])),
            ],
        )?;
        let items = vec![
            any(py, "rogue")?,
            any(py, sig)?,
            link_to_py(py, &link)?.into_any(),
            who_py.into_any(),
            any(py, s.count)?,
            any(py, s.first_ns)?,
            any(py, s.last_ns)?,
            Converter::new(py)?.event(ev)?,
            PyList::new(py, findings)?.into_any(),
            any(py, entry)?,
            self.learned_py(py, &link)?,
            any(py, s.clients.estimate().round() as u64)?,
            PyList::new(py, sample)?.into_any(),
        ];
        out.push(PyTuple::new(py, items)?.into_any())
    }

    fn tick(&mut self, py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.budget.tick(now_ns, &mut self.bursts);
        self.emit_bursts(py, out)
    }

    fn flush(&mut self, py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        self.budget.flush(&mut self.bursts);
        self.emit_bursts(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        vec![
            self.servers.table_stat("dhcpv6.rogue_servers"),
            self.suppress.table_stat(),
            self.budget.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.suppress.suppressed()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::msg;
    use super::*;
    use crate::decode::events::Vlans;

    fn rogue(policy: Option<Vec<Entry>>) -> Rogue {
        Rogue {
            policy,
            learn_ns: 100,
            learn_max: 2,
            first_ns: None,
            learned: KeyedMap::default(),
            servers: Lru::new(16),
            suppress: Suppressor::new("s", 100, 16),
            budget: LinkBudget::new("b", 16, 100, 10),
            bursts: Vec::new(),
            key: String::new(),
        }
    }

    fn verdict(r: &mut Rogue, m: &Dhcpv6Message) -> Option<(&'static str, Vec<&'static str>)> {
        let who = Offender::new(&m.ip.src, m.meta.src_mac);
        r.judge(m, (0, Vlans::default()), who, m.meta.ts_ns)
            .map(|(sig, f, _)| (sig, f.into_iter().map(|(c, _)| c).collect()))
    }

    #[test]
    fn policy_servers_by_address_mac_duid_and_content() {
        let mut addr = [0u8; 16];
        addr[..2].copy_from_slice(&[0xfe, 0x80]);
        addr[15] = 1;
        let entry = Entry {
            address: addr,
            mac: [2, 0, 0, 0, 0, 1],
            duid: Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]),
            dns: Some(vec![[0x20; 16]]),
            domains: Some(vec!["example.com".into()]),
        };
        let mut r = rogue(Some(vec![entry]));
        assert_eq!(verdict(&mut r, &msg(ADVERTISE, 0, 1, 1, 5, 1)), None);
        let other = verdict(&mut r, &msg(ADVERTISE, 0, 9, 9, 5, 1));
        assert_eq!(other, Some((UNKNOWN, vec!["source"])));
        // The server's address from another MAC: unknown, whatever its DUID says.
        assert_eq!(
            verdict(&mut r, &msg(REPLY, 0, 1, 9, 5, 1)).map(|v| v.0),
            Some(UNKNOWN)
        );
        let mut wrong_duid = msg(REPLY, 0, 1, 1, 5, 1);
        wrong_duid.server_id = Some(vec![0, 2, 1]);
        assert_eq!(verdict(&mut r, &wrong_duid), Some((UNKNOWN, vec!["duid"])));
        let mut extra = msg(REPLY, 0, 1, 1, 5, 1);
        extra.dns_servers.push([0x66; 16]);
        extra.domains.push("evil.example".into());
        let v = verdict(&mut r, &extra);
        assert_eq!(v, Some((UNLISTED, vec!["dns", "domain"])));
    }

    #[test]
    fn learning_in_the_window_only_and_bounded() {
        let mut r = rogue(None);
        assert_eq!(verdict(&mut r, &msg(ADVERTISE, 0, 1, 1, 5, 1)), None);
        assert_eq!(verdict(&mut r, &msg(ADVERTISE, 10, 2, 2, 5, 1)), None);
        // learn_max reached: a third server inside the window is judged.
        let third = verdict(&mut r, &msg(ADVERTISE, 20, 3, 3, 5, 1));
        assert_eq!(third.map(|v| v.0), Some(UNKNOWN));
        // After the window: a learned server's new DNS server is unlisted.
        let mut late = msg(REPLY, 200, 1, 1, 5, 1);
        assert_eq!(verdict(&mut r, &late), None);
        late.dns_servers = vec![[0x66; 16]];
        assert_eq!(verdict(&mut r, &late), Some((UNLISTED, vec!["dns"])));
        let mut spoof = msg(REPLY, 200, 1, 1, 5, 1);
        spoof.server_id = Some(vec![9]);
        assert_eq!(verdict(&mut r, &spoof), Some((UNKNOWN, vec!["duid"])));
    }
}
