//! A decoded or to-be-encoded frame.

use bytes::Bytes;
use bytestring::ByteString;

use crate::{Command, Headers};

/// One STOMP frame: a command, ordered headers and a body.
///
/// The body is a [`Bytes`]: decoded bodies are slices of the read buffer, and one body can be
/// shared by every frame it is encoded into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command line.
    pub command: Command,
    /// Headers in wire order, unescaped.
    pub headers: Headers,
    /// The body, without the terminating NUL.
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder: appends a header.
    pub fn with_header(
        mut self,
        name: impl Into<ByteString>,
        value: impl Into<ByteString>,
    ) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Builder: sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}
