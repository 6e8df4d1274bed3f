//! Live capture: interfaces read through TPACKET_V3 memory-mapped rings.
//!
//! Owns the native side of `v6sentry live`'s capture. `block` walks a block's frames
//! (pure, unit-tested on synthetic blocks); `ring` owns a packet socket, its ring and
//! its counters, and lends blocks whose frames are `crate::record::Rec`s, for native
//! loops that never go through Python. `LiveRing` is the Python face of one `Ring`,
//! used by `detectors/live/capture.py`: it copies a block's frames into the capture
//! record tuples the engine reads, with the GIL released while it waits.
//!
//! Interface lifetime (down/up, deleted/recreated), logging and BPF compilation stay in
//! Python: they run once a second or once per start, not once per packet.

pub mod block;
pub mod ring;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

pub use ring::{Block, Config, Fanout, Filter, Geometry, OpenError, Ring, Stats};

pub(crate) fn os_error(err: &std::io::Error, step: Option<&str>) -> PyErr {
    let errno = err.raw_os_error().unwrap_or(libc::EIO);
    // strerror's text, from std, without its " (os error N)" suffix.
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or("").to_string();
    // OSError(errno, strerror[, filename]) becomes the matching subclass
    // (PermissionError for EPERM...); `filename` names the step that failed.
    match step {
        Some(step) => PyOSError::new_err((errno, text, step.to_string())),
        None => PyOSError::new_err((errno, text)),
    }
}

fn parse_filter(code: &[u8]) -> PyResult<Filter> {
    if code.is_empty() || code.len() % 8 != 0 || code.len() / 8 > usize::from(u16::MAX) {
        return Err(PyValueError::new_err(
            "a BPF program is a non-empty array of 8-byte struct sock_filter",
        ));
    }
    Ok(code
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// One interface's ring, for Python: `LiveRing.open(...)`, `next_batch`, `stats`, `close`.
#[pyclass(module = "detectors._native")]
pub struct LiveRing {
    ring: Option<Ring>,
    name: String,
}

impl LiveRing {
    pub(crate) fn ring(&mut self) -> PyResult<&mut Ring> {
        self.ring
            .as_mut()
            .ok_or_else(|| os_error(&std::io::Error::from_raw_os_error(libc::EBADF), None))
    }
}

#[pymethods]
impl LiveRing {
    /// Open `iface`: `buffer_mb` MiB of ring, promiscuous or not, `bpf` either the
    /// `sock_filter` bytes or a callable given the LINKTYPE that returns them (or None),
    /// `fanout` a PACKET_FANOUT group id shared by the rings reading this interface
    /// (flow hash; `fanout_defrag` has the kernel reassemble IPv4 fragments first, which
    /// then delivers datagrams, not the fragments), `index` the `iface` of the records.
    /// OSError(errno, strerror, step) when it fails; `step` is "socket" for a missing
    /// CAP_NET_RAW, "if_nametoindex" for a missing interface.
    #[staticmethod]
    #[pyo3(signature = (iface, promisc, buffer_mb, bpf=None, fanout=None, index=0, fanout_defrag=false))]
    fn open(
        iface: &str,
        promisc: bool,
        buffer_mb: usize,
        bpf: Option<Bound<'_, PyAny>>,
        fanout: Option<u16>,
        index: u32,
        fanout_defrag: bool,
    ) -> PyResult<LiveRing> {
        let config = Config {
            iface: index,
            promisc,
            geometry: Geometry::for_bytes(buffer_mb.saturating_mul(1 << 20)),
            fanout: fanout.map(|group| Fanout {
                group,
                defrag: fanout_defrag,
            }),
        };
        let mut py_err: Option<PyErr> = None;
        let filter = |linktype: u32| -> Result<Option<Filter>, OpenError> {
            let Some(bpf) = &bpf else { return Ok(None) };
            let code = if bpf.is_callable() {
                bpf.call1((linktype,))
            } else {
                Ok(bpf.clone())
            };
            let parsed = code.and_then(|c| {
                if c.is_none() {
                    Ok(None)
                } else {
                    parse_filter(&c.extract::<Vec<u8>>()?).map(Some)
                }
            });
            parsed.map_err(|e| {
                py_err = Some(e);
                OpenError {
                    step: "bpf",
                    err: std::io::Error::from_raw_os_error(libc::EINVAL),
                }
            })
        };
        match Ring::open(iface, &config, filter) {
            Ok(ring) => Ok(LiveRing {
                ring: Some(ring),
                name: iface.to_string(),
            }),
            Err(e) => Err(py_err.unwrap_or_else(|| os_error(&e.err, Some(e.step)))),
        }
    }

    /// Frames of the next block as `(ts_ns, iface, linktype, data, wire_len)` tuples,
    /// waiting up to `timeout_ms` (0: not at all; -1: until one comes); [] on timeout or
    /// a signal. OSError(ENETDOWN) when the interface went down or away.
    fn next_batch<'py>(
        &mut self,
        py: Python<'py>,
        timeout_ms: i32,
    ) -> PyResult<Bound<'py, PyList>> {
        let ring = self.ring()?;
        // Wait without the GIL; building the tuples needs it again. The block is
        // taken under the GIL because it borrows the ring, which Python owns.
        let ready = if timeout_ms != 0 {
            let fd = ring.fd();
            py.allow_threads(|| wait_readable(fd, timeout_ms))
        } else {
            true
        };
        let list = PyList::empty(py);
        if !ready {
            return Ok(list);
        }
        match ring.next_block(0) {
            Ok(Some(mut block)) => {
                while let Some(rec) = block.next() {
                    let item = PyTuple::new(
                        py,
                        [
                            rec.ts_ns.into_pyobject(py)?.into_any(),
                            rec.iface.into_pyobject(py)?.into_any(),
                            rec.linktype.into_pyobject(py)?.into_any(),
                            PyBytes::new(py, rec.data).into_any(),
                            rec.wire_len.into_pyobject(py)?.into_any(),
                        ],
                    )?;
                    list.append(item)?;
                }
                Ok(list)
            }
            Ok(None) => Ok(list),
            Err(e) => Err(os_error(&e, None)),
        }
    }

    /// Like `next_batch`, but only counts the block's frames and bytes (wire lengths) in
    /// Rust, making no Python objects: the ring's own ceiling, for `tests/bench_live.py`.
    fn count_batch(&mut self, py: Python<'_>, timeout_ms: i32) -> PyResult<(u64, u64)> {
        let ring = self.ring()?;
        let fd = ring.fd();
        if timeout_ms != 0 && !py.allow_threads(|| wait_readable(fd, timeout_ms)) {
            return Ok((0, 0));
        }
        match ring.next_block(0) {
            Ok(Some(mut block)) => {
                let (mut frames, mut bytes) = (0u64, 0u64);
                block.for_each(|rec| {
                    frames += 1;
                    bytes += u64::from(rec.wire_len);
                });
                Ok((frames, bytes))
            }
            Ok(None) => Ok((0, 0)),
            Err(e) => Err(os_error(&e, None)),
        }
    }

    /// Kernel counters since open: `(packets, drops, freeze_q_cnt)`.
    fn stats(&mut self) -> PyResult<(u64, u64, u64)> {
        let s = self.ring()?.stats().map_err(|e| os_error(&e, None))?;
        Ok((s.packets, s.drops, s.freeze_q_cnt))
    }

    /// Unmap the ring and close the socket (idempotent).
    fn close(&mut self) {
        self.ring = None;
    }

    /// The socket, for select/poll: readable when a block may be ready.
    fn fileno(&mut self) -> PyResult<i32> {
        Ok(self.ring()?.fd())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn ifindex(&mut self) -> PyResult<i32> {
        Ok(self.ring()?.ifindex())
    }

    #[getter]
    fn hatype(&mut self) -> PyResult<u16> {
        Ok(self.ring()?.hatype())
    }

    #[getter]
    fn linktype(&mut self) -> PyResult<u32> {
        Ok(self.ring()?.linktype())
    }

    /// `(block_size, block_count)` of the ring.
    #[getter]
    fn geometry(&mut self) -> PyResult<(usize, usize)> {
        let g = self.ring()?.geometry();
        Ok((g.block_size, g.block_count))
    }

    /// Why promiscuous mode could not be set, as OSError, or None.
    #[getter]
    fn promisc_error(&mut self) -> PyResult<Option<PyErr>> {
        Ok(self
            .ring()?
            .promisc_error
            .as_ref()
            .map(|e| os_error(e, Some("PACKET_ADD_MEMBERSHIP"))))
    }
}

/// poll(2) for readability (or an error) on `fd`; false on timeout or a signal.
pub(crate) fn wait_readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) > 0 }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LiveRing>()?;
    Ok(())
}
