//! The first-hop family's per-event half, in Rust: one reducer (`first_hop`) that keeps
//! the shared link knowledge (`links`) and judges, natively, every local-link Redirect
//! (`ipv6.redirect_spoof`), every IPv6 packet for smurf signs (`ipv6.smurf`) and every
//! ICMPv6 Packet Too Big (`ipv6.ptb_attack`).
//!
//! Owns the findings of each judged message (raw: addresses and MACs as bytes), the
//! choice of the signature (the strongest finding), the per-victim echo-reply and
//! per-target Packet Too Big windows, and per category the suppression and the per-link
//! alert budget with its burst. Python gets one `alert` output per alert that passed
//! them (the event, the findings, the spoofed-source finding, window counts, the learned
//! routers) and one `burst` per link window that folded alerts; it writes the evidence.
//! Packets are never handed to Python: its work grows with alerts, not packets.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::decode::events::{Event, IcmpError, Ipv6Packet, NdBody, NdMessage, OptionBody};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, link_to_py, Burst, Link, LinkBudget, Offender, Suppressor};
use crate::reduce::py::{any, bytes, opt_bytes, tuple};
use crate::reduce::windows::Lru;
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

mod links;

use links::{
    is_link_local, is_multicast, is_unspecified, net, Caps, Knowledge, RouterMatch, Spoof,
};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[("first_hop", build)];

const REDIRECT: usize = 0;
const SMURF: usize = 1;
const PTB: usize = 2;
const CATEGORIES: [&str; 3] = ["ipv6.redirect_spoof", "ipv6.smurf", "ipv6.ptb_attack"];

/// One finding's value, raw; Python formats bytes of 16 as an address, of 6 as a MAC.
#[derive(Clone, Copy, Debug)]
enum Val {
    Addr([u8; 16]),
    Mac([u8; 6]),
    Int(i64),
    Text(&'static str),
}

impl Val {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Val::Addr(a) => Ok(bytes(py, &a)),
            Val::Mac(m) => Ok(bytes(py, &m)),
            Val::Int(i) => any(py, i),
            Val::Text(t) => any(py, t),
        }
    }
}

/// `(signature, check, expected, seen)`, as the RA family's findings.
#[derive(Clone, Copy, Debug)]
struct Finding {
    sig: &'static str,
    check: &'static str,
    expected: Val,
    seen: Val,
}

impl Finding {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        tuple(
            py,
            vec![
                any(py, self.sig)?,
                any(py, self.check)?,
                self.expected.to_py(py)?,
                self.seen.to_py(py)?,
            ],
        )
    }
}

/// The signatures of the findings, strongest first (each category's order).
fn signatures(findings: &[Finding], order: &[&'static str]) -> Vec<&'static str> {
    order
        .iter()
        .copied()
        .filter(|s| findings.iter().any(|f| f.sig == *s))
        .collect()
}

const REDIRECT_ORDER: [&str; 7] = [
    "spoofed_remote_source",
    "bad_hop_limit",
    "spoofed_router_mac",
    "not_router",
    "target_lla_mismatch",
    "bad_target",
    "unseen_redirected",
];
const SMURF_ORDER: [&str; 3] = [
    "spoofed_local_source",
    "multicast_source",
    "multicast_echo_global_source",
];
const PTB_ORDER: [&str; 3] = ["spoofed_remote_source", "small_mtu", "unseen_flow"];

/// A per-key packet-time window: count, distinct senders (up to `MAX_SENDERS`), and
/// whether it already alerted.
#[derive(Clone, Debug, Default)]
struct Win {
    start_ns: i64,
    count: u64,
    senders: Vec<[u8; 16]>,
    more_senders: bool,
    alerted: bool,
}

const MAX_SENDERS: usize = 64;

impl Win {
    /// Count one event at `ts` from `sender`; true the moment the count first passes
    /// `max` in this window.
    fn count(&mut self, ts: i64, span: i64, sender: &[u8; 16], max: u64) -> bool {
        if ts.saturating_sub(self.start_ns) >= span {
            *self = Win {
                start_ns: ts,
                ..Win::default()
            };
        }
        self.count += 1;
        if !self.senders.contains(sender) {
            if self.senders.len() < MAX_SENDERS {
                self.senders.push(*sender);
            } else {
                self.more_senders = true;
            }
        }
        if self.count > max && !self.alerted {
            self.alerted = true;
            return true;
        }
        false
    }
}

/// Count one event from `sender` at `ts` in `key`'s window of `table` (a new key starts
/// a window there): the window's figures the moment it first passes `max`, else None.
/// The reply storm per victim and the PTB flood per target are both this.
fn count_window(
    table: &mut Lru<(Link, [u8; 16]), Win>,
    key: (Link, [u8; 16]),
    ts: i64,
    span: i64,
    sender: &[u8; 16],
    max: u64,
) -> Option<WinOut> {
    if table.get(&key).is_none() {
        table.put(
            key,
            Win {
                start_ns: ts,
                ..Win::default()
            },
        );
    }
    let w = table.get(&key).expect("just put");
    if !w.count(ts, span, sender, max) {
        return None;
    }
    Some(WinOut {
        count: w.count,
        start_ns: w.start_ns,
        window_ns: span,
        threshold: max,
        senders: w.senders.clone(),
        more: w.more_senders,
    })
}

struct Gate {
    suppress: Suppressor,
    budget: LinkBudget,
    bursts: Vec<Burst>,
}

struct Config {
    hop_limit: u8,
    min_mtu: u32,
    storm_ns: i64,
    max_replies: u64,
    flood_ns: i64,
    max_ptb: u64,
}

pub struct FirstHop {
    cfg: Config,
    k: Knowledge,
    gates: [Gate; 3],
    victims: Lru<(Link, [u8; 16]), Win>,
    targets: Lru<(Link, [u8; 16]), Win>,
    findings: Vec<Finding>,
    key: String,
}

fn setting<'py, T: FromPyObject<'py>>(s: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    s.get_item(name)?.extract()
}

fn addr16(a: &[u8]) -> PyResult<[u8; 16]> {
    a.try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("an address must be 16 bytes"))
}

fn mac6(m: &[u8]) -> PyResult<[u8; 6]> {
    m.try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("a MAC must be 6 bytes"))
}

pub fn build(s: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let routers: Option<Vec<(Vec<u8>, Option<Vec<u8>>)>> = setting(s, "routers")?;
    let routers = routers
        .map(|rs| {
            rs.into_iter()
                .map(|(a, m)| Ok((addr16(&a)?, m.map(|m| mac6(&m)).transpose()?)))
                .collect::<PyResult<Vec<_>>>()
        })
        .transpose()?;
    let prefixes: Vec<(Vec<u8>, u8)> = setting(s, "prefixes")?;
    let prefixes = prefixes
        .into_iter()
        .map(|(a, l)| Ok(net(&addr16(&a)?, l)))
        .collect::<PyResult<Vec<_>>>()?;
    let caps = Caps {
        links: setting(s, "max_links")?,
        bindings: setting(s, "max_bindings")?,
        flows: setting(s, "max_flows")?,
    };
    let k = Knowledge::new(
        routers,
        prefixes,
        setting(s, "learn_ns")?,
        setting(s, "learn_max")?,
        caps,
    );
    let gate = |i: usize, name: &str| -> PyResult<Gate> {
        let g: Bound<'_, PyAny> = setting(s, name)?;
        let cap: usize = setting(&g, "cap")?;
        Ok(Gate {
            suppress: Suppressor::new(
                &format!("{}.suppression", CATEGORIES[i]),
                setting(&g, "suppress_ns")?,
                cap,
            ),
            budget: LinkBudget::new(
                &format!("first_hop.{name}_links"),
                cap,
                setting(&g, "window_ns")?,
                setting(&g, "max_alerts")?,
            ),
            bursts: Vec::new(),
        })
    };
    Ok(Box::new(FirstHop {
        cfg: Config {
            hop_limit: setting(s, "hop_limit")?,
            min_mtu: setting(s, "min_mtu")?,
            storm_ns: setting(s, "storm_ns")?,
            max_replies: setting(s, "max_replies")?,
            flood_ns: setting(s, "flood_ns")?,
            max_ptb: setting(s, "max_ptb")?,
        },
        k,
        gates: [
            gate(REDIRECT, "redirect")?,
            gate(SMURF, "smurf")?,
            gate(PTB, "ptb")?,
        ],
        victims: Lru::new(setting(s, "max_victims")?),
        targets: Lru::new(setting(s, "max_targets")?),
        findings: Vec::new(),
        key: String::new(),
    }))
}

/// Hands one output to the owning detector (outputs live as long as the batch's list).
fn push(out: &mut Outputs<'_>, item: Bound<'_, PyAny>) -> PyResult<()> {
    let py = out.list().py();
    out.push(item.unbind().into_bound(py))
}

fn hex(buf: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        buf.push(char::from(DIGITS[usize::from(b >> 4)]));
        buf.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// The window counts of a storm or flood alert: `(count, start_ns, window_ns,
/// threshold, distinct senders, more than listed)`, senders as bytes.
struct WinOut {
    count: u64,
    start_ns: i64,
    window_ns: i64,
    threshold: u64,
    senders: Vec<[u8; 16]>,
    more: bool,
}

impl WinOut {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let senders: Vec<Bound<'py, PyAny>> = self.senders.iter().map(|s| bytes(py, s)).collect();
        tuple(
            py,
            vec![
                any(py, self.count)?,
                any(py, self.start_ns)?,
                any(py, self.window_ns)?,
                any(py, self.threshold)?,
                PyList::new(py, senders)?.into_any(),
                any(py, self.more)?,
            ],
        )
    }
}

impl FirstHop {
    /// The learned routers of a link with the learning start (None with a policy).
    fn learned_py<'py>(&self, py: Python<'py>, link: &Link) -> PyResult<Bound<'py, PyAny>> {
        let Some(routers) = self.k.learned_routers(link) else {
            return Ok(py.None().into_bound(py));
        };
        let keys = routers
            .iter()
            .map(|(a, m)| {
                tuple(
                    py,
                    vec![bytes(py, a), opt_bytes(py, m.as_ref().map(|m| &m[..]))],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        tuple(
            py,
            vec![
                any(py, self.k.first_ns.unwrap_or(0))?,
                PyList::new(py, keys)?.into_any(),
            ],
        )
    }

    fn emit_bursts(&mut self, py: Python<'_>, out: &mut Outputs<'_>) -> PyResult<()> {
        for i in 0..3 {
            if self.gates[i].bursts.is_empty() {
                continue;
            }
            let mut conv = Converter::new(py)?;
            for b in std::mem::take(&mut self.gates[i].bursts) {
                let item = tuple(
                    py,
                    vec![
                        any(py, "burst")?,
                        any(py, CATEGORIES[i])?,
                        b.to_py(py, &mut conv)?,
                        self.learned_py(py, &b.link)?,
                    ],
                )?;
                push(out, item)?;
            }
        }
        Ok(())
    }

    /// One alert candidate: suppression per (link, who, signature), then (for an
    /// alert on one packet) the link budget of the category; the output when both let
    /// it through.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        py: Python<'_>,
        cat: usize,
        sig: &'static str,
        ev: &Event,
        link: &Link,
        who: Offender,
        spoof: Option<Spoof>,
        window: Option<WinOut>,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        self.key.clear();
        hex(&mut self.key, &link.0.to_be_bytes());
        for v in link.1.as_slice() {
            self.key.push('.');
            hex(&mut self.key, &v.to_be_bytes());
        }
        self.key.push('|');
        hex(&mut self.key, who.addr());
        self.key.push('|');
        match who.mac {
            Some(m) => hex(&mut self.key, &m),
            None => self.key.push('-'),
        }
        self.key.push('|');
        self.key.push_str(sig);
        let g = &mut self.gates[cat];
        // A storm or flood alerts once per target and window past a threshold of
        // hundreds of packets, so it cannot flood the link: it skips the budget, whose
        // burst would otherwise swallow it under the individual alerts of the same flood.
        let permitted = if window.is_some() {
            g.suppress.allow(&self.key, ev.meta().ts_ns)
        } else {
            g.budget
                .permit(&mut g.suppress, &self.key, ev, who, &mut g.bursts)
        };
        self.emit_bursts(py, out)?;
        if !permitted {
            return Ok(());
        }
        let findings = self
            .findings
            .iter()
            .map(|f| f.to_py(py))
            .collect::<PyResult<Vec<_>>>()?;
        let mac = match who.mac {
            Some(m) => bytes(py, &m),
            None => py.None().into_bound(py),
        };
        let item = tuple(
            py,
            vec![
                any(py, "alert")?,
                any(py, CATEGORIES[cat])?,
                any(py, sig)?,
                link_to_py(py, link)?.into_any(),
                tuple(py, vec![bytes(py, who.addr()), mac])?,
                Converter::new(py)?.event(ev)?,
                PyList::new(py, findings)?.into_any(),
                match spoof {
                    Some(s) => s.to_py(py)?,
                    None => py.None().into_bound(py),
                },
                match window {
                    Some(w) => w.to_py(py)?,
                    None => py.None().into_bound(py),
                },
                self.learned_py(py, link)?,
            ],
        )?;
        push(out, item)
    }

    /// The spoofed-remote-source finding, under `sig` (a smurf's forged off-link source
    /// is reported with its global source).
    fn spoof_finding(
        &mut self,
        link: &Link,
        src: &[u8; 16],
        mac: Option<[u8; 6]>,
        sig: &'static str,
    ) -> Option<Spoof> {
        let s = self.k.spoof_remote(link, src, mac)?;
        self.findings.push(Finding {
            sig,
            check: "source_mac",
            expected: Val::Text("a router's MAC (off-link source)"),
            seen: Val::Mac(s.mac),
        });
        Some(s)
    }

    /// RFC 4861 8.1 and 8.3: what a host must check in a Redirect, and more.
    fn redirect(
        &mut self,
        py: Python<'_>,
        ev: &Event,
        nd: &NdMessage,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let NdBody::Redirect {
            target,
            destination,
        } = nd.body
        else {
            return Ok(());
        };
        let link = link_of(ev);
        let src = nd.ip.src;
        let mac = nd.meta.src_mac;
        self.findings.clear();
        let spoof = self.spoof_finding(&link, &src, mac, "spoofed_remote_source");
        if nd.ip.hop_limit != self.cfg.hop_limit {
            self.findings.push(Finding {
                sig: "bad_hop_limit",
                check: "hop_limit",
                expected: Val::Int(i64::from(self.cfg.hop_limit)),
                seen: Val::Int(i64::from(nd.ip.hop_limit)),
            });
        }
        match self.k.router_match(&link, &src, mac) {
            RouterMatch::OtherMac(m) => self.findings.push(Finding {
                sig: "spoofed_router_mac",
                check: "source_mac",
                expected: Val::Mac(m),
                seen: mac.map_or(Val::Text("none"), Val::Mac),
            }),
            RouterMatch::NotRouter => self.findings.push(Finding {
                sig: "not_router",
                check: "source",
                expected: Val::Text("a router"),
                seen: Val::Addr(src),
            }),
            RouterMatch::Router | RouterMatch::Unknown => {
                if !is_link_local(&src) {
                    self.findings.push(Finding {
                        sig: "not_router",
                        check: "source",
                        expected: Val::Text("fe80::/10"),
                        seen: Val::Addr(src),
                    });
                }
            }
        }
        let tlla = nd.options.iter().find_map(|o| match &o.body {
            OptionBody::LinkLayerAddress { address } if o.otype == 2 => {
                <[u8; 6]>::try_from(&address[..]).ok()
            }
            _ => None,
        });
        if let Some(t) = tlla {
            let expected = self
                .k
                .router_mac(&link, &target)
                .or_else(|| self.k.binding(&link, &target));
            if let Some(e) = expected.filter(|e| *e != t) {
                self.findings.push(Finding {
                    sig: "target_lla_mismatch",
                    check: "target_lla",
                    expected: Val::Mac(e),
                    seen: Val::Mac(t),
                });
            }
        }
        if !is_link_local(&target) && target != destination {
            self.findings.push(Finding {
                sig: "bad_target",
                check: "target",
                expected: Val::Text("link-local, or the destination"),
                seen: Val::Addr(target),
            });
        }
        let quoted = nd.options.iter().find_map(|o| match o.body {
            OptionBody::RedirectedHeader {
                src: Some(s),
                dst: Some(d),
                ..
            } => Some((s, d)),
            _ => None,
        });
        if let Some((qs, qd)) = quoted {
            if self.k.unseen_quote(&qs, &qd) {
                self.findings.push(Finding {
                    sig: "unseen_redirected",
                    check: "redirected_header",
                    expected: Val::Text("a flow seen on the wire"),
                    seen: Val::Addr(qd),
                });
            }
        }
        let who = Offender::new(&src, mac);
        for sig in signatures(&self.findings, &REDIRECT_ORDER) {
            self.raise(py, REDIRECT, sig, ev, &link, who, spoof, None, out)?;
        }
        Ok(())
    }

    /// Multicast sources, echo requests to a group from a forged or global source, and
    /// the echo-reply storm towards one victim.
    fn smurf(
        &mut self,
        py: Python<'_>,
        ev: &Event,
        p: &Ipv6Packet,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let (src, dst) = (p.ip.src, p.ip.dst);
        let echo = p.ip.upper == 58 && p.icmp_type == Some(128) && is_multicast(&dst);
        let reply = p.ip.upper == 58 && p.icmp_type == Some(129) && !is_multicast(&dst);
        if !is_multicast(&src) && !echo && !reply {
            return Ok(()); // almost every packet
        }
        let link = link_of(ev);
        let mac = p.meta.src_mac;
        if reply {
            let ts = p.meta.ts_ns;
            let (span, max) = (self.cfg.storm_ns, self.cfg.max_replies);
            if let Some(win) = count_window(&mut self.victims, (link, dst), ts, span, &src, max) {
                self.findings.clear();
                let who = Offender::new(&dst, None);
                self.raise(
                    py,
                    SMURF,
                    "reply_storm",
                    ev,
                    &link,
                    who,
                    None,
                    Some(win),
                    out,
                )?;
            }
        }
        self.findings.clear();
        let mut spoof = None;
        if is_multicast(&src) {
            self.findings.push(Finding {
                sig: "multicast_source",
                check: "source",
                expected: Val::Text("unicast (RFC 4291 2.7)"),
                seen: Val::Addr(src),
            });
        }
        if echo {
            spoof = self.spoof_finding(&link, &src, mac, "multicast_echo_global_source");
            if let (Some(bound), Some(m)) = (self.k.binding(&link, &src), mac) {
                if bound != m {
                    self.findings.push(Finding {
                        sig: "spoofed_local_source",
                        check: "source_mac",
                        expected: Val::Mac(bound),
                        seen: Val::Mac(m),
                    });
                }
            }
            if !is_link_local(&src) && !is_multicast(&src) && !is_unspecified(&src) {
                self.findings.push(Finding {
                    sig: "multicast_echo_global_source",
                    check: "source",
                    expected: Val::Text("fe80::/10"),
                    seen: Val::Addr(src),
                });
            }
        }
        let who = Offender::new(&src, mac);
        for sig in signatures(&self.findings, &SMURF_ORDER) {
            self.raise(py, SMURF, sig, ev, &link, who, spoof, None, out)?;
        }
        Ok(())
    }

    /// A Packet Too Big: its MTU, its quoted flow, its source, and the flood per target.
    fn ptb(
        &mut self,
        py: Python<'_>,
        ev: &Event,
        e: &IcmpError,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let link = link_of(ev);
        let (src, target) = (e.ip.src, e.ip.dst);
        let mac = e.meta.src_mac;
        let ts = e.meta.ts_ns;
        let (span, max) = (self.cfg.flood_ns, self.cfg.max_ptb);
        if let Some(win) = count_window(&mut self.targets, (link, target), ts, span, &src, max) {
            self.findings.clear();
            let who = Offender::new(&target, None);
            self.raise(py, PTB, "flood", ev, &link, who, None, Some(win), out)?;
        }
        self.findings.clear();
        let spoof = self.spoof_finding(&link, &src, mac, "spoofed_remote_source");
        if e.param < self.cfg.min_mtu {
            self.findings.push(Finding {
                sig: "small_mtu",
                check: "mtu",
                expected: Val::Int(i64::from(self.cfg.min_mtu)),
                seen: Val::Int(i64::from(e.param)),
            });
        }
        if let Some(q) = e.quoted {
            if self.k.unseen_quote(&q.src, &q.dst) {
                self.findings.push(Finding {
                    sig: "unseen_flow",
                    check: "quoted_flow",
                    expected: Val::Text("a flow seen on the wire"),
                    seen: Val::Addr(q.dst),
                });
            }
        }
        let who = Offender::new(&src, mac);
        for sig in signatures(&self.findings, &PTB_ORDER) {
            self.raise(py, PTB, sig, ev, &link, who, spoof, None, out)?;
        }
        Ok(())
    }
}

impl Reducer for FirstHop {
    fn observes(&self) -> Observes {
        Observes {
            packets: true,
            nd: true,
            icmp_errors: true,
            ..Observes::default()
        }
    }

    fn observe(&mut self, py: Python<'_>, ev: &Event, out: &mut Outputs<'_>) -> PyResult<()> {
        match ev {
            Event::Packet(p) => {
                // ND is judged from its own event; its packet only matters with a
                // multicast source. Not recording its flow spares the tables the
                // random-source ND floods (no quoted packet is ever ND).
                let nd = p.ip.upper == 58 && matches!(p.icmp_type, Some(133..=137));
                if nd && !is_multicast(&p.ip.src) {
                    return Ok(());
                }
                self.k.record_flow(&p.ip.src, &p.ip.dst, !nd);
                if p.ip.tunnels.is_empty() {
                    self.k.clock(p.meta.ts_ns);
                    return self.smurf(py, ev, p, out);
                }
            }
            Event::Nd(nd) if nd.ip.tunnels.is_empty() => {
                self.k.clock(nd.meta.ts_ns);
                let link = link_of(ev);
                self.k.learn_nd(&link, nd);
                if nd.icmp_type == 137 {
                    return self.redirect(py, ev, nd, out);
                }
            }
            Event::IcmpError(e) if e.ip.tunnels.is_empty() && e.icmp_type == 2 => {
                self.k.clock(e.meta.ts_ns);
                return self.ptb(py, ev, e, out);
            }
            _ => {}
        }
        Ok(())
    }

    fn tick(&mut self, py: Python<'_>, now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        for g in &mut self.gates {
            g.budget.tick(now_ns, &mut g.bursts);
        }
        self.emit_bursts(py, out)
    }

    fn flush(&mut self, py: Python<'_>, _now_ns: i64, out: &mut Outputs<'_>) -> PyResult<()> {
        for g in &mut self.gates {
            g.budget.flush(&mut g.bursts);
        }
        self.emit_bursts(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        let mut t = self.k.tables();
        t.push(self.victims.table_stat("first_hop.victims"));
        t.push(self.targets.table_stat("first_hop.ptb_targets"));
        for g in &self.gates {
            t.push(g.suppress.table_stat());
            t.push(g.budget.table_stat());
        }
        t
    }

    fn suppressed(&self) -> u64 {
        self.gates.iter().map(|g| g.suppress.suppressed()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_alerts_once_when_it_passes_its_threshold_then_starts_afresh() {
        let mut w = Win::default();
        let (span, max) = (10, 3);
        let crossed: Vec<bool> = (0..6)
            .map(|t| w.count(t, span, &[t as u8; 16], max))
            .collect();
        assert_eq!(crossed, [false, false, false, true, false, false]);
        assert_eq!((w.count, w.senders.len()), (6, 6));
        // A new window: counts and the alert flag start again.
        assert!(!w.count(20, span, &[1; 16], max));
        assert_eq!((w.start_ns, w.count), (20, 1));
        // Senders are listed up to MAX_SENDERS, then only flagged.
        for i in 0..(MAX_SENDERS as u16 + 5) {
            let mut s = [0u8; 16];
            s[..2].copy_from_slice(&i.to_be_bytes());
            w.count(21, span, &s, u64::MAX);
        }
        assert_eq!(w.senders.len(), MAX_SENDERS);
        assert!(w.more_senders);
    }

    #[test]
    fn every_finding_raises_its_signature_once_strongest_first() {
        let f = |sig| Finding {
            sig,
            check: "x",
            expected: Val::Int(0),
            seen: Val::Int(0),
        };
        let findings = [
            f("unseen_redirected"),
            f("not_router"),
            f("bad_hop_limit"),
            f("not_router"),
        ];
        assert_eq!(
            signatures(&findings, &REDIRECT_ORDER),
            ["bad_hop_limit", "not_router", "unseen_redirected"]
        );
        assert!(signatures(&[], &PTB_ORDER).is_empty());
    }
}
