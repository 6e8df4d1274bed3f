//! The Python face of the reducers: `SweepReducer`.
//!
//! Owns turning Python's per-packet fields into a `PacketView` (`packet_from_fields`, the
//! one conversion; the fused native loop will skip it and call `SweepCore::on_packet`
//! directly) and turning `Outcome`s into plain tuples. Only this module touches Python
//! objects; nothing here runs unless Python calls it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use super::packet::{FirstPacket, PacketView, Teredo, Tunnel, TunnelKind};
use super::sweep::{Config, Outcome, SweepCore, WinSnapshot, PROBE_NAMES};

/// A Teredo layer as Python passes it: `TeredoInfo`'s fields in order.
type TeredoFields = (
    bool,
    bool,
    Option<Vec<u8>>,
    Option<u16>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<u16>,
    Option<bool>,
);
/// A tunnel layer as Python passes it: `TunnelLayer`'s fields in order.
type TunnelFields = (
    String,
    Vec<u8>,
    Vec<u8>,
    Option<u16>,
    Option<u16>,
    Option<TeredoFields>,
);

fn addr16(b: &[u8], what: &str) -> PyResult<[u8; 16]> {
    b.try_into()
        .map_err(|_| PyValueError::new_err(format!("{what}: 16 bytes expected, got {}", b.len())))
}

fn mac(b: Option<&[u8]>) -> PyResult<Option<[u8; 6]>> {
    b.map(|b| {
        b.try_into()
            .map_err(|_| PyValueError::new_err(format!("MAC: 6 bytes expected, got {}", b.len())))
    })
    .transpose()
}

fn ip(b: &[u8]) -> PyResult<IpAddr> {
    match b.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(b).unwrap_or_default(),
        ))),
        16 => Ok(IpAddr::V6(Ipv6Addr::from(addr16(b, "address")?))),
        n => Err(PyValueError::new_err(format!("address of {n} bytes"))),
    }
}

fn v4(b: Option<Vec<u8>>) -> PyResult<Option<[u8; 4]>> {
    b.map(|b| {
        <[u8; 4]>::try_from(b.as_slice())
            .map_err(|_| PyValueError::new_err("IPv4 address: 4 bytes expected"))
    })
    .transpose()
}

fn tunnel(t: TunnelFields) -> PyResult<Tunnel> {
    let (kind, outer_src, outer_dst, outer_sport, outer_dport, teredo) = t;
    let teredo = match teredo {
        None => None,
        Some((bubble, auth, origin_ip, origin_port, server, client_ip, client_port, cone)) => {
            Some(Teredo {
                bubble,
                auth,
                origin_ip: v4(origin_ip)?,
                origin_port,
                server: v4(server)?,
                client_ip: v4(client_ip)?,
                client_port,
                cone,
            })
        }
    };
    Ok(Tunnel {
        kind: TunnelKind::from_name(&kind)
            .ok_or_else(|| PyValueError::new_err(format!("unknown tunnel kind {kind:?}")))?,
        outer_src: ip(&outer_src)?,
        outer_dst: ip(&outer_dst)?,
        outer_sport,
        outer_dport,
        teredo,
    })
}

/// One packet's fields from Python, owned; `view()` lends the `PacketView`.
pub struct PacketFields {
    head: FirstPacket,
}

impl PacketFields {
    pub fn view(&self) -> PacketView<'_> {
        let h = &self.head;
        PacketView {
            ts_ns: h.ts_ns,
            frame: h.frame,
            iface: h.iface,
            linktype: h.linktype,
            wire_len: h.wire_len,
            src_mac: h.src_mac,
            dst_mac: h.dst_mac,
            vlans: &h.vlans,
            src: h.src,
            dst: h.dst,
            hop_limit: h.hop_limit,
            traffic_class: h.traffic_class,
            flow_label: h.flow_label,
            payload_len: h.payload_len,
            upper: h.upper,
            sport: h.sport,
            dport: h.dport,
            icmp_type: h.icmp_type,
            icmp_code: h.icmp_code,
            tcp_flags: h.tcp_flags,
            quoted_src: h.quoted_src,
            tunnels: &h.tunnels,
        }
    }
}

/// Python's fields -> a packet (the single conversion; validated, never panics).
#[allow(clippy::too_many_arguments)]
pub fn packet_from_fields(
    ts_ns: i64,
    frame: u64,
    iface: u32,
    linktype: u32,
    wire_len: u32,
    src_mac: Option<&[u8]>,
    dst_mac: Option<&[u8]>,
    vlans: Vec<u16>,
    src: &[u8],
    dst: &[u8],
    hop_limit: u8,
    traffic_class: u8,
    flow_label: u32,
    payload_len: u32,
    upper: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    tcp_flags: Option<u8>,
    quoted_src: Option<&[u8]>,
    tunnels: Vec<TunnelFields>,
) -> PyResult<PacketFields> {
    Ok(PacketFields {
        head: FirstPacket {
            ts_ns,
            frame,
            iface,
            linktype,
            wire_len,
            src_mac: mac(src_mac)?,
            dst_mac: mac(dst_mac)?,
            vlans,
            src: addr16(src, "src")?,
            dst: addr16(dst, "dst")?,
            hop_limit,
            traffic_class,
            flow_label,
            payload_len,
            upper,
            sport,
            dport,
            icmp_type,
            icmp_code,
            tcp_flags,
            quoted_src: quoted_src.map(|q| addr16(q, "quoted_src")).transpose()?,
            tunnels: tunnels.into_iter().map(tunnel).collect::<PyResult<_>>()?,
        },
    })
}

fn any<'py, T: IntoPyObjectExt<'py>>(py: Python<'py>, v: T) -> PyResult<Bound<'py, PyAny>> {
    v.into_bound_py_any(py)
}

fn bytes<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyAny> {
    PyBytes::new(py, b).into_any()
}

fn opt_bytes<'py>(py: Python<'py>, b: Option<&[u8]>) -> Bound<'py, PyAny> {
    match b {
        Some(b) => bytes(py, b),
        None => py.None().into_bound(py),
    }
}

fn ip_bytes<'py>(py: Python<'py>, a: &IpAddr) -> Bound<'py, PyAny> {
    match a {
        IpAddr::V4(a) => bytes(py, &a.octets()),
        IpAddr::V6(a) => bytes(py, &a.octets()),
    }
}

fn tuple<'py>(py: Python<'py>, items: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(py, items)?.into_any())
}

/// The first packet in the order of `packet_from_fields`' arguments.
fn first_tuple<'py>(py: Python<'py>, f: &FirstPacket) -> PyResult<Bound<'py, PyAny>> {
    let mut tunnels = Vec::with_capacity(f.tunnels.len());
    for t in &f.tunnels {
        let teredo = match &t.teredo {
            None => py.None().into_bound(py),
            Some(td) => tuple(
                py,
                vec![
                    any(py, td.bubble)?,
                    any(py, td.auth)?,
                    opt_bytes(py, td.origin_ip.as_ref().map(|a| &a[..])),
                    any(py, td.origin_port)?,
                    opt_bytes(py, td.server.as_ref().map(|a| &a[..])),
                    opt_bytes(py, td.client_ip.as_ref().map(|a| &a[..])),
                    any(py, td.client_port)?,
                    any(py, td.cone)?,
                ],
            )?,
        };
        tunnels.push(tuple(
            py,
            vec![
                any(py, t.kind.name())?,
                ip_bytes(py, &t.outer_src),
                ip_bytes(py, &t.outer_dst),
                any(py, t.outer_sport)?,
                any(py, t.outer_dport)?,
                teredo,
            ],
        )?);
    }
    let vlans = f
        .vlans
        .iter()
        .map(|&v| any(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    tuple(
        py,
        vec![
            any(py, f.ts_ns)?,
            any(py, f.frame)?,
            any(py, f.iface)?,
            any(py, f.linktype)?,
            any(py, f.wire_len)?,
            opt_bytes(py, f.src_mac.as_ref().map(|a| &a[..])),
            opt_bytes(py, f.dst_mac.as_ref().map(|a| &a[..])),
            tuple(py, vlans)?,
            bytes(py, &f.src),
            bytes(py, &f.dst),
            any(py, f.hop_limit)?,
            any(py, f.traffic_class)?,
            any(py, f.flow_label)?,
            any(py, f.payload_len)?,
            any(py, f.upper)?,
            any(py, f.sport)?,
            any(py, f.dport)?,
            any(py, f.icmp_type)?,
            any(py, f.icmp_code)?,
            any(py, f.tcp_flags)?,
            opt_bytes(py, f.quoted_src.as_ref().map(|a| &a[..])),
            tuple(py, tunnels)?,
        ],
    )
}

/// `[(address, new targets), ...]` in first-seen order.
fn sources_list<'py>(py: Python<'py>, s: &[([u8; 16], u64)]) -> PyResult<Bound<'py, PyAny>> {
    let items = s
        .iter()
        .map(|(a, n)| tuple(py, vec![bytes(py, a), any(py, *n)?]))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

/// `[(kind, packets), ...]` for the kinds seen.
fn probes_list<'py>(py: Python<'py>, probes: &[u64; 7]) -> PyResult<Bound<'py, PyAny>> {
    let mut items = Vec::new();
    for (name, &n) in PROBE_NAMES.iter().zip(probes) {
        if n > 0 {
            items.push(tuple(py, vec![any(py, *name)?, any(py, n)?])?);
        }
    }
    Ok(PyList::new(py, items)?.into_any())
}

/// `(start_ns, last_ns, packets, sources, more_sources, probes, sample, level, first)`.
fn win_tuple<'py>(py: Python<'py>, w: &WinSnapshot) -> PyResult<Bound<'py, PyAny>> {
    let sample = w.sample.iter().map(|a| bytes(py, a)).collect::<Vec<_>>();
    tuple(
        py,
        vec![
            any(py, w.start_ns)?,
            any(py, w.last_ns)?,
            any(py, w.packets)?,
            sources_list(py, &w.sources)?,
            any(py, w.more_sources)?,
            probes_list(py, &w.probes)?,
            PyList::new(py, sample)?.into_any(),
            any(py, w.sample_level)?,
            first_tuple(py, &w.first)?,
        ],
    )
}

fn outcome<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyAny>> {
    match o {
        Outcome::Tier {
            src64,
            dst64,
            tier,
            estimate,
            exact,
            ratio,
            responders,
            source_targets,
            win,
        } => tuple(
            py,
            vec![
                any(py, "tier")?,
                bytes(py, src64),
                bytes(py, dst64),
                any(py, *tier)?,
                any(py, *estimate)?,
                any(py, *exact)?,
                any(py, *ratio)?,
                any(py, *responders)?,
                any(py, *source_targets)?,
                win_tuple(py, win)?,
            ],
        ),
        Outcome::Wide {
            src64,
            targets,
            prefixes,
            exact,
            ratio,
            responders,
            win,
        } => tuple(
            py,
            vec![
                any(py, "wide")?,
                bytes(py, src64),
                any(py, *targets)?,
                any(py, *prefixes)?,
                any(py, *exact)?,
                any(py, *ratio)?,
                any(py, *responders)?,
                win_tuple(py, win)?,
            ],
        ),
        Outcome::Closed {
            src64,
            dst64,
            estimate,
            exact,
            sources,
            more_sources,
            packets,
            probes,
            tier,
            start_ns,
            last_ns,
            ratio,
        } => tuple(
            py,
            vec![
                any(py, "closed")?,
                bytes(py, src64),
                bytes(py, dst64),
                any(py, *estimate)?,
                any(py, *exact)?,
                sources_list(py, sources)?,
                any(py, *more_sources)?,
                any(py, *packets)?,
                probes_list(py, probes)?,
                any(py, *tier)?,
                any(py, *start_ns)?,
                any(py, *last_ns)?,
                any(py, *ratio)?,
            ],
        ),
    }
}

/// None when nothing happened (the common case costs no list), else the outcomes.
fn outcomes<'py>(py: Python<'py>, out: &[Outcome]) -> PyResult<Option<Bound<'py, PyAny>>> {
    if out.is_empty() {
        return Ok(None);
    }
    let items = out
        .iter()
        .map(|o| outcome(py, o))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Some(PyList::new(py, items)?.into_any()))
}

/// `ipv6.sweep`'s per-packet counting. Every method returns None or a list of outcome
/// tuples, in the order Python must act on them:
///
/// - `("tier", src64, dst64, tier, estimate, exact, ratio, responders, source_targets, win)`
/// - `("wide", src64, targets, prefixes, exact, ratio, responders, win)`
/// - `("closed", src64, dst64, estimate, exact, sources, more_sources, packets, probes,
///   tier, start_ns, last_ns, ratio)`
///
/// `win` is `(start_ns, last_ns, packets, sources, more_sources, probes, sample, level,
/// first)`, `first` the window's first packet in `on_packet`'s argument order. Not
/// thread-safe (windows are shared `Rc`s): one per engine, used from its thread.
#[pyclass(unsendable, module = "detectors._native")]
pub struct SweepReducer {
    core: SweepCore,
    out: Vec<Outcome>,
}

/// The Rust-side path, for the fused native loop: no Python per packet.
impl SweepReducer {
    /// Count one packet; its outcomes, if any, wait for `take_outcomes`. Returns whether
    /// there are any waiting, so the loop calls into Python only then.
    #[inline]
    pub fn on_view(&mut self, pk: &PacketView<'_>) -> bool {
        self.core.on_packet(pk, &mut self.out);
        !self.out.is_empty()
    }

    /// The waiting outcomes as Python tuples (None when there are none), in order.
    pub fn take_outcomes<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let done = outcomes(py, &self.out);
        self.out.clear();
        done
    }
}

#[pymethods]
impl SweepReducer {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (window_ns, tiers, wide_prefixes, wide_targets, min_no_reply,
        exact_up_to, precision, src_precision, max_sources, max_pairs, observe_min))]
    fn new(
        window_ns: i64,
        tiers: (f64, f64, f64),
        wide_prefixes: f64,
        wide_targets: f64,
        min_no_reply: f64,
        exact_up_to: usize,
        precision: u32,
        src_precision: u32,
        max_sources: usize,
        max_pairs: usize,
        observe_min: Option<f64>,
    ) -> PyResult<Self> {
        for p in [precision, src_precision] {
            if !(4..=18).contains(&p) {
                return Err(PyValueError::new_err(format!(
                    "HyperLogLog precision must be 4..18, got {p}"
                )));
            }
        }
        if exact_up_to < 1 || max_sources < 1 || max_pairs < 1 || window_ns < 1 {
            return Err(PyValueError::new_err(
                "exact_up_to, table caps and the window must be at least 1",
            ));
        }
        // Table slots are u32 indices.
        if max_sources >= u32::MAX as usize || max_pairs >= u32::MAX as usize {
            return Err(PyValueError::new_err("table cap too large"));
        }
        Ok(SweepReducer {
            core: SweepCore::new(Config {
                window_ns,
                tiers: [tiers.0, tiers.1, tiers.2],
                wide_prefixes,
                wide_targets,
                min_no_reply,
                exact_up_to,
                precision,
                src_precision,
                max_sources,
                max_pairs,
                observe_min,
            }),
            out: Vec::new(),
        })
    }

    /// Count one IPv6 packet, given as its fields (the Python path; see
    /// `packet_from_fields`). Tunnels: tuples of `TunnelLayer`'s fields, with the Teredo
    /// one as a tuple of `TeredoInfo`'s fields.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (ts_ns, frame, iface, linktype, wire_len, src_mac, dst_mac, vlans,
        src, dst, hop_limit, traffic_class, flow_label, payload_len, upper, sport, dport,
        icmp_type, icmp_code, tcp_flags, quoted_src, tunnels))]
    fn on_packet<'py>(
        &mut self,
        py: Python<'py>,
        ts_ns: i64,
        frame: u64,
        iface: u32,
        linktype: u32,
        wire_len: u32,
        src_mac: Option<&[u8]>,
        dst_mac: Option<&[u8]>,
        vlans: Vec<u16>,
        src: &[u8],
        dst: &[u8],
        hop_limit: u8,
        traffic_class: u8,
        flow_label: u32,
        payload_len: u32,
        upper: u8,
        sport: Option<u16>,
        dport: Option<u16>,
        icmp_type: Option<u8>,
        icmp_code: Option<u8>,
        tcp_flags: Option<u8>,
        quoted_src: Option<&[u8]>,
        tunnels: Vec<TunnelFields>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let pk = packet_from_fields(
            ts_ns,
            frame,
            iface,
            linktype,
            wire_len,
            src_mac,
            dst_mac,
            vlans,
            src,
            dst,
            hop_limit,
            traffic_class,
            flow_label,
            payload_len,
            upper,
            sport,
            dport,
            icmp_type,
            icmp_code,
            tcp_flags,
            quoted_src,
            tunnels,
        )?;
        self.on_view(&pk.view());
        self.take_outcomes(py)
    }

    /// Packet time reached `now_ns`: the closed pair windows worth an observation.
    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.core.tick(now_ns, &mut self.out);
        self.take_outcomes(py)
    }

    /// End of input: every open window closes.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.core.flush(&mut self.out);
        self.take_outcomes(py)
    }

    /// `((size, cap, evictions), (size, cap, evictions))` of the source and pair tables.
    fn table_stats(&self) -> ((usize, usize, u64), (usize, usize, u64)) {
        let [s, p] = self.core.table_stats();
        (s, p)
    }
}
