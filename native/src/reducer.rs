//! The contract between the fused loop and the families' native reducers.
//!
//! Owns the `Reducer` trait, the one Python class that carries any reducer
//! (`NativeReducer`), and the registry that builds a reducer from the `kind` a family's
//! `spec.yaml` declares under `reducers:`. A reducer is the counting half of a detection
//! (Zeek's SumStats: observe, reduce in packet-time windows, check thresholds): it sees
//! every decoded event of the kinds it observes, in packet order, inside the native loop,
//! and hands its Python detector only what must be judged — a threshold crossing, a
//! closed window, a novel event past a native pre-filter — as small Python values. The
//! Python side (suppression, evidence, alert ids) is unchanged, and its work grows with
//! those outputs, never with packets.
//!
//! Order: the pipeline calls reducers in the detectors' order for each event, and wraps
//! each output as `(owner, output)` so the engine hands it to the detector that owns the
//! reducer. Window closing on ticks and at the end of input is called from the Python
//! detector (`tick`, `flush`), so it interleaves with that detector's own windows exactly
//! as before.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::decode::events::Event;

/// Event kinds a reducer observes: the pipeline skips the call for the others, and the
/// decoder builds packet and tunnel events only when someone observes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observes {
    pub packets: bool,
    pub tunnels: bool,
    pub nd: bool,
    pub malformed: bool,
    pub fragments: bool,
    pub mld: bool,
    pub dhcpv6: bool,
    pub ext_options: bool,
    pub icmp_errors: bool,
    pub dns: bool,
}

impl Observes {
    /// The kinds as flags, in `Event`'s variant order (the order Python passes and reads
    /// them: `Pipeline.native_kinds`, `set_python_kinds`, `Forwarder`).
    pub fn flags(&self) -> Vec<bool> {
        self.as_array().to_vec()
    }

    /// `flags` without the allocation.
    #[inline]
    pub fn as_array(&self) -> [bool; Observes::KINDS] {
        [
            self.packets,
            self.tunnels,
            self.nd,
            self.malformed,
            self.fragments,
            self.mld,
            self.dhcpv6,
            self.ext_options,
            self.icmp_errors,
            self.dns,
        ]
    }

    /// The inverse of `flags`; a list of another length is an error naming both.
    pub fn from_flags(flags: &[bool]) -> PyResult<Observes> {
        match *flags {
            [packets, tunnels, nd, malformed, fragments, mld, dhcpv6, ext_options, icmp_errors, dns] => {
                Ok(Observes {
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
                })
            }
            _ => Err(PyValueError::new_err(format!(
                "event kinds: {} flags given, {} expected",
                flags.len(),
                Observes::default().flags().len()
            ))),
        }
    }

    /// Both sets of kinds.
    pub fn or(self, o: Observes) -> Observes {
        let (a, b) = (self.flags(), o.flags());
        let all: Vec<bool> = a.iter().zip(&b).map(|(x, y)| *x || *y).collect();
        Observes::from_flags(&all).unwrap_or(self)
    }

    /// The number of event kinds (the length of `flags`).
    pub const KINDS: usize = 10;

    /// An event's kind as its position in `flags` (the one mapping from events to
    /// kinds: `wants` and the pipeline's per-kind dispatch both go through it).
    #[inline]
    pub fn kind(ev: &Event) -> usize {
        match ev {
            Event::Packet(_) => 0,
            Event::Tunnel(_) => 1,
            Event::Nd(_) => 2,
            Event::Malformed(_) => 3,
            Event::Fragment(_) => 4,
            Event::Mld(_) => 5,
            Event::Dhcpv6(_) => 6,
            Event::ExtOptions(_) => 7,
            Event::IcmpError(_) => 8,
            Event::Dns(_) => 9,
        }
    }

    #[inline]
    pub fn wants(&self, ev: &Event) -> bool {
        self.as_array()[Observes::kind(ev)]
    }
}

/// One bounded table's figures for the replay summary: name, size, cap, evictions.
pub type TableStat = (String, usize, usize, u64);

/// The counting half of a detection; see the module docs. Never panics on any event
/// (the pipeline still catches a panic and turns it into a Python error).
pub trait Reducer {
    /// Which event kinds `observe` wants.
    fn observes(&self) -> Observes;

    /// One event, in packet order. Push outputs for Python (rare) with `out.push`.
    fn observe<'py>(&mut self, py: Python<'py>, ev: &Event, out: &mut Outputs<'py>)
        -> PyResult<()>;

    /// Packet time reached `now_ns` on a tick: close due windows.
    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64, out: &mut Outputs<'py>) -> PyResult<()>;

    /// End of input: close every window.
    fn flush<'py>(&mut self, py: Python<'py>, now_ns: i64, out: &mut Outputs<'py>) -> PyResult<()>;

    /// The bounded tables, for the summary and the live stats line, in the order the
    /// family made them.
    fn tables(&self) -> Vec<TableStat>;

    /// Alerts held back by the reducer's own suppression (the summary's `suppressed`).
    fn suppressed(&self) -> u64 {
        0
    }

    /// A family-specific call from its Python detector (rare: policy facts, tests).
    fn call<'py>(
        &mut self,
        _py: Python<'py>,
        name: &str,
        _args: &Bound<'py, PyTuple>,
        _out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        Err(PyValueError::new_err(format!(
            "no reducer call named {name:?}"
        )))
    }
}

/// Where a reducer's outputs go: a Python list, each output wrapped with its owner.
pub struct Outputs<'py> {
    list: Bound<'py, PyList>,
    owner: Option<usize>,
}

impl<'py> Outputs<'py> {
    pub fn new(list: Bound<'py, PyList>, owner: Option<usize>) -> Self {
        Outputs { list, owner }
    }

    /// Hand one output to the owning detector.
    pub fn push(&mut self, item: Bound<'py, PyAny>) -> PyResult<()> {
        match self.owner {
            Some(owner) => self.list.append((owner, item)),
            None => self.list.append(item),
        }
    }

    pub fn list(&self) -> &Bound<'py, PyList> {
        &self.list
    }
}

/// Builds a reducer from the `kind` a spec declares and its resolved settings (a dict
/// of the family's thresholds and policy facts). Adding a kind adds one arm here.
pub type Builder = fn(&Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>>;

fn builder(kind: &str) -> Option<Builder> {
    crate::reduce::builders()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, b)| b)
}

/// Any native reducer, as Python holds it. Not thread-safe: one per engine.
#[pyclass(unsendable, module = "detectors._native")]
pub struct NativeReducer {
    pub(crate) inner: Box<dyn Reducer>,
    #[pyo3(get)]
    kind: String,
}

impl NativeReducer {
    pub(crate) fn observes(&self) -> Observes {
        self.inner.observes()
    }
}

#[pymethods]
impl NativeReducer {
    /// Build the reducer `kind` with `settings` (see the family's spec `reducers:`).
    #[new]
    fn new(kind: &str, settings: &Bound<'_, PyAny>) -> PyResult<Self> {
        let build = builder(kind).ok_or_else(|| {
            PyValueError::new_err(format!("unknown native reducer kind {kind:?}"))
        })?;
        Ok(NativeReducer {
            inner: build(settings)?,
            kind: kind.to_string(),
        })
    }

    /// Close due windows at `now_ns`; the outputs, in order.
    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Bound<'py, PyList>> {
        let mut out = Outputs::new(PyList::empty(py), None);
        guard(|| self.inner.tick(py, now_ns, &mut out))?;
        Ok(out.list)
    }

    /// End of input: close every window; the outputs, in order.
    fn flush<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Bound<'py, PyList>> {
        let mut out = Outputs::new(PyList::empty(py), None);
        guard(|| self.inner.flush(py, now_ns, &mut out))?;
        Ok(out.list)
    }

    /// `[(name, size, cap, evictions), ...]` of the reducer's bounded tables.
    fn tables(&self) -> Vec<TableStat> {
        self.inner.tables()
    }

    /// Alerts its own suppression held back.
    fn suppressed(&self) -> u64 {
        self.inner.suppressed()
    }

    /// A family-specific call; its outputs, in order.
    #[pyo3(signature = (name, *args))]
    fn call<'py>(
        &mut self,
        py: Python<'py>,
        name: &str,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut out = Outputs::new(PyList::empty(py), None);
        guard(|| self.inner.call(py, name, args, &mut out))?;
        Ok(out.list)
    }
}

/// Runs reducer code so that a panic becomes a Python error, never an abort.
pub(crate) fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!(
                "native reducer panicked: {what}"
            )))
        }
    }
}

/// Registers `NativeReducer` on `detectors._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeReducer>()?;
    Ok(())
}
