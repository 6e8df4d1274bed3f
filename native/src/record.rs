//! The record every packet source hands on: one captured frame, borrowed.
//!
//! Capture files (`capture`) and live rings both produce `Rec`s; the decoder and the
//! fused replay/live loops consume them. Borrowing keeps the hot path copy-free: the
//! bytes stay in the source's buffer and are valid until the source's next call.

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct Rec<'a> {
    /// Capture timestamp, nanoseconds since the epoch (negative only with an odd offset).
    pub ts_ns: i64,
    /// Interface index within the capture (pcapng), 0 for pcap and single-interface live.
    pub iface: u32,
    /// LINKTYPE_* value of the frame's interface.
    pub linktype: u32,
    /// The captured bytes (may be shorter than `wire_len` when the snaplen cut it).
    pub data: &'a [u8],
    /// Original length on the wire.
    pub wire_len: u32,
}
