//! `ipv6.rogue_ra`'s per-RA half (`detectors/detections/router_advert/rogue.py`).
//!
//! Owns, for every local-link RA: the verdict on who sent it (a policy router, a learned
//! one, an unknown router, a listed address with another MAC, a kill-router lifetime 0),
//! the findings on what it says (hop limit, source scope, SLLA against the Ethernet
//! source, MTU, prefixes, routes, RDNSS, DNSSL, preference and M/O flags against the
//! router's baseline), the learned routers (learning mode: reducer state), the
//! per-(link, router, signature) counts, suppression and the link budget. The policy
//! comes in as plain settings; a policy reload builds a new engine, so there is no reload
//! path. Python gets a `rogue` output only for an alert that passed suppression and the
//! budget (the findings as raw tuples, the learned routers of the link; Python writes the
//! evidence), and a `rogue_burst` when a link window that folded alerts closes. A
//! random-source RA flood is therefore judged and counted here, RA by RA, and costs
//! Python one burst per link window.

use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyTuple};
use pyo3::BoundObject;

use super::{alert_head, local_nd, offender, offender_to_py, push, setting, source_lla, Gate};
use crate::decode::events::{Event, NdBody, NdMessage, OptionBody};
use crate::decode::topy::Converter;
use crate::reduce::budget::{link_of, seen_in, Link, LinkBudget, Offender, Seen, Suppressor};
use crate::reduce::windows::{KeyedMap, Lru};
use crate::reducer::{Observes, Outputs, Reducer, TableStat};

/// Signature names, indexed by the `u8` kept in table keys.
const SIGS: [&str; 9] = [
    "unknown_router",
    "spoofed_router_mac",
    "kill_router",
    "bad_hop_limit",
    "non_link_local",
    "slla_mismatch",
    "small_mtu",
    "unlisted_option",
    "parameter_change",
];
const UNKNOWN: u8 = 0;
const SPOOFED: u8 = 1;
const KILL: u8 = 2;
const BAD_HOP_LIMIT: u8 = 3;
const NON_LINK_LOCAL: u8 = 4;
const SLLA: u8 = 5;
const SMALL_MTU: u8 = 6;
const UNLISTED: u8 = 7;
const PARAM: u8 = 8;

/// Source signatures share one identifier per router (no `|signature` suffix).
fn is_source_sig(sig: u8) -> bool {
    sig == UNKNOWN || sig == SPOOFED
}

/// A PIO/RIO prefix as `common.net` makes it: host bits cleared, length at most 128.
type Net = ([u8; 16], u8);

fn net(prefix: &[u8; 16], len: u8) -> Net {
    let len = len.min(128);
    let mut a = *prefix;
    for (i, b) in a.iter_mut().enumerate() {
        let bits = (i32::from(len) - 8 * i as i32).clamp(0, 8);
        *b &= (0xFFu16 << (8 - bits)) as u8;
    }
    (a, len)
}

/// `common.domain`: trailing dots dropped, lower case.
fn domain(name: &str) -> String {
    name.trim_end_matches('.').to_lowercase()
}

fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xFE && a[1] & 0xC0 == 0x80
}

/// The RA fields the judgement reads.
struct Ra<'a> {
    nd: &'a NdMessage,
    managed: bool,
    other: bool,
    preference: i8,
    lifetime: u16,
}

impl<'a> Ra<'a> {
    fn of(nd: &'a NdMessage) -> Option<Self> {
        match nd.body {
            NdBody::RouterAdvertisement {
                managed,
                other,
                preference,
                router_lifetime,
                ..
            } => Some(Ra {
                nd,
                managed,
                other,
                preference,
                lifetime: router_lifetime,
            }),
            _ => None,
        }
    }

    /// `common.mtu`: the first MTU option's value.
    fn mtu(&self) -> Option<u32> {
        self.nd.options.iter().find_map(|o| match o.body {
            OptionBody::Mtu { mtu } => Some(mtu),
            _ => None,
        })
    }

    fn prefixes(&self) -> impl Iterator<Item = Net> + '_ {
        self.nd.options.iter().filter_map(|o| match &o.body {
            OptionBody::PrefixInformation {
                prefix, prefix_len, ..
            } => Some(net(prefix, *prefix_len)),
            _ => None,
        })
    }

    fn routes(&self) -> impl Iterator<Item = Net> + '_ {
        self.nd.options.iter().filter_map(|o| match &o.body {
            OptionBody::RouteInformation {
                prefix, prefix_len, ..
            } => Some(net(prefix, *prefix_len)),
            _ => None,
        })
    }

    fn rdnss(&self) -> impl Iterator<Item = [u8; 16]> + '_ {
        self.nd
            .options
            .iter()
            .flat_map(|o| match &o.body {
                OptionBody::Rdnss { servers, .. } => servers.as_slice(),
                _ => &[],
            })
            .copied()
    }

    fn dnssl(&self) -> impl Iterator<Item = String> + '_ {
        self.nd
            .options
            .iter()
            .flat_map(|o| match &o.body {
                OptionBody::Dnssl { domains, .. } => domains.as_slice(),
                _ => &[],
            })
            .map(|d| domain(d))
    }
}

/// What a legitimate router is allowed to say (`rogue.Baseline`); a set of None is not
/// checked.
#[derive(Clone, Debug, Default)]
struct Baseline {
    name: Option<String>,
    preference: Option<i8>,
    managed: Option<bool>,
    other: Option<bool>,
    mtu: Option<u32>,
    prefixes: Option<HashSet<Net>>,
    routes: Option<HashSet<Net>>,
    rdnss: Option<HashSet<[u8; 16]>>,
    dnssl: Option<HashSet<String>>,
}

impl Baseline {
    fn from_ra(ra: &Ra<'_>) -> Self {
        let mut b = Baseline {
            name: None,
            preference: Some(ra.preference),
            managed: Some(ra.managed),
            other: Some(ra.other),
            mtu: ra.mtu(),
            prefixes: Some(HashSet::new()),
            routes: Some(HashSet::new()),
            rdnss: Some(HashSet::new()),
            dnssl: Some(HashSet::new()),
        };
        b.absorb(ra);
        b
    }

    /// While learning, what the router advertises becomes allowed.
    fn absorb(&mut self, ra: &Ra<'_>) {
        if let Some(s) = &mut self.prefixes {
            s.extend(ra.prefixes());
        }
        if let Some(s) = &mut self.routes {
            s.extend(ra.routes());
        }
        if let Some(s) = &mut self.rdnss {
            s.extend(ra.rdnss());
        }
        if let Some(s) = &mut self.dnssl {
            s.extend(ra.dnssl());
        }
    }
}

/// A policy router as Python hands it over.
struct PolicyRouter {
    address: [u8; 16],
    mac: Option<[u8; 6]>,
}

/// Where the verdict's baseline is.
#[derive(Clone, Copy)]
enum Base {
    None,
    Policy(usize),
    Learned,
}

struct Verdict {
    signature: Option<u8>,
    base: Base,
    entry: Option<usize>,
}

/// One finding, raw; Python formats it into the evidence dict (`rogue._finding`).
#[derive(Clone, Debug, PartialEq)]
enum Finding {
    BadHopLimit(u8),
    NonLinkLocal([u8; 16]),
    Slla([u8; 6], [u8; 6]),
    SmallMtu(u32),
    Prefix(Net),
    Route(Net),
    Rdnss([u8; 16]),
    Dnssl(String),
    Managed(bool, bool),
    Other(bool, bool),
    Preference(i8, i8),
    Mtu(u32, u32),
}

impl Finding {
    fn signature(&self) -> u8 {
        match self {
            Finding::BadHopLimit(_) => BAD_HOP_LIMIT,
            Finding::NonLinkLocal(_) => NON_LINK_LOCAL,
            Finding::Slla(..) => SLLA,
            Finding::SmallMtu(_) => SMALL_MTU,
            Finding::Prefix(_) | Finding::Route(_) | Finding::Rdnss(_) | Finding::Dnssl(_) => {
                UNLISTED
            }
            _ => PARAM,
        }
    }

    /// `(signature, check, expected, seen)`, addresses as bytes, for `rogue._finding`.
    fn to_py<'py>(
        &self,
        py: Python<'py>,
        hop_limit: u8,
        min_mtu: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        fn o<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> PyResult<Bound<'py, PyAny>> {
            Ok(v.into_pyobject(py)
                .map_err(Into::into)?
                .into_any()
                .into_bound())
        }
        let b = |v: &[u8]| PyBytes::new(py, v).into_any();
        let flag = |v: bool| PyBool::new(py, v).to_owned().into_any();
        let nett = |n: &Net| -> PyResult<Bound<'py, PyAny>> {
            Ok(PyTuple::new(py, [b(&n.0), o(py, n.1)?])?.into_any())
        };
        let (check, expected, seen): (&str, Bound<'py, PyAny>, Bound<'py, PyAny>) = match self {
            Finding::BadHopLimit(s) => ("hop_limit", o(py, hop_limit)?, o(py, *s)?),
            Finding::NonLinkLocal(a) => ("source", o(py, "fe80::/10")?, b(a)),
            Finding::Slla(eth, slla) => ("source_lla", b(eth), b(slla)),
            Finding::SmallMtu(m) => ("mtu", o(py, min_mtu)?, o(py, *m)?),
            Finding::Prefix(n) => ("prefix", o(py, "listed")?, nett(n)?),
            Finding::Route(n) => ("route", o(py, "listed")?, nett(n)?),
            Finding::Rdnss(a) => ("rdnss", o(py, "listed")?, b(a)),
            Finding::Dnssl(d) => ("dnssl", o(py, "listed")?, o(py, d.as_str())?),
            Finding::Managed(w, s) => ("managed", flag(*w), flag(*s)),
            Finding::Other(w, s) => ("other", flag(*w), flag(*s)),
            Finding::Preference(w, s) => ("preference", o(py, *w)?, o(py, *s)?),
            Finding::Mtu(w, s) => ("mtu", o(py, *w)?, o(py, *s)?),
        };
        Ok(PyTuple::new(
            py,
            [
                o(py, SIGS[usize::from(self.signature())])?,
                o(py, check)?,
                expected,
                seen,
            ],
        )?
        .into_any())
    }
}

struct Config {
    learn_ns: i64,
    learn_max: usize,
    min_mtu: u32,
    hop_limit: u8,
}

pub struct RogueReducer {
    cfg: Config,
    learning: bool,
    routers_policy: Vec<PolicyRouter>,
    /// Policy routers by address, in file order (`Policy.routers_by_address`).
    by_address: KeyedMap<[u8; 16], Vec<usize>>,
    /// `(address, mac)` -> baseline of the last policy entry with that key (a dict).
    policy_baselines: Vec<Baseline>,
    baseline_of: KeyedMap<([u8; 16], Option<[u8; 6]>), usize>,
    /// Learned routers per (link, router), and learned addresses per link.
    learned: KeyedMap<(Link, Offender), Baseline>,
    learned_addrs: KeyedMap<(Link, [u8; 16]), u32>,
    learned_count: usize,
    first_ns: Option<i64>,
    routers: Lru<(Link, Offender, u8), Seen>,
    gate: Gate,
    findings: Vec<Finding>,
}

fn opt_set<'py, T: FromPyObject<'py> + std::hash::Hash + Eq>(
    r: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<HashSet<T>>> {
    let v: Option<Vec<T>> = setting(r, name)?;
    Ok(v.map(|v| v.into_iter().collect()))
}

fn nets(r: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<HashSet<Net>>> {
    let v: Option<Vec<(Vec<u8>, u8)>> = setting(r, name)?;
    v.map(|v| {
        v.into_iter()
            .map(|(a, l)| Ok(net(&addr16(&a)?, l)))
            .collect()
    })
    .transpose()
}

fn addr16(a: &[u8]) -> PyResult<[u8; 16]> {
    a.try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("router address must be 16 bytes"))
}

pub fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let cap: usize = setting(settings, "cap")?;
    let routers: Option<Vec<Bound<'_, PyAny>>> = setting(settings, "routers")?;
    let mut red = RogueReducer {
        cfg: Config {
            learn_ns: setting(settings, "learn_ns")?,
            learn_max: setting(settings, "learn_max")?,
            min_mtu: setting(settings, "min_mtu")?,
            hop_limit: setting(settings, "hop_limit")?,
        },
        learning: routers.is_none(),
        routers_policy: Vec::new(),
        by_address: KeyedMap::default(),
        policy_baselines: Vec::new(),
        baseline_of: KeyedMap::default(),
        learned: KeyedMap::default(),
        learned_addrs: KeyedMap::default(),
        learned_count: 0,
        first_ns: None,
        routers: Lru::new(cap),
        gate: Gate::new(
            Suppressor::new(
                "ipv6.rogue_ra.suppression",
                setting(settings, "suppress_ns")?,
                cap,
            ),
            LinkBudget::new(
                "router_advert.links",
                cap,
                setting(settings, "window_ns")?,
                setting(settings, "max_alerts")?,
            ),
        ),
        findings: Vec::new(),
    };
    for (i, r) in routers.unwrap_or_default().iter().enumerate() {
        let address = addr16(&setting::<Vec<u8>>(r, "address")?)?;
        let mac: Option<Vec<u8>> = setting(r, "mac")?;
        let mac = mac.map(|m| super::mac6(&m));
        red.routers_policy.push(PolicyRouter { address, mac });
        red.by_address.entry(address).or_default().push(i);
        red.policy_baselines.push(Baseline {
            name: setting(r, "name")?,
            preference: setting(r, "preference")?,
            managed: setting(r, "managed")?,
            other: setting(r, "other")?,
            mtu: setting(r, "mtu")?,
            prefixes: nets(r, "prefixes")?,
            routes: nets(r, "routes")?,
            rdnss: opt_set::<Vec<u8>>(r, "rdnss")?
                .map(|s| s.iter().map(|a| addr16(a)).collect::<PyResult<_>>())
                .transpose()?,
            dnssl: opt_set(r, "dnssl")?,
        });
        red.baseline_of.insert((address, mac), i);
    }
    Ok(Box::new(red))
}

impl RogueReducer {
    /// Who sent it (`RogueRA._source`); learns a router while in the learning window.
    fn source(&mut self, ra: &Ra<'_>, link: Link, who: Offender, ts: i64) -> Verdict {
        let addr: [u8; 16] = ra.nd.ip.src;
        if self.learning {
            let first = self.first_ns.unwrap_or(ts);
            let in_window = ts.saturating_sub(first) < self.cfg.learn_ns;
            if let Some(base) = self.learned.get_mut(&(link, who)) {
                if in_window {
                    base.absorb(ra);
                }
                return Verdict {
                    signature: None,
                    base: Base::Learned,
                    entry: None,
                };
            }
            if self.learned_addrs.contains_key(&(link, addr)) {
                return Verdict {
                    signature: Some(SPOOFED),
                    base: Base::None,
                    entry: None,
                };
            }
            // A router that says it is no router (lifetime 0) is never learned.
            if in_window && self.learned_count < self.cfg.learn_max && ra.lifetime != 0 {
                self.learned.insert((link, who), Baseline::from_ra(ra));
                *self.learned_addrs.entry((link, addr)).or_default() += 1;
                self.learned_count += 1;
                return Verdict {
                    signature: None,
                    base: Base::Learned,
                    entry: None,
                };
            }
            return Verdict {
                signature: Some(UNKNOWN),
                base: Base::None,
                entry: None,
            };
        }
        let Some(candidates) = self.by_address.get(&addr) else {
            return Verdict {
                signature: Some(UNKNOWN),
                base: Base::None,
                entry: None,
            };
        };
        for &i in candidates {
            let r = &self.routers_policy[i];
            if r.mac.is_none() || r.mac == who.mac {
                let b = self
                    .baseline_of
                    .get(&(r.address, r.mac))
                    .copied()
                    .unwrap_or(i);
                return Verdict {
                    signature: None,
                    base: Base::Policy(b),
                    entry: Some(i),
                };
            }
        }
        Verdict {
            signature: Some(SPOOFED),
            base: Base::None,
            entry: candidates.first().copied(),
        }
    }

    /// Every finding (`RogueRA._content` plus the source checks), into `self.findings`,
    /// in the order Python lists them.
    fn content(cfg: &Config, out: &mut Vec<Finding>, ra: &Ra<'_>, base: Option<&Baseline>) {
        out.clear();
        let nd = ra.nd;
        if nd.ip.hop_limit != cfg.hop_limit {
            out.push(Finding::BadHopLimit(nd.ip.hop_limit));
        }
        if !is_link_local(&nd.ip.src) {
            out.push(Finding::NonLinkLocal(nd.ip.src));
        }
        if let (Some(eth), Some(slla)) = (nd.meta.src_mac, source_lla(nd)) {
            if slla.len() == 6 && slla != eth {
                out.push(Finding::Slla(eth, super::mac6(slla)));
            }
        }
        let mtu = ra.mtu();
        if let Some(m) = mtu {
            if m < cfg.min_mtu {
                out.push(Finding::SmallMtu(m));
            }
        }
        let Some(base) = base else {
            return;
        };
        let start = out.len();
        let mut unlisted = |f: Finding, out: &mut Vec<Finding>| {
            if !out[start..].contains(&f) {
                out.push(f); // dedupe, keep order
            }
        };
        if let Some(s) = &base.prefixes {
            for p in ra.prefixes().filter(|p| !s.contains(p)) {
                unlisted(Finding::Prefix(p), out);
            }
        }
        if let Some(s) = &base.routes {
            for r in ra.routes().filter(|r| !s.contains(r)) {
                unlisted(Finding::Route(r), out);
            }
        }
        if let Some(s) = &base.rdnss {
            for a in ra.rdnss().filter(|a| !s.contains(a)) {
                unlisted(Finding::Rdnss(a), out);
            }
        }
        if let Some(s) = &base.dnssl {
            for d in ra.dnssl().filter(|d| !s.contains(d)) {
                unlisted(Finding::Dnssl(d), out);
            }
        }
        if let Some(w) = base.managed {
            if w != ra.managed {
                out.push(Finding::Managed(w, ra.managed));
            }
        }
        if let Some(w) = base.other {
            if w != ra.other {
                out.push(Finding::Other(w, ra.other));
            }
        }
        if let Some(w) = base.preference {
            if w != ra.preference {
                out.push(Finding::Preference(w, ra.preference));
            }
        }
        if let (Some(m), Some(w)) = (mtu, base.mtu) {
            if m >= cfg.min_mtu && w != m {
                out.push(Finding::Mtu(w, m));
            }
        }
    }

    /// The learned routers of `link` with the learning start, for the policy evidence:
    /// `(first_ns, [(address, mac), ...])`, or None when the policy lists routers.
    fn learned_py<'py>(&self, py: Python<'py>, link: &Link) -> PyResult<Bound<'py, PyAny>> {
        if !self.learning {
            return Ok(py.None().into_bound(py));
        }
        let keys = self
            .learned
            .keys()
            .filter(|(l, _)| l == link)
            .map(|(_, o)| offender_to_py(py, o))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(
            py,
            [
                self.first_ns.unwrap_or(0).into_pyobject(py)?.into_any(),
                PyList::new(py, keys)?.into_any(),
            ],
        )?
        .into_any())
    }

    /// `("rogue_burst", burst, learned)` for each closed window that folded alerts.
    fn emit_bursts(&mut self, py: Python<'_>, out: &mut Outputs<'_>) -> PyResult<()> {
        if self.gate.bursts.is_empty() {
            return Ok(());
        }
        let mut conv = Converter::new(py)?;
        for b in std::mem::take(&mut self.gate.bursts) {
            let items = [
                "rogue_burst".into_pyobject(py)?.into_any(),
                b.to_py(py, &mut conv)?,
                self.learned_py(py, &b.link)?,
            ];
            push(out, PyTuple::new(py, items)?.into_any())?;
        }
        Ok(())
    }

    /// One alert candidate (`RogueRA._raise`): counted, then suppression and budget.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &mut self,
        py: Python<'_>,
        ev: &Event,
        link: Link,
        who: Offender,
        sig: u8,
        verdict: &Verdict,
        out: &mut Outputs<'_>,
    ) -> PyResult<()> {
        let ts = ev.meta().ts_ns;
        let seen = seen_in(&mut self.routers, (link, who, sig), ts);
        let suffix = (!is_source_sig(sig)).then(|| SIGS[usize::from(sig)]);
        let permitted = self.gate.permit(ev, &link, who, suffix);
        self.emit_bursts(py, out)?;
        if !permitted {
            return Ok(());
        }
        let name = match verdict.base {
            Base::Policy(i) => self.policy_baselines[i].name.clone(),
            _ => None,
        };
        let findings = self
            .findings
            .iter()
            .map(|f| f.to_py(py, self.cfg.hop_limit, self.cfg.min_mtu))
            .collect::<PyResult<Vec<_>>>()?;
        // `alert_head`, then (findings, router name, policy entry index, learned)
        let mut items = alert_head(py, "rogue", SIGS[usize::from(sig)], &link, &who, &seen, ev)?;
        items.extend([
            PyList::new(py, findings)?.into_any(),
            name.into_pyobject(py)?.into_any(),
            verdict.entry.into_pyobject(py)?.into_any(),
            self.learned_py(py, &link)?,
        ]);
        push(out, PyTuple::new(py, items)?.into_any())
    }
}

impl Reducer for RogueReducer {
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
        let Some(ra) = Ra::of(nd) else {
            return Ok(());
        };
        let ts = nd.meta.ts_ns;
        if self.first_ns.is_none() {
            self.first_ns = Some(ts);
        }
        let link = link_of(ev);
        let who = offender(nd);
        let mut verdict = self.source(&ra, link, who, ts);
        let base = match verdict.base {
            Base::None => None,
            Base::Policy(i) => self.policy_baselines.get(i),
            Base::Learned => self.learned.get(&(link, who)),
        };
        Self::content(&self.cfg, &mut self.findings, &ra, base);
        if verdict.signature.is_some() && ra.lifetime == 0 {
            verdict.signature = Some(KILL);
        }
        // One alert for a rogue source, the strongest reason first.
        let strongest = self
            .findings
            .iter()
            .map(Finding::signature)
            .find(|&s| s == BAD_HOP_LIMIT || s == NON_LINK_LOCAL)
            .or(verdict.signature);
        if let Some(sig) = strongest {
            return self.raise(py, ev, link, who, sig, &verdict, out);
        }
        let mut sigs: Vec<u8> = Vec::new();
        for f in &self.findings {
            let s = f.signature();
            if !sigs.contains(&s) {
                sigs.push(s);
            }
        }
        for sig in sigs {
            self.raise(py, ev, link, who, sig, &verdict, out)?;
        }
        Ok(())
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
        let r = &self.routers;
        vec![
            r.table_stat("router_advert.routers"),
            self.gate.budget.table_stat(),
            self.gate.suppress.table_stat(),
        ]
    }

    fn suppressed(&self) -> u64 {
        self.gate.suppress.suppressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::events::{Chain, Ipv6Header, Meta, NdOption, Tunnels};

    const LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn pio(prefix: [u8; 16], len: u8) -> NdOption {
        NdOption {
            otype: 3,
            offset: 0,
            body: OptionBody::PrefixInformation {
                prefix_len: len,
                on_link: true,
                autonomous: true,
                router_address: false,
                valid_lifetime: 0,
                preferred_lifetime: 0,
                prefix,
            },
        }
    }

    fn ra(
        src: [u8; 16],
        mac: [u8; 6],
        lifetime: u16,
        managed: bool,
        options: Vec<NdOption>,
    ) -> NdMessage {
        NdMessage {
            meta: Meta {
                src_mac: Some(mac),
                ..Meta::default()
            },
            ip: Ipv6Header {
                src,
                dst: [0; 16],
                hop_limit: 255,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 0,
                chain: Chain::default(),
                upper: 58,
                fragment: None,
                tunnels: Tunnels::default(),
            },
            icmp_type: 134,
            code: 0,
            checksum_ok: true,
            options,
            option_errors: Vec::new(),
            body: NdBody::RouterAdvertisement {
                cur_hop_limit: 64,
                managed,
                other: false,
                home_agent: false,
                preference: 0,
                proxy: false,
                router_lifetime: lifetime,
                reachable_time: 0,
                retrans_timer: 0,
            },
        }
    }

    fn reducer(routers: Option<Vec<(PolicyRouter, Baseline)>>) -> RogueReducer {
        let mut r = RogueReducer {
            cfg: Config {
                learn_ns: 100,
                learn_max: 2,
                min_mtu: 1280,
                hop_limit: 255,
            },
            learning: routers.is_none(),
            routers_policy: Vec::new(),
            by_address: KeyedMap::default(),
            policy_baselines: Vec::new(),
            baseline_of: KeyedMap::default(),
            learned: KeyedMap::default(),
            learned_addrs: KeyedMap::default(),
            learned_count: 0,
            first_ns: Some(0),
            routers: Lru::new(16),
            gate: Gate::new(
                Suppressor::new("ipv6.rogue_ra.suppression", 100, 16),
                LinkBudget::new("router_advert.links", 16, 100, 10),
            ),
            findings: Vec::new(),
        };
        for (i, (p, b)) in routers.unwrap_or_default().into_iter().enumerate() {
            r.by_address.entry(p.address).or_default().push(i);
            r.baseline_of.insert((p.address, p.mac), i);
            r.routers_policy.push(p);
            r.policy_baselines.push(b);
        }
        r
    }

    fn link() -> Link {
        (0, Default::default())
    }

    #[test]
    fn net_clears_host_bits_and_clamps_the_length() {
        let mut a = [0xffu8; 16];
        a[0] = 0x20;
        let (n, l) = net(&a, 60);
        assert_eq!(l, 60);
        assert_eq!(&n[..8], &[0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
        assert_eq!(&n[8..], &[0; 8]);
        assert_eq!(net(&a, 200), (a, 128));
        assert_eq!(net(&a, 0), ([0; 16], 0));
    }

    #[test]
    fn domains_compare_without_trailing_dots_or_case() {
        assert_eq!(domain("Example.COM.."), "example.com");
    }

    #[test]
    fn policy_verdicts_unknown_spoofed_and_content() {
        let mut p1 = [0u8; 16];
        p1[0] = 0x20;
        let base = Baseline {
            managed: Some(false),
            prefixes: Some([net(&p1, 64)].into_iter().collect()),
            ..Baseline::default()
        };
        let mut r = reducer(Some(vec![(
            PolicyRouter {
                address: LL,
                mac: Some(MAC),
            },
            base,
        )]));
        let mut other = LL;
        other[15] = 2;
        let nd = ra(other, MAC, 1800, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 0);
        assert_eq!(v.signature, Some(UNKNOWN));
        let nd = ra(LL, [2, 0, 0, 0, 0, 9], 1800, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 0);
        assert_eq!((v.signature, v.entry), (Some(SPOOFED), Some(0)));
        // The legitimate router announces an unlisted prefix twice (once with host bits
        // set: the same network), a listed one, and flips M.
        let mut p2 = [0u8; 16];
        p2[0] = 0x30;
        let mut p2_host = p2;
        p2_host[15] = 1;
        let nd = ra(
            LL,
            MAC,
            1800,
            true,
            vec![pio(p2, 64), pio(p1, 64), pio(p2_host, 64)],
        );
        let r_ = Ra::of(&nd).unwrap();
        let v = r.source(&r_, link(), offender(&nd), 0);
        assert_eq!((v.signature, v.entry), (None, Some(0)));
        let Base::Policy(i) = v.base else {
            panic!("a policy baseline")
        };
        RogueReducer::content(&r.cfg, &mut r.findings, &r_, r.policy_baselines.get(i));
        assert_eq!(
            r.findings,
            vec![Finding::Prefix(net(&p2, 64)), Finding::Managed(false, true)]
        );
    }

    #[test]
    fn learning_learns_routers_in_the_window_only() {
        let mut r = reducer(None);
        let nd = ra(LL, MAC, 1800, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 10);
        assert!(v.signature.is_none() && matches!(v.base, Base::Learned));
        // Same address, another MAC: a learned router's address.
        let nd = ra(LL, [2, 0, 0, 0, 0, 9], 1800, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 20);
        assert_eq!(v.signature, Some(SPOOFED));
        // A router that says it is none is never learned.
        let mut other = LL;
        other[15] = 2;
        let nd = ra(other, MAC, 0, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 30);
        assert_eq!(v.signature, Some(UNKNOWN));
        // Past the learning window.
        let nd = ra(other, MAC, 1800, false, vec![]);
        let v = r.source(&Ra::of(&nd).unwrap(), link(), offender(&nd), 100);
        assert_eq!(v.signature, Some(UNKNOWN));
        assert_eq!(r.learned_count, 1);
    }
}
