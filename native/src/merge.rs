//! `live --workers N`: N processes decode one link's frames, one process counts them.
//!
//! Owns both halves of the split. A worker's `Forwarder` reads its ring (its share of
//! the link, by the kernel's fanout flow hash), decodes every frame with its own
//! decoder (and its own fragment reassembly: fanout sends all fragments of a datagram
//! to one worker), and packs the events the counting side needs into a batch of
//! bytes (`decode::wire`). A frame that yields no such event still leaves its time
//! (a mark), so the counting side's packet-time clock ticks where replay's would.
//!
//! The counting process keeps one `Merge`: a queue of batches per worker and each
//! worker's watermark (every frame up to it has been sent). The `Pipeline` takes items
//! from it in packet-time order, (time, frame) being the key, and only an item that no
//! worker can still precede: each other worker has either a queued item after it or a
//! watermark at or past it. Every event therefore reaches the families' reducers (and
//! their Python detectors) in one stream, in the order one process reading the whole
//! link would have seen: a scan or flood whose flows the kernel spread over the
//! workers is counted once, whole, with the same windows, thresholds and alert ids as
//! `--workers 1` and replay. What runs in parallel is the reading and decoding; the
//! counting stays in one process so that its state never needs merging.

use std::collections::VecDeque;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::decode::events::Event;
use crate::decode::py::PyDecoder;
use crate::decode::wire::{put_event, put_mark, Item, Rd, Wire};
use crate::decode::Decoder;
use crate::live::{os_error, wait_readable, LiveRing};
use crate::pipeline::Clock;
use crate::record::Rec;
use crate::reducer::Observes;

/// Registers `Forwarder` on `detectors._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Forwarder>()?;
    Ok(())
}

/// A worker's half: decode, keep what the counting process needs, pack it.
#[pyclass(module = "detectors._native", unsendable)]
pub struct Forwarder {
    decoder: Py<PyDecoder>,
    /// Event kinds the counting process uses (its reducers' and Python's).
    kinds: Observes,
    /// This worker's packet time (every frame up to it has been packed: the watermark)
    /// and its ticks, by the pipeline's rule.
    clock: Clock,
    /// Frames read since the last `restart` (1-based, the events' `pcap_cnt`).
    #[pyo3(get, set)]
    frame: u64,
    /// Time of the last item packed: a mark at the same time adds nothing.
    last_ts: i64,
    out: Vec<Event>,
    buf: Vec<u8>,
    items: usize,
}

impl Forwarder {
    /// The worker's clock, as the pipeline's: on a tick, stale fragments are timed out
    /// (before the frame that reached it, as in replay).
    fn clock(&mut self, dec: &mut Decoder, ts: i64) {
        if self.clock.advance(ts) {
            self.out.clear();
            dec.expire(ts, &mut self.out);
            self.pack_out(ts);
        }
    }

    /// Pack the wanted events in `self.out`; true if any.
    fn pack_out(&mut self, ts: i64) -> bool {
        let mut any = false;
        for ev in &self.out {
            if self.kinds.wants(ev) {
                put_event(ev, &mut self.buf);
                self.items += 1;
                any = true;
            }
        }
        if any {
            self.last_ts = self.last_ts.max(ts);
        }
        any
    }

    fn record(&mut self, dec: &mut Decoder, rec: &Rec<'_>, frame: Option<u64>) {
        self.clock(dec, rec.ts_ns);
        self.frame = frame.unwrap_or(self.frame + 1);
        self.out.clear();
        dec.decode(rec, self.frame, &mut self.out);
        if !self.pack_out(rec.ts_ns) && rec.ts_ns > self.last_ts {
            put_mark(rec.ts_ns, self.frame, &mut self.buf);
            self.items += 1;
            self.last_ts = rec.ts_ns;
        }
    }
}

#[pymethods]
impl Forwarder {
    /// `kinds`: `(packets, tunnels, nd, malformed, fragments, icmp_errors)`, the kinds
    /// the counting process's engine uses (`Pipeline.native_kinds` or'ed with Python's).
    #[new]
    #[pyo3(signature = (decoder, tick_ns, kinds))]
    fn new(
        decoder: Py<PyDecoder>,
        tick_ns: i64,
        kinds: (bool, bool, bool, bool, bool, bool),
    ) -> Self {
        let (packets, tunnels, nd, malformed, fragments, icmp_errors) = kinds;
        Forwarder {
            decoder,
            kinds: Observes {
                packets,
                tunnels,
                nd,
                malformed,
                fragments,
                icmp_errors,
            },
            clock: Clock::new(tick_ns),
            frame: 0,
            last_ts: i64::MIN,
            out: Vec::new(),
            buf: Vec::new(),
            items: 0,
        }
    }

    /// Record numbers count from 1 again (a live run starts).
    fn restart(&mut self) {
        self.frame = 0;
    }

    /// Decode one block of a live ring (waiting up to `timeout_ms` for it) into the
    /// batch; `(frames, bytes)` taken from the ring. Raises the ring's OSError.
    fn run_ring(
        &mut self,
        py: Python<'_>,
        ring: &Bound<'_, LiveRing>,
        timeout_ms: i32,
    ) -> PyResult<(u64, u64)> {
        let mut guard = ring.try_borrow_mut()?;
        let ring = guard.ring()?;
        if timeout_ms != 0 {
            let fd = ring.fd();
            if !py.allow_threads(|| wait_readable(fd, timeout_ms)) {
                return Ok((0, 0));
            }
        }
        let mut block = match ring.next_block(0) {
            Ok(Some(block)) => block,
            Ok(None) => return Ok((0, 0)),
            Err(e) => return Err(os_error(&e, None)),
        };
        let dec_obj = self.decoder.clone_ref(py);
        let mut dec = dec_obj.bind(py).try_borrow_mut()?;
        let (mut frames, mut bytes) = (0u64, 0u64);
        while let Some(rec) = block.next() {
            frames += 1;
            bytes += u64::from(rec.wire_len);
            self.record(&mut dec.inner, &rec, None);
        }
        Ok((frames, bytes))
    }

    /// Decode `(ts_ns, iface, linktype, data, wire_len[, frame])` tuples into the batch;
    /// an explicit `frame` numbers the record (tests split one capture over workers and
    /// keep its numbering).
    fn run_records(&mut self, py: Python<'_>, records: &Bound<'_, PyList>) -> PyResult<()> {
        let dec_obj = self.decoder.clone_ref(py);
        let mut dec = dec_obj.bind(py).try_borrow_mut()?;
        for item in records.iter() {
            let t = item.downcast::<PyTuple>()?;
            let data: Vec<u8> = t.get_item(3)?.extract()?;
            let rec = Rec {
                ts_ns: t.get_item(0)?.extract()?,
                iface: t.get_item(1)?.extract()?,
                linktype: t.get_item(2)?.extract()?,
                data: &data,
                wire_len: t.get_item(4)?.extract()?,
            };
            let frame = if t.len() > 5 {
                Some(t.get_item(5)?.extract()?)
            } else {
                None
            };
            self.record(&mut dec.inner, &rec, frame);
        }
        Ok(())
    }

    /// Move this worker's time to `now_ns` with no frame (its ring is empty): stale
    /// fragments time out on a tick, and the watermark moves on.
    fn advance(&mut self, py: Python<'_>, now_ns: i64) -> PyResult<()> {
        let dec_obj = self.decoder.clone_ref(py);
        let mut dec = dec_obj.bind(py).try_borrow_mut()?;
        self.clock(&mut dec.inner, now_ns);
        Ok(())
    }

    /// The batch so far and its item count, then start a new one; with the watermark.
    fn take<'py>(&mut self, py: Python<'py>) -> (Bound<'py, PyBytes>, usize, i64) {
        let blob = PyBytes::new(py, &self.buf);
        let n = self.items;
        self.buf.clear();
        self.items = 0;
        (blob, n, self.clock.now_ns)
    }

    /// This worker's packet time: every frame up to it has been packed (the watermark).
    #[getter]
    fn now_ns(&self) -> i64 {
        self.clock.now_ns
    }

    /// Items packed and not yet taken.
    #[getter]
    fn pending(&self) -> usize {
        self.items
    }
}

/// One worker's queue on the counting side.
#[derive(Default)]
struct Source {
    batches: VecDeque<Vec<u8>>,
    /// Read position in the front batch.
    pos: usize,
    head: Option<Item>,
    queued: usize,
    watermark: i64,
}

impl Source {
    /// Make sure `head` holds the next item if one is queued.
    fn load(&mut self) -> Result<(), crate::decode::wire::WireError> {
        while self.head.is_none() {
            let Some(front) = self.batches.front() else {
                return Ok(());
            };
            let mut r = Rd::new(&front[self.pos..]);
            if r.at_end() {
                self.batches.pop_front();
                self.pos = 0;
                continue;
            }
            let item = Item::get(&mut r)?;
            self.pos += r.pos();
            self.head = Some(item);
        }
        Ok(())
    }
}

/// The counting side's queues; see the module docs.
#[derive(Default)]
pub struct Merge {
    sources: Vec<Source>,
}

impl Merge {
    pub fn new(n: usize) -> Self {
        Merge {
            sources: (0..n)
                .map(|_| Source {
                    watermark: i64::MIN,
                    ..Source::default()
                })
                .collect(),
        }
    }

    fn source(&mut self, k: usize) -> PyResult<&mut Source> {
        self.sources
            .get_mut(k)
            .ok_or_else(|| PyValueError::new_err(format!("no worker {k}")))
    }

    pub fn feed(&mut self, k: usize, blob: &[u8], items: usize, watermark: i64) -> PyResult<()> {
        let s = self.source(k)?;
        if !blob.is_empty() {
            s.batches.push_back(blob.to_vec());
            s.queued += items;
        }
        s.watermark = s.watermark.max(watermark);
        Ok(())
    }

    /// The worker sends nothing more: it never holds the others back again.
    pub fn end(&mut self, k: usize) -> PyResult<()> {
        self.source(k)?.watermark = i64::MAX;
        Ok(())
    }

    pub fn queued(&self, k: usize) -> usize {
        self.sources.get(k).map_or(0, |s| s.queued)
    }

    pub fn total(&self) -> usize {
        self.sources.iter().map(|s| s.queued).sum()
    }

    /// The lowest watermark: every worker has sent everything up to it.
    pub fn watermark(&self) -> i64 {
        self.sources
            .iter()
            .map(|s| s.watermark)
            .min()
            .unwrap_or(i64::MIN)
    }

    /// The worker whose head item comes next, if it may go now.
    pub fn next_source(&mut self) -> PyResult<Option<usize>> {
        let mut best: Option<(i64, u64, usize)> = None;
        for (k, s) in self.sources.iter_mut().enumerate() {
            s.load()
                .map_err(|e| PyValueError::new_err(format!("worker {k}: {e}")))?;
            if let Some(item) = &s.head {
                let (ts, frame) = item.key();
                let better = match best {
                    None => true,
                    Some((bt, bf, _)) => (ts, frame) < (bt, bf),
                };
                if better {
                    best = Some((ts, frame, k));
                }
            }
        }
        let Some((ts, _, k)) = best else {
            return Ok(None);
        };
        // A worker with nothing queued may still send something as early, unless its
        // watermark is past this time (a frame at the watermark's own time may still
        // be on its way, with a lower frame number).
        let blocked = self
            .sources
            .iter()
            .any(|s| s.head.is_none() && s.watermark <= ts);
        Ok(if blocked { None } else { Some(k) })
    }

    pub fn peek(&self, k: usize) -> Option<&Item> {
        self.sources[k].head.as_ref()
    }

    pub fn pop(&mut self, k: usize) -> Option<Item> {
        let s = &mut self.sources[k];
        let item = s.head.take();
        if item.is_some() {
            s.queued = s.queued.saturating_sub(1);
        }
        item
    }
}
