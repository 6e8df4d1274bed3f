//! Walking one TPACKET_V3 block: the block descriptor and its `tpacket3_hdr` frames.
//!
//! Pure byte parsing, no system calls, so it is unit-tested on synthetic blocks. The
//! kernel writes the layouts of `<linux/if_packet.h>` in host byte order; the offsets
//! below are checked against the `libc` crate's struct definitions in the tests. Every
//! offset read from a block is bounds-checked: a block that does not add up ends the
//! walk early instead of panicking or reading past the block.

/// `struct tpacket_block_desc`: version, offset_to_priv, then `tpacket_hdr_v1`.
pub const BLOCK_STATUS: usize = 8;
pub const BLOCK_NUM_PKTS: usize = 12;
pub const BLOCK_FIRST_PKT: usize = 16;
/// Size of `struct tpacket_block_desc` (the header the kernel puts at a block's start).
pub const BLOCK_DESC_LEN: usize = 48;

/// `struct tpacket3_hdr` field offsets.
const TP_NEXT_OFFSET: usize = 0;
const TP_SEC: usize = 4;
const TP_NSEC: usize = 8;
const TP_SNAPLEN: usize = 12;
const TP_LEN: usize = 16;
const TP_STATUS: usize = 20;
const TP_MAC: usize = 24;
const TP_VLAN_TCI: usize = 32;
const TP_VLAN_TPID: usize = 36;
/// Size of `struct tpacket3_hdr`.
pub const FRAME_HDR_LEN: usize = 48;

pub const TP_STATUS_VLAN_VALID: u32 = 0x10;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// One frame of a block as the kernel describes it, its bytes borrowed from the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub sec: u32,
    pub nsec: u32,
    /// `tp_len`: the frame's length on the wire (without a VLAN tag the kernel removed).
    pub len: u32,
    pub status: u32,
    pub vlan_tci: u16,
    pub vlan_tpid: u16,
    /// The captured bytes from the MAC header on (`tp_snaplen` of them).
    pub data: &'a [u8],
}

impl RawFrame<'_> {
    /// Nanoseconds since the epoch.
    pub fn ts_ns(&self) -> i64 {
        i64::from(self.sec) * 1_000_000_000 + i64::from(self.nsec)
    }

    /// The 802.1Q/802.1ad tag the kernel took off the frame, as it was on the wire
    /// (TPID, TCI, big-endian), or None.
    pub fn vlan_tag(&self) -> Option<[u8; 4]> {
        if self.status & TP_STATUS_VLAN_VALID == 0 {
            return None;
        }
        // Kernels before 3.14 do not report the TPID; libpcap assumes 802.1Q then too.
        let tpid = if self.status & TP_STATUS_VLAN_TPID_VALID != 0 {
            self.vlan_tpid
        } else {
            0x8100
        };
        let [a, b] = tpid.to_be_bytes();
        let [c, d] = self.vlan_tci.to_be_bytes();
        Some([a, b, c, d])
    }
}

/// The frames of one block handed to user space, in the kernel's order.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    block: &'a [u8],
    left: u32,
    offset: usize,
}

impl<'a> Frames<'a> {
    /// The frames of `block` (a whole block, descriptor included).
    pub fn new(block: &'a [u8]) -> Self {
        let left = u32_at(block, BLOCK_NUM_PKTS).unwrap_or(0);
        let offset = u32_at(block, BLOCK_FIRST_PKT).unwrap_or(0) as usize;
        Frames {
            block,
            left,
            offset,
        }
    }

    /// Frames not walked yet, as the block descriptor counts them.
    pub fn remaining(&self) -> u32 {
        self.left
    }

    fn parse(&self) -> Option<(RawFrame<'a>, u32)> {
        let b = self.block;
        let h = self.offset;
        if h.checked_add(FRAME_HDR_LEN)? > b.len() {
            return None;
        }
        let snaplen = u32_at(b, h + TP_SNAPLEN)? as usize;
        let mac = usize::from(u16_at(b, h + TP_MAC)?);
        let start = h.checked_add(mac)?;
        let data = b.get(start..start.checked_add(snaplen)?)?;
        let frame = RawFrame {
            sec: u32_at(b, h + TP_SEC)?,
            nsec: u32_at(b, h + TP_NSEC)?,
            len: u32_at(b, h + TP_LEN)?,
            status: u32_at(b, h + TP_STATUS)?,
            vlan_tci: u32_at(b, h + TP_VLAN_TCI)? as u16,
            vlan_tpid: u16_at(b, h + TP_VLAN_TPID)?,
            data,
        };
        Some((frame, u32_at(b, h + TP_NEXT_OFFSET)?))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = RawFrame<'a>;

    fn next(&mut self) -> Option<RawFrame<'a>> {
        if self.left == 0 {
            return None;
        }
        match self.parse() {
            Some((frame, next)) => {
                // The last frame's next offset is 0; a 0 before it would re-read this
                // frame forever, so it ends the walk too.
                self.left = if next == 0 { 0 } else { self.left - 1 };
                self.offset = self.offset.saturating_add(next as usize);
                Some(frame)
            }
            None => {
                self.left = 0; // a malformed block: stop, never read out of bounds
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// One synthetic frame for `build_block`.
    pub struct Synth<'a> {
        pub sec: u32,
        pub nsec: u32,
        pub status: u32,
        pub tci: u16,
        pub tpid: u16,
        pub data: &'a [u8],
        pub wire_len: u32,
    }

    /// A block laid out as the kernel lays out TPACKET_V3 blocks (frames 16-aligned, the
    /// MAC header at the aligned end of the frame header plus a `sockaddr_ll`).
    pub fn build_block(size: usize, frames: &[Synth<'_>]) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let first = BLOCK_DESC_LEN;
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        b[BLOCK_STATUS..BLOCK_STATUS + 4].copy_from_slice(&1u32.to_ne_bytes());
        b[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&(first as u32).to_ne_bytes());
        let mac = 80usize; // TPACKET_ALIGN(48 + 20-byte sockaddr_ll)
        let mut off = first;
        for (i, f) in frames.iter().enumerate() {
            let total = (mac + f.data.len()).div_ceil(16) * 16;
            let next = if i + 1 == frames.len() { 0 } else { total };
            let put32 = |b: &mut Vec<u8>, at: usize, v: u32| {
                b[off + at..off + at + 4].copy_from_slice(&v.to_ne_bytes())
            };
            put32(&mut b, TP_NEXT_OFFSET, next as u32);
            put32(&mut b, TP_SEC, f.sec);
            put32(&mut b, TP_NSEC, f.nsec);
            put32(&mut b, TP_SNAPLEN, f.data.len() as u32);
            put32(&mut b, TP_LEN, f.wire_len);
            put32(&mut b, TP_STATUS, f.status);
            put32(&mut b, TP_VLAN_TCI, u32::from(f.tci));
            b[off + TP_MAC..off + TP_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[off + TP_VLAN_TPID..off + TP_VLAN_TPID + 2].copy_from_slice(&f.tpid.to_ne_bytes());
            b[off + mac..off + mac + f.data.len()].copy_from_slice(f.data);
            off += total;
        }
        b
    }

    #[test]
    fn offsets_match_the_kernel_headers() {
        assert_eq!(size_of::<libc::tpacket3_hdr>(), FRAME_HDR_LEN);
        assert_eq!(
            offset_of!(libc::tpacket3_hdr, tp_next_offset),
            TP_NEXT_OFFSET
        );
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_sec), TP_SEC);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_nsec), TP_NSEC);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_snaplen), TP_SNAPLEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_len), TP_LEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_status), TP_STATUS);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_mac), TP_MAC);
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        assert_eq!(
            hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci),
            TP_VLAN_TCI
        );
        assert_eq!(
            hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid),
            TP_VLAN_TPID
        );
        assert_eq!(size_of::<libc::tpacket_block_desc>(), BLOCK_DESC_LEN);
        let hdr = offset_of!(libc::tpacket_block_desc, hdr);
        assert_eq!(
            hdr + offset_of!(libc::tpacket_hdr_v1, block_status),
            BLOCK_STATUS
        );
        assert_eq!(
            hdr + offset_of!(libc::tpacket_hdr_v1, num_pkts),
            BLOCK_NUM_PKTS
        );
        assert_eq!(
            hdr + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
            BLOCK_FIRST_PKT
        );
        assert_eq!(libc::TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_VALID);
        assert_eq!(libc::TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_TPID_VALID);
    }

    #[test]
    fn walks_every_frame_in_order() {
        let a = [1u8; 60];
        let b = [2u8; 1514];
        let c = [3u8; 7];
        let synth = [
            Synth {
                sec: 10,
                nsec: 1,
                status: 1,
                tci: 0,
                tpid: 0,
                data: &a,
                wire_len: 60,
            },
            Synth {
                sec: 10,
                nsec: 999_999_999,
                status: 1,
                tci: 0,
                tpid: 0,
                data: &b,
                wire_len: 9000,
            },
            Synth {
                sec: 11,
                nsec: 0,
                status: 1,
                tci: 0,
                tpid: 0,
                data: &c,
                wire_len: 7,
            },
        ];
        let block = build_block(8192, &synth);
        let got: Vec<_> = Frames::new(&block).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].data, &a);
        assert_eq!(got[0].ts_ns(), 10_000_000_001);
        assert_eq!(got[1].data, &b[..]);
        assert_eq!(got[1].len, 9000);
        assert_eq!(got[1].ts_ns(), 10_999_999_999);
        assert_eq!(got[2].data, &c);
        assert!(got.iter().all(|f| f.vlan_tag().is_none()));
    }

    #[test]
    fn vlan_tags_come_back_as_on_the_wire() {
        let d = [0u8; 64];
        let synth = [
            Synth {
                sec: 1,
                nsec: 0,
                status: 0x11,
                tci: 0x2064,
                tpid: 0,
                data: &d,
                wire_len: 64,
            },
            Synth {
                sec: 1,
                nsec: 0,
                status: 0x51,
                tci: 7,
                tpid: 0x88a8,
                data: &d,
                wire_len: 64,
            },
        ];
        let block = build_block(4096, &synth);
        let tags: Vec<_> = Frames::new(&block).map(|f| f.vlan_tag()).collect();
        assert_eq!(
            tags,
            [
                Some([0x81, 0x00, 0x20, 0x64]),
                Some([0x88, 0xa8, 0x00, 0x07])
            ]
        );
    }

    #[test]
    fn malformed_blocks_end_the_walk_without_panicking() {
        let d = [9u8; 100];
        let synth = [Synth {
            sec: 1,
            nsec: 2,
            status: 1,
            tci: 0,
            tpid: 0,
            data: &d,
            wire_len: 100,
        }];
        let good = build_block(1024, &synth);
        // More frames claimed than present: the walk stops at the first bad header.
        let mut more = good.clone();
        more[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(Frames::new(&more).count(), 1); // its next offset is 0: the end
        let mut far = good.clone();
        far[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(Frames::new(&far).count(), 0);
        let mut long = good.clone();
        let snap = BLOCK_DESC_LEN + TP_SNAPLEN;
        long[snap..snap + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(Frames::new(&long).count(), 0);
        let mut mac = good;
        let m = BLOCK_DESC_LEN + TP_MAC;
        mac[m..m + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(Frames::new(&mac).count(), 0);
        assert_eq!(Frames::new(&[0u8; 10]).count(), 0);
        assert_eq!(Frames::new(&[]).count(), 0);
    }
}
