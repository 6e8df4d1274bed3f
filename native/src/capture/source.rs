//! Where capture bytes come from: any `Read`, optionally gunzipped.
//!
//! Owns the byte streams under the parser: tagging the source's own I/O errors so
//! they can be told apart from decompression errors, replaying the sniffed head in
//! front of an unseekable stream, and a multi-member gzip decoder that behaves like
//! Python's `gzip` module (members back to back, zero padding between and after
//! them ignored). It knows nothing about pcap or pcapng.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;

/// Boxed input the reader pulls from; `Send` so a reader can move between threads.
pub type Input = Box<dyn Read + Send>;

/// An I/O error raised by the underlying source (file, pipe, Python stream), as
/// opposed to one made up by the gzip decoder. It travels inside an `io::Error`
/// through flate2, which passes source errors on untouched.
#[derive(Debug)]
pub struct SourceFailure(pub io::Error);

impl fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceFailure {}

/// Tags every error of the wrapped source as a `SourceFailure`; retries `EINTR`
/// so no layer above has to.
pub struct Tagged(pub Input);

impl Read for Tagged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), SourceFailure(e))),
                Ok(n) => return Ok(n.min(buf.len())),
            }
        }
    }
}

/// How a read failed, from the capture reader's point of view.
pub enum Failure {
    /// The source itself failed (the original error, untagged).
    Io(io::Error),
    /// The gzip stream ended early (header, deflate data or trailer cut short).
    GzipTruncated(String),
    /// The gzip stream is damaged (bad header, bad deflate data, bad checksum).
    GzipCorrupt(String),
}

/// Sorts an error from a `Tagged` source, possibly under a gzip decoder.
pub fn classify(err: io::Error, gzip: bool) -> Failure {
    if err.get_ref().is_some_and(|e| e.is::<SourceFailure>()) {
        // The guard above makes both the inner error and the downcast present.
        if let Some(inner) = err.into_inner() {
            if let Ok(tagged) = inner.downcast::<SourceFailure>() {
                return Failure::Io(tagged.0);
            }
        }
        return Failure::Io(io::Error::other("unknown error"));
    }
    if !gzip {
        return Failure::Io(err);
    }
    let text = err.to_string();
    if err.kind() == io::ErrorKind::UnexpectedEof {
        // flate2 uses a bare UnexpectedEof (text "unexpected end of file") for a
        // cut header or trailer and a described one for cut deflate data.
        Failure::GzipTruncated(text)
    } else {
        Failure::GzipCorrupt(text)
    }
}

/// The bytes consumed while sniffing, then the rest of the stream: standard input
/// cannot seek back, so the head is replayed.
pub struct Prefixed {
    head: Vec<u8>,
    at: usize,
    rest: Tagged,
}

impl Prefixed {
    pub fn new(head: Vec<u8>, rest: Tagged) -> Self {
        Prefixed { head, at: 0, rest }
    }
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

type Compressed = BufReader<Prefixed>;

enum Member {
    /// Between members (or before the first): the next header has not been read.
    Between(Compressed),
    /// Inside a member.
    In(Box<GzDecoder<Compressed>>),
    /// After the last member or after an error: reads return 0.
    Done,
}

/// Gzip members back to back, like Python's `gzip.GzipFile`: after a member's
/// trailer, zero bytes are padding; anything else must start another member.
/// flate2's own `MultiGzDecoder` would report trailing zeros as a bad header.
pub struct Gunzip {
    state: Member,
}

impl Gunzip {
    pub fn new(compressed: Prefixed) -> Self {
        // Large enough that a file is read in few calls, small enough to not matter.
        Gunzip {
            state: Member::Between(BufReader::with_capacity(256 * 1024, compressed)),
        }
    }
}

impl Read for Gunzip {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, Member::Done) {
                Member::Done => return Ok(0),
                Member::In(mut member) => match member.read(buf) {
                    Ok(0) => self.state = Member::Between(member.into_inner()),
                    Ok(n) => {
                        self.state = Member::In(member);
                        return Ok(n);
                    }
                    Err(e) => return Err(e),
                },
                Member::Between(mut compressed) => {
                    let more = skip_zeros(&mut compressed)?;
                    if !more {
                        return Ok(0);
                    }
                    self.state = Member::In(Box::new(GzDecoder::new(compressed)));
                }
            }
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Skips zero padding; false at the end of input.
fn skip_zeros(r: &mut Compressed) -> io::Result<bool> {
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(false);
        }
        let zeros = avail.iter().take_while(|&&b| b == 0).count();
        if zeros < avail.len() {
            // Like Python, judge the magic before waiting for a whole header: flate2
            // would call "garbage" at the end a truncated header rather than corrupt.
            let magic = &avail[zeros..avail.len().min(zeros + 2)];
            if !GZIP_MAGIC.starts_with(magic) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "invalid gzip header",
                ));
            }
            r.consume(zeros);
            return Ok(true);
        }
        r.consume(zeros);
    }
}

/// The text Python's `_reason` would give for an error: the OS's description,
/// lowercased when it starts with a capital ("No such file or directory" ->
/// "no such file or directory"), else the error's own text.
pub fn reason(err: &io::Error) -> String {
    if let Some(code) = err.raw_os_error() {
        let full = io::Error::from_raw_os_error(code).to_string();
        // std appends " (os error N)" to strerror's text.
        let text = full
            .rfind(" (os error ")
            .map_or(full.as_str(), |i| &full[..i]);
        return if text.chars().next().is_some_and(char::is_uppercase) {
            text.to_lowercase()
        } else {
            text.to_string()
        };
    }
    let text = err.to_string();
    if text.is_empty() {
        format!("{:?}", err.kind())
    } else {
        text
    }
}
