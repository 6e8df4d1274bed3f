//! The Neighbor Discovery family's native reducers: the per-message counting of
//! `ipv6.ndp_exhaustion`, `ipv6.ndp_flood`, `ipv6.ndp_spoof` and `ipv6.dad_dos`.
//!
//! Owns what every local-link ND message (and, for the exhaustion detection's off-link
//! drivers, every IPv6 packet) does to the family's bounded tables and windows, step by
//! step as the Python modules did it. Python gets only what it judges: a closed window
//! past a threshold (flood, exhaustion), a window that just crossed its threshold (DAD),
//! an individual spoofing verdict the link budget let through, or a link's burst. One
//! reducer per detection, so the tables show in the order the Python detections made
//! them and the outputs of one message keep the Python order (flood, spoof, exhaustion,
//! DAD: only flood and spoof speak while observing, and flood's reducer runs first).
//! ND inside a tunnel is not the local link: every reducer skips it. Time differences
//! saturate (packet time comes from the capture, so it may be anything).

mod dad;
mod exhaustion;
mod flood;
mod spoof;

use std::rc::Rc;

use pyo3::prelude::*;

use crate::decode::events::{Event, Meta, NdMessage, OptionBody};

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[
    ("nd_exhaustion", exhaustion::build),
    ("nd_flood", flood::build),
    ("nd_spoof", spoof::build),
    ("nd_dad", dad::build),
];

pub use crate::reduce::budget::{link_to_py as link_py, Link};
pub use crate::reduce::py::opt_bytes;

pub fn link_of(meta: &Meta) -> Link {
    (meta.iface, meta.vlans)
}

/// A link-layer address as Python compares it (`bytes` of any length): Ethernet MACs
/// inline, anything else (a source link-layer option on a link without MACs) shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lla {
    Six([u8; 6]),
    Other(Rc<[u8]>),
}

impl Lla {
    pub fn from_slice(b: &[u8]) -> Lla {
        match <[u8; 6]>::try_from(b) {
            Ok(a) => Lla::Six(a),
            Err(_) => Lla::Other(Rc::from(b)),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Lla::Six(a) => a,
            Lla::Other(b) => b,
        }
    }
}

/// The value of the first option of `otype` that is a link-layer address
/// (`NDMessage._lla`).
pub fn lla(m: &NdMessage, otype: u8) -> Option<&[u8]> {
    m.options.iter().find_map(|o| match &o.body {
        OptionBody::LinkLayerAddress { address } if o.otype == otype => Some(address.as_slice()),
        _ => None,
    })
}

/// `NDMessage.sender_mac()`: the Ethernet source, else the source link-layer option.
pub fn sender_mac(m: &NdMessage) -> Option<Lla> {
    match m.meta.src_mac {
        Some(mac) => Some(Lla::Six(mac)),
        None => lla(m, 1).map(Lla::from_slice),
    }
}

/// A local-link ND message (not from inside a tunnel), or None.
pub fn local_nd(ev: &Event) -> Option<&NdMessage> {
    match ev {
        Event::Nd(m) if m.ip.tunnels.is_empty() => Some(m),
        _ => None,
    }
}

/// One integer setting the Python detection resolved (`settings[name]`).
pub fn setting(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    settings.get_item(name)?.extract()
}

/// A count setting (a table cap, a threshold), never below zero.
pub fn count(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    Ok(setting(settings, name)?.max(0) as usize)
}

/// Event builders for the reducers' unit tests.
#[cfg(test)]
pub mod testing {
    use crate::decode::events::{Chain, Event, Ipv6Header, Meta, NdBody, NdMessage, Tunnels};

    pub fn addr(last: u16) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[14..].copy_from_slice(&last.to_be_bytes());
        a
    }

    pub fn nd(ts: i64, src: [u8; 16], dst: [u8; 16], mac: Option<[u8; 6]>, body: NdBody) -> Event {
        Event::Nd(NdMessage {
            meta: Meta {
                ts_ns: ts,
                src_mac: mac,
                ..Meta::default()
            },
            ip: Ipv6Header {
                src,
                dst,
                hop_limit: 255,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 0,
                chain: Chain::default(),
                upper: 58,
                fragment: None,
                tunnels: Tunnels::default(),
            },
            icmp_type: 135,
            code: 0,
            checksum_ok: true,
            options: Vec::new(),
            option_errors: Vec::new(),
            body,
        })
    }

    /// An address-resolution NS for `target` (to its solicited-node group).
    pub fn ns(ts: i64, src: [u8; 16], target: [u8; 16]) -> Event {
        let mut dst = [0u8; 16];
        dst[..13].copy_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]);
        dst[13..].copy_from_slice(&target[13..]);
        nd(
            ts,
            src,
            dst,
            Some([2; 6]),
            NdBody::NeighborSolicitation { target },
        )
    }

    pub fn na(ts: i64, src: [u8; 16], mac: [u8; 6], target: [u8; 16]) -> Event {
        let body = NdBody::NeighborAdvertisement {
            router: false,
            solicited: true,
            override_: true,
            target,
        };
        nd(ts, src, addr(1), Some(mac), body)
    }
}
