//! Incremental decoding: bytes in, frames and heart-beats out.
//!
//! The decoder is a two-state machine driven by whatever bytes have arrived:
//!
//! ```text
//!            EOL (heart-beat)
//!            ┌────┐
//!            ▼    │      blank line: parse head once      NUL (or content-length + NUL)
//!   ──► ┌─────────┴┐ ─────────────────────────────► ┌──────┐ ───────────────────────┐
//!       │   Head   │                                 │ Body │                        │
//!       └──────────┘ ◄───────────────────────────────└──────┘ ◄──────────────────────┘
//!            ▲  resumes its LF search at `scanned`       resumes its NUL search at `scanned`
//! ```
//!
//! Bytes already searched are never searched again, so feeding a large frame one byte at a time
//! costs linear time ([`Decoder::bytes_searched`] counts it). At a frame boundary a lone CR waits
//! for its LF. A NUL where a header line would start ends a body-less frame, as the spec prints its
//! `DISCONNECT` and `RECEIPT` examples (without the blank line its grammar asks for). The head is
//! parsed once, with nom, when it is known to be complete; a NUL or a CR that is not part of a
//! CRLF inside a header line is an error in every version (no peer downstream can be trusted to
//! read them the same way). Limits are checked against what has been seen (or what
//! `content-length` announces) before waiting for more.

use bytes::{Buf, Bytes, BytesMut};
use nom::bytes::complete::{tag, take_till, take_till1};
use nom::combinator::rest;
use nom::sequence::{separated_pair, terminated};
use nom::{IResult, Parser};

use crate::escape::{Escaping, unescape};
use crate::{Command, DecodeError, Frame, Headers, Limits, Version};

/// What one call to [`Decoder::decode`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole frame.
    Frame(Frame),
    /// An EOL between frames: the peer is alive.
    HeartBeat,
}

/// An incremental STOMP decoder. Keep one per connection; feed it the connection's read buffer.
#[derive(Debug)]
pub struct Decoder {
    version: Version,
    limits: Limits,
    state: State,
    /// Bytes searched for a delimiter (LF in heads, NUL in bodies) since creation.
    searched: u64,
}

#[derive(Debug)]
enum State {
    /// Looking for the blank line that ends the head. All offsets are into the read buffer,
    /// whose front is the first byte of the frame.
    Head {
        /// Bytes already searched for LF.
        scanned: usize,
        /// Where the current (incomplete) line starts.
        line_start: usize,
        /// Complete non-blank lines so far (command line included).
        lines: usize,
    },
    /// The head is parsed and consumed; the read buffer's front is the body.
    Body {
        command: Command,
        headers: Headers,
        head_len: usize,
        content_length: Option<usize>,
        /// Bytes already searched for NUL (when there is no content-length).
        scanned: usize,
    },
}

/// What [`Decoder::heart_beat`] found at a frame boundary.
enum Boundary {
    /// An EOL, consumed: a heart-beat.
    HeartBeat,
    /// A lone CR: an EOL or an error, decided by the next byte.
    NeedMore,
    /// The start of a frame (or nothing yet).
    FrameStart,
}

/// How a complete head ended; each carries the head's length in bytes.
enum HeadEnd {
    /// The usual blank line (included in the length); the body follows.
    BlankLine(usize),
    /// A NUL at the start of a header line (not included); there is no body.
    Nul(usize),
}

const FRAME_START: State = State::Head {
    scanned: 0,
    line_start: 0,
    lines: 0,
};

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder for STOMP 1.2 with these limits.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            version: Version::V1_2,
            limits,
            state: FRAME_START,
            searched: 0,
        }
    }

    /// Sets the version whose escaping rules apply to the next frames (call after `CONNECT`).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version in use.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Replaces the limits (for example, larger once the session is authenticated).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in use.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many bytes the decoder has searched for a line end or a NUL since it was created.
    ///
    /// A measure of work, not of input: it never exceeds the bytes fed, however they are
    /// chunked, because nothing is searched twice. Tests use it to prove decoding is linear.
    pub fn bytes_searched(&self) -> u64 {
        self.searched
    }

    /// True when no partial frame is buffered: the decoder sits between frames.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { scanned: 0, .. })
    }

    /// Decodes the next item from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)` means more bytes are needed; call again when they arrive (the bytes already
    /// looked at are remembered, not rescanned). After an `Err`, the stream is out of sync.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        if let State::Head { .. } = self.state {
            match self.heart_beat(buf)? {
                Boundary::HeartBeat => return Ok(Some(Item::HeartBeat)),
                Boundary::NeedMore => return Ok(None),
                Boundary::FrameStart => {}
            }
            let Some(end) = self.scan_head(buf)? else {
                return Ok(None);
            };
            let (head_len, body_follows) = match end {
                HeadEnd::BlankLine(len) => (len, true),
                HeadEnd::Nul(len) => (len, false),
            };
            let head = buf.split_to(head_len).freeze();
            let (command, headers, content_length) = parse_head(head, self.version)?;
            if !body_follows {
                // The head ended with the frame's NUL: no blank line, no body.
                self.state = FRAME_START;
                buf.advance(1);
                if let Some(len @ 1..) = content_length {
                    return Err(DecodeError::MissingNul {
                        content_length: len,
                    });
                }
                return Ok(Some(Item::Frame(Frame {
                    command,
                    headers,
                    body: Bytes::new(),
                })));
            }
            self.state = State::Body {
                command,
                headers,
                head_len,
                content_length,
                scanned: 0,
            };
        }
        let Some(body) = self.take_body(buf)? else {
            return Ok(None);
        };
        let State::Body {
            command, headers, ..
        } = std::mem::replace(&mut self.state, FRAME_START)
        else {
            unreachable!("take_body only succeeds in the Body state")
        };
        Ok(Some(Item::Frame(Frame {
            command,
            headers,
            body,
        })))
    }

    /// At a frame boundary, an EOL is a heart-beat. A lone CR may be the first half of one: wait
    /// for the next byte rather than start a head with it.
    fn heart_beat(&self, buf: &mut BytesMut) -> Result<Boundary, DecodeError> {
        if !self.is_idle() {
            return Ok(Boundary::FrameStart);
        }
        match buf.first() {
            Some(b'\n') => {
                buf.advance(1);
                Ok(Boundary::HeartBeat)
            }
            Some(b'\r') => match buf.get(1) {
                Some(b'\n') => {
                    buf.advance(2);
                    Ok(Boundary::HeartBeat)
                }
                Some(_) => Err(DecodeError::BareCarriageReturn),
                None => Ok(Boundary::NeedMore),
            },
            _ => Ok(Boundary::FrameStart),
        }
    }

    /// Resumes the search for the end of the head; returns how it ended once it has.
    fn scan_head(&mut self, buf: &BytesMut) -> Result<Option<HeadEnd>, DecodeError> {
        let State::Head {
            scanned,
            line_start,
            lines,
        } = &mut self.state
        else {
            return Ok(None);
        };
        let limits = &self.limits;
        let searched = &mut self.searched;
        loop {
            if *lines > 0 && buf.get(*line_start) == Some(&0) {
                // A NUL where a header line should start: the frame ends without the blank line
                // (as the spec's own DISCONNECT and RECEIPT examples are printed).
                return Ok(Some(HeadEnd::Nul(*line_start)));
            }
            let found = memchr::memchr(b'\n', &buf[*scanned..]);
            *searched += found.map_or(buf.len() - *scanned, |offset| offset + 1) as u64;
            let Some(offset) = found else {
                let mut len = buf.len() - *line_start;
                if buf.last() == Some(&b'\r') {
                    len -= 1; // possibly the CR of a CRLF, not part of the line
                }
                if len > limits.max_header_line {
                    return Err(DecodeError::HeaderLineTooLong {
                        len,
                        max: limits.max_header_line,
                    });
                }
                if buf.len() > limits.max_frame_size {
                    return Err(DecodeError::FrameTooLarge {
                        size: buf.len(),
                        max: limits.max_frame_size,
                    });
                }
                *scanned = buf.len();
                return Ok(None);
            };
            let newline = *scanned + offset;
            let mut line_end = newline;
            if line_end > *line_start && buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let len = line_end - *line_start;
            if len > limits.max_header_line {
                return Err(DecodeError::HeaderLineTooLong {
                    len,
                    max: limits.max_header_line,
                });
            }
            if newline + 1 > limits.max_frame_size {
                return Err(DecodeError::FrameTooLarge {
                    size: newline + 1,
                    max: limits.max_frame_size,
                });
            }
            *scanned = newline + 1;
            *line_start = newline + 1;
            if len == 0 {
                return Ok(Some(HeadEnd::BlankLine(newline + 1)));
            }
            *lines += 1;
            if *lines - 1 > limits.max_headers {
                return Err(DecodeError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
        }
    }

    /// Resumes waiting for the body; returns it (and consumes its NUL) once complete.
    fn take_body(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let State::Body {
            head_len,
            content_length,
            scanned,
            ..
        } = &mut self.state
        else {
            return Ok(None);
        };
        let limits = &self.limits;
        let check = |size: usize| {
            if size > limits.max_body_size {
                return Err(DecodeError::BodyTooLarge {
                    size,
                    max: limits.max_body_size,
                });
            }
            let frame = head_len.saturating_add(size);
            if frame > limits.max_frame_size {
                return Err(DecodeError::FrameTooLarge {
                    size: frame,
                    max: limits.max_frame_size,
                });
            }
            Ok(())
        };
        let len = match *content_length {
            Some(len) => {
                check(len)?;
                if buf.len() <= len {
                    buf.reserve(len + 1 - buf.len());
                    return Ok(None);
                }
                if buf[len] != 0 {
                    return Err(DecodeError::MissingNul {
                        content_length: len,
                    });
                }
                len
            }
            None => match memchr::memchr(0, &buf[*scanned..]).inspect(|offset| {
                self.searched += (*offset + 1) as u64;
            }) {
                Some(offset) => {
                    let len = *scanned + offset;
                    check(len)?;
                    len
                }
                None => {
                    check(buf.len())?;
                    self.searched += (buf.len() - *scanned) as u64;
                    *scanned = buf.len();
                    return Ok(None);
                }
            },
        };
        let body = buf.split_to(len).freeze();
        buf.advance(1);
        Ok(Some(body))
    }
}

/// One line, without its LF or CRLF.
fn line(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, line) = terminated(take_till(|b| b == b'\n'), tag(&b"\n"[..])).parse(input)?;
    Ok((rest, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// `name:value`, split at the first colon; the name is not empty.
fn header(line: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    separated_pair(take_till1(|b| b == b':'), tag(&b":"[..]), rest).parse(line)
}

type Head = (Command, Headers, Option<usize>);

/// Parses a complete head (command line, header lines, blank line) once.
fn parse_head(head: Bytes, version: Version) -> Result<Head, DecodeError> {
    let (mut input, command_line) = line(&head).map_err(|_| DecodeError::unknown_command(&head))?;
    let command = Command::from_bytes(command_line).ok_or_else(|| {
        match std::str::from_utf8(command_line) {
            Ok(_) => DecodeError::unknown_command(command_line),
            Err(_) => DecodeError::InvalidUtf8,
        }
    })?;
    let escaping = Escaping::for_frame(version, command.escapes_headers());
    let mut headers = Headers::with_capacity(8);
    let mut content_length = None;
    while !input.is_empty() {
        let (next, text) = line(input).map_err(|_| DecodeError::malformed_header(input))?;
        input = next;
        if text.is_empty() {
            break;
        }
        let (_, (name, value)) = header(text).map_err(|_| DecodeError::malformed_header(text))?;
        refuse_raw_nul_and_cr(text, name)?;
        let name = unescape(head.slice_ref(name), escaping)?;
        let value = unescape(head.slice_ref(value), escaping)?;
        if content_length.is_none() && name == "content-length" {
            content_length = Some(parse_content_length(&value)?);
        }
        headers.push(name, value);
    }
    Ok((command, headers, content_length))
}

/// Refuses a header line (`text`, without its EOL; `name` is its name) holding a NUL or a CR,
/// in every version. `line` has already taken off the CR of a CRLF, so any CR left is bare.
/// Checked on the raw bytes, before unescaping: 1.2's `\r` escape is a backslash and an `r`
/// here, and still decodes to a CR.
fn refuse_raw_nul_and_cr(text: &[u8], name: &[u8]) -> Result<(), DecodeError> {
    match memchr::memchr2(0, b'\r', text).map(|at| text[at]) {
        None => Ok(()),
        Some(0) => Err(DecodeError::nul_in_header(name)),
        Some(_) => Err(DecodeError::bare_carriage_return_in_header(name)),
    }
}

/// A `content-length` value: decimal digits only (no sign, no spaces).
fn parse_content_length(value: &str) -> Result<usize, DecodeError> {
    let invalid = || DecodeError::InvalidContentLength {
        value: value.chars().take(32).collect(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Item>, DecodeError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = decoder.decode(&mut buf)? {
            out.push(item);
        }
        Ok(out)
    }

    fn one_frame(input: &[u8]) -> Result<Frame, DecodeError> {
        match decode_all(&mut Decoder::default(), input)?.pop() {
            Some(Item::Frame(f)) => Ok(f),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn frame_then_heart_beats() {
        let items = decode_all(
            &mut Decoder::default(),
            b"\n\r\nSEND\r\ndestination:/q\r\n\r\nbody\0\n",
        )
        .unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Item::HeartBeat);
        let Item::Frame(f) = &items[2] else { panic!() };
        assert_eq!(f.header("destination"), Some("/q"));
        assert_eq!(&f.body[..], b"body");
        assert_eq!(items[3], Item::HeartBeat);
    }

    #[test]
    fn content_length_allows_nuls_and_requires_terminator() {
        let f = one_frame(b"SEND\ncontent-length:3\n\na\0b\0").unwrap();
        assert_eq!(&f.body[..], b"a\0b");
        assert_eq!(
            one_frame(b"SEND\ncontent-length:2\n\nabc\0"),
            Err(DecodeError::MissingNul { content_length: 2 })
        );
        assert!(matches!(
            one_frame(b"SEND\ncontent-length:-1\n\n\0"),
            Err(DecodeError::InvalidContentLength { .. })
        ));
    }

    #[test]
    fn split_at_every_byte_is_need_more_not_error() {
        let input = b"MESSAGE\r\nsubscription:0\r\na\\cb:c\\\\d\r\ncontent-length:4\r\n\r\n\0\0\0\0\0\n\nERROR\nmessage:x\n\nboom\0";
        let whole = decode_all(&mut Decoder::default(), input).unwrap();
        for chunk in 1..input.len() {
            let mut decoder = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(item) = decoder.decode(&mut buf).unwrap() {
                    got.push(item);
                }
            }
            assert_eq!(got, whole, "chunk size {chunk}");
        }
        let Item::Frame(f) = &whole[0] else { panic!() };
        assert_eq!(f.header("a:b"), Some("c\\d"));
    }

    #[test]
    fn limits_are_typed_errors_with_numbers() {
        let limits = Limits {
            max_frame_size: 64,
            max_headers: 2,
            max_header_line: 16,
            max_body_size: 8,
        };
        let mut d = Decoder::new(limits);
        assert_eq!(
            decode_all(&mut d, b"SEND\na:1\nb:2\nc:3\n\n\0"),
            Err(DecodeError::TooManyHeaders { max: 2 })
        );
        let mut d = Decoder::new(limits);
        assert_eq!(
            decode_all(&mut d, b"SEND\naaaaaaaaaaaaaaaaaaaa"),
            Err(DecodeError::HeaderLineTooLong { len: 20, max: 16 })
        );
        let mut d = Decoder::new(limits);
        assert_eq!(
            decode_all(&mut d, b"SEND\ncontent-length:9\n\n"),
            Err(DecodeError::BodyTooLarge { size: 9, max: 8 })
        );
        let mut d = Decoder::new(limits);
        assert_eq!(
            decode_all(&mut d, b"SEND\n\n123456789"),
            Err(DecodeError::BodyTooLarge { size: 9, max: 8 })
        );
    }

    #[test]
    fn bad_input_errors() {
        assert!(matches!(
            one_frame(b"FOO\n\n\0"),
            Err(DecodeError::UnknownCommand { .. })
        ));
        assert!(matches!(
            one_frame(b"SEND\nnocolon\n\n\0"),
            Err(DecodeError::MalformedHeader { .. })
        ));
        assert!(matches!(
            one_frame(b"SEND\n:empty\n\n\0"),
            Err(DecodeError::MalformedHeader { .. })
        ));
        assert_eq!(
            one_frame(b"SEND\na:\xff\n\n\0"),
            Err(DecodeError::InvalidUtf8)
        );
        assert!(matches!(
            one_frame(b"SEND\na:\\t\n\n\0"),
            Err(DecodeError::InvalidEscape { .. })
        ));
        // CONNECT is never unescaped, whatever the version.
        let f = one_frame(b"CONNECT\npasscode:a\\tb\n\n\0").unwrap();
        assert_eq!(f.header("passcode"), Some("a\\tb"));
    }
}
