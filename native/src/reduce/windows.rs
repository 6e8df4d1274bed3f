//! Bounded LRU tables of packet-time windows: the native twin of `BoundedTable` and
//! `Windows` in `detectors/state.py`.
//!
//! Owns the cap, the least-recently-used order, the eviction counter and the order in
//! which windows end: a window closes when the next packet of its key falls past it
//! (rolled over), when `close_due` finds it a span old, when it is evicted to make room,
//! and at `close_all`; each exactly once, oldest first where several end together. The
//! order is part of the output (observations are written as windows close), so it follows
//! the Python classes step by step. Knows nothing of what a window counts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::rc::Rc;

use super::sketch::mix64;

/// A keyed hash for the tables' keys (addresses, /64s): a per-table random key, then
/// splitmix64 chained over 8-byte words. Keys are attacker-chosen, so the hash must not
/// be predictable (a fixed one lets a flood pile keys into one bucket chain); SipHash is
/// that too but was a quarter of the per-packet time. Without the key, where two keys
/// land depends on mix64 of key-dependent values, so collisions cannot be aimed.
#[derive(Clone)]
pub struct KeyedState(u64);

impl KeyedState {
    pub fn new() -> Self {
        KeyedState(RandomState::new().hash_one(0x5eed_u64))
    }
}

impl Default for KeyedState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

pub struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let word = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            self.0 = mix64(self.0 ^ word);
        }
    }

    #[inline]
    fn write_usize(&mut self, _len: usize) {
        // Only arrays' length prefixes come here: fixed per table, nothing to mix.
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type KeyedMap<K, V> = HashMap<K, V, KeyedState>;

const NIL: u32 = u32::MAX;

struct Slot<K, V> {
    key: K,
    val: Option<V>,
    prev: u32,
    next: u32,
}

/// An LRU map with a hard cap and an eviction counter (`BoundedTable`), hashed with
/// `KeyedState`.
pub struct Lru<K, V> {
    map: KeyedMap<K, u32>,
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    head: u32, // least recently used
    tail: u32, // most recently used
    cap: usize,
    evictions: u64,
}

impl<K: Clone + Hash + Eq, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        Lru {
            map: KeyedMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap: cap.max(1),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// `(name, size, cap, evictions)`, as `Reducer::tables` reports a table.
    pub fn table_stat(&self, name: &str) -> crate::reducer::TableStat {
        (name.to_string(), self.len(), self.cap(), self.evictions())
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn link_tail(&mut self, i: u32) {
        let tail = self.tail;
        {
            let s = &mut self.slots[i as usize];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.head = i;
        } else {
            self.slots[tail as usize].next = i;
        }
        self.tail = i;
    }

    fn take(&mut self, i: u32) -> (K, V) {
        self.unlink(i);
        let slot = &mut self.slots[i as usize];
        let key = slot.key.clone();
        let val = slot.val.take().expect("a linked slot holds a value");
        self.map.remove(&key);
        self.free.push(i);
        (key, val)
    }

    /// Look up without touching recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        let &i = self.map.get(key)?;
        self.slots[i as usize].val.as_ref()
    }

    /// Look up for a change in place, without touching recency.
    pub fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        let &i = self.map.get(key)?;
        self.slots[i as usize].val.as_mut()
    }

    /// Remove one entry (`BoundedTable.pop`): not an eviction.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let &i = self.map.get(key)?;
        Some(self.take(i).1)
    }

    /// Remove entries from the old end while `due` says so (`pop_oldest_while`).
    pub fn take_oldest_while(&mut self, mut due: impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let mut out = Vec::new();
        while self.head != NIL {
            let slot = &self.slots[self.head as usize];
            if !due(
                &slot.key,
                slot.val.as_ref().expect("a linked slot holds a value"),
            ) {
                break;
            }
            out.push(self.take(self.head));
        }
        out
    }

    /// Look up and mark as most recently used.
    pub fn get(&mut self, key: &K) -> Option<&mut V> {
        let &i = self.map.get(key)?;
        if self.tail != i {
            self.unlink(i);
            self.link_tail(i);
        }
        self.slots[i as usize].val.as_mut()
    }

    /// Insert or replace as most recently used. A new key past the cap evicts the least
    /// recently used entry, counted and returned for its owner to close.
    pub fn put(&mut self, key: K, val: V) -> Option<(K, V)> {
        if let Some(&i) = self.map.get(&key) {
            if self.tail != i {
                self.unlink(i);
                self.link_tail(i);
            }
            self.slots[i as usize].val = Some(val);
            return None;
        }
        let evicted = if self.map.len() >= self.cap {
            self.evictions += 1;
            Some(self.take(self.head))
        } else {
            None
        };
        let slot = Slot {
            key: key.clone(),
            val: Some(val),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, i);
        self.link_tail(i);
        evicted
    }

    /// Remove, oldest first, every entry `due` says so, walking the whole table (entries
    /// are in use order, not start order, so a due one may sit behind a fresh one).
    pub fn take_where(&mut self, mut due: impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let mut out = Vec::new();
        let mut i = self.head;
        while i != NIL {
            let slot = &self.slots[i as usize];
            let next = slot.next;
            if due(
                &slot.key,
                slot.val.as_ref().expect("a linked slot holds a value"),
            ) {
                out.push(self.take(i));
            }
            i = next;
        }
        out
    }

    /// Remove everything, oldest first.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let mut out = Vec::with_capacity(self.len());
        while self.head != NIL {
            out.push(self.take(self.head));
        }
        self.slots.clear();
        self.free.clear();
        out
    }

    /// The `n` least recently used entries, oldest first, recency untouched: the
    /// candidates of an owner that picks its victim by value (`evict`).
    pub fn oldest(&self, n: usize) -> impl Iterator<Item = (&K, &V)> + '_ {
        let mut i = self.head;
        std::iter::from_fn(move || {
            let slot = self.slots.get(i as usize)?; // NIL is past the end
            i = slot.next;
            Some((
                &slot.key,
                slot.val.as_ref().expect("a linked slot holds a value"),
            ))
        })
        .take(n)
    }

    /// Evict the entry its owner chose (by value, not recency): removed and counted as
    /// an eviction, as `put` counts the least recently used one.
    pub fn evict(&mut self, key: &K) -> Option<V> {
        let v = self.remove(key)?;
        self.evictions += 1;
        Some(v)
    }
}

/// Anything that knows when its packet-time window started.
pub trait Window {
    fn start_ns(&self) -> i64;
}

/// A window behind a shared handle, as reducers keep windows that outlive their table
/// slot (a closed window handed on, a window other tables point at).
impl<W: Window> Window for Rc<RefCell<W>> {
    fn start_ns(&self) -> i64 {
        self.borrow().start_ns()
    }
}

/// One packet-time window per key, `span_ns` long, in an `Lru` (`Windows`). With
/// `grace_ns`, `close_due` waits that much longer (a window still being filled late).
pub struct Windows<K, V> {
    pub table: Lru<K, V>,
    span_ns: i64,
    grace_ns: i64,
}

impl<K: Clone + Hash + Eq, V: Window + Clone> Windows<K, V> {
    pub fn new(cap: usize, span_ns: i64) -> Self {
        Self::with_grace(cap, span_ns, 0)
    }

    /// `Windows(..., grace_ns=...)`: due only `span_ns + grace_ns` after the start.
    pub fn with_grace(cap: usize, span_ns: i64, grace_ns: i64) -> Self {
        Windows {
            table: Lru::new(cap),
            span_ns,
            grace_ns,
        }
    }

    /// The window of `key` that holds `ts_ns` (a handle to it); the one before it is
    /// handed to `close` first. A new key may evict the least recently used window, which
    /// `close` gets after the new window is made, as `BoundedTable.put` does.
    pub fn current(
        &mut self,
        key: K,
        ts_ns: i64,
        new: impl FnOnce(i64) -> V,
        mut close: impl FnMut(K, V),
    ) -> V {
        let span = self.span_ns;
        if let Some(w) = self.table.get(&key) {
            if ts_ns.saturating_sub(w.start_ns()) < span {
                return w.clone();
            }
            let fresh = new(ts_ns);
            let old = std::mem::replace(w, fresh.clone());
            close(key, old);
            return fresh;
        }
        let fresh = new(ts_ns);
        if let Some((k, v)) = self.table.put(key, fresh.clone()) {
            close(k, v);
        }
        fresh
    }

    /// Windows at least a span (plus the grace) old at `now_ns`, removed, oldest first.
    pub fn close_due(&mut self, now_ns: i64) -> Vec<(K, V)> {
        let span = self.span_ns.saturating_add(self.grace_ns);
        self.table
            .take_where(|_, w| now_ns.saturating_sub(w.start_ns()) >= span)
    }

    /// Every window, removed, oldest first.
    pub fn close_all(&mut self) -> Vec<(K, V)> {
        self.table.drain()
    }
}

/// Evictions (and refusals) of a table within one span that are thrashing: `ratio` times
/// its cap, at least one (a ratio of 0 would report every span). The one place the
/// scan reducers (`sweep`, `tga_scan`, `slow_scan`) derive it; the sweep and tga_scan
/// hand it on with their reports, so Python never recomputes it.
pub fn thrash_threshold(ratio: f64, cap: usize) -> u64 {
    ((ratio * cap as f64).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct W(i64, u32);
    impl Window for W {
        fn start_ns(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn lru_evicts_least_recently_used_and_counts() {
        let mut t: Lru<u8, u32> = Lru::new(2);
        assert!(t.put(1, 10).is_none());
        assert!(t.put(2, 20).is_none());
        assert_eq!(t.get(&1), Some(&mut 10)); // 1 is now the most recent
        assert_eq!(t.peek(&2), Some(&20)); // peek does not touch recency
        assert_eq!(t.put(3, 30), Some((2, 20)));
        assert_eq!(t.put(1, 11), None); // replacing is not an eviction
        assert_eq!(t.put(4, 40), Some((3, 30)));
        assert_eq!((t.len(), t.evictions()), (2, 2));
        assert_eq!(t.drain(), vec![(1, 11), (4, 40)]);
        assert!(t.is_empty());
    }

    #[test]
    fn windows_roll_over_evict_and_close_in_python_order() {
        let mut w: Windows<u8, W> = Windows::new(2, 100);
        let mut closed = Vec::new();
        let mut c = |k: u8, v: W| closed.push((k, v));
        w.current(1, 0, |t| W(t, 1), &mut c);
        w.current(2, 10, |t| W(t, 2), &mut c);
        // Same window: nothing closes, recency moves 1 to the end.
        assert_eq!(w.current(1, 99, |t| W(t, 9), &mut c), W(0, 1));
        // Rolled over: the old window of 1 closes, the new one starts at 100.
        assert_eq!(w.current(1, 100, |t| W(t, 3), &mut c), W(100, 3));
        // A new key evicts the least recently used (2).
        w.current(3, 120, |t| W(t, 4), &mut c);
        assert_eq!(closed, vec![(1, W(0, 1)), (2, W(10, 2))]);
        // Due at 219: 1 (start 100) is; 3 (start 120) is not.
        assert_eq!(w.close_due(219), vec![(1, W(100, 3))]);
        assert_eq!(w.close_all(), vec![(3, W(120, 4))]);
        assert_eq!(w.table.evictions(), 1);
    }

    #[test]
    fn close_due_walks_past_fresh_entries() {
        let mut w: Windows<u8, W> = Windows::new(8, 100);
        let mut c = |_: u8, _: W| {};
        w.current(1, 0, |t| W(t, 1), &mut c);
        w.current(2, 50, |t| W(t, 2), &mut c);
        w.current(1, 60, |t| W(t, 1), &mut c); // 1 is most recent but oldest by start
        w.current(3, 5, |t| W(t, 3), &mut c);
        assert_eq!(w.close_due(105), vec![(1, W(0, 1)), (3, W(5, 3))]);
    }

    #[test]
    fn grace_delays_close_due_and_lru_pops_oldest_while() {
        let mut w: Windows<u8, W> = Windows::with_grace(8, 100, 30);
        let mut c = |_: u8, _: W| {};
        w.current(1, 0, |t| W(t, 1), &mut c);
        assert!(w.close_due(129).is_empty());
        assert_eq!(w.close_due(130), vec![(1, W(0, 1))]);
        let mut t: Lru<u8, i64> = Lru::new(8);
        for (k, v) in [(1, 5), (2, 1), (3, 9)] {
            t.put(k, v);
        }
        *t.peek_mut(&2).unwrap() += 1; // no recency change
        assert_eq!(t.take_oldest_while(|_, &v| v < 9), vec![(1, 5), (2, 2)]);
        assert_eq!(t.remove(&3), Some(9));
        assert_eq!((t.len(), t.evictions()), (0, 0));
    }
}
