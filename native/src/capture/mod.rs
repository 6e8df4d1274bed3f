//! Capture files: pcap and pcapng, plain or gzip, from a file, standard input or
//! any stream, as zero-copy `Rec`s.
//!
//! Owns everything about capture *files*: `reader` parses and judges damage,
//! `source` supplies (and gunzips) the bytes, `python` is the `detectors.capture`
//! API on top (`CaptureReader`, `open_capture`, `Interface`, `CaptureError`). It
//! does not decode packets or know about detections.

mod python;
pub mod reader;
pub mod source;
#[cfg(test)]
mod tests;

pub(crate) use python::to_py;
pub use python::{register, PyCaptureReader};
pub use reader::{
    CaptureError, Format, Interface, Reader, CHUNK, DEFAULT_MAX_INTERFACES, MAX_BLOCK, MAX_CAPLEN,
};
pub use source::Input;
