//! Bounded-memory distinct counting, the exact port of `detectors/sketch.py`.
//!
//! Owns `mix64` (splitmix64's finaliser), `hash_bytes`, the `HyperLogLog` with an O(1)
//! incremental estimate, `DistinctCounter` (exact up to `exact_up_to` hashes, then a
//! HyperLogLog) and `DistinctSample` (Gibbons' distinct sampling). Every estimate and every
//! sample must be bit-for-bit what the Python classes give for the same input: the alerts
//! and observations built from them are compared byte for byte with the goldens. Knows
//! nothing of packets or windows.

use super::few::Few;

/// splitmix64's finaliser: the deterministic 64-bit hash every counter uses.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Big-endian integer of `data`, keeping the low 64 bits (Python's `& M64` in `mix64`).
#[inline]
fn be(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// 64-bit hash of up to 16 bytes (an IPv6 address, a /64 prefix, an IPv4 address).
#[inline]
pub fn hash_bytes(data: &[u8]) -> u64 {
    if data.len() <= 8 {
        // len << 56 keeps "\x00" and "" apart, as in Python.
        return mix64(be(data) ^ ((data.len() as u64) << 56));
    }
    mix64(be(&data[..8]) ^ mix64(be(&data[8..])))
}

/// 2**-k, exactly (a power of two built from its exponent bits, no rounding anywhere).
#[inline]
fn pow2_neg(k: u32) -> f64 {
    f64::from_bits(u64::from(1023 - k) << 52)
}

/// Where a 64-bit hash lands in a sketch of 2**`p` registers: (register, rank), the rank
/// being one more than the leading zeros of the bits below the index.
#[inline]
pub fn hll_slot(p: u32, h: u64) -> (usize, u8) {
    let bits = 64 - p;
    let idx = (h >> bits) as usize;
    let rest = h & ((1u64 << bits) - 1);
    (idx, (bits - (64 - rest.leading_zeros()) + 1) as u8)
}

/// The running figures of a HyperLogLog's O(1) estimate over a register array kept
/// elsewhere (a `HyperLogLog`'s own, or a reducer's fixed-size arena): the zero-register
/// count and the harmonic sum, updated in Python's order of floating-point operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HllSums {
    zeros: u32,
    inv_sum: f64,
}

impl HllSums {
    /// Figures of `m` zero registers.
    pub fn empty(m: u32) -> Self {
        HllSums {
            zeros: m,
            inv_sum: f64::from(m),
        }
    }

    /// Figures of `registers`, recomputed (after a merge or a reset).
    pub fn of(registers: &[u8]) -> Self {
        let mut s = HllSums::empty(0);
        for &r in registers {
            s.zeros += u32::from(r == 0);
            s.inv_sum += pow2_neg(u32::from(r));
        }
        s
    }

    /// A register rose from `old` to `new`.
    #[inline]
    pub fn raise(&mut self, old: u8, new: u8) {
        if old == 0 {
            self.zeros -= 1;
        }
        self.inv_sum += pow2_neg(u32::from(new)) - pow2_neg(u32::from(old));
    }

    /// Raise `registers` for hash `h` (precision `p`); true when a register grew.
    #[inline]
    pub fn add(&mut self, registers: &mut [u8], p: u32, h: u64) -> bool {
        let (idx, rank) = hll_slot(p, h);
        let old = registers[idx];
        if rank <= old {
            return false;
        }
        registers[idx] = rank;
        self.raise(old, rank);
        true
    }

    /// The cardinality estimate of 2**`p` registers: linear counting while it is at most
    /// 2.5 m, else the harmonic mean (Flajolet et al. 2007).
    pub fn estimate(&self, p: u32) -> f64 {
        let m = f64::from(1u32 << p);
        if self.zeros != 0 {
            let linear = m * (m / f64::from(self.zeros)).ln();
            if linear <= 2.5 * m {
                return linear;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        alpha * m * m / self.inv_sum
    }
}

/// HyperLogLog with an O(1) estimate (Flajolet et al. 2007): the zero-register count and
/// the harmonic sum are kept up to date on every register change, in the same order of
/// floating-point operations as Python so the sums round identically.
#[derive(Clone, Debug)]
pub struct HyperLogLog {
    p: u32,
    registers: Box<[u8]>,
    sums: HllSums,
}

impl HyperLogLog {
    /// `precision` must be 4..=18 (checked by the reducer's constructor).
    pub fn new(precision: u32) -> Self {
        let m = 1u32 << precision;
        HyperLogLog {
            p: precision,
            registers: vec![0u8; m as usize].into_boxed_slice(),
            sums: HllSums::empty(m),
        }
    }

    /// Add a 64-bit hash; true when a register grew (the value may be new).
    #[inline]
    pub fn add(&mut self, h: u64) -> bool {
        self.sums.add(&mut self.registers, self.p, h)
    }

    pub fn estimate(&self) -> f64 {
        self.sums.estimate(self.p)
    }
}

#[derive(Clone, Debug)]
enum Distinct {
    /// Sorted, so membership is a binary search and a set of 128 hashes is 1 KiB; the
    /// first hash is inline.
    Exact(Few<u64>),
    Sketch(HyperLogLog),
}

/// Distinct 64-bit hashes: exact up to `exact_up_to`, then a HyperLogLog.
#[derive(Clone, Debug)]
pub struct DistinctCounter {
    exact_up_to: usize,
    precision: u32,
    state: Distinct,
}

impl DistinctCounter {
    pub fn new(exact_up_to: usize, precision: u32) -> Self {
        DistinctCounter {
            exact_up_to,
            precision,
            // No allocation until the second value: most windows of a random-source
            // flood see one target.
            state: Distinct::Exact(Few::Empty),
        }
    }

    /// True when `h` is new (exactly while small; a grown register after).
    #[inline]
    pub fn add(&mut self, h: u64) -> bool {
        if let Distinct::Exact(set) = &mut self.state {
            let at = match set.as_slice().binary_search(&h) {
                Ok(_) => return false,
                Err(at) => at,
            };
            if set.len() < self.exact_up_to {
                set.insert(at, h, self.exact_up_to);
                return true;
            }
            // Full: the sketch takes over. Register maxima do not depend on the order
            // the set is replayed in, and the harmonic sum is exact (dyadic terms well
            // inside 53 bits) unless a register passes ~40, so Python's set order is
            // not needed to get its bits.
            let mut hll = HyperLogLog::new(self.precision);
            for &v in set.as_slice() {
                hll.add(v);
            }
            self.state = Distinct::Sketch(hll);
        }
        match &mut self.state {
            Distinct::Sketch(hll) => hll.add(h),
            Distinct::Exact(_) => unreachable!("converted above"),
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self.state, Distinct::Exact(_))
    }

    pub fn estimate(&self) -> f64 {
        match &self.state {
            Distinct::Exact(set) => set.len() as f64,
            Distinct::Sketch(hll) => hll.estimate(),
        }
    }
}

/// A uniform sample of distinct items, at most `cap` kept (Gibbons 2001): items whose
/// hash has `level` low zero bits stay; when full the level rises and half go. Kept in
/// insertion order, as Python's dict is: the pattern shares' ties are broken by it.
#[derive(Clone, Debug)]
pub struct DistinctSample<T> {
    cap: usize,
    level: u32,
    items: Few<(u64, T)>,
}

#[inline]
fn low_mask(level: u32) -> u64 {
    if level >= 64 {
        u64::MAX
    } else {
        (1u64 << level) - 1
    }
}

impl<T: Copy> DistinctSample<T> {
    pub fn new(cap: usize) -> Self {
        DistinctSample {
            cap,
            level: 0,
            items: Few::Empty,
        }
    }

    #[inline]
    pub fn add(&mut self, h: u64, item: T) {
        if h & low_mask(self.level) != 0 || self.items.as_slice().iter().any(|&(k, _)| k == h) {
            return;
        }
        // It holds cap + 1 for a moment before the level rises.
        self.items.push((h, item), self.cap + 1);
        while self.items.len() > self.cap {
            self.level += 1;
            let mask = low_mask(self.level);
            self.items.retain(|&(k, _)| k & mask == 0);
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items in insertion order.
    pub fn items(&self) -> impl Iterator<Item = T> + '_ {
        self.items.as_slice().iter().map(|&(_, v)| v)
    }

    /// The share kept is 2**-level.
    pub fn level(&self) -> u32 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values computed with detectors/sketch.py (see the report of the port).
    #[test]
    fn mix64_and_hash_bytes_match_python() {
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692161d100b05e5);
        assert_eq!(mix64(0xdeadbeef), 0x4e062702ec929eea);
        assert_eq!(mix64(u64::MAX), 0xb4d055fcf2cbbd7b);
        let p64 = [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00];
        assert_eq!(hash_bytes(&p64), 0x95722519b29f5036);
        let seq: Vec<u8> = (0..16).collect();
        assert_eq!(hash_bytes(&seq), 0xdd411869a33ae462);
        assert_eq!(hash_bytes(&[]), 0);
        assert_eq!(hash_bytes(&[192, 0, 2, 1]), 0x9a47d40434337162);
    }

    #[test]
    fn distinct_counter_estimates_match_python_bit_for_bit() {
        // (n, precision, exact_up_to, new answers, exact, estimate) from Python.
        let cases: [(u64, u32, usize, u64, bool, f64); 6] = [
            (50, 12, 128, 50, true, 50.0),
            (129, 12, 128, 129, false, 126.94706416882546),
            (1000, 12, 128, 937, false, 1004.7438740052922),
            (100000, 12, 128, 12222, false, 101963.1110867131),
            (5000, 10, 128, 1852, false, 5075.357101153273),
            (300, 4, 16, 45, false, 244.66668180593337),
        ];
        for (n, p, e, want_new, exact, est) in cases {
            let mut c = DistinctCounter::new(e, p);
            let new = (0..n).filter(|i| c.add(mix64(i * 7919 + 1))).count() as u64;
            assert_eq!(new, want_new, "n={n} p={p}");
            assert_eq!(c.is_exact(), exact);
            assert_eq!(c.estimate().to_bits(), est.to_bits(), "n={n} p={p}");
        }
    }

    #[test]
    fn distinct_sample_matches_python() {
        let mut s = DistinctSample::new(64);
        for i in 0..1000u64 {
            s.add(mix64(i), i);
        }
        assert_eq!(s.level(), 4);
        assert_eq!(s.len(), 59);
        let first: Vec<u64> = s.items().take(8).collect();
        assert_eq!(first, [0, 3, 50, 69, 73, 83, 116, 143]);
    }
}
