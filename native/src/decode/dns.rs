//! DNS (RFC 1035) over UDP and TCP port 53, over IPv6 and IPv4 (the IPv4 path is reached
//! for tunnels' outer packets and for native IPv4 when DNS is observed), as a
//! `DnsMessage` event.
//!
//! Owns every read of DNS bytes. Built only when a reducer observes `dns` (the decoder's
//! `want_dns`), so the cheap paths of other TCP and UDP stay one port comparison. The
//! parse is zero-copy over the message with small `nom`-style steps (`header`, `name`,
//! `record`), each returning the position after what it read, and bounded: the first
//! question only, at most `MAX_RECORDS` answer records walked, `MAX_PTR` PTR answer
//! names kept, names of at most 255 wire bytes (RFC 1035 2.3.4) with at most `MAX_JUMPS`
//! compression pointers, each pointing strictly backwards (so no loop can exist even
//! before the jump bound). Every length is checked; a bad question becomes one
//! `Malformed(layer="dns")` instead of the message, a bad answer record stops the walk
//! and becomes one `Malformed` beside the message (with what was read before it).
//!
//! TCP (RFC 1035 4.2.2, RFC 7766): each message has a 2-byte length prefix; every whole
//! message inside one segment is parsed (no count cap: a pipelining client may put
//! throwaway queries before an AXFR, and each message takes at least 3 of the segment's
//! bytes, so the work stays bounded by the segment), a message that continues in
//! another segment is counted (`DecodeStats.dns_tcp_partial`), not reassembled. A segment is not a message start just because it is on port 53: the
//! second and later segments of a long answer (an AXFR's messages run to 64 KiB) start
//! inside a message. Two cheap rules keep them from being read as a length prefix (which
//! made false `Malformed(layer="dns")` and garbage messages), without reassembly and
//! without any allocation per packet (see `TcpTrack`):
//! - a small direct-mapped table (`TcpTrack`, `TRACK_SLOTS`, overwritten on collision
//!   and counted) holds, per stream (addresses, ports), the sequence number its next
//!   message starts at: the byte after a SYN, the end of a segment that ended on a
//!   message boundary, or the end of a message that continues past its segment. A later
//!   segment of that stream that starts before it is skipped up to it (a continuation,
//!   counted in `dns_tcp_continuation`) and parsed from there. A FIN or RST clears the
//!   stream's entry (an RST both directions'); a stream that just stops (a SYN never
//!   followed up, a lost FIN) keeps its slot until another stream's entry overwrites it
//!   (counted in `dns_tcp_evicted`): a SYN flood to port 53 can push real streams out,
//!   which only costs them their exactness;
//! - a segment of a stream not in the table (its SYN was not seen, or the segment
//!   holding the boundary was missed) is parsed only when its prefix and header make
//!   sense as a DNS message (`plausible_start`).
//!
//! Only a message whose start is verified (reached from the SYN through whole messages)
//! can be `Malformed`; where the start rests on `plausible_start`, a message that fails
//! to parse is counted as a continuation instead. A guess can be wrong; it must never
//! raise a false anomaly on the middle of a zone transfer.

use std::borrow::Cow;

use super::events::*;
use super::{be16, be32, Decoder, NH_TCP, NH_UDP};

pub const PORT: u16 = 53;

/// Answer records walked per message.
const MAX_RECORDS: usize = 64;
/// PTR answer names kept per message.
pub const MAX_PTR: usize = 8;
/// Compression pointers followed per name (a real name needs one or two).
const MAX_JUMPS: usize = 16;
/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// log2 of `TRACK_SLOTS` (the slot is the top bits of the stream's hash).
const TRACK_BITS: u32 = 8;
/// Slots of the table of TCP streams' next message boundaries (`TcpTrack`). DNS streams
/// open at once at one sensor are few; a collision only costs the later segments of the
/// overwritten stream their exactness (they fall back to `plausible_start`).
pub const TRACK_SLOTS: usize = 1 << TRACK_BITS;
const _: () = assert!(TRACK_BITS >= 1 && TRACK_BITS <= 16 && TRACK_SLOTS == 1 << TRACK_BITS);
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
/// The longest distance a continuation can be from the message it continues: one
/// message's length prefix and body.
const MAX_SKIP: u32 = 2 + 65535;

pub const TYPE_PTR: u16 = 12;

/// Is either port DNS's? (The cheap paths' comparison.)
#[inline]
pub fn is_dns_port(sport: u16, dport: u16) -> bool {
    sport == PORT || dport == PORT
}

/// Why a message could not be read (`Malformed.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    ShortHeader,
    TruncatedQuestion,
    BadName,
    NameTooLong,
    CompressionLoop,
    TruncatedRecord,
    BadTcpLength,
}

impl Bad {
    pub fn reason(self) -> &'static str {
        match self {
            Bad::ShortHeader => "short_header",
            Bad::TruncatedQuestion => "truncated_question",
            Bad::BadName => "bad_name",
            Bad::NameTooLong => "name_too_long",
            Bad::CompressionLoop => "compression_loop",
            Bad::TruncatedRecord => "truncated_record",
            Bad::BadTcpLength => "bad_tcp_length",
        }
    }
}

/// Reads the name at `msg[pos..]`: the position right after it in the message (after
/// the first pointer, if any), appending its text (lower-case, labels joined by dots,
/// no final dot, unprintable bytes and dots inside labels as `\DDD`) to `text`.
pub fn name(msg: &[u8], mut pos: usize, mut text: Option<&mut String>) -> Result<usize, Bad> {
    let mut after: Option<usize> = None;
    let mut jumps = 0;
    let mut wire = 0usize;
    // Pointers must go strictly backwards from the lowest offset read so far: a name
    // can then never revisit a byte, whatever the jump bound.
    let mut floor = pos;
    loop {
        let &len = msg.get(pos).ok_or(Bad::BadName)?;
        match len & 0xC0 {
            0xC0 => {
                let &lo = msg.get(pos + 1).ok_or(Bad::BadName)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                jumps += 1;
                if jumps > MAX_JUMPS || target >= floor {
                    return Err(Bad::CompressionLoop);
                }
                after.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            0x00 => {
                wire += 1 + usize::from(len);
                if wire > MAX_NAME {
                    return Err(Bad::NameTooLong);
                }
                if len == 0 {
                    return Ok(after.unwrap_or(pos + 1));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(Bad::BadName)?;
                if let Some(t) = text.as_deref_mut() {
                    if !t.is_empty() {
                        t.push('.');
                    }
                    for &c in label {
                        if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                            t.push(c.to_ascii_lowercase() as char);
                        } else {
                            // RFC 1035 5.1's \DDD, written in place (no allocation
                            // per byte of a hostile name).
                            t.push('\\');
                            t.push(char::from(b'0' + c / 100));
                            t.push(char::from(b'0' + c / 10 % 10));
                            t.push(char::from(b'0' + c % 10));
                        }
                    }
                }
                pos += 1 + usize::from(len);
            }
            // 0x40 and 0x80: extended label types (RFC 6891 obsoleted them); not names.
            _ => return Err(Bad::BadName),
        }
    }
}

/// One resource record at `pos`: `(next position, type, rdata start, rdata length)`.
fn record(msg: &[u8], pos: usize) -> Result<(usize, u16, usize, usize), Bad> {
    let p = name(msg, pos, None).map_err(|b| match b {
        Bad::BadName => Bad::TruncatedRecord,
        other => other,
    })?;
    if msg.len() < p + 10 {
        return Err(Bad::TruncatedRecord);
    }
    let rtype = be16(msg, p);
    let rdlen = usize::from(be16(msg, p + 8));
    let rdata = p + 10;
    if msg.len() < rdata + rdlen {
        return Err(Bad::TruncatedRecord);
    }
    Ok((rdata + rdlen, rtype, rdata, rdlen))
}

/// Where a message was seen: addresses, ports, transport, tunnels.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub transport: u8,
    pub tunnels: Tunnels,
}

impl Flow {
    /// The other direction of the stream.
    fn reversed(&self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }
}

/// Parse one DNS message. `Err` when the header or the question cannot be read;
/// otherwise the message and the first fault in its answers, if any.
pub fn parse(meta: Meta, flow: &Flow, msg: &[u8]) -> Result<(DnsMessage, Option<Bad>), Bad> {
    if msg.len() < 12 {
        return Err(Bad::ShortHeader);
    }
    let flags = be16(msg, 2);
    let qdcount = be16(msg, 4);
    let ancount = be16(msg, 6);
    let mut m = DnsMessage {
        meta,
        src: flow.src,
        dst: flow.dst,
        sport: flow.sport,
        dport: flow.dport,
        transport: flow.transport,
        tunnels: flow.tunnels,
        id: be16(msg, 0),
        qr: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0F) as u8,
        aa: flags & 0x0400 != 0,
        rcode: (flags & 0x000F) as u8,
        qdcount,
        question: None,
        ancount,
        ptr_answers: Vec::new(),
    };
    let mut pos = 12;
    if qdcount > 0 {
        // One allocation: a full ip6.arpa name is 72 characters.
        let mut qname = String::with_capacity(80);
        pos = name(msg, pos, Some(&mut qname)).map_err(|b| match b {
            Bad::BadName => Bad::TruncatedQuestion,
            other => other,
        })?;
        if msg.len() < pos + 4 {
            return Err(Bad::TruncatedQuestion);
        }
        m.question = Some(DnsQuestion {
            qname,
            qtype: be16(msg, pos),
            qclass: be16(msg, pos + 2),
        });
        pos += 4;
        if qdcount > 1 {
            // Only the first question is kept, and RFC 9619 allows one: stop here rather
            // than walk the others to reach the answers.
            return Ok((m, None));
        }
    }
    for _ in 0..usize::from(ancount).min(MAX_RECORDS) {
        let (next, rtype, rdata, rdlen) = match record(msg, pos) {
            Ok(r) => r,
            Err(b) => return Ok((m, Some(b))),
        };
        if rtype == TYPE_PTR && m.ptr_answers.len() < MAX_PTR {
            let mut target = String::with_capacity(rdlen.min(MAX_NAME));
            // The target may use compression into the whole message, but must not run
            // past its own RDATA.
            match name(&msg[..rdata + rdlen], rdata, Some(&mut target)) {
                Ok(_) => m.ptr_answers.push(target),
                Err(b) => return Ok((m, Some(b))),
            }
        }
        pos = next;
    }
    Ok((m, None))
}

/// The nibbles of an `ip6.arpa` name, most significant first packed into 16 bytes, and
/// how many there are (0-32); `None` when the name is not under `ip6.arpa` or a label
/// before it is not one hex digit.
pub fn ip6_arpa_nibbles(qname: &str) -> Option<([u8; 16], usize)> {
    let stem = qname.strip_suffix("ip6.arpa")?;
    let stem = match stem {
        "" => return Some(([0; 16], 0)),
        s => s.strip_suffix('.')?,
    };
    let mut out = [0u8; 16];
    let mut n = 0usize;
    // Labels come least significant first: walk them from the end.
    for label in stem.rsplit('.') {
        let b = label.as_bytes();
        if b.len() != 1 || n >= 32 {
            return None;
        }
        let v = (b[0] as char).to_digit(16)? as u8;
        out[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
        n += 1;
    }
    Some((out, n))
}

/// One TCP stream whose last segment ended inside a DNS message: where its next
/// message starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    /// Sequence number of the first byte after the unfinished message (or, after a SYN,
    /// of the stream's first byte).
    next: u32,
    /// `next` was reached from the stream's SYN through whole messages; otherwise it
    /// rests on a guess (`plausible_start`) and is trusted no more than one.
    verified: bool,
}

/// The TCP streams whose last DNS segment ended inside a message (see the module doc):
/// `TRACK_SLOTS` slots, direct-mapped by a hash of the stream, allocated once at the
/// first such segment, never per packet.
#[derive(Default)]
pub struct TcpTrack {
    slots: Vec<Option<Pending>>,
}

impl TcpTrack {
    fn slot(flow: &Flow) -> usize {
        fn fold(a: &IpAddr) -> u64 {
            let b = a.as_bytes();
            b.iter().fold(0u64, |h, &x| h.rotate_left(5) ^ u64::from(x))
        }
        let mut h = fold(&flow.src) ^ fold(&flow.dst).rotate_left(29);
        h ^= (u64::from(flow.sport) << 16 | u64::from(flow.dport)) << 40;
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top TRACK_BITS bits (the best mixed): every slot is reachable.
        (h >> (64 - TRACK_BITS)) as usize
    }

    fn same(p: &Pending, flow: &Flow) -> bool {
        p.src == flow.src && p.dst == flow.dst && p.sport == flow.sport && p.dport == flow.dport
    }

    /// The pending boundary of `flow`'s stream and whether it is verified, taken out of
    /// the table.
    fn take(&mut self, flow: &Flow) -> Option<(u32, bool)> {
        let i = Self::slot(flow);
        match self.slots.get(i) {
            Some(Some(p)) if Self::same(p, flow) => {
                let got = (p.next, p.verified);
                self.slots[i] = None;
                Some(got)
            }
            _ => None,
        }
    }

    /// Remember that `flow`'s next message starts at `next`; true when another stream's
    /// entry was overwritten.
    fn put(&mut self, flow: &Flow, next: u32, verified: bool) -> bool {
        if self.slots.is_empty() {
            self.slots = vec![None; TRACK_SLOTS];
        }
        let i = Self::slot(flow);
        let evicted = matches!(&self.slots[i], Some(p) if !Self::same(p, flow));
        self.slots[i] = Some(Pending {
            src: flow.src,
            dst: flow.dst,
            sport: flow.sport,
            dport: flow.dport,
            next,
            verified,
        });
        evicted
    }
}

/// Could `seg`, a TCP segment's payload not known to start at a message boundary, start
/// with a DNS message's length prefix and header? The prefix is at least a header's 12
/// bytes; the header's opcode is one in use (QUERY, IQUERY, STATUS, NOTIFY, UPDATE, DSO),
/// its Z bit clear, at most one question (RFC 9619; exactly one in a query other than
/// DSO), and its record counts fit in the length (a record is at least 11 bytes). Bytes
/// from the middle of a message (names, TTLs, RDATA) fail one of these almost always.
fn plausible_start(seg: &[u8]) -> bool {
    if seg.len() < 14 {
        return false;
    }
    let len = usize::from(be16(seg, 0));
    let flags = be16(seg, 4);
    let opcode = (flags >> 11) & 0x0F;
    let qd = usize::from(be16(seg, 6));
    let records: usize = [8, 10, 12].iter().map(|&i| usize::from(be16(seg, i))).sum();
    len >= 12
        && matches!(opcode, 0 | 1 | 2 | 4 | 5 | 6)
        && flags & 0x0040 == 0
        && qd <= 1
        && (qd == 1 || flags & 0x8000 != 0 || opcode == 6)
        && 12 + qd * 5 + records * 11 <= len
}

impl Decoder {
    /// A UDP datagram to or from port 53 at `data[p..end]` (UDP header included).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dns_udp(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        src: IpAddr,
        dst: IpAddr,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        let ulen = usize::from(be16(data, p + 4));
        let stop = if ulen >= 8 && p + ulen <= end {
            p + ulen
        } else {
            end
        };
        let flow = Flow {
            src,
            dst,
            sport: be16(data, p),
            dport: be16(data, p + 2),
            transport: NH_UDP,
            tunnels: *tunnels,
        };
        self.dns_message(&data[p + 8..stop], &flow, out);
    }

    /// A TCP segment to or from port 53 at `data[p..end]` (TCP header included): the
    /// whole length-prefixed messages it holds.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dns_tcp(
        &mut self,
        data: &[u8],
        p: usize,
        end: usize,
        src: IpAddr,
        dst: IpAddr,
        tunnels: &Tunnels,
        out: &mut Vec<Event>,
    ) {
        if !super::has(p, end, 20) {
            return;
        }
        let hlen = usize::from(data[p + 12] >> 4) * 4;
        if hlen < 20 || !super::has(p, end, hlen) {
            return; // a bad TCP header is not DNS's to judge
        }
        let flow = Flow {
            src,
            dst,
            sport: be16(data, p),
            dport: be16(data, p + 2),
            transport: NH_TCP,
            tunnels: *tunnels,
        };
        let seg = &data[p + hlen..end];
        let seq = be32(data, p + 4);
        let flags = data[p + 13];
        if flags & TCP_SYN != 0 {
            // A SYN: the stream's first byte (seq + 1) starts its first message, for
            // sure. (Data on a SYN, TCP Fast Open, starts there too.)
            if seg.is_empty() {
                self.dns_track_put(&flow, seq.wrapping_add(1), true);
                return;
            }
            self.dns_track.take(&flow);
            return self.dns_tcp_messages(seg, seq.wrapping_add(1), true, &flow, out);
        }
        if !seg.is_empty() {
            self.dns_tcp_data(seg, seq, &flow, out);
        }
        if flags & (TCP_FIN | TCP_RST) != 0 {
            // The stream ends (an RST ends both directions): its boundary is not needed
            // any more, and its slot is free for another stream.
            self.dns_track.take(&flow);
            if flags & TCP_RST != 0 {
                self.dns_track.take(&flow.reversed());
            }
        }
    }

    /// The payload `seg` (sequence number `seq`) of a TCP segment that is no SYN.
    fn dns_tcp_data(&mut self, mut seg: &[u8], seq: u32, flow: &Flow, out: &mut Vec<Event>) {
        let whole = seg.len();
        // Whether `seg` starts at a message boundary: verified (reached from the SYN),
        // guessed, or not at all (see the module doc).
        let mut known = false;
        let mut skipped = false;
        if let Some((next, verified)) = self.dns_track.take(flow) {
            let skip = next.wrapping_sub(seq);
            if skip <= MAX_SKIP {
                if skip > 0 {
                    // Starts inside the unfinished message: skip to its end.
                    self.stats.dns_tcp_continuation += 1;
                    let skip = skip as usize;
                    if skip >= seg.len() {
                        // All of it continues the message: the boundary stays pending.
                        self.dns_track_put(flow, next, verified);
                        return;
                    }
                    seg = &seg[skip..];
                    skipped = true;
                }
                known = verified;
            }
            // Otherwise the segment is past the boundary (the segment holding it was
            // missed) or from an older stream on the same ports: not known.
        }
        if !known && !plausible_start(seg) {
            if !skipped {
                self.stats.dns_tcp_continuation += 1;
            }
            return;
        }
        let at = seq.wrapping_add((whole - seg.len()) as u32);
        self.dns_tcp_messages(seg, at, known, flow, out);
    }

    /// The length-prefixed messages of `seg`, whose first byte has sequence number `at`
    /// and starts a message: for sure when `known`, else by a guess, under which no
    /// failure is `Malformed` (see the module doc).
    fn dns_tcp_messages(
        &mut self,
        mut seg: &[u8],
        at: u32,
        known: bool,
        flow: &Flow,
        out: &mut Vec<Event>,
    ) {
        let start = seg.len();
        let flow = *flow;
        // Every message of the segment: each takes at least 3 bytes (a zero length
        // stops the loop), so the segment's length bounds the work.
        loop {
            if seg.is_empty() {
                // Ends on a boundary: the stream's next segment starts a message (as
                // surely as this one's did).
                self.dns_track_put(&flow, at.wrapping_add(start as u32), known);
                return;
            }
            let at = at.wrapping_add((start - seg.len()) as u32);
            if seg.len() < 2 {
                self.stats.dns_tcp_partial += 1;
                // The other half of the prefix is in the next segment: where the message
                // starts is lost, so nothing is remembered.
                return;
            }
            let len = usize::from(be16(seg, 0));
            if len == 0 {
                if known {
                    let detail = "zero-length message".into();
                    return self.dns_malformed(out, &flow, Bad::BadTcpLength, detail);
                }
                self.stats.dns_tcp_continuation += 1;
                return;
            }
            if seg.len() < 2 + len {
                // Continues in another segment: counted, not reassembled; its end is
                // where the stream's next message starts (as sure as this one's start).
                self.stats.dns_tcp_partial += 1;
                self.dns_track_put(&flow, at.wrapping_add(2 + len as u32), known);
                return;
            }
            let msg = &seg[2..2 + len];
            if known {
                self.dns_message(msg, &flow, out);
            } else if !self.dns_tcp_guess(msg, &flow, out) {
                return;
            }
            // After a whole message, the next one starts right here (as surely).
            seg = &seg[2 + len..];
        }
    }

    fn dns_track_put(&mut self, flow: &Flow, next: u32, verified: bool) {
        if self.dns_track.put(flow, next, verified) {
            self.stats.dns_tcp_evicted += 1;
        }
    }

    /// A message at a position only guessed to be a boundary: parsed, but a failure is
    /// counted as a continuation, never `Malformed` (false when it failed).
    fn dns_tcp_guess(&mut self, msg: &[u8], flow: &Flow, out: &mut Vec<Event>) -> bool {
        match parse(self.meta(), flow, msg) {
            Ok((m, None)) => {
                out.push(Event::Dns(m));
                true
            }
            _ => {
                self.stats.dns_tcp_continuation += 1;
                false
            }
        }
    }

    fn dns_malformed(
        &mut self,
        out: &mut Vec<Event>,
        flow: &Flow,
        bad: Bad,
        detail: Cow<'static, str>,
    ) {
        let upper = Upper {
            proto: Some(flow.transport),
            sport: Some(flow.sport),
            dport: Some(flow.dport),
            ..Upper::default()
        };
        let (s, d, t) = (Some(flow.src), Some(flow.dst), flow.tunnels);
        self.malformed_in(out, "dns", bad.reason(), detail, s, d, &t, upper);
    }

    fn dns_message(&mut self, msg: &[u8], flow: &Flow, out: &mut Vec<Event>) {
        let meta = self.meta();
        match parse(meta, flow, msg) {
            Err(bad) => {
                if self.f.snapped {
                    let what = "DNS message".into();
                    let (s, d, t) = (Some(flow.src), Some(flow.dst), flow.tunnels);
                    return self.short(out, "dns", what, s, d, &t);
                }
                let detail = format!("{} bytes", msg.len()).into();
                self.dns_malformed(out, flow, bad, detail);
            }
            Ok((m, fault)) => {
                out.push(Event::Dns(m));
                if let Some(bad) = fault {
                    if !self.f.snapped {
                        let detail = "in an answer record".into();
                        self.dns_malformed(out, flow, bad, detail);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A wire-format name.
    pub fn wname(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// A DNS message: header, one question, PTR answers (owner compressed to the qname).
    pub fn msg(id: u16, flags: u16, qname: &str, qtype: u16, ptrs: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&(ptrs.len() as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend(wname(qname));
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        for p in ptrs {
            v.extend_from_slice(&[0xC0, 12]);
            v.extend_from_slice(&TYPE_PTR.to_be_bytes());
            v.extend_from_slice(&1u16.to_be_bytes());
            v.extend_from_slice(&3600u32.to_be_bytes());
            let n = wname(p);
            v.extend_from_slice(&(n.len() as u16).to_be_bytes());
            v.extend(n);
        }
        v
    }

    fn flow() -> Flow {
        Flow {
            src: IpAddr::V6([1; 16]),
            dst: IpAddr::V6([2; 16]),
            sport: 40000,
            dport: 53,
            transport: NH_UDP,
            tunnels: Tunnels::default(),
        }
    }

    /// The 16-byte address a full 32-nibble `ip6.arpa` name encodes (RFC 3596 2.5);
    /// `None` for any other name. (The reducers take `ip6_arpa_nibbles` and its depth.)
    fn ip6_arpa_address(qname: &str) -> Option<[u8; 16]> {
        match ip6_arpa_nibbles(qname)? {
            (nibbles, 32) => Some(nibbles),
            _ => None,
        }
    }

    const Q: &str = "b.a.9.8.7.6.5.4.3.2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";

    #[test]
    fn unprintable_bytes_and_dots_in_labels_are_written_as_ddd() {
        // One label "A.b<BEL>" then "x": RFC 1035 5.1's presentation form.
        let wire = [3, b'A', b'.', 7, 1, b'x', 0];
        let mut text = String::new();
        assert_eq!(name(&wire, 0, Some(&mut text)), Ok(wire.len()));
        assert_eq!(text, "a\\046\\007.x");
    }

    #[test]
    fn query_and_ptr_answer() {
        let (m, f) = parse(Meta::default(), &flow(), &msg(7, 0x0100, Q, 12, &[])).unwrap();
        assert!(f.is_none());
        assert_eq!(m.id, 7);
        assert!(!m.qr);
        let q = m.question.as_ref().unwrap();
        assert_eq!((q.qname.as_str(), q.qtype, q.qclass), (Q, 12, 1));
        let ans = msg(7, 0x8580, &Q.to_uppercase(), 12, &["Mail.Example.NET"]);
        let (m, f) = parse(Meta::default(), &flow(), &ans).unwrap();
        assert!(f.is_none());
        assert!(m.qr && m.aa);
        assert_eq!(m.rcode, 0);
        assert_eq!(m.question.unwrap().qname, Q, "lower-cased");
        assert_eq!(m.ptr_answers, ["mail.example.net"]);
        assert_eq!(m.ancount, 1);
        let nx = msg(9, 0x8583, "1.0.ip6.arpa", 12, &[]);
        let (m, _) = parse(Meta::default(), &flow(), &nx).unwrap();
        assert_eq!((m.rcode, m.opcode), (3, 0));
    }

    #[test]
    fn ip6_arpa_names() {
        let a = ip6_arpa_address(Q).unwrap();
        let want = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
        ];
        assert_eq!(a, want);
        assert_eq!(ip6_arpa_address("8.b.d.0.1.0.0.2.ip6.arpa"), None);
        let (n, d) = ip6_arpa_nibbles("8.b.d.0.1.0.0.2.ip6.arpa").unwrap();
        assert_eq!((d, &n[..4]), (8, &[0x20, 0x01, 0x0d, 0xb8][..]));
        assert_eq!(ip6_arpa_nibbles("ip6.arpa").unwrap().1, 0);
        assert!(ip6_arpa_nibbles("xy.ip6.arpa").is_none());
        assert!(ip6_arpa_nibbles("example.com").is_none());
        assert!(ip6_arpa_nibbles("g.ip6.arpa").is_none());
        let long = format!("0.{Q}");
        assert!(ip6_arpa_nibbles(&long).is_none());
    }

    #[test]
    fn compression_loops_and_bounds() {
        // A pointer to itself, and two pointing at each other.
        let mut m = msg(1, 0, "a", 1, &[]);
        m.truncate(12);
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(
            parse(Meta::default(), &flow(), &m).unwrap_err(),
            Bad::CompressionLoop
        );
        let mut m = msg(1, 0, "a", 1, &[]);
        m.truncate(12);
        m.extend_from_slice(&[1, b'x', 0xC0, 14, 0, 1, 0, 1]);
        assert_eq!(
            parse(Meta::default(), &flow(), &m).unwrap_err(),
            Bad::CompressionLoop
        );
        // A backward chain longer than MAX_JUMPS.
        let mut body = vec![0u8; 12];
        body.extend_from_slice(&[1, b'a', 0]);
        for i in 0..20 {
            let prev = if i == 0 { 12 } else { 15 + (i - 1) * 2 };
            body.extend_from_slice(&[0xC0, prev as u8]);
        }
        assert_eq!(
            name(&body, body.len() - 2, None).unwrap_err(),
            Bad::CompressionLoop
        );
        // A name over 255 bytes.
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(
            parse(Meta::default(), &flow(), &m).unwrap_err(),
            Bad::NameTooLong
        );
        // A PTR whose target runs past its RDATA, into the next record: a fault, the
        // message kept.
        let mut m = msg(1, 0x8180, Q, 12, &["x.example"]);
        let n = m.len();
        m[n - 12] = 1; // rdlength 11 -> 1
        m.truncate(n - 10);
        let (msg, fault) = parse(Meta::default(), &flow(), &m).unwrap();
        assert!(msg.question.is_some());
        assert_eq!(fault, Some(Bad::BadName));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // Every prefix and every single-byte corruption of real messages, and a
        // deterministic pseudo-random soup.
        let base = msg(3, 0x8180, Q, 12, &["a.b.example", "c.example"]);
        for n in 0..=base.len() {
            let _ = parse(Meta::default(), &flow(), &base[..n]);
        }
        for i in 0..base.len() {
            for v in [0u8, 1, 0x3F, 0x40, 0x80, 0xC0, 0xFF] {
                let mut m = base.clone();
                m[i] = v;
                let _ = parse(Meta::default(), &flow(), &m);
            }
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut m = vec![0u8; 64];
            for b in m.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            m[4] = 0;
            m[5] = 1;
            let _ = parse(Meta::default(), &flow(), &m);
        }
    }

    fn dns_events(events: &[Event]) -> Vec<&DnsMessage> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Dns(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn tcp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        tcp_seq(sport, dport, 1, data)
    }

    fn tcp_seq(sport: u16, dport: u16, seq: u32, data: &[u8]) -> Vec<u8> {
        tcp_flags(sport, dport, seq, 0x18, data)
    }

    fn tcp_flags(sport: u16, dport: u16, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(data);
        t
    }

    /// The server's SYN-ACK of the stream `segment` sends on, with sequence number `isn`.
    fn syn(isn: u32) -> Vec<u8> {
        use crate::decode::testutil::*;
        eth(
            &ip6(
                &[0x53; 16],
                &[0x77; 16],
                6,
                &tcp_flags(53, 40077, isn, 0x12, &[]),
            ),
            0x86DD,
            &[],
        )
    }

    /// An AXFR answer of `ZONE` as a server writes it on TCP: `messages` length-prefixed
    /// messages of `records` PTR records each.
    fn axfr_stream(messages: usize, records: u16) -> (Vec<u8>, usize) {
        const ZONE: &str = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        let mut stream = Vec::new();
        for k in 0..messages {
            let names: Vec<String> = (0..records)
                .map(|i| format!("host-{k}-{i}.example.com"))
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let m = msg(0x77, 0x8400, ZONE, 252, &refs);
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(&m);
        }
        (stream, messages)
    }

    fn segment(seq: u32, data: &[u8]) -> Vec<u8> {
        use crate::decode::testutil::*;
        eth(
            &ip6(&[0x53; 16], &[0x77; 16], 6, &tcp_seq(53, 40077, seq, data)),
            0x86DD,
            &[],
        )
    }

    #[test]
    fn a_multi_segment_axfr_answer_is_never_malformed() {
        use crate::decode::testutil::*;
        // The stream cut into 1220-byte segments (an IPv6 MSS), seen in order: the
        // messages wholly inside a segment are parsed, the continuations skipped and
        // counted, and not one is read as a length prefix.
        let (stream, n) = axfr_stream(12, 12);
        let isn = 0xFFFF_F000u32; // wraps inside the stream
        let mut d = decoder();
        d.want_dns = true;
        let mut events = Vec::new();
        for (i, chunk) in stream.chunks(1220).enumerate() {
            let frame = segment(isn.wrapping_add((i * 1220) as u32), chunk);
            events.extend(run(&mut d, 1, &frame, frame.len(), i as i64));
        }
        assert!(malformed(&events).is_empty(), "{:?}", malformed(&events));
        let msgs = dns_events(&events);
        assert!(!msgs.is_empty() && msgs.len() <= n);
        for m in &msgs {
            assert_eq!(m.ancount, 12);
            assert_eq!(m.question.as_ref().unwrap().qtype, 252);
        }
        assert!(d.stats().dns_tcp_continuation > 0);
        assert_eq!(d.stats().dns_tcp_evicted, 0);
        // Every way of cutting it in two: the first part starts the stream, the second
        // continues it. Only whole, true messages come out; never a Malformed. With the
        // SYN seen (the boundaries verified) and without (guessed).
        let (stream, n) = axfr_stream(3, 40);
        let mut starts = vec![0usize];
        while let Some(&at) = starts.last() {
            let next = at + 2 + usize::from(be16(&stream, at));
            if next >= stream.len() {
                break;
            }
            starts.push(next);
        }
        for with_syn in [true, false] {
            for cut in 1..stream.len() {
                let mut d = decoder();
                d.want_dns = true;
                let mut ev = Vec::new();
                if with_syn {
                    let s = syn(999);
                    ev.extend(run(&mut d, 1, &s, s.len(), 0));
                }
                let a = segment(1000, &stream[..cut]);
                let b = segment(1000 + cut as u32, &stream[cut..]);
                ev.extend(run(&mut d, 1, &a, a.len(), 1));
                ev.extend(run(&mut d, 1, &b, b.len(), 2));
                assert!(malformed(&ev).is_empty(), "cut {cut}: {:?}", malformed(&ev));
                let msgs = dns_events(&ev);
                for m in &msgs {
                    assert_eq!((m.ancount, m.id), (40, 0x77), "cut {cut}");
                }
                // With the SYN seen, only the message the cut falls in is lost (unless
                // the cut splits a length prefix: the rest is then guessed). Without
                // it, a first part too short to judge is a lost guess too.
                if with_syn && !starts.contains(&(cut - 1)) {
                    assert!(msgs.len() + 1 >= n, "cut {cut}: {} messages", msgs.len());
                }
            }
        }
    }

    #[test]
    fn a_segment_seen_without_its_start_is_a_continuation() {
        use crate::decode::testutil::*;
        // The capture began mid-transfer (or the first segment was lost): the segment
        // is not in the table, so only its plausibility is judged. At no offset of a
        // real answer is it read as a Malformed message or a false one.
        let (stream, _) = axfr_stream(3, 40);
        let mut garbage = 0;
        for start in 1..stream.len() - 1 {
            let mut d = decoder();
            d.want_dns = true;
            // The rest of the stream, in 300-byte segments: a wrong guess at the first
            // must not turn into a Malformed at a later one either.
            let mut ev = Vec::new();
            for (i, chunk) in stream[start..].chunks(300).enumerate() {
                let b = segment(5000 + (i * 300) as u32, chunk);
                ev.extend(run(&mut d, 1, &b, b.len(), 1 + i as i64));
            }
            assert!(
                malformed(&ev).is_empty(),
                "start {start}: {:?}",
                malformed(&ev)
            );
            garbage += dns_events(&ev)
                .iter()
                .filter(|m| (m.ancount, m.id) != (40, 0x77))
                .count();
        }
        assert_eq!(garbage, 0);
    }

    #[test]
    fn a_malformed_message_at_a_verified_start_is_still_malformed() {
        use crate::decode::testutil::*;
        // After the SYN the first byte starts a message for sure: a zero-length message
        // or a broken question there is a Malformed, as over UDP.
        let looped = [
            0, 18, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1,
        ];
        for (body, reason) in [
            (&[0u8, 0][..], "bad_tcp_length"),
            (&looped[..], "compression_loop"),
        ] {
            let mut d = decoder();
            d.want_dns = true;
            let s = syn(41);
            let mut ev = run(&mut d, 1, &s, s.len(), 0);
            let f = segment(42, body);
            ev.extend(run(&mut d, 1, &f, f.len(), 1));
            assert_eq!(malformed(&ev), [("dns", reason)]);
            // The same bytes with no SYN seen: a guess, counted, not Malformed.
            let mut d = decoder();
            d.want_dns = true;
            assert!(malformed(&run(&mut d, 1, &f, f.len(), 1)).is_empty());
            assert_eq!(d.stats().dns_tcp_continuation, 1);
        }
    }

    #[test]
    fn the_boundary_table_is_bounded_and_counts_collisions() {
        // Many streams each leaving a message unfinished: the table keeps TRACK_SLOTS
        // at most, overwrites on collision, and counts it.
        let mut t = TcpTrack::default();
        let mut evicted = 0;
        for port in 0..4 * TRACK_SLOTS as u16 {
            let f = Flow {
                sport: port,
                ..flow()
            };
            evicted += u32::from(t.put(&f, 7, false));
        }
        assert_eq!(t.slots.len(), TRACK_SLOTS);
        assert!(evicted >= 3 * TRACK_SLOTS as u32 - 1);
        let last = Flow {
            sport: 4 * TRACK_SLOTS as u16 - 1,
            ..flow()
        };
        assert_eq!(t.take(&last), Some((7, false)));
        assert_eq!(t.take(&last), None);
    }

    /// Length-prefixed messages, as one TCP payload.
    fn prefixed(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn every_message_of_a_segment_is_parsed() {
        use crate::decode::testutil::*;
        // Twenty throwaway queries, then an AXFR, in one segment. (Before, only the
        // first four messages of a segment were parsed: the AXFR was never seen.)
        let mut msgs: Vec<Vec<u8>> = (0..20).map(|i| msg(i, 0x0100, Q, 12, &[])).collect();
        msgs.push(msg(99, 0, "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", 252, &[]));
        let mut d = decoder();
        d.want_dns = true;
        let s = syn(999);
        let mut ev = run(&mut d, 1, &s, s.len(), 0);
        let f = segment(1000, &prefixed(&msgs));
        ev.extend(run(&mut d, 1, &f, f.len(), 1));
        let m = dns_events(&ev);
        assert_eq!(m.len(), 21);
        assert_eq!(m[20].question.as_ref().unwrap().qtype, 252);
    }

    #[test]
    fn a_segment_ending_on_a_boundary_keeps_the_next_one_verified() {
        use crate::decode::testutil::*;
        // After the SYN, a segment of one whole message, then one holding a message that
        // `plausible_start` would not accept (two questions): its start is known from
        // the first segment's end, so it is parsed. (Before, nothing was stored at a
        // boundary, the second was guessed and dropped as a continuation.)
        let mut two = msg(5, 0x0100, Q, 12, &[]);
        two[5] = 2;
        let one = prefixed(&[msg(4, 0x0100, Q, 12, &[])]);
        let mut d = decoder();
        d.want_dns = true;
        let s = syn(999);
        let mut ev = run(&mut d, 1, &s, s.len(), 0);
        let a = segment(1000, &one);
        ev.extend(run(&mut d, 1, &a, a.len(), 1));
        let b = segment(1000 + one.len() as u32, &prefixed(&[two]));
        ev.extend(run(&mut d, 1, &b, b.len(), 2));
        let ids: Vec<u16> = dns_events(&ev).iter().map(|m| m.id).collect();
        assert_eq!(ids, [4, 5]);
        assert_eq!(d.stats().dns_tcp_continuation, 0);
        // A retransmission of the first segment is a continuation, not parsed again.
        ev = run(&mut d, 1, &a, a.len(), 3);
        assert!(dns_events(&ev).is_empty());
    }

    #[test]
    fn fin_and_rst_free_the_streams_slot() {
        use crate::decode::testutil::*;
        let used = |d: &Decoder| d.dns_track.slots.iter().filter(|s| s.is_some()).count();
        for (flags, reverse) in [(0x11u8, false), (0x04, false), (0x04, true)] {
            let mut d = decoder();
            d.want_dns = true;
            let s = syn(999);
            run(&mut d, 1, &s, s.len(), 0);
            assert_eq!(used(&d), 1);
            // The FIN or RST, from the same side or (an RST) from the other.
            let (src, dst, sp, dp) = if reverse {
                ([0x77; 16], [0x53; 16], 40077, 53)
            } else {
                ([0x53; 16], [0x77; 16], 53, 40077)
            };
            let end = eth(
                &ip6(&src, &dst, 6, &tcp_flags(sp, dp, 1000, flags, &[])),
                0x86DD,
                &[],
            );
            run(&mut d, 1, &end, end.len(), 1);
            assert_eq!(used(&d), 0, "flags {flags:#x} reverse {reverse}");
        }
    }

    #[test]
    fn every_slot_of_the_boundary_table_is_used() {
        let mut t = TcpTrack::default();
        for port in 0..16 * TRACK_SLOTS as u16 {
            let f = Flow {
                sport: port,
                ..flow()
            };
            t.put(&f, 7, false);
        }
        assert!(t.slots.iter().all(Option::is_some));
    }

    #[test]
    fn ipv6_tunnelled_over_udp_53_is_still_decapsulated() {
        use crate::decode::testutil::*;
        // UDP/53 is the port firewalls let through: a whole IPv6 packet in it is a
        // tunnel (Teredo on any port), never taken for a DNS message.
        // A Teredo client address (2001:0::/32) inside, as Teredo off its port needs.
        let mut teredo = [0x21u8; 16];
        teredo[..4].copy_from_slice(&[0x20, 0x01, 0, 0]);
        let inner = ip6(&teredo, &[0x21; 16], 59, &[]);
        let frame = eth(
            &ipv4(
                &[192, 0, 2, 7],
                &[198, 51, 100, 9],
                17,
                &udp(40000, 53, &inner),
            ),
            0x0800,
            &[],
        );
        let mut d = decoder();
        d.want_dns = true;
        d.want_tunnels = true;
        let ev = run(&mut d, 1, &frame, frame.len(), 1);
        assert!(dns_events(&ev).is_empty());
        assert!(ev.iter().any(|e| matches!(e, Event::Tunnel(_))), "{ev:?}");
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Malformed(_))),
            "{ev:?}"
        );
    }

    #[test]
    fn decoded_over_ipv6_ipv4_udp_and_tcp_only_when_wanted() {
        use crate::decode::testutil::*;
        let (a, b) = ([0x20; 16], [0x21; 16]);
        let q = msg(5, 0x0100, Q, 12, &[]);
        let frame6 = eth(&ip6(&a, &b, 17, &udp(40000, 53, &q)), 0x86DD, &[]);
        // Not observed: the cheap path, no event.
        assert!(dns_events(&decode(&frame6)).is_empty());
        let mut d = decoder();
        d.want_dns = true;
        let ev = run(&mut d, 1, &frame6, frame6.len(), 1);
        let m = dns_events(&ev);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].src, m[0].dport, m[0].transport),
            (IpAddr::V6(a), 53, 17)
        );
        // IPv4, answer from port 53.
        let r = msg(5, 0x8400, Q, 12, &["h.example"]);
        let frame4 = eth(
            &ipv4(
                &[192, 0, 2, 53],
                &[198, 51, 100, 1],
                17,
                &udp(53, 40000, &r),
            ),
            0x0800,
            &[],
        );
        let ev = run(&mut d, 1, &frame4, frame4.len(), 2);
        let m = dns_events(&ev);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].src, IpAddr::V4([192, 0, 2, 53]));
        assert_eq!(m[0].ptr_answers, ["h.example"]);
        // TCP over IPv6: two whole messages, then one that continues (counted).
        let mut seg = Vec::new();
        for m in [&q, &r] {
            seg.extend_from_slice(&(m.len() as u16).to_be_bytes());
            seg.extend_from_slice(m);
        }
        seg.extend_from_slice(&100u16.to_be_bytes());
        seg.extend_from_slice(&q[..10]);
        let frame = eth(&ip6(&a, &b, 6, &tcp(40001, 53, &seg)), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), 3);
        let m = dns_events(&ev);
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|m| m.transport == 6));
        assert_eq!(d.stats().dns_tcp_partial, 1);
        // TCP over IPv4.
        let mut one = (q.len() as u16).to_be_bytes().to_vec();
        one.extend_from_slice(&q);
        let frame = eth(
            &ipv4(
                &[198, 51, 100, 1],
                &[192, 0, 2, 53],
                6,
                &tcp(40002, 53, &one),
            ),
            0x0800,
            &[],
        );
        assert_eq!(dns_events(&run(&mut d, 1, &frame, frame.len(), 4)).len(), 1);
        // Malformed: a counted event, never a panic.
        let frame = eth(&ip6(&a, &b, 17, &udp(40000, 53, &[0, 1, 0])), 0x86DD, &[]);
        let ev = run(&mut d, 1, &frame, frame.len(), 5);
        assert_eq!(malformed(&ev), [("dns", "short_header")]);
        // Other ports stay on the cheap path.
        let frame = eth(&ip6(&a, &b, 17, &udp(40000, 443, &q)), 0x86DD, &[]);
        assert!(dns_events(&run(&mut d, 1, &frame, frame.len(), 6)).is_empty());
    }
}
