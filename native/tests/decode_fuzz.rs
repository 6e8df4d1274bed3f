//! Robustness and speed of the native decoder over the regression captures.
//!
//! Owns the deterministic fuzz loop (seed frames from `pcaps/*.pcap`, mutated and
//! truncated hundreds of thousands of times: no panic may reach `catch_unwind`, and the
//! reassembly table stays within its caps) and the `bench` measurement of pure-Rust
//! frames per second (`cargo test --release -- --ignored bench --nocapture`).

use std::path::PathBuf;
use std::time::Instant;

use _native::decode::events::Event;
use _native::decode::{Decoder, DecoderLimits, ReassemblyLimits};
use _native::record::Rec;

/// One frame of a capture: (linktype, bytes, wire length).
type Frame = (u32, Vec<u8>, u32);

/// A tiny classic-pcap walker (both byte orders, micro- and nanosecond magic); pcapng
/// and compressed captures are skipped, the classic ones cover every link type.
fn read_pcap(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    if bytes.len() < 24 {
        return out;
    }
    let magic = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => return out,
    };
    let u32_at = |b: &[u8], i: usize| {
        let a: [u8; 4] = b[i..i + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(bytes, 20) & 0x0FFF_FFFF;
    let mut p = 24;
    while p + 16 <= bytes.len() {
        let incl = u32_at(bytes, p + 8) as usize;
        let orig = u32_at(bytes, p + 12);
        p += 16;
        if p + incl > bytes.len() {
            break; // a capture cut inside its last record (truncated.pcap)
        }
        out.push((linktype, bytes[p..p + incl].to_vec(), orig));
        p += incl;
    }
    out
}

fn corpus() -> Vec<Frame> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pcaps");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("pcaps/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    paths.sort();
    let frames: Vec<Frame> = paths
        .iter()
        .flat_map(|p| read_pcap(&std::fs::read(p).unwrap()))
        .collect();
    assert!(
        frames.len() > 10_000,
        "regression captures not found in {dir:?}"
    );
    frames
}

/// xorshift64*: deterministic and dependency-free.
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

/// Bytes that steer the decoder into its branches: next headers, versions, ethertype
/// halves, tunnel ports, ND types and option lengths.
const INTERESTING: [u8; 24] = [
    0, 1, 2, 4, 6, 17, 41, 43, 44, 50, 51, 58, 59, 60, 0x45, 0x60, 0x81, 0x86, 0xdd, 0x0d, 0xe4,
    0x13, 0x88, 0xff,
];

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        if frame.is_empty() {
            return;
        }
        let i = rng.below(frame.len());
        match rng.below(7) {
            0 => frame[i] = rng.next() as u8,
            1 => frame[i] ^= 1 << rng.below(8),
            2 => frame.truncate(i),
            3 => frame[i] = INTERESTING[rng.below(INTERESTING.len())],
            4 => {
                let n = 1 + rng.below(16);
                let insert: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                frame.splice(i..i, insert);
            }
            5 => {
                // splice the tail of another frame: headers meet foreign payloads
                let j = rng.below(other.len().max(1));
                frame.truncate(i);
                frame.extend_from_slice(&other[j.min(other.len())..]);
            }
            _ => {
                let v = rng.next() as u16;
                if i + 2 <= frame.len() {
                    frame[i..i + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

fn small_limits() -> DecoderLimits {
    DecoderLimits {
        max_ext_headers: 4,
        max_vlan_tags: 2,
        max_tunnel_depth: 2,
        reassembly: ReassemblyLimits {
            timeout_ns: 2_000_000_000,
            max_datagrams: 8,
            max_bytes: 70_000,
            max_fragments: 4,
        },
        max_ext_options: 4,
    }
}

#[test]
fn fuzz_decoder_never_panics_and_stays_bounded() {
    let frames = corpus();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let linktypes = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];
    for limits in [DecoderLimits::default(), small_limits()] {
        let mut d = Decoder::new(limits);
        d.want_packets = true;
        d.want_tunnels = true;
        d.want_mld = true;
        d.want_dhcpv6 = true;
        let mut dhcpv6 = 0usize;
        d.want_ext_options = true;
        d.want_icmp_errors = true;
        let mut out: Vec<Event> = Vec::new();
        let mut ts: i64 = 1_700_000_000_000_000_000;
        let mut buf = Vec::new();
        for n in 0..iterations / 2 {
            let (mut lt, data, _) = &frames[rng.below(frames.len())];
            let other = &frames[rng.below(frames.len())].1;
            buf.clear();
            buf.extend_from_slice(data);
            mutate(&mut rng, &mut buf, other);
            if rng.below(20) == 0 {
                lt = linktypes[rng.below(linktypes.len())];
            }
            let wire = buf.len() as u32
                + if rng.below(5) == 0 {
                    rng.below(100) as u32
                } else {
                    0
                };
            ts += rng.below(50_000_000) as i64;
            out.clear();
            let rec = Rec {
                ts_ns: ts,
                iface: rng.below(2) as u32,
                linktype: lt,
                data: &buf,
                wire_len: wire,
            };
            d.decode(&rec, n as u64 + 1, &mut out);
            dhcpv6 += out.iter().filter(|e| matches!(e, Event::Dhcpv6(_))).count();
            if rng.below(100) == 0 {
                d.expire(ts, &mut out);
            }
            let r = d.reassembler();
            assert!(r.len() <= limits.reassembly.max_datagrams);
            // One datagram may exceed the byte cap on its own (it is never evicted for
            // itself); a datagram is at most 64 KiB of payload plus its prefixes.
            assert!(r.bytes() <= limits.reassembly.max_bytes.max(4 * 65_536));
        }
        let s = d.stats();
        assert_eq!(s.malformed_reasons.get(("decoder", "decoder_error")), 0);
        assert_eq!(s.packets as usize, iterations / 2);
        assert!(
            s.malformed > 0 && s.nd > 0 && s.fragments > 0,
            "mutations reach the decoder: {s:?}"
        );
        assert!(dhcpv6 > 0, "mutations reach the DHCPv6 decoder");
    }
}

#[test]
fn regression_captures_decode_without_panics() {
    let mut d = Decoder::new(DecoderLimits::default());
    d.want_packets = true;
    d.want_tunnels = true;
    d.want_mld = true;
    d.want_dhcpv6 = true;
    d.want_ext_options = true;
    d.want_icmp_errors = true;
    let mut out = Vec::new();
    for (i, (lt, data, wire)) in corpus().iter().enumerate() {
        let rec = Rec {
            ts_ns: i as i64,
            iface: 0,
            linktype: *lt,
            data,
            wire_len: *wire,
        };
        out.clear();
        d.decode(&rec, i as u64 + 1, &mut out);
    }
    let s = d.stats();
    assert_eq!(s.malformed_reasons.get(("decoder", "decoder_error")), 0);
    assert!(s.nd > 0 && s.reassembled > 0 && !s.tunnels.0.is_empty());
}

fn bench_run(frames: &[Frame], passes: usize, packets: bool) -> (usize, f64, usize) {
    let mut d = Decoder::new(DecoderLimits::default());
    d.want_packets = packets;
    d.want_tunnels = packets;
    let mut out = Vec::with_capacity(64);
    let mut events = 0;
    let start = Instant::now();
    let mut n = 0u64;
    for pass in 0..passes {
        for (lt, data, wire) in frames {
            n += 1;
            let rec = Rec {
                ts_ns: (pass as i64) * 1_000_000_000_000 + n as i64,
                iface: 0,
                linktype: *lt,
                data,
                wire_len: *wire,
            };
            out.clear();
            d.decode(&rec, n, &mut out);
            events += out.len();
        }
    }
    (n as usize, start.elapsed().as_secs_f64(), events)
}

#[test]
#[ignore = "measurement: cargo test --release -- --ignored bench --nocapture"]
fn bench_decode_frames_per_second() {
    let frames = corpus();
    let bytes: usize = frames.iter().map(|f| f.1.len()).sum();
    println!(
        "corpus: {} frames, {} bytes (all classic pcaps in pcaps/)",
        frames.len(),
        bytes
    );
    // The same frames replayed: every regression capture, attacks included, so this is
    // a harder mix than ordinary traffic (most frames are ND, fragments, tunnels).
    for (label, packets) in [
        ("no subscribers", false),
        ("want_packets+want_tunnels", true),
    ] {
        let (n, secs, events) = bench_run(&frames, 40, packets);
        println!(
            "bench: {label:<26} {n} frames in {secs:.3} s = {:.2} M frames/s, {events} events",
            n as f64 / secs / 1e6
        );
    }
    // Ordinary traffic only (benign_busy_client.pcap: TCP/UDP over IPv4 and IPv6).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pcaps");
    let benign = read_pcap(&std::fs::read(dir.join("benign_busy_client.pcap")).unwrap());
    for (label, packets) in [
        ("benign, no subscribers", false),
        ("benign, want_packets", true),
    ] {
        let (n, secs, _) = bench_run(&benign, 2000, packets);
        println!(
            "bench: {label:<26} {n} frames in {secs:.3} s = {:.2} M frames/s",
            n as f64 / secs / 1e6
        );
    }
}

#[test]
#[ignore = "measurement"]
fn bench_sizes() {
    use _native::decode::events::*;
    println!(
        "sizes: Event {} Meta {} Ipv6Header {} Tunnels {} TunnelLayer {} NdMessage {}",
        std::mem::size_of::<Event>(),
        std::mem::size_of::<Meta>(),
        std::mem::size_of::<Ipv6Header>(),
        std::mem::size_of::<Tunnels>(),
        std::mem::size_of::<TunnelLayer>(),
        std::mem::size_of::<NdMessage>()
    );
}

/// `live --workers` sends events between processes in `decode::wire`'s byte form: every
/// event the decoder makes of the mutated corpus comes back equal, and damaged batches
/// (bytes flipped, cut short) are refused with an error, never a panic.
#[test]
fn wire_form_round_trips_every_event_and_refuses_damage() {
    use _native::decode::wire::{put_event, Item, Rd, Wire};
    let frames = corpus();
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let mut d = Decoder::new(small_limits());
    d.want_packets = true;
    d.want_tunnels = true;
    d.want_mld = true;
    d.want_dhcpv6 = true;
    d.want_ext_options = true;
    d.want_icmp_errors = true;
    let mut out: Vec<Event> = Vec::new();
    let mut buf = Vec::new();
    let mut kinds = [0usize; 9]; // one per `Event` variant
    let mut refused = 0usize;
    for n in 0..60_000u64 {
        let (lt, data, _) = &frames[rng.below(frames.len())];
        let other = &frames[rng.below(frames.len())].1;
        buf.clear();
        buf.extend_from_slice(data);
        if n % 2 == 1 {
            mutate(&mut rng, &mut buf, other);
        }
        out.clear();
        let ts = 1_700_000_000_000_000_000 + n as i64 * 1_000_000;
        let rec = Rec {
            ts_ns: ts,
            iface: 0,
            linktype: *lt,
            data: &buf,
            wire_len: buf.len() as u32,
        };
        d.decode(&rec, n + 1, &mut out);
        if n % 500 == 0 {
            d.expire(ts + 10_000_000_000, &mut out);
        }
        for ev in &out {
            let mut w = Vec::new();
            put_event(ev, &mut w);
            let mut r = Rd::new(&w);
            let back = Item::get(&mut r).expect("an encoded event decodes");
            assert!(r.at_end());
            assert_eq!(back, Item::Event(ev.clone()));
            kinds[w[0] as usize - 1] += 1;
            // Damage: a batch cut short is refused; a flipped byte is refused or reads
            // as some other item, without a panic.
            let cut = rng.below(w.len());
            assert!(Item::get(&mut Rd::new(&w[..cut])).is_err());
            refused += 1;
            let i = rng.below(w.len());
            w[i] ^= 1 << rng.below(8);
            let _ = Item::get(&mut Rd::new(&w));
        }
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "every event kind crossed: {kinds:?}"
    );
    assert!(refused > 0);
}
