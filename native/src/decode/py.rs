//! The decoder's Python face: the `Decoder` class `detectors.decoder` re-exports, the
//! reassembly view the engine reports on, and `icmpv6_checksum_ok`.
//!
//! Owns only the boundary: reading `DecoderLimits` from its Python dataclass, taking
//! the frame's bytes without copying, and converting events (`topy`). Decoding itself
//! is the pure-Rust `Decoder`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::events::Event;
use super::{nd, topy, Decoder, DecoderLimits, ReassemblyLimits};
use crate::record::Rec;

fn limits_from_py(limits: &Bound<'_, PyAny>) -> PyResult<DecoderLimits> {
    let r = limits.getattr("reassembly")?;
    Ok(DecoderLimits {
        max_ext_headers: limits.getattr("max_ext_headers")?.extract()?,
        max_vlan_tags: limits.getattr("max_vlan_tags")?.extract()?,
        max_tunnel_depth: limits.getattr("max_tunnel_depth")?.extract()?,
        reassembly: ReassemblyLimits {
            timeout_ns: r.getattr("timeout_ns")?.extract()?,
            max_datagrams: r.getattr("max_datagrams")?.extract()?,
            max_bytes: r.getattr("max_bytes")?.extract()?,
            max_fragments: r.getattr("max_fragments")?.extract()?,
        },
        max_ext_options: limits.getattr("max_ext_options")?.extract()?,
    })
}

/// Turns one captured frame into events (`detectors.events`). One per capture stream.
#[pyclass(name = "Decoder", module = "detectors._native")]
pub struct PyDecoder {
    pub(crate) inner: Decoder,
    /// The `DecoderLimits` it was built with, handed back as `limits`.
    limits: Py<PyAny>,
    /// Reused between frames so decoding allocates no event list.
    out: Vec<Event>,
}

#[pymethods]
impl PyDecoder {
    #[new]
    // One keyword flag per event kind the decoder can skip building.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (limits=None, *, want_packets=false, want_tunnels=false, want_mld=false, want_dhcpv6=false, want_ext_options=false, want_icmp_errors=false, want_dns=false))]
    fn new(
        py: Python<'_>,
        limits: Option<Bound<'_, PyAny>>,
        want_packets: bool,
        want_tunnels: bool,
        want_mld: bool,
        want_dhcpv6: bool,
        want_ext_options: bool,
        want_icmp_errors: bool,
        want_dns: bool,
    ) -> PyResult<Self> {
        let limits = match limits {
            Some(l) if !l.is_none() => l,
            _ => py
                .import("detectors.decoder")?
                .getattr("DecoderLimits")?
                .call0()?,
        };
        let mut inner = Decoder::new(limits_from_py(&limits)?);
        inner.want_packets = want_packets;
        inner.want_tunnels = want_tunnels;
        inner.want_mld = want_mld;
        inner.want_dhcpv6 = want_dhcpv6;
        inner.want_ext_options = want_ext_options;
        inner.want_icmp_errors = want_icmp_errors;
        inner.want_dns = want_dns;
        Ok(PyDecoder {
            inner,
            limits: limits.unbind(),
            out: Vec::new(),
        })
    }

    /// Decode one frame. Never raises on bad input; returns the frame's events.
    #[allow(clippy::too_many_arguments)]
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        ts_ns: i64,
        frame: u64,
        iface: u32,
        linktype: u32,
        data: &Bound<'py, PyAny>,
        wire_len: u32,
    ) -> PyResult<Bound<'py, PyList>> {
        let owned: Vec<u8>;
        let data: &[u8] = match data.downcast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                owned = data.extract()?;
                &owned
            }
        };
        let rec = Rec {
            ts_ns,
            iface,
            linktype,
            data,
            wire_len,
        };
        self.out.clear();
        self.inner.decode(&rec, frame, &mut self.out);
        if self.out.is_empty() {
            return Ok(PyList::empty(py));
        }
        topy::Converter::new(py)?.list(&self.out)
    }

    /// Time out stale fragments on packet time; called by the engine's clock.
    fn expire<'py>(&mut self, py: Python<'py>, now_ns: i64) -> PyResult<Bound<'py, PyList>> {
        self.out.clear();
        self.inner.expire(now_ns, &mut self.out);
        topy::Converter::new(py)?.list(&self.out)
    }

    /// A snapshot of the counters (a new `DecodeStats` per access).
    #[getter]
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        topy::stats(py, self.inner.stats())
    }

    /// The fragment table: `len()`, `.pending()`, `.limits`.
    #[getter]
    fn reassembler(slf: PyRef<'_, Self>) -> Reassembler {
        Reassembler { dec: slf.into() }
    }

    #[getter]
    fn limits(&self, py: Python<'_>) -> Py<PyAny> {
        self.limits.clone_ref(py)
    }

    #[getter]
    fn get_want_packets(&self) -> bool {
        self.inner.want_packets
    }

    #[setter]
    fn set_want_packets(&mut self, on: bool) {
        self.inner.want_packets = on;
    }

    #[getter]
    fn get_want_tunnels(&self) -> bool {
        self.inner.want_tunnels
    }

    #[setter]
    fn set_want_tunnels(&mut self, on: bool) {
        self.inner.want_tunnels = on;
    }

    #[getter]
    fn get_want_mld(&self) -> bool {
        self.inner.want_mld
    }

    #[setter]
    fn set_want_mld(&mut self, on: bool) {
        self.inner.want_mld = on;
    }

    #[getter]
    fn get_want_dhcpv6(&self) -> bool {
        self.inner.want_dhcpv6
    }

    #[setter]
    fn set_want_dhcpv6(&mut self, on: bool) {
        self.inner.want_dhcpv6 = on;
    }

    #[getter]
    fn get_want_ext_options(&self) -> bool {
        self.inner.want_ext_options
    }

    #[setter]
    fn set_want_ext_options(&mut self, on: bool) {
        self.inner.want_ext_options = on;
    }

    #[getter]
    fn get_want_icmp_errors(&self) -> bool {
        self.inner.want_icmp_errors
    }

    #[setter]
    fn set_want_icmp_errors(&mut self, on: bool) {
        self.inner.want_icmp_errors = on;
    }

    #[getter]
    fn get_want_dns(&self) -> bool {
        self.inner.want_dns
    }

    #[setter]
    fn set_want_dns(&mut self, on: bool) {
        self.inner.want_dns = on;
    }
}

/// A live view of a decoder's fragment table.
#[pyclass(module = "detectors._native")]
pub struct Reassembler {
    dec: Py<PyDecoder>,
}

#[pymethods]
impl Reassembler {
    /// Datagrams held, including discarded ones waiting out their timeout.
    fn __len__(&self, py: Python<'_>) -> usize {
        self.dec.borrow(py).inner.reassembler().len()
    }

    /// Datagrams still incomplete.
    fn pending(&self, py: Python<'_>) -> usize {
        self.dec.borrow(py).inner.reassembler().pending()
    }

    /// The `ReassemblyLimits` the decoder was built with.
    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.dec.borrow(py).limits.bind(py).getattr("reassembly")
    }
}

/// Python slice bounds: negative counts from the end, both clamped to the length.
fn slice_bound(i: isize, len: usize) -> usize {
    let len = len as isize;
    let i = if i < 0 { i + len } else { i };
    i.clamp(0, len) as usize
}

/// Verify the ICMPv6 checksum (RFC 4443 2.3) over `data[start:end]`.
#[pyfunction]
fn icmpv6_checksum_ok(
    src: &[u8],
    dst: &[u8],
    data: &[u8],
    start: isize,
    end: isize,
) -> PyResult<bool> {
    let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) else {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "addresses must be 16 bytes",
        ));
    };
    let (s, e) = (slice_bound(start, data.len()), slice_bound(end, data.len()));
    Ok(nd::icmpv6_checksum_ok(&src, &dst, &data[s..e.max(s)]))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDecoder>()?;
    m.add_class::<Reassembler>()?;
    m.add_function(wrap_pyfunction!(icmpv6_checksum_ok, m)?)?;
    m.add("TEREDO_PORT", super::TEREDO_PORT)?;
    Ok(())
}
