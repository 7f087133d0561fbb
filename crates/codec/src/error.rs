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
}
