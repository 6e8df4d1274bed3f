//! Rust events to instances of the Python dataclasses in `detectors.events`.
//!
//! Owns the one-way conversion the Python detections consume. The classes are looked
//! up once per interpreter (`GILOnceCell`); addresses become `bytes`, inline lists
//! become tuples, and the events of one frame share one `PacketMeta` object, as they
//! did with the Python decoder.
//!
//! Speed: a frozen dataclass's `__init__` is Python code calling `object.__setattr__`
//! per field, which costs more than decoding the packet. These classes are plain
//! slotted dataclasses without `__post_init__`, so an instance is built the way
//! `object.__new__` plus `object.__setattr__` would, from C: allocate, then set each
//! slot in field order (`dataclasses.fields`). The result is indistinguishable from
//! calling the class (same fields, equality, hash, repr); a class that grows a
//! `__post_init__` is called normally instead.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

use super::events::*;
use crate::reduce::py::{any, bytes};

/// The `detectors.events` classes, resolved once.
struct Classes {
    packet_meta: Class,
    teredo_info: Class,
    tunnel_layer: Class,
    fragment_info: Class,
    ipv6_header: Class,
    ipv6_packet: Class,
    tunnel_packet: Class,
    fragment_anomaly: Class,
    malformed: Class,
    lla: Class,
    prefix_info: Class,
    redirected: Class,
    mtu: Class,
    nonce: Class,
    route_info: Class,
    rdnss: Class,
    dnssl: Class,
    unknown: Class,
    option_error: Class,
    rs: Class,
    ra: Class,
    ns: Class,
    na: Class,
    redirect: Class,
    mld_record: Class,
    mld: Class,
    dhcpv6: Class,
    decode_stats: Py<PyAny>,
    ext_options: Class,
    icmp_error: Class,
    dns: Class,
}

/// One event class and its field names in declaration order.
struct Class {
    cls: Py<PyType>,
    fields: Vec<Py<PyString>>,
    /// Built by slot assignment (see the module doc); else by calling the class.
    direct: bool,
}

static CLASSES: GILOnceCell<Classes> = GILOnceCell::new();

fn classes(py: Python<'_>) -> PyResult<&'static Classes> {
    CLASSES.get_or_try_init(py, || {
        let m = py.import("detectors.events")?;
        let fields = py.import("dataclasses")?.getattr("fields")?;
        let get = |name: &str| -> PyResult<Class> {
            let cls = m.getattr(name)?.downcast_into::<PyType>()?;
            let names = fields
                .call1((&cls,))?
                .try_iter()?
                .map(|f| Ok(f?.getattr("name")?.downcast_into::<PyString>()?.unbind()))
                .collect::<PyResult<Vec<_>>>()?;
            // Slotted (no instance dict) and nothing run after the fields are set.
            let slotted = cls.getattr("__dictoffset__")?.extract::<isize>()? == 0;
            let direct = slotted && !cls.hasattr("__post_init__")?;
            Ok(Class {
                cls: cls.unbind(),
                fields: names,
                direct,
            })
        };
        Ok(Classes {
            packet_meta: get("PacketMeta")?,
            teredo_info: get("TeredoInfo")?,
            tunnel_layer: get("TunnelLayer")?,
            fragment_info: get("FragmentInfo")?,
            ipv6_header: get("IPv6Header")?,
            ipv6_packet: get("Ipv6Packet")?,
            tunnel_packet: get("TunnelPacket")?,
            fragment_anomaly: get("FragmentAnomaly")?,
            malformed: get("Malformed")?,
            lla: get("LinkLayerAddressOption")?,
            prefix_info: get("PrefixInformationOption")?,
            redirected: get("RedirectedHeaderOption")?,
            mtu: get("MTUOption")?,
            nonce: get("NonceOption")?,
            route_info: get("RouteInformationOption")?,
            rdnss: get("RDNSSOption")?,
            dnssl: get("DNSSLOption")?,
            unknown: get("UnknownOption")?,
            option_error: get("OptionError")?,
            rs: get("RouterSolicitation")?,
            ra: get("RouterAdvertisement")?,
            ns: get("NeighborSolicitation")?,
            na: get("NeighborAdvertisement")?,
            redirect: get("Redirect")?,
            mld_record: get("MldRecord")?,
            mld: get("MldMessage")?,
            dhcpv6: get("Dhcpv6Message")?,
            decode_stats: m.getattr("DecodeStats")?.unbind(),
            ext_options: get("ExtOptions")?,
            icmp_error: get("IcmpError")?,
            dns: get("DnsMessage")?,
        })
    })
}

type Obj<'py> = Bound<'py, PyAny>;

fn opt_bytes<'py, const N: usize>(py: Python<'py>, b: &Option<[u8; N]>) -> Obj<'py> {
    match b {
        Some(b) => bytes(py, b),
        None => py.None().into_bound(py),
    }
}

fn opt_addr<'py>(py: Python<'py>, a: &Option<IpAddr>) -> Obj<'py> {
    match a {
        Some(a) => bytes(py, a.as_bytes()),
        None => py.None().into_bound(py),
    }
}

/// An instance of `class` with `args` as its fields, in order (all fields given).
fn call<'py>(py: Python<'py>, class: &Class, args: Vec<Obj<'py>>) -> PyResult<Obj<'py>> {
    let cls = class.cls.bind(py);
    if !class.direct || args.len() != class.fields.len() {
        return cls.call1(PyTuple::new(py, args)?);
    }
    // SAFETY: `cls` is a live type object and `PyType_GenericNew` returns a new
    // reference or NULL with an exception set; `from_owned_ptr_or_err` takes either.
    // The generic setattr writes each slot through its member descriptor, exactly as
    // `object.__setattr__` does; names and values are live for the call.
    unsafe {
        let empty = PyTuple::empty(py);
        let obj = ffi::PyType_GenericNew(cls.as_type_ptr(), empty.as_ptr(), std::ptr::null_mut());
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        for (name, value) in class.fields.iter().zip(&args) {
            if ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(obj)
    }
}

/// Converts a stream of events, sharing `PacketMeta` objects between equal metas in a row.
pub struct Converter<'py> {
    py: Python<'py>,
    c: &'static Classes,
    last_meta: Option<(Meta, Obj<'py>)>,
}

impl<'py> Converter<'py> {
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        Ok(Converter {
            py,
            c: classes(py)?,
            last_meta: None,
        })
    }

    pub fn list(&mut self, events: &[Event]) -> PyResult<Bound<'py, PyList>> {
        let items = events
            .iter()
            .map(|e| self.event(e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(self.py, items)
    }

    fn meta(&mut self, m: &Meta) -> PyResult<Obj<'py>> {
        if let Some((last, obj)) = &self.last_meta {
            if last == m {
                return Ok(obj.clone());
            }
        }
        let py = self.py;
        let vlans = PyTuple::new(py, m.vlans.as_slice())?.into_any();
        let obj = call(
            py,
            &self.c.packet_meta,
            vec![
                any(py, m.ts_ns)?,
                any(py, m.frame)?,
                any(py, m.iface)?,
                any(py, m.linktype)?,
                any(py, m.wire_len)?,
                opt_bytes(py, &m.src_mac),
                opt_bytes(py, &m.dst_mac),
                vlans,
            ],
        )?;
        self.last_meta = Some((*m, obj.clone()));
        Ok(obj)
    }

    fn teredo(&self, t: &TeredoInfo) -> PyResult<Obj<'py>> {
        let py = self.py;
        call(
            py,
            &self.c.teredo_info,
            vec![
                any(py, t.bubble)?,
                any(py, t.auth)?,
                opt_bytes(py, &t.origin_ip),
                any(py, t.origin_port)?,
                opt_bytes(py, &t.server),
                opt_bytes(py, &t.client_ip),
                any(py, t.client_port)?,
                any(py, t.cone)?,
            ],
        )
    }

    fn layer(&self, l: &TunnelLayer) -> PyResult<Obj<'py>> {
        let py = self.py;
        let teredo = match &l.teredo {
            Some(t) => self.teredo(t)?,
            None => py.None().into_bound(py),
        };
        call(
            py,
            &self.c.tunnel_layer,
            vec![
                any(py, l.kind.name())?,
                bytes(py, l.outer_src.as_bytes()),
                bytes(py, l.outer_dst.as_bytes()),
                any(py, l.outer_sport)?,
                any(py, l.outer_dport)?,
                teredo,
            ],
        )
    }

    fn tunnels(&self, t: &Tunnels) -> PyResult<Obj<'py>> {
        let layers = t
            .as_slice()
            .iter()
            .map(|l| self.layer(l))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(self.py, layers)?.into_any())
    }

    fn ip(&self, h: &Ipv6Header) -> PyResult<Obj<'py>> {
        let py = self.py;
        let frag = match &h.fragment {
            Some(f) => call(
                py,
                &self.c.fragment_info,
                vec![
                    any(py, f.ident)?,
                    any(py, f.count)?,
                    any(py, f.atomic)?,
                    any(py, f.first_chain_complete)?,
                    match f.overlap {
                        super::reassembly::VARIANT_FIRST => any(py, "first")?,
                        super::reassembly::VARIANT_LAST => any(py, "last")?,
                        _ => py.None().into_bound(py),
                    },
                ],
            )?,
            None => py.None().into_bound(py),
        };
        call(
            py,
            &self.c.ipv6_header,
            vec![
                bytes(py, &h.src),
                bytes(py, &h.dst),
                any(py, h.hop_limit)?,
                any(py, h.traffic_class)?,
                any(py, h.flow_label)?,
                any(py, h.payload_len)?,
                PyTuple::new(py, h.chain.as_slice())?.into_any(),
                any(py, h.upper)?,
                frag,
                self.tunnels(&h.tunnels)?,
            ],
        )
    }

    pub fn event(&mut self, e: &Event) -> PyResult<Obj<'py>> {
        let py = self.py;
        let meta = self.meta(e.meta())?;
        match e {
            Event::Packet(p) => call(
                py,
                &self.c.ipv6_packet,
                vec![
                    meta,
                    self.ip(&p.ip)?,
                    any(py, p.sport)?,
                    any(py, p.dport)?,
                    any(py, p.icmp_type)?,
                    any(py, p.icmp_code)?,
                    any(py, p.tcp_flags)?,
                    opt_bytes(py, &p.quoted_src),
                ],
            ),
            Event::Tunnel(t) => call(
                py,
                &self.c.tunnel_packet,
                vec![
                    meta,
                    self.layer(&t.layer)?,
                    any(py, t.inner_version)?,
                    any(py, t.inner_len)?,
                    any(py, t.depth)?,
                    opt_bytes(py, &t.inner_src),
                    opt_bytes(py, &t.inner_dst),
                    any(py, t.inner_next)?,
                    any(py, t.inner_icmp_type)?,
                ],
            ),
            Event::Fragment(f) => call(
                py,
                &self.c.fragment_anomaly,
                vec![
                    meta,
                    any(py, f.kind.name())?,
                    bytes(py, &f.src),
                    bytes(py, &f.dst),
                    any(py, f.ident)?,
                    self.tunnels(&f.tunnels)?,
                    any(py, f.origin_ns)?,
                    any(py, f.origin_frame)?,
                ],
            ),
            Event::Malformed(m) => call(
                py,
                &self.c.malformed,
                vec![
                    meta,
                    any(py, m.layer)?,
                    any(py, m.reason)?,
                    any(py, m.detail.as_ref())?,
                    opt_addr(py, &m.src),
                    opt_addr(py, &m.dst),
                    self.tunnels(&m.tunnels)?,
                    any(py, m.upper.proto)?,
                    any(py, m.upper.sport)?,
                    any(py, m.upper.dport)?,
                    any(py, m.upper.icmp_type)?,
                    any(py, m.upper.icmp_code)?,
                ],
            ),
            Event::Nd(n) => self.nd(meta, n),
            Event::Mld(m) => self.mld(meta, m),
            Event::Dhcpv6(d) => self.dhcpv6(meta, d),
            Event::ExtOptions(x) => {
                let s = &x.summary;
                call(
                    py,
                    &self.c.ext_options,
                    vec![
                        meta,
                        self.ip(&x.ip)?,
                        any(py, x.upper.proto)?,
                        any(py, x.upper.sport)?,
                        any(py, x.upper.dport)?,
                        any(py, x.upper.icmp_type)?,
                        any(py, x.upper.icmp_code)?,
                        any(py, s.header)?,
                        any(py, s.options)?,
                        any(py, s.unknown_options)?,
                        any(py, s.padding_only)?,
                        any(py, s.padn_data)?,
                        any(py, s.excess_padding)?,
                        any(py, s.unknown_data)?,
                        any(py, s.oversize_data)?,
                        bytes(py, s.sample()),
                    ],
                )
            }
            Event::IcmpError(e) => {
                let q = e.quoted;
                let none = || py.None().into_bound(py);
                call(
                    py,
                    &self.c.icmp_error,
                    vec![
                        meta,
                        self.ip(&e.ip)?,
                        any(py, e.icmp_type)?,
                        any(py, e.icmp_code)?,
                        any(py, e.param)?,
                        q.map_or_else(none, |q| bytes(py, &q.src)),
                        q.map_or_else(none, |q| bytes(py, &q.dst)),
                        any(py, q.map(|q| q.next))?,
                        any(py, q.map(|q| q.flow_label))?,
                        any(py, q.and_then(|q| q.sport))?,
                        any(py, q.and_then(|q| q.dport))?,
                        any(py, q.and_then(|q| q.icmp_type))?,
                    ],
                )
            }
            Event::Dns(d) => {
                let q = d.question.as_ref();
                call(
                    py,
                    &self.c.dns,
                    vec![
                        meta,
                        bytes(py, d.src.as_bytes()),
                        bytes(py, d.dst.as_bytes()),
                        any(py, d.sport)?,
                        any(py, d.dport)?,
                        any(py, d.transport)?,
                        self.tunnels(&d.tunnels)?,
                        any(py, d.id)?,
                        any(py, d.qr)?,
                        any(py, d.opcode)?,
                        any(py, d.aa)?,
                        any(py, d.rcode)?,
                        any(py, d.qdcount)?,
                        any(py, q.map(|q| q.qname.as_str()))?,
                        any(py, q.map(|q| q.qtype))?,
                        any(py, q.map(|q| q.qclass))?,
                        any(py, d.ancount)?,
                        PyTuple::new(py, &d.ptr_answers)?.into_any(),
                    ],
                )
            }
        }
    }

    fn mld(&self, meta: Obj<'py>, m: &MldMessage) -> PyResult<Obj<'py>> {
        let py = self.py;
        let records = m
            .records
            .iter()
            .map(|r| {
                call(
                    py,
                    &self.c.mld_record,
                    vec![
                        any(py, r.rtype)?,
                        any(py, r.aux_len)?,
                        bytes(py, &r.group),
                        any(py, r.sources)?,
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        let args = vec![
            meta,
            self.ip(&m.ip)?,
            any(py, m.router_alert)?,
            any(py, m.icmp_type)?,
            any(py, m.code)?,
            any(py, m.checksum_ok)?,
            any(py, m.version)?,
            any(py, m.max_delay)?,
            bytes(py, &m.group),
            any(py, m.s_flag)?,
            any(py, m.qrv)?,
            any(py, m.qqic)?,
            any(py, m.num_sources)?,
            any(py, m.records_declared)?,
            any(py, m.records_fit)?,
            any(py, m.sources_total)?,
            any(py, m.snapped)?,
            PyTuple::new(py, records)?.into_any(),
        ];
        call(py, &self.c.mld, args)
    }

    fn dhcpv6(&self, meta: Obj<'py>, d: &Dhcpv6Message) -> PyResult<Obj<'py>> {
        let py = self.py;
        let opt_vec = |v: &Option<Vec<u8>>| match v {
            Some(b) => bytes(py, b),
            None => py.None().into_bound(py),
        };
        let addrs = |v: &[[u8; 16]]| PyTuple::new(py, v.iter().map(|a| bytes(py, a)));
        let prefixes = d
            .prefixes
            .iter()
            .map(|(p, l)| Ok(PyTuple::new(py, [bytes(py, p), any(py, *l)?])?.into_any()))
            .collect::<PyResult<Vec<_>>>()?;
        call(
            py,
            &self.c.dhcpv6,
            vec![
                meta,
                self.ip(&d.ip)?,
                any(py, d.sport)?,
                any(py, d.dport)?,
                any(py, d.msg_type)?,
                any(py, d.transaction_id)?,
                opt_vec(&d.client_id),
                opt_vec(&d.server_id),
                PyTuple::new(py, &d.iaids)?.into_any(),
                addrs(&d.addresses)?.into_any(),
                PyTuple::new(py, prefixes)?.into_any(),
                addrs(&d.dns_servers)?.into_any(),
                PyTuple::new(py, &d.domains)?.into_any(),
                any(py, d.status_code)?,
                any(py, d.hop_count)?,
                opt_bytes(py, &d.link_address),
                opt_bytes(py, &d.peer_address),
                any(py, d.relayed_type)?,
            ],
        )
    }

    fn nd(&self, meta: Obj<'py>, n: &NdMessage) -> PyResult<Obj<'py>> {
        let py = self.py;
        let options = n
            .options
            .iter()
            .map(|o| self.option(o))
            .collect::<PyResult<Vec<_>>>()?;
        let errors = n
            .option_errors
            .iter()
            .map(|e| {
                call(
                    py,
                    &self.c.option_error,
                    vec![
                        any(py, e.offset)?,
                        any(py, e.otype)?,
                        any(py, e.length)?,
                        any(py, e.reason.name())?,
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        let mut args = vec![
            meta,
            self.ip(&n.ip)?,
            any(py, n.icmp_type)?,
            any(py, n.code)?,
            any(py, n.checksum_ok)?,
            PyTuple::new(py, options)?.into_any(),
            PyTuple::new(py, errors)?.into_any(),
        ];
        let cls = match &n.body {
            NdBody::RouterSolicitation => &self.c.rs,
            NdBody::RouterAdvertisement {
                cur_hop_limit,
                managed,
                other,
                home_agent,
                preference,
                proxy,
                router_lifetime,
                reachable_time,
                retrans_timer,
            } => {
                args.extend([
                    any(py, cur_hop_limit)?,
                    any(py, managed)?,
                    any(py, other)?,
                    any(py, home_agent)?,
                    any(py, preference)?,
                    any(py, proxy)?,
                    any(py, router_lifetime)?,
                    any(py, reachable_time)?,
                    any(py, retrans_timer)?,
                ]);
                &self.c.ra
            }
            NdBody::NeighborSolicitation { target } => {
                args.push(bytes(py, target));
                &self.c.ns
            }
            NdBody::NeighborAdvertisement {
                router,
                solicited,
                override_,
                target,
            } => {
                args.extend([
                    any(py, router)?,
                    any(py, solicited)?,
                    any(py, override_)?,
                    bytes(py, target),
                ]);
                &self.c.na
            }
            NdBody::Redirect {
                target,
                destination,
            } => {
                args.extend([bytes(py, target), bytes(py, destination)]);
                &self.c.redirect
            }
        };
        call(py, cls, args)
    }

    fn option(&self, o: &NdOption) -> PyResult<Obj<'py>> {
        let py = self.py;
        let mut args = vec![any(py, o.otype)?, any(py, o.offset)?];
        let cls = match &o.body {
            OptionBody::LinkLayerAddress { address } => {
                args.push(bytes(py, address));
                &self.c.lla
            }
            OptionBody::PrefixInformation {
                prefix_len,
                on_link,
                autonomous,
                router_address,
                valid_lifetime,
                preferred_lifetime,
                prefix,
            } => {
                args.extend([
                    any(py, prefix_len)?,
                    any(py, on_link)?,
                    any(py, autonomous)?,
                    any(py, router_address)?,
                    any(py, valid_lifetime)?,
                    any(py, preferred_lifetime)?,
                    bytes(py, prefix),
                ]);
                &self.c.prefix_info
            }
            OptionBody::RedirectedHeader { data_len, src, dst } => {
                args.extend([any(py, data_len)?, opt_bytes(py, src), opt_bytes(py, dst)]);
                &self.c.redirected
            }
            OptionBody::Mtu { mtu } => {
                args.push(any(py, mtu)?);
                &self.c.mtu
            }
            OptionBody::Nonce { nonce } => {
                args.push(bytes(py, nonce));
                &self.c.nonce
            }
            OptionBody::RouteInformation {
                prefix_len,
                preference,
                lifetime,
                prefix,
            } => {
                args.extend([
                    any(py, prefix_len)?,
                    any(py, preference)?,
                    any(py, lifetime)?,
                    bytes(py, prefix),
                ]);
                &self.c.route_info
            }
            OptionBody::Rdnss { lifetime, servers } => {
                let servers = servers.iter().map(|s| bytes(py, s));
                args.extend([any(py, lifetime)?, PyTuple::new(py, servers)?.into_any()]);
                &self.c.rdnss
            }
            OptionBody::Dnssl { lifetime, domains } => {
                args.extend([any(py, lifetime)?, PyTuple::new(py, domains)?.into_any()]);
                &self.c.dnssl
            }
            OptionBody::Unknown { data } => {
                args.push(bytes(py, data));
                &self.c.unknown
            }
        };
        call(py, cls, args)
    }
}

/// A fresh `DecodeStats` instance holding the counters.
pub fn stats(py: Python<'_>, s: &DecodeStats) -> PyResult<Py<PyAny>> {
    let c = classes(py)?;
    let kw = PyDict::new(py);
    for (name, v) in [
        ("packets", s.packets),
        ("bytes", s.bytes),
        ("ipv6", s.ipv6),
        ("ipv4", s.ipv4),
        ("nd", s.nd),
        ("malformed", s.malformed),
        ("snapped", s.snapped),
        ("unsupported_link", s.unsupported_link),
        ("other", s.other),
        ("fragments", s.fragments),
        ("reassembled", s.reassembled),
        ("ipv4_fragments_skipped", s.ipv4_fragments_skipped),
        ("dns_tcp_partial", s.dns_tcp_partial),
        ("dns_tcp_continuation", s.dns_tcp_continuation),
        ("dns_tcp_evicted", s.dns_tcp_evicted),
    ] {
        kw.set_item(name, v)?;
    }
    let reasons = PyDict::new(py);
    for ((layer, reason), n) in &s.malformed_reasons.0 {
        reasons.set_item(format!("{layer}.{reason}"), n)?;
    }
    kw.set_item("malformed_reasons", reasons)?;
    let frags = PyDict::new(py);
    for (kind, n) in &s.fragment_anomalies.0 {
        frags.set_item(kind.name(), n)?;
    }
    kw.set_item("fragment_anomalies", frags)?;
    let tunnels = PyDict::new(py);
    for (kind, n) in &s.tunnels.0 {
        tunnels.set_item(kind.name(), n)?;
    }
    kw.set_item("tunnels", tunnels)?;
    let links = PyDict::new(py);
    for (lt, n) in &s.link_types.0 {
        links.set_item(lt, n)?;
    }
    kw.set_item("link_types", links)?;
    Ok(c.decode_stats.bind(py).call((), Some(&kw))?.unbind())
}
