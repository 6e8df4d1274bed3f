//! The capture parser: pcap and pcapng records out of a byte stream, and the
//! verdict on damaged input.
//!
//! Owns opening (sniffing gzip and the format from the first bytes), the pcap
//! global and record headers, pcapng sections, interfaces and their timestamp
//! resolution and offset, and the damage rules: a file that is not a capture is a
//! `CaptureError`; a capture that breaks part-way stops at the damage with one
//! warning saying where and why (truncated vs corrupt). Messages are word for word
//! those of the former Python reader, which `tests/test_capture.py` pins.
//!
//! Records are handed out as `Rec`s borrowing the reader's buffer: no copy per
//! record. The buffer holds at most one record or block plus one read chunk, so
//! memory stays bounded whatever the headers claim (`MAX_BLOCK`).
//!
//! Hand-written rather than on rusticata's `pcap-parser`: that crate's streaming
//! readers report neither byte offsets nor which check failed, treat a block
//! larger than their buffer as "incomplete" instead of corrupt, and know nothing
//! of our limits or the section-local to global interface mapping, so matching the
//! contract would mean re-checking every block around it.

use std::fs::File;
use std::io::{self, Read};

use super::source::{classify, reason, Failure, Gunzip, Input, Prefixed, Tagged};
use crate::record::Rec;

/// Bytes asked of the source per read: big reads amortise the per-call cost.
pub const CHUNK: usize = 4 << 20;
/// A pcap record is corrupt above this unless the file's snaplen allows more.
/// 0x40000 is libpcap's largest snaplen; 4x leaves room for odd writers.
pub const MAX_CAPLEN: u32 = 0x40000 * 4;
/// Hard bound on one record or block, whatever the headers claim, so a corrupt
/// length cannot make us buffer an unbounded stream; real frames are far smaller.
pub const MAX_BLOCK: u32 = 16 << 20;
/// Interfaces kept per capture unless `set_max_interfaces` says otherwise (the
/// policy's `thresholds.decoder.max_interfaces`): far above any real capture,
/// and about 1.2 MB of descriptions at most.
pub const DEFAULT_MAX_INTERFACES: usize = 4096;

const NS: i128 = 1_000_000_000;
/// Bytes sniffed before deciding anything: a pcapng section header's fixed part.
const HEAD: usize = 28;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const SHB: u32 = 0x0A0D_0D0A; // a palindrome: reads the same in both byte orders
const BOM_LE: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
const BOM_BE: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// The input cannot be read as a capture. The message names the file.
#[derive(Debug)]
pub struct CaptureError {
    message: String,
    source: Option<io::Error>,
}

impl CaptureError {
    fn new(message: String) -> Self {
        CaptureError {
            message,
            source: None,
        }
    }

    /// The full message, starting with the file's name (`<stdin>` for `-`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The I/O error behind a read error, if any (the Python wrapper re-raises
    /// Python exceptions that are not I/O errors from it).
    pub fn io_source(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaptureError {}

/// Capture file format, sniffed from the first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// One capture interface: a pcap file has one, a pcapng section any number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    pub linktype: u32,
    pub snaplen: u32,
    pub name: Option<String>,
    /// Raw if_tsresol byte: high bit clear -> units of 10^-v s, set -> 2^-v s.
    pub tsresol: u8,
    /// if_tsoffset: seconds added to every timestamp.
    pub tsoffset_s: i64,
}

impl Interface {
    /// `ns = units * mul / div`, exact in integers. Resolutions finer than 10^-47 s
    /// have a divisor beyond u128; any u64 count of them is 0 ns, as is
    /// `units / u128::MAX`, so that stands in.
    pub fn ts_scale(&self) -> (u128, u128) {
        let v = u32::from(self.tsresol & 0x7f);
        if self.tsresol & 0x80 != 0 {
            (NS as u128, 1u128 << v)
        } else if v <= 9 {
            (10u128.pow(9 - v), 1)
        } else {
            (1, 10u128.checked_pow(v - 9).unwrap_or(u128::MAX))
        }
    }

    /// A timestamp in this interface's units as nanoseconds since the epoch,
    /// saturated to i64 (only absurd resolutions and offsets get there: past 2262).
    pub fn to_ns(&self, units: u64) -> i64 {
        let (mul, div) = self.ts_scale();
        to_ns(units, mul, div, i128::from(self.tsoffset_s) * NS)
    }
}

fn to_ns(units: u64, mul: u128, div: u128, offset_ns: i128) -> i64 {
    // units < 2^64 and mul <= 10^9 < 2^30: the product fits u128, the quotient i128.
    let ns = (u128::from(units) * mul / div) as i128 + offset_ns;
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// A section-local pcapng interface, with what the hot path needs precomputed.
#[derive(Clone, Copy)]
struct Local {
    linktype: u32,
    global: u32,
    mul: u128,
    div: u128,
    offset_ns: i128,
    snaplen: u32,
}

/// Where the next record is in the buffer; turned into a `Rec` at the end of
/// `next_record` so the parse loops never hold a borrow across a refill.
struct Hit {
    ts_ns: i64,
    iface: u32,
    linktype: u32,
    start: usize,
    len: usize,
    wire_len: u32,
}

/// What stopped a pcapng block: the text after "corrupt capture: block N at ...".
type Corrupt = String;

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let a = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn i64_at(b: &[u8], at: usize, be: bool) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    if be {
        i64::from_be_bytes(a)
    } else {
        i64::from_le_bytes(a)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The name messages use for a path: standard input is `-` on the command line.
pub fn display_name(path: &str) -> String {
    if path == "-" {
        "<stdin>".to_string()
    } else {
        path.to_string()
    }
}

/// Reads until `n` bytes or the end of input (pipes return short reads).
fn read_at_least(input: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = input.read(&mut head[got..])?;
        if k == 0 {
            break;
        }
        got += k;
    }
    head.truncate(got);
    Ok(head)
}

/// An open capture. Call `next_record` until `None`; then check `truncated` and
/// `warnings`.
pub struct Reader {
    path: String,
    name: String,
    /// `None` once closed.
    input: Option<Input>,
    format: Format,
    compressed: bool,
    interfaces: Vec<Interface>,
    warnings: Vec<String>,
    truncated: bool,
    records_read: u64,
    chunk: usize,
    /// Allocated buffer; the stream's bytes `[base, base + end)` are in `buf[..end]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    base: u64,
    eof: bool,
    /// No records left: clean end, damage, error or close.
    done: bool,
    /// Byte order of the pcap file or the current pcapng section.
    be: bool,
    // pcap
    frac_mul: i64,
    limit: u64,
    // pcapng
    section: Vec<Local>,
    last_ts: i64,
    /// Blocks other than packet blocks so far, for block numbers in messages.
    blocks: u64,
    /// Interfaces kept at most (`interfaces` and a section's `section`); see
    /// `set_max_interfaces`.
    max_interfaces: usize,
    /// Interfaces the current section defines, kept or not (`section` holds the
    /// kept ones, which are its first ones).
    section_defined: u64,
    /// Interface descriptions past the cap, and the packets on them (skipped).
    interfaces_over_cap: u64,
    records_skipped: u64,
    /// The over-cap warning was given (once, when reading ends or on close).
    cap_reported: bool,
}

impl Reader {
    /// Opens a capture file; `-` is standard input (fd 0, never closed).
    pub fn open(path: &str) -> Result<Reader, CaptureError> {
        Self::open_chunked(path, CHUNK)
    }

    /// `open` with reads of `chunk` bytes (tests use tiny ones).
    pub fn open_chunked(path: &str, chunk: usize) -> Result<Reader, CaptureError> {
        if path == "-" {
            return Self::from_input(path, Box::new(io::stdin()), chunk);
        }
        let cannot = |e: &io::Error| {
            CaptureError::new(format!(
                "{}: cannot open: {}",
                display_name(path),
                reason(e)
            ))
        };
        let file = File::open(path).map_err(|e| cannot(&e))?;
        // Linux opens a directory for reading; Python's open() refuses, and so do we.
        match file.metadata() {
            Ok(meta) if meta.is_dir() => {
                return Err(cannot(&io::Error::from_raw_os_error(21))); // EISDIR
            }
            Err(e) => return Err(cannot(&e)),
            Ok(_) => {}
        }
        Self::from_input(path, Box::new(file), chunk)
    }

    /// A capture read from any stream. `path` is what the reader reports and names
    /// in messages (`-` reads as `<stdin>`).
    pub fn from_input(path: &str, input: Input, chunk: usize) -> Result<Reader, CaptureError> {
        let name = display_name(path);
        let read_error = |e: io::Error| CaptureError {
            message: format!("{name}: read error: {}", reason(&e)),
            source: Some(e),
        };
        let mut raw = Tagged(input);
        let mut head = match read_at_least(&mut raw, HEAD) {
            Ok(head) => head,
            Err(e) => {
                // Nothing is decompressed yet: every error is the source's own.
                return Err(read_error(e));
            }
        };
        if head.is_empty() {
            return Err(CaptureError::new(format!("{name}: empty file")));
        }
        let compressed = head.starts_with(&GZIP_MAGIC);
        let input: Input = if compressed {
            let mut gz: Input = Box::new(Gunzip::new(Prefixed::new(head, raw)));
            head = match read_at_least(&mut gz, HEAD) {
                Ok(head) => head,
                Err(e) => {
                    return Err(match classify(e, true) {
                        Failure::Io(e) => read_error(e),
                        Failure::GzipTruncated(t) | Failure::GzipCorrupt(t) => {
                            CaptureError::new(format!("{name}: corrupt gzip data: {t}"))
                        }
                    })
                }
            };
            if head.is_empty() {
                return Err(CaptureError::new(format!(
                    "{name}: empty file (after gzip decompression)"
                )));
            }
            gz
        } else {
            Box::new(raw)
        };
        let magic = &head[..head.len().min(4)];
        let (format, be, nano) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (Format::Pcap, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (Format::Pcap, true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (Format::Pcap, false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (Format::Pcap, true, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => (Format::Pcapng, check_first_shb(&name, &head)?, false),
            _ => {
                let inner = if compressed { " inside gzip" } else { "" };
                return Err(CaptureError::new(format!(
                    "{name}: not a pcap or pcapng file{inner} (first bytes 0x{})",
                    hex(magic)
                )));
            }
        };
        let end = head.len();
        let mut reader = Reader {
            path: path.to_string(),
            name,
            input: None,
            format,
            compressed,
            interfaces: Vec::new(),
            warnings: Vec::new(),
            truncated: false,
            records_read: 0,
            chunk: chunk.max(1),
            buf: head,
            pos: 0,
            end,
            base: 0,
            eof: false,
            done: false,
            be,
            frac_mul: 1,
            limit: 0,
            section: Vec::new(),
            last_ts: 0,
            blocks: 0,
            max_interfaces: DEFAULT_MAX_INTERFACES,
            section_defined: 0,
            interfaces_over_cap: 0,
            records_skipped: 0,
            cap_reported: false,
        };
        if format == Format::Pcap {
            reader.open_pcap(nano)?;
        }
        reader.input = Some(input);
        Ok(reader)
    }

    // -- public ------------------------------------------------------------------

    /// The next captured frame, borrowed from the reader's buffer until the next
    /// call. `Ok(None)` at the end, after damage (see `warnings`) and after
    /// `close`. An `Err` (read error, or corrupt gzip before the first record) ends
    /// the capture too.
    pub fn next_record(&mut self) -> Result<Option<Rec<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let found = match self.format {
            Format::Pcap => self.next_pcap(),
            Format::Pcapng => self.next_pcapng(),
        };
        match found {
            Ok(Some(hit)) => {
                self.records_read += 1;
                Ok(Some(Rec {
                    ts_ns: hit.ts_ns,
                    iface: hit.iface,
                    linktype: hit.linktype,
                    data: &self.buf[hit.start..hit.start + hit.len],
                    wire_len: hit.wire_len,
                }))
            }
            Ok(None) => {
                self.done = true;
                self.report_cap();
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                self.report_cap();
                Err(e)
            }
        }
    }

    /// Releases the input (standard input stays open). Idempotent; no records
    /// are read after it.
    pub fn close(&mut self) {
        self.done = true;
        self.input = None;
        self.report_cap();
    }

    /// At most `n` (at least 1) interfaces are kept, over all sections: a pcapng
    /// with millions of Interface Description Blocks would otherwise hold about 300
    /// bytes for each. The ones past the cap are counted, not kept, and the packets
    /// on them are counted and skipped (their link type and time resolution are
    /// unknown); one warning gives both counts.
    pub fn set_max_interfaces(&mut self, n: usize) {
        self.max_interfaces = n.max(1);
    }

    /// Interface descriptions past the cap so far.
    pub fn interfaces_over_cap(&self) -> u64 {
        self.interfaces_over_cap
    }

    /// Packets skipped because their interface was past the cap.
    pub fn records_skipped(&self) -> u64 {
        self.records_skipped
    }

    /// The one over-cap warning, once reading has ended. Not damage: `truncated`
    /// stays as it is.
    fn report_cap(&mut self) {
        if self.interfaces_over_cap == 0 || self.cap_reported {
            return;
        }
        self.cap_reported = true;
        self.warnings.push(format!(
            "{}: more than {} interfaces: {} interface description(s) past the cap were \
             counted, not kept, and {} packet(s) on them were skipped \
             (thresholds.decoder.max_interfaces)",
            self.name, self.max_interfaces, self.interfaces_over_cap, self.records_skipped
        ));
    }

    /// The path as given (`-` for standard input).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The name used in messages (`<stdin>` for `-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// Interfaces seen so far; a `Rec`'s `iface` indexes this list.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// One line per problem, each starting with the file's name.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Reading stopped at damage (then `warnings` says where and why).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Records handed out so far.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    // -- input -------------------------------------------------------------------

    /// Reads the next chunk after the buffered bytes; false at the end of input
    /// (or after a gzip failure, which it reports). Keeps the unparsed tail.
    fn more(&mut self) -> Result<bool, CaptureError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let want = self.end + self.chunk;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let offset = self.base + self.end as u64;
        let Some(input) = self.input.as_mut() else {
            self.eof = true;
            return Ok(false);
        };
        match input.read(&mut self.buf[self.end..want]) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.end += n.min(want - self.end);
                Ok(true)
            }
            Err(e) => {
                self.eof = true;
                match classify(e, self.compressed) {
                    Failure::Io(e) => Err(CaptureError {
                        message: format!("{}: read error: {}", self.name, reason(&e)),
                        source: Some(e),
                    }),
                    Failure::GzipTruncated(t) => {
                        self.warn(format!(
                            "truncated gzip stream after {offset} decompressed bytes ({t})"
                        ));
                        Ok(false)
                    }
                    Failure::GzipCorrupt(t) if self.records_read == 0 => Err(CaptureError::new(
                        format!("{}: corrupt gzip data: {t}", self.name),
                    )),
                    Failure::GzipCorrupt(t) => {
                        self.warn(format!(
                            "corrupt gzip data after {offset} decompressed bytes ({t})"
                        ));
                        Ok(false)
                    }
                }
            }
        }
    }

    fn warn(&mut self, text: String) {
        self.truncated = true;
        self.warnings.push(format!("{}: {}", self.name, text));
    }

    fn place(&self, pos: usize) -> String {
        let at = self.base + pos as u64;
        if self.compressed {
            format!("byte offset {at} of the decompressed data")
        } else {
            format!("byte offset {at}")
        }
    }

    fn stop_truncated(&mut self, what: &str, need: u64) {
        let text = format!(
            "truncated capture: {what} at {} needs {need} bytes, {} present; stopped there",
            self.place(self.pos),
            self.end - self.pos
        );
        self.warn(text);
    }

    fn stop_corrupt(&mut self, what: &str, why: &str) {
        let text = format!(
            "corrupt capture: {what} at {} {why}; stopped there",
            self.place(self.pos)
        );
        self.warn(text);
    }

    // -- pcap --------------------------------------------------------------------

    fn open_pcap(&mut self, nano: bool) -> Result<(), CaptureError> {
        if self.end < 24 {
            return Err(CaptureError::new(format!(
                "{}: truncated pcap file header ({} of 24 bytes)",
                self.name, self.end
            )));
        }
        let snaplen = u32_at(&self.buf, 16, self.be);
        // The upper 16 bits of `network` carry FCS length flags, not the link type.
        let linktype = u32_at(&self.buf, 20, self.be) & 0xffff;
        self.interfaces.push(Interface {
            linktype,
            snaplen,
            name: None,
            tsresol: if nano { 9 } else { 6 },
            tsoffset_s: 0,
        });
        self.frac_mul = if nano { 1 } else { 1000 };
        self.limit = u64::from(MAX_CAPLEN.max(snaplen.min(MAX_BLOCK)));
        self.pos = 24;
        Ok(())
    }

    fn next_pcap(&mut self) -> Result<Option<Hit>, CaptureError> {
        let linktype = self.interfaces[0].linktype;
        loop {
            let (pos, end) = (self.pos, self.end);
            let need;
            if pos + 16 <= end {
                let b = &self.buf;
                let incl = u32_at(b, pos + 8, self.be);
                let q = pos + 16 + incl as usize;
                if q <= end && u64::from(incl) <= self.limit {
                    let sec = i64::from(u32_at(b, pos, self.be));
                    let frac = i64::from(u32_at(b, pos + 4, self.be));
                    let wire_len = u32_at(b, pos + 12, self.be);
                    self.pos = q;
                    return Ok(Some(Hit {
                        // At most 4.3e18: fits i64.
                        ts_ns: sec * 1_000_000_000 + frac * self.frac_mul,
                        iface: 0,
                        linktype,
                        start: pos + 16,
                        len: incl as usize,
                        wire_len,
                    }));
                }
                if u64::from(incl) > self.limit {
                    let why = format!(
                        "claims {incl} captured bytes (snaplen {}, limit {})",
                        self.interfaces[0].snaplen, self.limit
                    );
                    self.stop_corrupt(&format!("record {}", self.records_read + 1), &why);
                    return Ok(None);
                }
                need = 16 + u64::from(incl);
            } else if pos == end && self.eof {
                return Ok(None); // ends on a record boundary: a clean end
            } else {
                need = 16;
            }
            if !self.more()? {
                if self.end > self.pos {
                    self.stop_truncated(&format!("record {}", self.records_read + 1), need);
                }
                return Ok(None);
            }
        }
    }

    // -- pcapng ------------------------------------------------------------------

    fn next_pcapng(&mut self) -> Result<Option<Hit>, CaptureError> {
        loop {
            let (pos, end, be) = (self.pos, self.end, self.be);
            // Fast path: a complete, well-formed Enhanced Packet Block.
            if pos + 28 <= end {
                let b = &self.buf;
                let btype = u32_at(b, pos, be);
                let blen = u32_at(b, pos + 4, be);
                let iid = u32_at(b, pos + 8, be);
                let caplen = u32_at(b, pos + 20, be);
                let q = pos + blen as usize;
                if btype == EPB
                    && q <= end
                    && u64::from(caplen) + 32 <= u64::from(blen)
                    && blen <= MAX_BLOCK
                    && blen & 3 == 0
                    && (iid as usize) < self.section.len()
                    && u32_at(b, q - 4, be) == blen
                {
                    let local = self.section[iid as usize];
                    let units = (u64::from(u32_at(b, pos + 12, be)) << 32)
                        | u64::from(u32_at(b, pos + 16, be));
                    self.last_ts = to_ns(units, local.mul, local.div, local.offset_ns);
                    self.pos = q;
                    return Ok(Some(Hit {
                        ts_ns: self.last_ts,
                        iface: local.global,
                        linktype: local.linktype,
                        start: pos + 28,
                        len: caplen as usize,
                        wire_len: u32_at(b, pos + 24, be),
                    }));
                }
            }

            // Slow path: any other block, a block not yet fully buffered, or damage.
            let need;
            if pos + 12 <= end {
                let mut btype = u32_at(&self.buf, pos, self.be);
                if btype == SHB {
                    let bom = [
                        self.buf[pos + 8],
                        self.buf[pos + 9],
                        self.buf[pos + 10],
                        self.buf[pos + 11],
                    ];
                    if bom != BOM_LE && bom != BOM_BE {
                        let why = format!("has bad byte-order magic 0x{}", hex(&bom));
                        self.stop_corrupt(&self.what(), &why);
                        return Ok(None);
                    }
                    self.be = bom == BOM_BE;
                    btype = u32_at(&self.buf, pos, self.be);
                }
                let be = self.be;
                let blen = u32_at(&self.buf, pos + 4, be);
                if blen < 12 || blen & 3 != 0 || blen > MAX_BLOCK {
                    let why = format!(
                        "(type 0x{btype:08x}) has bad total length {blen} \
                         (must be a multiple of 4, 12 to {MAX_BLOCK})"
                    );
                    self.stop_corrupt(&self.what(), &why);
                    return Ok(None);
                }
                let q = pos + blen as usize;
                if q <= end {
                    match self.block(btype, blen, pos, q) {
                        Ok(Some(hit)) => {
                            self.pos = q;
                            return Ok(Some(hit));
                        }
                        Ok(None) => {
                            self.pos = q;
                            continue;
                        }
                        Err(why) => {
                            self.stop_corrupt(&self.what(), &why);
                            return Ok(None);
                        }
                    }
                }
                need = u64::from(blen);
            } else if pos == end && self.eof {
                return Ok(None); // ends on a block boundary: a clean end
            } else {
                need = 12;
            }
            if !self.more()? {
                if self.end > self.pos {
                    self.stop_truncated(&self.what(), need);
                }
                return Ok(None);
            }
        }
    }

    fn what(&self) -> String {
        format!("block {}", self.records_read + self.blocks + 1)
    }

    /// One complete block at `buf[pos..q]` with a sane total length: a record, or
    /// `None` for a block that only changes state or is skipped.
    fn block(
        &mut self,
        btype: u32,
        blen: u32,
        pos: usize,
        q: usize,
    ) -> Result<Option<Hit>, Corrupt> {
        let be = self.be;
        let trailer = u32_at(&self.buf, q - 4, be);
        if trailer != blen {
            return Err(format!(
                "(type 0x{btype:08x}) has total length {blen} but trailing length {trailer}"
            ));
        }
        if matches!(btype, EPB | PB | SPB) {
            return self.packet(btype, pos, q);
        }
        if btype == SHB {
            self.check_shb(pos, blen)?;
            self.section.clear();
            self.section_defined = 0;
        } else if btype == IDB {
            let iface = self.idb(pos, q)?;
            self.section_defined += 1;
            if self.interfaces.len() >= self.max_interfaces {
                // Checked for damage like any other, then only counted: memory stays
                // flat however many a file describes.
                self.interfaces_over_cap += 1;
                self.blocks += 1;
                return Ok(None);
            }
            let (mul, div) = iface.ts_scale();
            self.section.push(Local {
                linktype: iface.linktype,
                global: u32::try_from(self.interfaces.len()).unwrap_or(u32::MAX),
                mul,
                div,
                offset_ns: i128::from(iface.tsoffset_s) * NS,
                snaplen: iface.snaplen,
            });
            self.interfaces.push(iface);
        }
        // Every other block type (NRB, ISB, DSB, custom...) is skipped. Counted only
        // now: a damaged block's message carries the number it had before.
        self.blocks += 1;
        Ok(None)
    }

    fn check_shb(&self, pos: usize, blen: u32) -> Result<(), Corrupt> {
        if blen < 28 {
            return Err(format!("is a section header of {blen} bytes (at least 28)"));
        }
        let major = u16_at(&self.buf, pos + 12, self.be);
        let minor = u16_at(&self.buf, pos + 14, self.be);
        if major != 1 {
            return Err(format!(
                "is a section header of unsupported pcapng version {major}.{minor}"
            ));
        }
        Ok(())
    }

    /// An EPB, PB or SPB as a record; `None` for a packet on an interface past the
    /// cap (counted in `records_skipped`).
    fn packet(&mut self, btype: u32, pos: usize, q: usize) -> Result<Option<Hit>, Corrupt> {
        let (b, be) = (&self.buf, self.be);
        let size = q - pos;
        let nif = self.section_defined;
        if btype == SPB {
            if size < 16 {
                return Err(format!(
                    "is a simple packet block of {size} bytes (at least 16)"
                ));
            }
            if nif == 0 {
                return Err("is a simple packet block but interface 0 is not defined".into());
            }
            let Some(local) = self.section.first().copied() else {
                self.records_skipped += 1;
                self.blocks += 1;
                return Ok(None);
            };
            let wire_len = u32_at(b, pos + 8, be);
            let d = pos + 12;
            let mut len = (wire_len as usize).min(q - 4 - d);
            if local.snaplen != 0 {
                len = len.min(local.snaplen as usize);
            }
            // No timestamp of its own: the last one seen, so packet time never jumps.
            return Ok(Some(Hit {
                ts_ns: self.last_ts,
                iface: local.global,
                linktype: local.linktype,
                start: d,
                len,
                wire_len,
            }));
        }
        if size < 32 {
            return Err(format!("is a packet block of {size} bytes (at least 32)"));
        }
        let iid = if btype == EPB {
            u32_at(b, pos + 8, be)
        } else {
            u32::from(u16_at(b, pos + 8, be))
        };
        let units = (u64::from(u32_at(b, pos + 12, be)) << 32) | u64::from(u32_at(b, pos + 16, be));
        let caplen = u32_at(b, pos + 20, be);
        let wire_len = u32_at(b, pos + 24, be);
        let d = pos + 28;
        if d + caplen as usize > q - 4 {
            return Err(format!(
                "claims {caplen} captured bytes in a block of {size} bytes"
            ));
        }
        if u64::from(iid) >= nif {
            return Err(format!(
                "refers to interface {iid}, but the section defines {nif}"
            ));
        }
        let Some(&local) = self.section.get(iid as usize) else {
            self.records_skipped += 1; // its interface is past the cap
            self.blocks += 1;
            return Ok(None);
        };
        self.last_ts = to_ns(units, local.mul, local.div, local.offset_ns);
        Ok(Some(Hit {
            ts_ns: self.last_ts,
            iface: local.global,
            linktype: local.linktype,
            start: d,
            len: caplen as usize,
            wire_len,
        }))
    }

    fn idb(&self, pos: usize, q: usize) -> Result<Interface, Corrupt> {
        let (b, be) = (&self.buf, self.be);
        if q - pos < 20 {
            return Err(format!(
                "is an interface description of {} bytes (at least 20)",
                q - pos
            ));
        }
        let mut iface = Interface {
            linktype: u32::from(u16_at(b, pos + 8, be)),
            snaplen: u32_at(b, pos + 12, be),
            name: None,
            tsresol: 6,
            tsoffset_s: 0,
        };
        let mut opt = pos + 16;
        let stop = q - 4;
        while opt + 4 <= stop {
            let code = u16_at(b, opt, be);
            let length = usize::from(u16_at(b, opt + 2, be));
            let value = opt + 4;
            if code == 0 {
                break; // opt_endofopt
            }
            if value + length > stop {
                return Err(format!(
                    "has option {code} of {length} bytes overrunning the block"
                ));
            }
            match code {
                OPT_IF_NAME => {
                    // Some writers include the C string's NUL.
                    let raw = &b[value..value + length];
                    let kept = raw.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
                    iface.name = Some(String::from_utf8_lossy(&raw[..kept]).into_owned());
                }
                OPT_IF_TSRESOL if length >= 1 => iface.tsresol = b[value],
                OPT_IF_TSOFFSET if length >= 8 => iface.tsoffset_s = i64_at(b, value, be),
                _ => {}
            }
            opt = value + ((length + 3) & !3);
        }
        Ok(iface)
    }
}

/// Checks the first section header from the sniffed head; returns its byte order
/// (true for big-endian).
fn check_first_shb(name: &str, head: &[u8]) -> Result<bool, CaptureError> {
    if head.len() < HEAD {
        return Err(CaptureError::new(format!(
            "{name}: truncated pcapng section header ({} of 28 bytes)",
            head.len()
        )));
    }
    let bom = &head[8..12];
    let be = if bom == BOM_LE {
        false
    } else if bom == BOM_BE {
        true
    } else {
        return Err(CaptureError::new(format!(
            "{name}: pcapng section header has bad byte-order magic 0x{}",
            hex(bom)
        )));
    };
    let major = u16_at(head, 12, be);
    let minor = u16_at(head, 14, be);
    if major != 1 {
        return Err(CaptureError::new(format!(
            "{name}: unsupported pcapng version {major}.{minor}"
        )));
    }
    Ok(be)
}
