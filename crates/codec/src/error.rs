//! Decode errors. Each names its cause and carries the numbers, so a broker can answer with a
//! precise `ERROR` frame.

/// Why bytes could not be decoded into a frame. After an error the decoder must not be reused:
/// the stream is out of sync, and the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame (head plus body) is larger than [`crate::Limits::max_frame_size`].
    #[error("frame of at least {size} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Bytes seen so far (or announced by `content-length`).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The body is larger than [`crate::Limits::max_body_size`].
    #[error("body of at least {size} bytes exceeds the maximum of {max}")]
    BodyTooLarge {
        /// Bytes seen so far (or announced by `content-length`).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More header lines than [`crate::Limits::max_headers`].
    #[error("more than {max} headers")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A command or header line longer than [`crate::Limits::max_header_line`].
    #[error("header line of at least {len} bytes exceeds the maximum of {max}")]
    HeaderLineTooLong {
        /// Bytes in the line seen so far.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The command line is not one of the fifteen STOMP commands.
    #[error("unknown command {command:?}")]
    UnknownCommand {
        /// The command line, cut to 32 characters, lossily decoded.
        command: String,
    },
    /// A header line has no colon or an empty name.
    #[error("malformed header line {line:?}")]
    MalformedHeader {
        /// The line, cut to 64 characters, lossily decoded.
        line: String,
    },
    /// A backslash followed by something the negotiated version does not define.
    #[error("undefined escape sequence {sequence:?} in header")]
    InvalidEscape {
        /// The two characters (or one, at the end of the text).
        sequence: String,
    },
    /// The command or a header is not valid UTF-8.
    #[error("header text is not valid UTF-8")]
    InvalidUtf8,
    /// `content-length` is not a decimal number.
    #[error("content-length {value:?} is not a decimal byte count")]
    InvalidContentLength {
        /// The header value.
        value: String,
    },
    /// The byte after `content-length` bytes of body is not the NUL terminator.
    #[error("no NUL after the {content_length} bytes announced by content-length")]
    MissingNul {
        /// The announced length.
        content_length: usize,
    },
    /// A carriage return not followed by a line feed where an EOL was expected.
    #[error("carriage return not followed by a line feed")]
    BareCarriageReturn,
    /// A NUL byte in a header name or value, in any version. The spec's grammar does not rule
    /// it out, but a NUL ends a frame for most readers, so a header such as `x:a\0MESSAGE`
    /// passed on would mis-frame a subscriber's stream; no version has an escape for it.
    #[error("NUL byte in header {name:?}")]
    NulInHeader {
        /// The header's name as sent, cut to 64 characters, lossily decoded. The message quotes
        /// it with Rust escapes, so a NUL in the name reads `\0` there, never a raw NUL.
        name: String,
    },
    /// A carriage return in a header name or value, in any version: in a head a CR is only
    /// allowed as the first half of a CRLF line end. (An escaped `\r` in a 1.2 value is not a
    /// CR on the wire, and stays allowed.)
    #[error("carriage return not followed by a line feed in header {name:?}")]
    BareCarriageReturnInHeader {
        /// The header's name as sent, cut to 64 characters, lossily decoded (quoted with Rust
        /// escapes in the message, so a CR in the name reads `\r`).
        name: String,
    },
}

fn cut(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

impl DecodeError {
    pub(crate) fn unknown_command(line: &[u8]) -> Self {
        DecodeError::UnknownCommand {
            command: cut(line, 32),
        }
    }

    pub(crate) fn malformed_header(line: &[u8]) -> Self {
        DecodeError::MalformedHeader {
            line: cut(line, 64),
        }
    }

    pub(crate) fn nul_in_header(name: &[u8]) -> Self {
        DecodeError::NulInHeader {
            name: cut(name, 64),
        }
    }

    pub(crate) fn bare_carriage_return_in_header(name: &[u8]) -> Self {
        DecodeError::BareCarriageReturnInHeader {
            name: cut(name, 64),
        }
    }
}
