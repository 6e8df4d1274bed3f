//! One interface read through a TPACKET_V3 memory-mapped receive ring.
//!
//! Owns the packet socket and its mapping: `socket(AF_PACKET, SOCK_RAW)`, the ring's
//! geometry, the BPF filter, promiscuous membership, the optional fanout group, polling,
//! handing blocks to the caller and back to the kernel, and the kernel's counters. It
//! yields `Rec`s borrowed from the ring (or, for a frame whose VLAN tag the kernel
//! removed, from a scratch buffer with the tag put back), so a native loop can read
//! frames without copying them or touching Python.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::block::{Frames, RawFrame, BLOCK_STATUS};
use crate::record::Rec;

const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// The frame slot size the V3 ring request must name. V3 packs frames of any length
/// into blocks, so this only has to satisfy the kernel's sanity checks
/// (`>= TPACKET3_HDRLEN`, 16-aligned, dividing the block size).
const FRAME_SLOT: u32 = 2048;
/// A block is handed to user space when full or this long after its first frame: the
/// bound on how late a frame on a quiet link reaches the engine.
pub const RETIRE_BLOCK_MS: u32 = 10;
/// Largest block: 1 MiB holds ~7,000 small frames (one wake-up each) and any GRO
/// super-frame, is a power of two (the kernel allocates each block as 2^order pages, so
/// anything else wastes the rest), and is under 1 % of the default 128 MiB ring, so the
/// block the reader holds costs the kernel little room.
pub const MAX_BLOCK: usize = 1 << 20;
/// Smallest block: 128 KiB still takes a 64 KiB GRO frame whole.
pub const MIN_BLOCK: usize = 128 << 10;
/// Fewest blocks: while the reader holds one block the kernel fills the others; with
/// fewer, a small ring stalls (and drops) at every hand-over.
pub const MIN_BLOCKS: usize = 8;

/// `PACKET_FANOUT` by flow hash. The kernel's symmetric flow hash sends both directions
/// of a flow to one member, and it stops at a fragment header (no ports), so every
/// fragment of a datagram (RA-Guard evasion is fragmented ND) reaches one member too.
const FANOUT_HASH: u32 = libc::PACKET_FANOUT_HASH;
/// PACKET_FANOUT_FLAG_DEFRAG would have the kernel reassemble IPv4 fragments before
/// choosing a member and deliver the reassembled datagram instead of the fragments: the
/// decoder would no longer see the frames on the wire (fragment counts, overlaps, the
/// fragments of tunnels), so it is opt-in (`Fanout::defrag`).
const FANOUT_FLAG_DEFRAG: u32 = libc::PACKET_FANOUT_FLAG_DEFRAG;

/// A `PACKET_FANOUT` group: rings on one interface with the same id share its flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    pub group: u16,
    /// Reassemble IPv4 fragments in the kernel first (see `FANOUT_FLAG_DEFRAG`).
    pub defrag: bool,
}

/// Geometry of a ring: `block_size * block_count` bytes of mapped kernel memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub block_size: usize,
    pub block_count: usize,
}

impl Geometry {
    /// The geometry for a buffer of `bytes` (rounded down to whole blocks, at least
    /// `MIN_BLOCKS` blocks of `MIN_BLOCK`).
    pub fn for_bytes(bytes: usize) -> Geometry {
        let mut block_size = MAX_BLOCK;
        while block_size > MIN_BLOCK && bytes / block_size < MIN_BLOCKS {
            block_size /= 2;
        }
        Geometry {
            block_size,
            block_count: (bytes / block_size).max(MIN_BLOCKS),
        }
    }

    pub fn bytes(&self) -> usize {
        self.block_size * self.block_count
    }
}

/// How to open a ring.
#[derive(Clone, Debug)]
pub struct Config {
    /// Position of the interface on the command line: `Rec::iface`.
    pub iface: u32,
    pub promisc: bool,
    pub geometry: Geometry,
    /// The `PACKET_FANOUT` group shared by every ring reading the same interface.
    pub fanout: Option<Fanout>,
}

/// A kernel BPF program (`struct sock_filter` array).
pub type Filter = Vec<libc::sock_filter>;

/// Kernel counters since the ring opened (`PACKET_STATISTICS`, `tpacket_stats_v3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that passed the filter (delivered or dropped).
    pub packets: u64,
    /// Frames lost because the ring was full.
    pub drops: u64,
    /// Times the ring was full (every block held by user space).
    pub freeze_q_cnt: u64,
}

/// Where an open failed, so the caller can tell a missing capability at `socket`
/// from a missing interface at `bind`.
#[derive(Debug)]
pub struct OpenError {
    pub step: &'static str,
    pub err: io::Error,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.err)
    }
}

impl std::error::Error for OpenError {}

fn last(step: &'static str) -> OpenError {
    OpenError {
        step,
        err: io::Error::last_os_error(),
    }
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn attach(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// `ARPHRD_*` (the interface's hardware type) -> LINKTYPE_* of what SOCK_RAW delivers.
/// Ethernet and loopback carry an Ethernet header; tunnels and the rest carry bare IP.
/// Anything else is LINKTYPE_USER0 (147), which the decoder counts as unsupported.
pub fn linktype_of(hatype: u16) -> u32 {
    match hatype {
        1 | 772 => 1,
        65534 | 776 | 769 | 778 | 823 => 101,
        _ => LINKTYPE_UNSUPPORTED,
    }
}

pub const LINKTYPE_UNSUPPORTED: u32 = 147;

#[repr(C)]
struct Req3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

#[repr(C)]
struct Mreq {
    ifindex: i32,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

/// One interface's TPACKET_V3 ring.
pub struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    geometry: Geometry,
    /// The next block to hand to the caller (blocks go round in order).
    next: usize,
    iface: u32,
    ifindex: i32,
    hatype: u16,
    linktype: u32,
    /// Why promiscuous mode could not be set (the capture goes on without it).
    pub promisc_error: Option<io::Error>,
    stats: Stats,
}

// SAFETY: the mapping belongs to this Ring alone (never shared or aliased outside
// `&mut self` borrows), so moving the Ring to another thread is sound.
unsafe impl Send for Ring {}
// SAFETY: through `&Ring` only the descriptor, the geometry and atomic loads of block
// status words are reachable; reading block bytes needs `&mut Ring` (`next_block`).
unsafe impl Sync for Ring {}

impl Ring {
    /// Open `name`. `filter` gets the interface's LINKTYPE and returns the BPF program to
    /// attach (None: every frame); it runs after the bind, when the type is known.
    pub fn open(
        name: &str,
        config: &Config,
        filter: impl FnOnce(u32) -> Result<Option<Filter>, OpenError>,
    ) -> Result<Ring, OpenError> {
        let cname = CString::new(name).map_err(|_| OpenError {
            step: "if_nametoindex",
            err: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(last("if_nametoindex"));
        }
        // Protocol 0: the socket receives nothing until bind names ETH_P_ALL, after the
        // drop-all filter and the ring are in place.
        // SAFETY: plain system call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last("socket"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let fd_raw = fd.as_raw_fd();
        let step = |step: &'static str| move |err: io::Error| OpenError { step, err };

        // Nothing may pass before the real filter: drop all until then (libpcap does too).
        let drop_all = [libc::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: 0,
        }];
        attach(fd_raw, &drop_all).map_err(step("SO_ATTACH_FILTER"))?;
        // The ring reads the skb's timestamp, set when the frame enters the stack only
        // while some socket asked for timestamps; without it each packet socket stamps
        // on its own and tcpdump on the same port would see other nanoseconds (and a
        // replay of its capture other alert ids). Asking here makes them agree.
        setsockopt(fd_raw, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)
            .map_err(step("SO_TIMESTAMPNS"))?;
        setsockopt(fd_raw, libc::SOL_PACKET, libc::PACKET_VERSION, &2i32) // TPACKET_V3
            .map_err(step("PACKET_VERSION"))?;
        let g = config.geometry;
        let req = Req3 {
            block_size: g.block_size as u32,
            block_nr: g.block_count as u32,
            frame_size: FRAME_SLOT,
            frame_nr: (g.block_size / FRAME_SLOT as usize * g.block_count) as u32,
            retire_blk_tov: RETIRE_BLOCK_MS,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        setsockopt(fd_raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(step("PACKET_RX_RING"))?;
        // SAFETY: maps the ring just configured on our socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                g.bytes(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd_raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last("mmap"));
        }
        let mut ring = Ring {
            fd,
            // SAFETY: mmap succeeded, so the pointer is not null.
            map: unsafe { NonNull::new_unchecked(map.cast()) },
            geometry: g,
            next: 0,
            iface: config.iface,
            ifindex: ifindex as i32,
            hatype: 0,
            linktype: 1,
            promisc_error: None,
            stats: Stats::default(),
        };
        ring.bind(config, filter)?;
        Ok(ring)
    }

    fn bind(
        &mut self,
        config: &Config,
        filter: impl FnOnce(u32) -> Result<Option<Filter>, OpenError>,
    ) -> Result<(), OpenError> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: zeroed sockaddr_ll is valid; we fill what bind reads.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = self.ifindex;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sll` is a valid sockaddr_ll of `len` bytes.
        if unsafe { libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), len) } < 0 {
            return Err(last("bind"));
        }
        let mut got: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut got_len = len;
        // SAFETY: `got` has room for `got_len` bytes.
        if unsafe {
            libc::getsockname(
                fd,
                (&mut got as *mut libc::sockaddr_ll).cast(),
                &mut got_len,
            )
        } < 0
        {
            return Err(last("getsockname"));
        }
        self.hatype = got.sll_hatype;
        self.linktype = linktype_of(got.sll_hatype);
        if let Some(fanout) = config.fanout {
            // Joined after bind: the kernel only groups running sockets of one device.
            let mode = if fanout.defrag {
                FANOUT_HASH | FANOUT_FLAG_DEFRAG
            } else {
                FANOUT_HASH
            };
            let arg: u32 = (mode << 16) | u32::from(fanout.group);
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|err| {
                OpenError {
                    step: "PACKET_FANOUT",
                    err,
                }
            })?;
        }
        if config.promisc {
            let mreq = Mreq {
                ifindex: self.ifindex,
                kind: libc::PACKET_MR_PROMISC as u16,
                alen: 0,
                address: [0; 8],
            };
            // Without CAP_NET_ADMIN this fails; the capture still works (and says so).
            if let Err(err) = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq) {
                self.promisc_error = Some(err);
            }
        }
        match filter(self.linktype)? {
            Some(program) => attach(fd, &program),
            // SO_DETACH_FILTER takes an ignored int.
            None => setsockopt(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32),
        }
        .map_err(|err| OpenError {
            step: "SO_ATTACH_FILTER",
            err,
        })?;
        // The counters start now: reading them resets the kernel's.
        self.read_kernel_stats().map_err(|err| OpenError {
            step: "PACKET_STATISTICS",
            err,
        })?;
        self.stats = Stats::default();
        Ok(())
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
    pub fn hatype(&self) -> u16 {
        self.hatype
    }
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    fn status<'a>(&self, index: usize) -> &'a AtomicU32 {
        // SAFETY: `index < block_count`, so the word is inside the mapping, 4-aligned
        // (blocks are page-aligned); the kernel and we only touch it atomically. The
        // mapping outlives every borrow handed out: `Block` borrows the Ring mutably.
        unsafe {
            AtomicU32::from_ptr(
                self.map
                    .as_ptr()
                    .add(index * self.geometry.block_size + BLOCK_STATUS)
                    .cast(),
            )
        }
    }

    /// The next block of frames, waiting up to `timeout_ms` (-1: forever, 0: not at all)
    /// for the kernel to retire one. Ok(None) on timeout or a signal. The block goes
    /// back to the kernel when the returned `Block` is dropped.
    ///
    /// An `ENETDOWN` error means the interface went down (or away); the ring keeps
    /// working when it comes back up.
    pub fn next_block(&mut self, timeout_ms: i32) -> io::Result<Option<Block<'_>>> {
        if self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                return if err.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
            if pfd.revents & libc::POLLERR != 0 {
                self.take_error()?;
            }
            if self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                return Ok(None);
            }
        }
        let index = self.next;
        let size = self.geometry.block_size;
        // SAFETY: the block is user-owned (TP_STATUS_USER, read with Acquire), so the
        // kernel does not write it until we hand it back in `Block::drop`.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(index * size), size) };
        let status = self.status(index);
        Ok(Some(Block {
            frames: Frames::new(bytes),
            status,
            next: &mut self.next,
            count: self.geometry.block_count,
            iface: self.iface,
            linktype: self.linktype,
            scratch: Vec::new(),
        }))
    }

    /// A pending socket error (SO_ERROR, cleared by reading) as Err.
    fn take_error(&self) -> io::Result<()> {
        let mut err: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: `err` has room for an int.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut i32).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(())
    }

    fn read_kernel_stats(&mut self) -> io::Result<()> {
        let mut st = [0u32; 3];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is a tpacket_stats_v3 (three u32) and `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel counts drops in tp_packets too (and resets both when read).
        self.stats.packets += u64::from(st[0]);
        self.stats.drops += u64::from(st[1]);
        self.stats.freeze_q_cnt += u64::from(st[2]);
        Ok(())
    }

    /// The kernel's counters since the ring opened.
    pub fn stats(&mut self) -> io::Result<Stats> {
        self.read_kernel_stats()?;
        Ok(self.stats)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once; the fd closes after.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.geometry.bytes());
        }
    }
}

/// The `Rec` of one ring frame. A frame whose 802.1Q tag the kernel moved out (VLAN
/// offload) gets it back after the MAC addresses, as libpcap does, so the decoder sees
/// the frame as sent; that copy lives in `scratch`.
pub fn rec_of<'a>(f: RawFrame<'a>, iface: u32, linktype: u32, scratch: &'a mut Vec<u8>) -> Rec<'a> {
    let mut rec = Rec {
        ts_ns: f.ts_ns(),
        iface,
        linktype,
        data: f.data,
        wire_len: f.len,
    };
    if let Some(tag) = f.vlan_tag() {
        if linktype == 1 && f.data.len() >= 12 {
            scratch.clear();
            scratch.extend_from_slice(&f.data[..12]);
            scratch.extend_from_slice(&tag);
            scratch.extend_from_slice(&f.data[12..]);
            rec.data = scratch;
            rec.wire_len = f.len.saturating_add(4);
        }
    }
    rec
}

/// One block lent by the kernel: its frames as `Rec`s, then back to the kernel on drop.
pub struct Block<'r> {
    frames: Frames<'r>,
    status: &'r AtomicU32,
    next: &'r mut usize,
    count: usize,
    iface: u32,
    linktype: u32,
    scratch: Vec<u8>,
}

impl Block<'_> {
    /// Frames in the block not read yet.
    pub fn remaining(&self) -> u32 {
        self.frames.remaining()
    }

    /// The next frame as a `Rec`, valid until the next call (a lending iterator: a frame
    /// whose VLAN tag is restored lives in the block's scratch buffer).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Rec<'_>> {
        let f = self.frames.next()?;
        Some(rec_of(f, self.iface, self.linktype, &mut self.scratch))
    }

    /// Every remaining frame, in order.
    pub fn for_each(&mut self, mut f: impl FnMut(Rec<'_>)) {
        while let Some(rec) = self.next() {
            f(rec);
        }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // Release: our reads of the block happen before the kernel may reuse it.
        self.status.store(TP_STATUS_KERNEL, Ordering::Release);
        *self.next = (*self.next + 1) % self.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_keeps_blocks_whole_and_numerous() {
        let g = Geometry::for_bytes(128 << 20);
        assert_eq!((g.block_size, g.block_count), (1 << 20, 128));
        let g = Geometry::for_bytes(1 << 20);
        assert_eq!((g.block_size, g.block_count), (128 << 10, 8));
        let g = Geometry::for_bytes(4 << 20);
        assert_eq!((g.block_size, g.block_count), (512 << 10, 8));
        let g = Geometry::for_bytes(1000);
        assert_eq!((g.block_size, g.block_count), (128 << 10, 8));
        for mb in 1..300 {
            let g = Geometry::for_bytes(mb << 20);
            assert!(g.block_size.is_power_of_two() && g.block_size % 4096 == 0);
            assert!(g.block_count >= MIN_BLOCKS && g.bytes() <= (mb << 20).max(1 << 20));
            assert_eq!(g.block_size % FRAME_SLOT as usize, 0);
        }
    }

    #[test]
    fn records_restore_vlan_tags_on_ethernet_only() {
        use crate::live::block::tests::{build_block, Synth};
        let plain: Vec<u8> = (0u8..60).collect();
        let synth = [
            Synth {
                sec: 5,
                nsec: 6,
                status: 1,
                tci: 0,
                tpid: 0,
                data: &plain,
                wire_len: 60,
            },
            Synth {
                sec: 5,
                nsec: 7,
                status: 0x11,
                tci: 0x0064,
                tpid: 0,
                data: &plain,
                wire_len: 60,
            },
        ];
        let block = build_block(4096, &synth);
        let mut scratch = Vec::new();
        let mut frames = Frames::new(&block);
        let rec = rec_of(frames.next().unwrap(), 2, 1, &mut scratch);
        assert_eq!(
            (rec.ts_ns, rec.iface, rec.linktype, rec.wire_len),
            (5_000_000_006, 2, 1, 60)
        );
        assert_eq!(rec.data, &plain[..]);
        let tagged = frames.next().unwrap();
        let rec = rec_of(tagged, 0, 1, &mut scratch);
        assert_eq!(rec.wire_len, 64);
        assert_eq!(&rec.data[..12], &plain[..12]);
        assert_eq!(&rec.data[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&rec.data[16..], &plain[12..]);
        // Bare IP (LINKTYPE_RAW) has no MAC header to put a tag into.
        let rec = rec_of(tagged, 0, 101, &mut scratch);
        assert_eq!((rec.data.len(), rec.wire_len), (60, 60));
    }

    #[test]
    fn linktypes() {
        assert_eq!(linktype_of(1), 1);
        assert_eq!(linktype_of(772), 1);
        assert_eq!(linktype_of(65534), 101);
        assert_eq!(linktype_of(32), LINKTYPE_UNSUPPORTED);
    }
}
