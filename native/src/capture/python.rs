//! The Python face of the capture reader: `detectors.capture`'s `CaptureReader`,
//! `open_capture`, `Interface` and `CaptureError`.
//!
//! Owns the conversions only: records become `(ts_ns, iface_index, linktype,
//! data, orig_len)` tuples, a Python binary stream can be the input (tests and
//! callers that pass `stdin=`), and no Rust panic reaches Python (it becomes a
//! `CaptureError`). Fused native loops take the `Reader` itself through
//! `PyCaptureReader::reader_mut` and never build tuples.

use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::reader::{display_name, Reader, CHUNK, DEFAULT_MAX_INTERFACES, MAX_BLOCK, MAX_CAPLEN};
use super::source::Input;

pyo3::create_exception!(
    detectors.capture,
    CaptureError,
    PyException,
    "The input cannot be read as a capture. The message names the file."
);

/// Registers the capture API on `detectors._native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    m.add_class::<PyInterface>()?;
    m.add_class::<PyCaptureReader>()?;
    m.add_class::<Records>()?;
    m.add_function(wrap_pyfunction!(open_capture, m)?)?;
    m.add("CHUNK", CHUNK)?;
    m.add("DEFAULT_MAX_INTERFACES", DEFAULT_MAX_INTERFACES)?;
    m.add("MAX_CAPLEN", MAX_CAPLEN)?;
    m.add("MAX_BLOCK", MAX_BLOCK)?;
    Ok(())
}

/// A Python exception raised while reading a Python stream, carried through the
/// reader inside an `io::Error`. Its text is what Python's reader said for it.
#[derive(Debug)]
struct PyReadFailure {
    reason: String,
    /// Set for exceptions that are not read errors (not OSError or ValueError):
    /// those propagate unchanged, as they did from the Python reader.
    foreign: Option<PyErr>,
}

impl std::fmt::Display for PyReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PyReadFailure {}

/// A Python binary stream as input: `read1` when it has one (a pipe's available
/// bytes instead of waiting for a full chunk), else `read`. Never closed by us.
struct PyStream {
    read: Py<PyAny>,
    pending: Vec<u8>,
    at: usize,
}

impl PyStream {
    fn new(stream: &Bound<'_, PyAny>) -> PyResult<Self> {
        let read = match stream.getattr("read1") {
            Ok(read1) => read1,
            Err(_) => stream.getattr("read")?,
        };
        Ok(PyStream {
            read: read.unbind(),
            pending: Vec::new(),
            at: 0,
        })
    }
}

impl Read for PyStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.at);
            buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        Python::with_gil(|py| {
            let got = self
                .read
                .bind(py)
                .call1((buf.len(),))
                .map_err(|e| py_io_error(py, e))?;
            if got.is_none() {
                return Ok(0); // a non-blocking raw stream with nothing: the end, as before
            }
            let bytes: PyBackedBytes = got.extract().map_err(|e| py_io_error(py, e))?;
            let n = buf.len().min(bytes.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            if n < bytes.len() {
                // A stream that returns more than asked: keep the rest for later.
                self.pending = bytes[n..].to_vec();
                self.at = 0;
            }
            Ok(n)
        })
    }
}

/// The error text Python's reader gave (`_reason`): an OSError's strerror,
/// lowercased when capitalised, else the exception's text or type name.
fn py_io_error(py: Python<'_>, err: PyErr) -> io::Error {
    let value = err.value(py);
    let strerror = if err.is_instance_of::<PyOSError>(py) {
        value
            .getattr("strerror")
            .ok()
            .and_then(|s| s.extract::<String>().ok())
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    let reason = match strerror {
        Some(s) if s.chars().next().is_some_and(char::is_uppercase) => s.to_lowercase(),
        Some(s) => s,
        None => {
            let text = value.str().map(|s| s.to_string()).unwrap_or_default();
            if text.is_empty() {
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            } else {
                text
            }
        }
    };
    let read_error = err.is_instance_of::<PyOSError>(py) || err.is_instance_of::<PyValueError>(py);
    io::Error::other(PyReadFailure {
        reason,
        foreign: (!read_error).then_some(err),
    })
}

/// The Python exception for a reader error: `CaptureError`, or the stream's own
/// exception when it was not a read error.
pub(crate) fn to_py(py: Python<'_>, err: super::reader::CaptureError) -> PyErr {
    let foreign = err
        .io_source()
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<PyReadFailure>())
        .and_then(|f| f.foreign.as_ref());
    match foreign {
        Some(original) => original.clone_ref(py),
        None => CaptureError::new_err(err.message().to_string()),
    }
}

/// Open a pcap or pcapng capture, gzip-compressed or not; `-` reads `stdin`.
///
/// `stdin` is a binary stream for `-` (default: the process's standard input,
/// fd 0); it is never closed by the reader. `chunk_size` is the read size.
/// Raises `CaptureError` (naming the file) when the input is not a capture.
/// `max_interfaces` caps the interfaces kept (see `Reader::set_max_interfaces`).
#[pyfunction]
#[pyo3(signature = (path, stdin = None, chunk_size = CHUNK, max_interfaces = DEFAULT_MAX_INTERFACES))]
fn open_capture(
    py: Python<'_>,
    path: &str,
    stdin: Option<&Bound<'_, PyAny>>,
    chunk_size: usize,
    max_interfaces: usize,
) -> PyResult<PyCaptureReader> {
    let input: Option<Input> = match (path, stdin) {
        ("-", Some(stream)) if !stream.is_none() => Some(Box::new(PyStream::new(stream)?)),
        _ => None,
    };
    let name = display_name(path);
    let opened = catch_unwind(AssertUnwindSafe(|| match input {
        Some(input) => Reader::from_input(path, input, chunk_size),
        None => Reader::open_chunked(path, chunk_size),
    }));
    match opened {
        Ok(Ok(mut reader)) => {
            reader.set_max_interfaces(max_interfaces);
            Ok(PyCaptureReader {
                reader: Mutex::new(reader),
            })
        }
        Ok(Err(e)) => Err(to_py(py, e)),
        Err(_) => Err(internal_error(&name)),
    }
}

fn internal_error(name: &str) -> PyErr {
    CaptureError::new_err(format!(
        "{name}: internal error reading the capture (a bug)"
    ))
}

/// One capture interface: a pcap file has one, a pcapng section any number.
#[pyclass(
    name = "Interface",
    module = "detectors.capture",
    frozen,
    eq,
    hash,
    get_all
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyInterface {
    linktype: u32,
    snaplen: u32,
    name: Option<String>,
    /// Raw if_tsresol byte: high bit clear -> units of 10^-v s, set -> 2^-v s.
    tsresol: u8,
    /// if_tsoffset: seconds added to every timestamp.
    tsoffset_s: i64,
}

#[pymethods]
impl PyInterface {
    #[new]
    #[pyo3(signature = (linktype, snaplen, name = None, tsresol = 6, tsoffset_s = 0))]
    fn new(
        linktype: u32,
        snaplen: u32,
        name: Option<String>,
        tsresol: u8,
        tsoffset_s: i64,
    ) -> Self {
        PyInterface {
            linktype,
            snaplen,
            name,
            tsresol,
            tsoffset_s,
        }
    }

    /// (mul, div) with ``ns = units * mul // div``, exact integer arithmetic.
    fn ts_scale<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        // Python ints: a divisor of 10^118 is legal and must stay exact here.
        let int = |v: u64| v.into_pyobject(py).map(Bound::into_any);
        let v = u64::from(self.tsresol & 0x7f);
        if self.tsresol & 0x80 != 0 {
            Ok((int(1_000_000_000)?, int(1)?.lshift(v)?))
        } else if v <= 9 {
            Ok((int(10)?.pow(9 - v, py.None())?, int(1)?))
        } else {
            Ok((int(1)?, int(10)?.pow(v - 9, py.None())?))
        }
    }

    /// A timestamp in this interface's units, as nanoseconds since the epoch.
    fn to_ns<'py>(
        &self,
        py: Python<'py>,
        units: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (mul, div) = self.ts_scale(py)?;
        let offset = self.tsoffset_s.into_pyobject(py)?.mul(1_000_000_000)?;
        units.mul(mul)?.floor_div(div)?.add(offset)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = match &self.name {
            Some(n) => PyString::new(py, n).repr()?.to_string(),
            None => "None".to_string(),
        };
        Ok(format!(
            "Interface(linktype={}, snaplen={}, name={name}, tsresol={}, tsoffset_s={})",
            self.linktype, self.snaplen, self.tsresol, self.tsoffset_s
        ))
    }
}

impl From<&super::reader::Interface> for PyInterface {
    fn from(i: &super::reader::Interface) -> Self {
        PyInterface {
            linktype: i.linktype,
            snaplen: i.snaplen,
            name: i.name.clone(),
            tsresol: i.tsresol,
            tsoffset_s: i.tsoffset_s,
        }
    }
}

/// An open capture. Iterate ``records()``; then check ``truncated``/``warnings``.
#[pyclass(name = "CaptureReader", module = "detectors.capture")]
pub struct PyCaptureReader {
    // A Mutex only because pyclasses must be Sync and an input stream is not;
    // the hot path goes through `get_mut` (exclusive access, no locking).
    reader: Mutex<Reader>,
}

impl PyCaptureReader {
    /// The reader, for native loops that drive it without Python per record.
    pub fn reader_mut(&mut self) -> &mut Reader {
        self.reader.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    fn shared(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_tuple<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let reader = self.reader_mut();
        let step = catch_unwind(AssertUnwindSafe(|| -> PyResult<_> {
            match reader.next_record().map_err(|e| to_py(py, e))? {
                None => Ok(None),
                Some(rec) => {
                    let data = PyBytes::new(py, rec.data);
                    let tuple = (rec.ts_ns, rec.iface, rec.linktype, data, rec.wire_len)
                        .into_pyobject(py)?;
                    Ok(Some(tuple))
                }
            }
        }));
        match step {
            Ok(result) => result,
            Err(_) => {
                reader.close();
                Err(internal_error(reader.name()))
            }
        }
    }
}

#[pymethods]
impl PyCaptureReader {
    /// Yields ``(ts_ns, iface_index, linktype, data, orig_len)`` per captured frame.
    ///
    /// Calling it again continues where the previous iteration stopped, like a file.
    fn records(slf: &Bound<'_, Self>) -> Records {
        Records {
            owner: slf.clone().unbind(),
        }
    }

    /// Release the file (standard input stays open). Idempotent.
    fn close(&mut self) {
        self.reader_mut().close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let r = self.shared();
        Ok(format!(
            "CaptureReader(path={}, format={}, compressed={}, records_read={})",
            PyString::new(py, r.path()).repr()?,
            PyString::new(py, r.format().as_str()).repr()?,
            if r.compressed() { "True" } else { "False" },
            r.records_read()
        ))
    }

    /// The path as given (``-`` for standard input).
    #[getter]
    fn path(&self) -> String {
        self.shared().path().to_string()
    }

    /// ``"pcap"`` or ``"pcapng"``.
    #[getter]
    fn format(&self) -> &'static str {
        self.shared().format().as_str()
    }

    #[getter]
    fn compressed(&self) -> bool {
        self.shared().compressed()
    }

    /// Interfaces seen so far; a record's ``iface_index`` indexes this list.
    #[getter]
    fn interfaces(&self) -> Vec<PyInterface> {
        self.shared()
            .interfaces()
            .iter()
            .map(PyInterface::from)
            .collect()
    }

    /// One line per problem (truncated or corrupt input), each naming the file.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.shared().warnings().to_vec()
    }

    #[getter]
    fn truncated(&self) -> bool {
        self.shared().truncated()
    }

    #[getter]
    fn records_read(&self) -> u64 {
        self.shared().records_read()
    }

    /// Interface descriptions past ``max_interfaces``: counted, not kept.
    #[getter]
    fn interfaces_over_cap(&self) -> u64 {
        self.shared().interfaces_over_cap()
    }

    /// Packets skipped because their interface was past ``max_interfaces``.
    #[getter]
    fn records_skipped(&self) -> u64 {
        self.shared().records_skipped()
    }
}

/// The iterator ``CaptureReader.records()`` returns; its position is the reader's.
#[pyclass(module = "detectors.capture")]
pub struct Records {
    owner: Py<PyCaptureReader>,
}

#[pymethods]
impl Records {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.owner.bind(py).try_borrow_mut()?.next_tuple(py)
    }
}

#[cfg(test)]
mod tests {
    //! The Python-facing pieces that need an interpreter (embedded: `cargo test`
    //! links libpython, see the crate's test command in the README).

    use super::*;

    #[test]
    fn python_stream_errors_and_records() {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(|py| {
            let io = py.import("io").unwrap();
            let data: Vec<u8> = b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00"
                .iter()
                .copied()
                .chain([0; 8])
                .chain(65535u32.to_le_bytes())
                .chain(1u32.to_le_bytes())
                .chain([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 9, 9, 9])
                .collect();
            let stream = io
                .getattr("BytesIO")
                .unwrap()
                .call1((PyBytes::new(py, &data),))
                .unwrap();
            let mut reader =
                open_capture(py, "-", Some(&stream), 5, DEFAULT_MAX_INTERFACES).unwrap();
            let rec = reader.next_tuple(py).unwrap().unwrap();
            assert_eq!(rec.to_string(), "(1000002000, 0, 1, b'\\t\\t\\t', 3)");
            assert!(reader.next_tuple(py).unwrap().is_none());
            assert_eq!(reader.path(), "-");

            let empty = io.getattr("BytesIO").unwrap().call0().unwrap();
            let err = open_capture(py, "-", Some(&empty), 5, DEFAULT_MAX_INTERFACES)
                .err()
                .unwrap();
            assert!(err.is_instance_of::<CaptureError>(py));
            assert_eq!(err.value(py).to_string(), "<stdin>: empty file");
        });
    }
}
