//! The DHCPv6 family's per-message counting, in Rust: `rogue` judges every server
//! message (Advertise, Reply) against the policy's `dhcpv6_servers` or the learned
//! servers, `starvation` counts client and server messages per link window.
//!
//! Owns what both share: which DHCPv6 message is the local link (not tunnelled), the
//! settings readers and the FNV hash the distinct counters use. Each reducer hands
//! Python only alerts past suppression and the link budget, bursts and windows past a
//! threshold.

use pyo3::prelude::*;

use crate::decode::events::{Dhcpv6Message, Event};

mod rogue;
mod starvation;

pub const REDUCERS: &[(&str, crate::reducer::Builder)] = &[
    ("dhcpv6_rogue", rogue::build),
    ("dhcpv6_starvation", starvation::build),
];

/// DHCPv6 message types (RFC 8415 7.3) the reducers look at.
pub(crate) const SOLICIT: u8 = 1;
pub(crate) const ADVERTISE: u8 = 2;
pub(crate) const REQUEST: u8 = 3;
pub(crate) const REPLY: u8 = 7;

/// The DHCPv6 message of a local-link event: DHCPv6 inside a tunnel is not this link's.
#[inline]
pub(crate) fn local(ev: &Event) -> Option<&Dhcpv6Message> {
    match ev {
        Event::Dhcpv6(m) if m.ip.tunnels.is_empty() => Some(m),
        _ => None,
    }
}

/// Reads one setting from the dict Python builds (`Detector.reducer`).
pub(crate) fn setting<'py, T: FromPyObject<'py>>(
    settings: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<T> {
    settings.get_item(name)?.extract()
}

/// A count setting (negative reads as 0).
pub(crate) fn count(settings: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    Ok(setting::<i64>(settings, name)?.max(0) as usize)
}

/// 16 bytes from a Python `bytes` of that length.
pub(crate) fn addr16(b: &[u8]) -> PyResult<[u8; 16]> {
    <[u8; 16]>::try_from(b)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("expected a 16-byte address"))
}

/// Event builders for the reducers' unit tests.
#[cfg(test)]
pub mod testing {
    use crate::decode::events::{Chain, Dhcpv6Message, Ipv6Header, Meta, Tunnels};

    /// A DHCPv6 message of `mtype` at `ts` from (`src`, `mac`), for client `client`.
    pub fn msg(mtype: u8, ts: i64, src: u8, mac: u8, client: u8, xid: u32) -> Dhcpv6Message {
        let mut addr = [0u8; 16];
        addr[0] = 0xfe;
        addr[1] = 0x80;
        addr[15] = src;
        let to_client = mtype == super::ADVERTISE || mtype == super::REPLY;
        Dhcpv6Message {
            meta: Meta {
                ts_ns: ts,
                src_mac: Some([2, 0, 0, 0, 0, mac]),
                ..Meta::default()
            },
            ip: Ipv6Header {
                src: addr,
                dst: [0xff; 16],
                hop_limit: 255,
                traffic_class: 0,
                flow_label: 0,
                payload_len: 0,
                chain: Chain::default(),
                upper: 17,
                fragment: None,
                tunnels: Tunnels::default(),
            },
            sport: if to_client { 547 } else { 546 },
            dport: if to_client { 546 } else { 547 },
            msg_type: mtype,
            transaction_id: xid,
            client_id: Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, client]),
            server_id: to_client.then(|| vec![0, 3, 0, 1, 2, 0, 0, 0, 0, mac]),
            iaids: vec![1],
            addresses: Vec::new(),
            prefixes: Vec::new(),
            dns_servers: vec![[0x20; 16]],
            domains: vec!["example.com".into()],
            status_code: None,
            hop_count: None,
            link_address: None,
            peer_address: None,
            relayed_type: None,
        }
    }
}
