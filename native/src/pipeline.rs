//! The fused per-packet loop: records in, decoded, counted natively; Python gets the rest.
//!
//! Owns the packet-time clock and the hand-over to Python. One `Pipeline` per packet
//! stream (one capture, one live ring): it pulls records from a native source (a
//! capture `Reader`) or from a Python list of record tuples (tests, live batches),
//! decodes them with the stream's `Decoder`, feeds every decoded IPv6 packet to the
//! native reducers (`crate::reduce`), and builds Python event objects only for the
//! kinds a Python detection still subscribes to.
//!
//! What Python receives is a batch: a list of items in packet order, each either a
//! `detectors.events` event or a reducer output (a tuple the owning detector reads).
//! A batch ends early at a clock tick: the record whose timestamp reaches the next
//! tick is held back and decoded on the next call, after Python has run the tick
//! (fragment expiry, detectors' window closing, which closes the native reducers'
//! windows too). That keeps every event, every reducer update and every window close
//! in exactly the order the per-packet Python loop had, so verdicts do not change.
//! Ticks come at most once per second of packet time, so Python's work grows with
//! time and events, not with packets.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::capture::{to_py, PyCaptureReader};
use crate::decode::events::Event;
use crate::decode::py::PyDecoder;
use crate::decode::topy::Converter;
use crate::decode::wire::Item;
use crate::live::{os_error, wait_readable, LiveRing};
use crate::merge::Merge;
use crate::record::Rec;
use crate::reducer::{guard, NativeReducer, Observes, Outputs};

/// Packet time and its ticks, one rule for every stream: time never runs backwards, and
/// a tick is due at the first timestamp at or past the next tick, the one after that
/// `tick_ns` later. The pipeline and a `--workers` worker's `Forwarder` both keep one,
/// so a worker times fragments out on the ticks a single process would.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The latest timestamp seen.
    pub now_ns: i64,
    next_tick: i64,
    tick_ns: i64,
}

impl Clock {
    pub fn new(tick_ns: i64) -> Self {
        Clock {
            now_ns: 0,
            next_tick: 0,
            tick_ns,
        }
    }

    /// Move to a record at `ts` unless it reaches the next tick: false then, and the
    /// record waits until `advance` has run the tick.
    #[inline]
    pub fn follow(&mut self, ts: i64) -> bool {
        if ts > self.now_ns {
            if ts >= self.next_tick {
                return false;
            }
            self.now_ns = ts;
        }
        true
    }

    /// Move to `ts` (never back); true when that is a tick.
    pub fn advance(&mut self, ts: i64) -> bool {
        if ts <= self.now_ns {
            return false;
        }
        self.now_ns = ts;
        if ts < self.next_tick {
            return false;
        }
        self.next_tick = ts + self.tick_ns;
        true
    }
}

/// Registers `Pipeline` on `detectors._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pipeline>()?;
    m.add_function(wrap_pyfunction!(time_native, m)?)?;
    Ok(())
}

/// A record held back across a tick (owned: the source's buffer moves on).
struct Pending {
    ts_ns: i64,
    iface: u32,
    linktype: u32,
    data: Vec<u8>,
    wire_len: u32,
}

impl Pending {
    fn of(rec: &Rec<'_>) -> Self {
        Pending {
            ts_ns: rec.ts_ns,
            iface: rec.iface,
            linktype: rec.linktype,
            data: rec.data.to_vec(),
            wire_len: rec.wire_len,
        }
    }

    fn rec(&self) -> Rec<'_> {
        Rec {
            ts_ns: self.ts_ns,
            iface: self.iface,
            linktype: self.linktype,
            data: &self.data,
            wire_len: self.wire_len,
        }
    }
}

/// The fused loop of one packet stream; see the module docs.
#[pyclass(module = "detectors._native", unsendable)]
pub struct Pipeline {
    decoder: Py<PyDecoder>,
    /// The families' native reducers, in detector order, with the index of the
    /// detector that owns each (outputs go back to it).
    reducers: Vec<(usize, Py<NativeReducer>)>,
    /// The event kinds a Python detection subscribes to: only those become objects.
    python: Observes,
    /// Packet time and its ticks.
    clock: Clock,
    /// Record number within the current run (1-based, as `pcap_cnt`).
    #[pyo3(get, set)]
    frame: u64,
    pending: Option<Pending>,
    /// The rest of a live ring's block after a batch ended inside it (the block itself
    /// goes back to the kernel at once); decoded first on the next call.
    queue: std::collections::VecDeque<Pending>,
    /// A source error met after some events were batched: raised on the next call.
    error: Option<PyErr>,
    out: Vec<Event>,
    /// `live --workers N`: the workers' event batches, merged in packet order.
    merge: Merge,
}

/// What one batch call returns: items for Python, a tick due at that time (Python
/// calls `advance` with it before the next call), and whether the source is done.
type Batch<'py> = (Bound<'py, PyList>, Option<i64>, bool);

/// What one batch call works with, borrowed for the call: the items it hands Python,
/// the decoder, the reducers and the event converter.
type Run<'py> = (
    Bound<'py, PyList>,
    PyRefMut<'py, PyDecoder>,
    Lent<'py>,
    Converter<'py>,
);

/// The reducers, borrowed for one batch call, each with its outputs already wrapped for
/// its owner, and for each event kind the reducers that observe it. Both are built once
/// per batch: per event, the loop then calls only the reducers that want its kind, with
/// no reference counting and no flag test per reducer (the dispatch was a tenth of the
/// office mix's replay once ten families observed packets).
pub(crate) struct Lent<'py> {
    reducers: Vec<(PyRefMut<'py, NativeReducer>, Outputs<'py>)>,
    by_kind: [Vec<usize>; Observes::KINDS],
}

impl Pipeline {
    /// Set up one batch call; with `resume`, first decode the record a tick held back.
    fn begin<'py>(&mut self, py: Python<'py>, resume: bool) -> PyResult<Run<'py>> {
        let items = PyList::empty(py);
        let mut dec = self.decoder.clone_ref(py).into_bound(py).try_borrow_mut()?;
        let mut reducers = self.borrow(py, &items)?;
        let mut conv = Converter::new(py)?;
        if resume {
            if let Some(p) = self.pending.take() {
                let rec = p.rec();
                self.one(py, &mut dec, &mut reducers, &mut conv, &items, &rec)?;
            }
        }
        Ok((items, dec, reducers, conv))
    }

    /// Move the clock for a record at `ts`; false when it reaches the next tick.
    #[inline]
    fn clock(&mut self, ts: i64) -> bool {
        self.clock.follow(ts)
    }

    /// Decode one record and hand its events on.
    fn one<'py>(
        &mut self,
        py: Python<'py>,
        dec: &mut PyDecoder,
        reducers: &mut Lent<'py>,
        conv: &mut Converter<'py>,
        items: &Bound<'py, PyList>,
        rec: &Rec<'_>,
    ) -> PyResult<()> {
        self.frame += 1;
        self.out.clear();
        dec.inner.decode(rec, self.frame, &mut self.out);
        self.hand_on(py, reducers, conv, items)
    }

    /// Hand the decoded events in `self.out` to the reducers that observe their kind, in
    /// detector order, and to Python when a Python detector subscribes to it.
    fn hand_on<'py>(
        &self,
        py: Python<'py>,
        lent: &mut Lent<'py>,
        conv: &mut Converter<'py>,
        items: &Bound<'py, PyList>,
    ) -> PyResult<()> {
        // One panic guard for the events of the record, not one per reducer call: a
        // panic still becomes a Python error, before any later event is handed on.
        guard(|| {
            for ev in &self.out {
                for &i in &lent.by_kind[Observes::kind(ev)] {
                    let (r, out) = &mut lent.reducers[i];
                    r.inner.observe(py, ev, out)?;
                }
                if self.python.wants(ev) {
                    items.append(conv.event(ev)?)?;
                }
            }
            Ok(())
        })
    }

    /// Borrow every reducer for one batch (no Python code runs inside a batch), its
    /// outputs going to `items`.
    fn borrow<'py>(&self, py: Python<'py>, items: &Bound<'py, PyList>) -> PyResult<Lent<'py>> {
        let mut lent = Lent {
            reducers: Vec::with_capacity(self.reducers.len()),
            by_kind: Default::default(),
        };
        for (i, (owner, r)) in self.reducers.iter().enumerate() {
            let r = r.clone_ref(py).into_bound(py).try_borrow_mut()?;
            for (k, wanted) in r.observes().flags().into_iter().enumerate() {
                if wanted {
                    lent.by_kind[k].push(i);
                }
            }
            lent.reducers
                .push((r, Outputs::new(items.clone(), Some(*owner))));
        }
        Ok(lent)
    }
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (decoder, tick_ns))]
    fn new(decoder: Py<PyDecoder>, tick_ns: i64) -> Self {
        Pipeline {
            decoder,
            reducers: Vec::new(),
            python: Observes {
                packets: false,
                tunnels: true,
                nd: true,
                malformed: true,
                fragments: true,
                mld: false,
                dhcpv6: false,
                ext_options: true,
                icmp_errors: true,
                dns: false,
            },
            clock: Clock::new(tick_ns),
            frame: 0,
            pending: None,
            queue: std::collections::VecDeque::new(),
            error: None,
            out: Vec::new(),
            merge: Merge::default(),
        }
    }

    /// Add a native reducer owned by the detector at index `owner`.
    fn add_reducer(&mut self, owner: usize, reducer: Py<NativeReducer>) {
        self.reducers.push((owner, reducer));
    }

    /// Which decoded kinds Python detections subscribe to (only those become objects).
    /// One flag per `Event` variant, positional as `native_kinds` answers them.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (packets, tunnels, nd, malformed, fragments, mld=false, dhcpv6=false, ext_options=false, icmp_errors=false, dns=false))]
    fn set_python_kinds(
        &mut self,
        packets: bool,
        tunnels: bool,
        nd: bool,
        malformed: bool,
        fragments: bool,
        mld: bool,
        dhcpv6: bool,
        ext_options: bool,
        icmp_errors: bool,
        dns: bool,
    ) {
        self.python = Observes {
            packets,
            tunnels,
            nd,
            malformed,
            fragments,
            mld,
            dhcpv6,
            ext_options,
            icmp_errors,
            dns,
        };
    }

    /// Event kinds some native reducer observes, one flag per `Event` variant in its
    /// order (`Observes::flags`), so the engine asks the decoder to build them.
    fn native_kinds(&self, py: Python<'_>) -> PyResult<Vec<bool>> {
        let mut all = Observes::default();
        for (_, r) in &self.reducers {
            all = all.or(r.bind(py).try_borrow()?.observes());
        }
        Ok(all.flags())
    }

    /// Move packet time to `now_ns`; true when a tick is due (Python then expires
    /// fragments and closes windows). Time never runs backwards.
    fn advance(&mut self, now_ns: i64) -> bool {
        self.clock.advance(now_ns)
    }

    /// Packet time: the latest timestamp seen (never runs backwards).
    #[getter]
    fn now_ns(&self) -> i64 {
        self.clock.now_ns
    }

    /// Time out stale fragments at `now_ns` (on a tick): their anomaly events go to the
    /// reducers and to Python exactly as decoded events do.
    fn expire<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Bound<'py, PyList>> {
        let (items, mut dec, mut reducers, mut conv) = self.begin(py, false)?;
        self.out.clear();
        dec.inner.expire(now_ns, &mut self.out);
        self.hand_on(py, &mut reducers, &mut conv, &items)?;
        Ok(items)
    }

    /// Start a new run: record numbers count from 1 again (one capture, one batch of
    /// live records), as `pcap_cnt` does.
    fn restart(&mut self) {
        self.frame = 0;
    }

    /// Read and decode from a capture until `max_items` items are batched, a tick is
    /// due, or the capture ends. Raises the reader's error (CaptureError) after the
    /// batch that preceded it.
    fn run_capture<'py>(
        &mut self,
        py: Python<'py>,
        reader: &Bound<'py, PyCaptureReader>,
        max_items: usize,
    ) -> PyResult<Batch<'py>> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        let (items, mut dec, mut reducers, mut conv) = self.begin(py, true)?;
        let mut guard = reader.try_borrow_mut()?;
        let source = guard.reader_mut();
        loop {
            if items.len() >= max_items {
                return Ok((items, None, false));
            }
            let rec = match source.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => return Ok((items, None, true)),
                Err(e) => {
                    let err = to_py(py, e);
                    if items.is_empty() {
                        return Err(err);
                    }
                    self.error = Some(err);
                    return Ok((items, None, false));
                }
            };
            if !self.clock(rec.ts_ns) {
                self.pending = Some(Pending::of(&rec));
                return Ok((items, Some(rec.ts_ns), false));
            }
            self.one(py, &mut dec, &mut reducers, &mut conv, &items, &rec)?;
        }
    }

    /// One block of a live ring (waiting up to `timeout_ms` for it, without the GIL):
    /// `(items, tick, frames, bytes, more)`. `frames`/`bytes` count what was taken from
    /// the ring in this call; `more` says records of the block are still queued (a tick
    /// or `max_items` ended the batch inside it): call again with timeout 0. Link down
    /// and other ring errors raise OSError as `LiveRing.next_batch` does.
    #[allow(clippy::type_complexity)]
    fn run_ring<'py>(
        &mut self,
        py: Python<'py>,
        ring: &Bound<'py, LiveRing>,
        timeout_ms: i32,
        max_items: usize,
    ) -> PyResult<(Bound<'py, PyList>, Option<i64>, u64, u64, bool)> {
        let (items, mut dec, mut reducers, mut conv) = self.begin(py, true)?;
        // What a previous call left of its block, with the clock checked as usual.
        while let Some(p) = self.queue.pop_front() {
            if items.len() >= max_items {
                self.queue.push_front(p);
                return Ok((items, None, 0, 0, true));
            }
            if !self.clock(p.ts_ns) {
                let ts = p.ts_ns;
                self.pending = Some(p);
                return Ok((items, Some(ts), 0, 0, true));
            }
            let rec = p.rec();
            self.one(py, &mut dec, &mut reducers, &mut conv, &items, &rec)?;
        }
        let mut guard = ring.try_borrow_mut()?;
        let ring = guard.ring()?;
        if timeout_ms != 0 {
            let fd = ring.fd();
            if !py.allow_threads(|| wait_readable(fd, timeout_ms)) {
                return Ok((items, None, 0, 0, false));
            }
        }
        let mut block = match ring.next_block(0) {
            Ok(Some(block)) => block,
            Ok(None) => return Ok((items, None, 0, 0, false)),
            Err(e) => return Err(os_error(&e, None)),
        };
        let (mut frames, mut bytes) = (0u64, 0u64);
        let mut tick = None;
        while let Some(rec) = block.next() {
            frames += 1;
            bytes += u64::from(rec.wire_len);
            if tick.is_some() || items.len() >= max_items {
                self.queue.push_back(Pending::of(&rec));
                continue;
            }
            if !self.clock(rec.ts_ns) {
                tick = Some(rec.ts_ns);
                self.pending = Some(Pending::of(&rec));
                continue;
            }
            self.one(py, &mut dec, &mut reducers, &mut conv, &items, &rec)?;
        }
        let more = !self.queue.is_empty() || self.pending.is_some();
        Ok((items, tick, frames, bytes, more))
    }

    /// Count the events of `n` worker processes (`crate::merge`): `feed` hands over
    /// their batches, `run_merged` takes them in packet order.
    fn set_sources(&mut self, n: usize) {
        self.merge = Merge::new(n);
    }

    /// Queue worker `k`'s batch (`Forwarder.take`) and move its watermark.
    fn feed(&mut self, k: usize, blob: &[u8], items: usize, watermark: i64) -> PyResult<()> {
        self.merge.feed(k, blob, items, watermark)
    }

    /// Take over `other`'s worker queues (a reload replaced the engine; nothing queued
    /// is lost).
    fn adopt_sources(&mut self, mut other: PyRefMut<'_, Pipeline>) {
        self.merge = std::mem::take(&mut other.merge);
    }

    /// Worker `k` sends nothing more (it ended).
    fn end_source(&mut self, k: usize) -> PyResult<()> {
        self.merge.end(k)
    }

    /// Items queued from worker `k` (all workers when `k` is None).
    #[pyo3(signature = (k=None))]
    fn queued(&self, k: Option<usize>) -> usize {
        k.map_or_else(|| self.merge.total(), |k| self.merge.queued(k))
    }

    /// The lowest of the workers' watermarks.
    fn watermark(&self) -> i64 {
        self.merge.watermark()
    }

    /// Count queued worker items in packet order, until `max_items` are batched, a
    /// tick is due (the item stays queued), or the next item must wait for a worker:
    /// `(items, tick, waiting)`.
    fn run_merged<'py>(
        &mut self,
        py: Python<'py>,
        max_items: usize,
    ) -> PyResult<(Bound<'py, PyList>, Option<i64>, bool)> {
        let (items, _dec, mut reducers, mut conv) = self.begin(py, false)?;
        loop {
            if items.len() >= max_items {
                return Ok((items, None, false));
            }
            let Some(k) = self.merge.next_source()? else {
                return Ok((items, None, true));
            };
            let ts = self
                .merge
                .peek(k)
                .map_or(self.clock.now_ns, |item| item.key().0);
            if !self.clock(ts) {
                return Ok((items, Some(ts), false));
            }
            if let Some(Item::Event(ev)) = self.merge.pop(k) {
                self.out.clear();
                self.out.push(ev);
                self.hand_on(py, &mut reducers, &mut conv, &items)?;
            }
        }
    }

    /// The same over a list of `(ts_ns, iface, linktype, data, wire_len)` tuples, from
    /// `start`; returns the batch and the index to continue from (the list's length
    /// when done). A record due for a tick is not consumed: the next call starts at it.
    fn run_records<'py>(
        &mut self,
        py: Python<'py>,
        records: &Bound<'py, PyList>,
        start: usize,
        max_items: usize,
    ) -> PyResult<(Bound<'py, PyList>, Option<i64>, usize)> {
        let (items, mut dec, mut reducers, mut conv) = self.begin(py, false)?;
        let n = records.len();
        let mut i = start;
        while i < n {
            if items.len() >= max_items {
                break;
            }
            let item = records.get_item(i)?;
            let t = item.downcast::<PyTuple>()?;
            let ts_ns: i64 = t.get_item(0)?.extract()?;
            // A record at a tick is decoded only after Python ran the tick (`advance`
            // moves the tick past it, so the next call decodes it).
            if !self.clock(ts_ns) {
                return Ok((items, Some(ts_ns), i));
            }
            let data_obj = t.get_item(3)?;
            let owned: Vec<u8>;
            let data: &[u8] = match data_obj.downcast::<pyo3::types::PyBytes>() {
                Ok(b) => b.as_bytes(),
                Err(_) => {
                    owned = data_obj.extract()?;
                    &owned
                }
            };
            let rec = Rec {
                ts_ns,
                iface: t.get_item(1)?.extract()?,
                linktype: t.get_item(2)?.extract()?,
                data,
                wire_len: t.get_item(4)?.extract()?,
            };
            self.one(py, &mut dec, &mut reducers, &mut conv, &items, &rec)?;
            i += 1;
        }
        Ok((items, None, i))
    }
}

/// The native stages alone, for `make bench`: read `path` (and decode every frame when
/// `decode`, with every event kind built) without Python; `(frames, seconds)`.
#[pyfunction]
#[pyo3(signature = (path, decode))]
pub fn time_native(py: Python<'_>, path: &str, decode: bool) -> PyResult<(u64, f64)> {
    use crate::capture::Reader;
    use crate::decode::{Decoder, DecoderLimits};
    let mut reader =
        Reader::open(path).map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    py.allow_threads(move || {
        let start = std::time::Instant::now();
        let mut dec = Decoder::new(DecoderLimits::default());
        dec.want_packets = true;
        dec.want_tunnels = true;
        dec.want_mld = true;
        let mut out = Vec::new();
        let mut frames = 0u64;
        while let Ok(Some(rec)) = reader.next_record() {
            frames += 1;
            if decode {
                out.clear();
                dec.decode(&rec, frames, &mut out);
            }
        }
        Ok((frames, start.elapsed().as_secs_f64()))
    })
}
