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

/// Copies `headers` and `body` into one new allocation of exactly their size, so that they no
/// longer share the buffer they were decoded from.
///
/// Decoding is zero-copy: a frame's body and header strings are slices of the connection's read
/// buffer, and any one of them keeps that whole buffer alive. That is right for a message
/// delivered and dropped at once, and wrong for one that is kept (queued, held in a
/// transaction, buffered for another node): a 1-byte message read together with a 4 MB one
/// would hold 4 MB while the broker counts 1 byte. A kept message is detached first, so the
/// bytes counted against its limits are the bytes held.
///
/// `also` are strings kept beside them (a destination), copied into the same allocation: one
/// allocation and one copy in all, since this runs for every queued message.
pub fn detach(headers: &mut Headers, body: &mut Bytes, also: &mut [&mut ByteString]) {
    let entries = headers.entries_mut();
    let strings: usize = entries
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum::<usize>()
        + also.iter().map(|s| s.len()).sum::<usize>();
    let mut all = bytes::BytesMut::with_capacity(body.len() + strings);
    all.extend_from_slice(body);
    for (name, value) in entries.iter() {
        all.extend_from_slice(name.as_bytes());
        all.extend_from_slice(value.as_bytes());
    }
    for s in also.iter() {
        all.extend_from_slice(s.as_bytes());
    }
    let all = all.freeze();
    *body = all.slice(..body.len());
    let mut at = body.len();
    let mut copy = |s: &mut ByteString| {
        let text = all.slice(at..at + s.len());
        at += s.len();
        *s = ByteString::try_from(text).expect("copied from a str");
    };
    for (name, value) in entries.iter_mut() {
        copy(name);
        copy(value);
    }
    for s in also.iter_mut() {
        copy(s);
    }
}

impl Frame {
    /// [`detach`]es the frame's headers and body from the buffer they were decoded from.
    pub fn detach(&mut self) {
        detach(&mut self.headers, &mut self.body, &mut []);
    }
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    #[test]
    fn detaching_keeps_the_content_and_drops_the_shared_buffer() {
        let buffer = Bytes::from(b"big buffer: name, value, body and much more".to_vec());
        let mut headers = Headers::new();
        headers.push(
            ByteString::try_from(buffer.slice(12..16)).unwrap(),
            ByteString::try_from(buffer.slice(18..23)).unwrap(),
        );
        headers.push("x", "");
        let mut body = buffer.slice(25..29);
        let mut destination = ByteString::try_from(buffer.slice(0..3)).unwrap();
        detach(&mut headers, &mut body, &mut [&mut destination]);
        assert_eq!(&body[..], b"body");
        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(pairs, [("name", "value"), ("x", "")]);
        assert_eq!(destination, "big");
        // Nothing refers to the big buffer any more.
        assert!(buffer.is_unique());
    }
}
