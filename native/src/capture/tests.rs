//! Unit tests of the capture reader on captures built byte by byte, the
//! regression captures in `pcaps/`, and a deterministic mutation loop over them.
//!
//! `tests/test_capture.py` pins the full contract through Python; these check the
//! Rust API itself (zero-copy records, chunking, damage) and robustness, without
//! an interpreter.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::reader::{Format, Interface, Reader, CHUNK};
use super::source::Input;

const T0: u32 = 1_700_000_000;

// -- builders ------------------------------------------------------------------------

fn u16b(v: u16, be: bool) -> [u8; 2] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u32b(v: u32, be: bool) -> [u8; 4] {
    if be {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn pcap_header(be: bool, nano: bool, linktype: u32, snaplen: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(u32b(if nano { 0xA1B2_3C4D } else { 0xA1B2_C3D4 }, be));
    v.extend(u16b(2, be));
    v.extend(u16b(4, be));
    v.extend([0; 8]);
    v.extend(u32b(snaplen, be));
    v.extend(u32b(linktype, be));
    v
}

fn pcap_record(be: bool, sec: u32, frac: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [sec, frac, data.len() as u32, data.len() as u32] {
        v.extend(u32b(x, be));
    }
    v.extend(data);
    v
}

fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let total = 12 + body.len() as u32;
    let mut v = Vec::new();
    v.extend(u32b(btype, be));
    v.extend(u32b(total, be));
    v.extend(body);
    v.extend(u32b(total, be));
    v
}

fn shb(be: bool) -> Vec<u8> {
    let mut body = u32b(0x1A2B_3C4D, be).to_vec();
    body.extend(u16b(1, be));
    body.extend(u16b(0, be));
    body.extend([0xff; 8]);
    block(be, 0x0A0D_0D0A, &body)
}

fn idb(be: bool, linktype: u16, snaplen: u32, tsresol: Option<u8>, name: Option<&str>) -> Vec<u8> {
    let mut body = u16b(linktype, be).to_vec();
    body.extend([0, 0]);
    body.extend(u32b(snaplen, be));
    let mut opt = |code: u16, value: &[u8]| {
        body.extend(u16b(code, be));
        body.extend(u16b(value.len() as u16, be));
        body.extend(value);
        body.resize(body.len().div_ceil(4) * 4, 0);
    };
    if let Some(n) = name {
        opt(2, n.as_bytes());
    }
    if let Some(r) = tsresol {
        opt(9, &[r]);
    }
    if name.is_some() || tsresol.is_some() {
        opt(0, &[]);
    }
    block(be, 1, &body)
}

fn epb(be: bool, iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for x in [
        iface,
        (ts >> 32) as u32,
        ts as u32,
        data.len() as u32,
        data.len() as u32,
    ] {
        body.extend(u32b(x, be));
    }
    body.extend(data);
    block(be, 6, &body)
}

fn spb(be: bool, data: &[u8]) -> Vec<u8> {
    let mut body = u32b(data.len() as u32, be).to_vec();
    body.extend(data);
    block(be, 3, &body)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A pipe-like stream handing out at most `step` bytes per read.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

type Owned = (i64, u32, u32, Vec<u8>, u32);

fn open(data: &[u8], step: usize, chunk: usize) -> Result<Reader, String> {
    let input: Input = Box::new(Trickle {
        data: data.to_vec(),
        at: 0,
        step,
    });
    Reader::from_input("t.cap", input, chunk).map_err(|e| e.to_string())
}

fn drain(reader: &mut Reader) -> Result<Vec<Owned>, String> {
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().map_err(|e| e.to_string())? {
        out.push((r.ts_ns, r.iface, r.linktype, r.data.to_vec(), r.wire_len));
    }
    Ok(out)
}

fn read_all(data: &[u8]) -> (Reader, Vec<Owned>) {
    let mut reader = open(data, usize::MAX, CHUNK).unwrap();
    let recs = drain(&mut reader).unwrap();
    (reader, recs)
}

// -- pcap ----------------------------------------------------------------------------

#[test]
fn pcap_all_four_magics() {
    for be in [false, true] {
        for nano in [false, true] {
            let frac = if nano { 999_999_999 } else { 999_999 };
            let mut data = pcap_header(be, nano, 0x1400_0065, 262_144);
            data.extend(pcap_record(be, T0, frac, &[0x60; 40]));
            let (reader, recs) = read_all(&data);
            let ns = i64::from(T0) * 1_000_000_000 + i64::from(frac) * if nano { 1 } else { 1000 };
            assert_eq!(recs, vec![(ns, 0, 101, vec![0x60; 40], 40)]);
            assert_eq!(reader.format(), Format::Pcap);
            assert_eq!(
                reader.interfaces(),
                &[Interface {
                    linktype: 101,
                    snaplen: 262_144,
                    name: None,
                    tsresol: if nano { 9 } else { 6 },
                    tsoffset_s: 0
                }]
            );
            assert!(!reader.truncated() && reader.warnings().is_empty());
        }
    }
}

#[test]
fn pcap_truncated_and_corrupt_messages() {
    let mut data = pcap_header(false, false, 1, 65535);
    for i in 0..3 {
        data.extend(pcap_record(false, T0, i, &[7; 60]));
    }
    let mut reader = open(&data[..176 + 16 + 30], 5, 7).unwrap();
    assert_eq!(drain(&mut reader).unwrap().len(), 2);
    assert_eq!(
        reader.warnings(),
        &[
            "t.cap: truncated capture: record 3 at byte offset 176 needs 76 bytes, 46 present; \
           stopped there"
                .to_string()
        ]
    );
    let mut huge = data[..176].to_vec();
    huge.extend(pcap_record(false, T0, 0, &[]));
    huge[176 + 8..176 + 12].copy_from_slice(&(5u32 << 20).to_le_bytes());
    let (reader, recs) = read_all(&huge);
    assert_eq!(recs.len(), 2);
    assert!(reader.warnings()[0].ends_with(
        "record 3 at byte offset 176 claims 5242880 captured bytes (snaplen 65535, \
         limit 1048576); stopped there"
    ));
}

// -- pcapng --------------------------------------------------------------------------

fn sections(be: bool) -> (Vec<u8>, Vec<Owned>) {
    let mut data = shb(be);
    data.extend(idb(be, 1, 0, None, Some("eth0")));
    data.extend(idb(be, 101, 8, Some(9), None));
    data.extend(epb(be, 1, 5, &[1; 10]));
    data.extend(spb(be, &[2; 12])); // interface 0, last timestamp
    data.extend(shb(!be));
    data.extend(idb(!be, 113, 0, Some(0x80 | 1), None));
    data.extend(epb(!be, 0, 3, &[3; 3]));
    let want = vec![
        (5, 1, 101, vec![1; 10], 10),
        (5, 0, 1, vec![2; 12], 12),
        (1_500_000_000, 2, 113, vec![3; 3], 3),
    ];
    (data, want)
}

#[test]
fn pcapng_sections_interfaces_and_byte_orders() {
    for be in [false, true] {
        let (data, want) = sections(be);
        let (reader, recs) = read_all(&data);
        assert_eq!(recs, want);
        assert_eq!(reader.interfaces().len(), 3);
        assert_eq!(reader.interfaces()[0].name.as_deref(), Some("eth0"));
        assert!(reader.warnings().is_empty());
    }
}

#[test]
fn interfaces_past_the_cap_are_counted_and_their_packets_skipped() {
    // Cap 3: section 1's interfaces 0 and 1 are kept; section 2's interface 0 is
    // the third kept one, its interfaces 1 and 2 are over the cap.
    let mut data = shb(false);
    data.extend(idb(false, 1, 0, None, None));
    data.extend(idb(false, 1, 0, None, None));
    data.extend(epb(false, 1, 5, &[1; 4]));
    data.extend(shb(false));
    data.extend(idb(false, 101, 0, None, None));
    data.extend(idb(false, 1, 0, None, None));
    data.extend(idb(false, 1, 0, None, None));
    data.extend(spb(false, &[3; 4])); // interface 0 of section 2: kept
    data.extend(epb(false, 2, 6, &[2; 4])); // over the cap: skipped
    data.extend(epb(false, 1, 7, &[4; 4])); // over the cap: skipped
    data.extend(epb(false, 3, 8, &[5; 4])); // not defined at all: damage, as before
    let mut reader = open(&data, usize::MAX, CHUNK).unwrap();
    reader.set_max_interfaces(3);
    let recs = drain(&mut reader).unwrap();
    let kept: Vec<(u32, Vec<u8>)> = recs.into_iter().map(|r| (r.1, r.3)).collect();
    assert_eq!(kept, vec![(1, vec![1; 4]), (2, vec![3; 4])]);
    assert_eq!(reader.interfaces().len(), 3);
    assert_eq!(reader.interfaces_over_cap(), 2);
    assert_eq!(reader.records_skipped(), 2);
    let warnings = reader.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("block 12") && warnings[0].contains("interface 3"));
    assert!(warnings[1].contains("more than 3 interfaces: 2 interface description(s)"));
    assert!(warnings[1].contains("2 packet(s) on them were skipped"));
}

#[test]
fn every_chunk_and_step_gives_the_same_records() {
    let (data, want) = sections(false);
    let packed = gz(&data);
    for chunk in [1, 2, 3, 13, 64, CHUNK] {
        for step in [1, 5, 4096] {
            for input in [&data, &packed] {
                let mut reader = open(input, step, chunk).unwrap();
                assert_eq!(
                    drain(&mut reader).unwrap(),
                    want,
                    "chunk {chunk} step {step}"
                );
                assert!(reader.warnings().is_empty());
            }
        }
    }
}

#[test]
fn pcapng_damage_is_a_warning_with_block_number() {
    let (mut data, _) = sections(false);
    data.extend(epb(true, 7, 1, &[0; 4])); // the second section is big-endian
    let (reader, recs) = read_all(&data);
    assert_eq!(recs.len(), 3);
    let w = &reader.warnings()[0];
    assert!(w.contains("corrupt capture: block 9 at byte offset"), "{w}");
    assert!(w.ends_with("refers to interface 7, but the section defines 1; stopped there"));
}

#[test]
fn gzip_members_padding_and_garbage() {
    let (data, want) = sections(false);
    let half = data.len() / 2;
    let mut two = gz(&data[..half]);
    two.extend(gz(&data[half..]));
    two.extend([0; 9]); // zero padding after the last member is fine, as in Python
    let (reader, recs) = read_all(&two);
    assert_eq!(recs, want);
    assert!(reader.compressed() && reader.warnings().is_empty());
    let mut tail = gz(&data);
    tail.extend(b"garbage!");
    let (reader, recs) = read_all(&tail);
    assert_eq!(recs, want);
    assert!(reader.warnings()[0].starts_with("t.cap: corrupt gzip data after "));
}

#[test]
fn not_a_capture() {
    let cases: [(&[u8], &str); 4] = [
        (b"", "t.cap: empty file"),
        (
            b"\xde\xad\xbe\xef!",
            "t.cap: not a pcap or pcapng file (first bytes 0xdeadbeef)",
        ),
        (
            b"\xd4\xc3\xb2\xa1\0\0",
            "t.cap: truncated pcap file header (6 of 24 bytes)",
        ),
        (
            b"\x0a\x0d\x0d\x0a",
            "t.cap: truncated pcapng section header (4 of 28 bytes)",
        ),
    ];
    for (data, want) in cases {
        assert_eq!(open(data, 3, CHUNK).err().as_deref(), Some(want));
    }
    assert_eq!(
        open(&gz(b""), 3, CHUNK).err().as_deref(),
        Some("t.cap: empty file (after gzip decompression)")
    );
}

#[test]
fn open_path_errors_name_the_file() {
    let err = Reader::open("/nonexistent/x.pcap")
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "/nonexistent/x.pcap: cannot open: no such file or directory"
    );
    let err = Reader::open("/").err().unwrap().to_string();
    assert_eq!(err, "/: cannot open: is a directory");
}

#[test]
fn close_ends_records() {
    let (data, _) = sections(true);
    let mut reader = open(&data, 4096, CHUNK).unwrap();
    assert!(reader.next_record().unwrap().is_some());
    reader.close();
    reader.close();
    assert!(reader.next_record().unwrap().is_none());
    assert_eq!(reader.records_read(), 1);
}

// -- regression captures and mutation --------------------------------------------------

fn regression_captures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pcaps");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".pcap"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "regression captures not found in {}",
        dir.display()
    );
    out
}

#[test]
fn regression_captures_read_cleanly_and_the_same_by_path() {
    for (path, data) in regression_captures() {
        let mut by_path = Reader::open(&path).unwrap();
        let recs = drain(&mut by_path).unwrap();
        // truncated.pcap is cut on purpose; every other one is sound.
        assert!(!recs.is_empty(), "{path}");
        assert_eq!(
            by_path.truncated(),
            path.ends_with("/truncated.pcap"),
            "{path}"
        );
        let mut trickled = open(&data, 997, 4093).unwrap();
        assert_eq!(drain(&mut trickled).unwrap(), recs, "{path}");
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What a reader made of some bytes, checked for internal consistency.
fn outcome(data: &[u8], step: usize, chunk: usize) -> Result<(Vec<Owned>, Vec<String>), String> {
    let mut reader = open(data, step, chunk)?;
    let mut recs = Vec::new();
    // A record costs at least 12 bytes and deflate expands at most ~1032x.
    let bound = data.len() * 1100 / 12 + 1;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                recs.push((r.ts_ns, r.iface, r.linktype, r.data.to_vec(), r.wire_len));
                assert!(recs.len() <= bound, "no end in sight");
            }
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    assert_eq!(reader.records_read(), recs.len() as u64);
    assert_eq!(reader.truncated(), !reader.warnings().is_empty());
    for r in &recs {
        assert!((r.1 as usize) < reader.interfaces().len());
        assert!(r.3.len() <= super::MAX_BLOCK as usize);
    }
    assert!(
        reader.next_record().unwrap().is_none(),
        "records after the end"
    );
    Ok((recs, reader.warnings().to_vec()))
}

#[test]
fn mutated_regression_captures_never_panic_and_always_end() {
    let seeds: Vec<Vec<u8>> = regression_captures()
        .into_iter()
        .map(|(_, d)| d[..d.len().min(4000)].to_vec())
        .collect();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    // Debug builds are ~30x slower; release runs the long loop.
    let rounds = if cfg!(debug_assertions) {
        2_000
    } else {
        50_000
    };
    for round in 0..rounds {
        let mut data = seeds[rng.below(seeds.len())].clone();
        match rng.below(3) {
            0 => data.truncate(rng.below(data.len() + 1)),
            1 => {
                for _ in 0..=rng.below(8) {
                    let i = if rng.below(2) == 0 {
                        rng.below(64)
                    } else {
                        rng.below(data.len())
                    };
                    if i < data.len() {
                        data[i] = rng.next() as u8;
                    }
                }
            }
            _ => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
                data.truncate(data.len() - rng.below(data.len().min(300)));
            }
        }
        let whole = outcome(&data, usize::MAX, CHUNK);
        // However the bytes arrive, the verdict is the same (corrupt gzip excepted:
        // how much output precedes a deflate error depends on the call sizes).
        let step = [1, 3, 61][round % 3];
        let trickled = outcome(&data, step, [5, 64, CHUNK][round % 3]);
        if !data.starts_with(&[0x1f, 0x8b]) {
            assert_eq!(whole, trickled, "round {round}");
        }
    }
}

// -- speed -----------------------------------------------------------------------------

/// `cargo test --release -- --ignored --nocapture bench_reader` prints records/s.
#[test]
#[ignore]
fn bench_reader() {
    let flood =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pcaps/ndp_flood.pcap"))
            .unwrap();
    let mut data = flood.clone();
    while data.len() < 200 << 20 {
        data.extend_from_slice(&flood[24..]);
    }
    let path = std::env::temp_dir().join("v6sentry-bench-reader.pcap");
    std::fs::write(&path, &data).unwrap();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let mut reader = Reader::open(path.to_str().unwrap()).unwrap();
        let (mut n, mut bytes) = (0u64, 0usize);
        while let Some(r) = reader.next_record().unwrap() {
            n += 1;
            bytes += r.data.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{n} records, {} MB in {secs:.3} s: {:.1} M records/s ({bytes} payload bytes)",
            data.len() >> 20,
            n as f64 / secs / 1e6
        );
    }
    let _ = std::fs::remove_file(&path);
}
