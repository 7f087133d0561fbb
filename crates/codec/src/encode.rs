//! Encoding: frames out as bytes, into a caller's `BytesMut`.

use bytes::{BufMut, BytesMut};

use crate::escape::{Escaping, escape_into};
use crate::{Command, Frame, Version};

/// Appends `frame` to `dst`, escaped for `version`.
///
/// Any `content-length` header in `frame.headers` is ignored: the encoder writes the true length
/// for every non-empty body (so bodies may contain NULs) and none for an empty one. The body is
/// copied into `dst`; the same `Bytes` body can be encoded into any number of frames.
///
/// Header text is escaped as the version defines. What it cannot carry is replaced, never
/// written raw, so the output always decodes: a NUL (no version has an escape for it) by a space;
/// a CR by a space in 1.1 (no escape; a raw CR that is not part of a CRLF is refused); CR and LF
/// by spaces, and a colon in a name by `_`, in 1.0 and in `CONNECT`/`STOMP`/`CONNECTED` frames.
/// Code that builds headers from outside input should refuse a NUL before it gets here.
pub fn encode(frame: &Frame, version: Version, dst: &mut BytesMut) {
    dst.reserve(encoded_len_hint(frame));
    let escaping = Escaping::for_frame(version, frame.command.escapes_headers());
    write_command(frame.command, dst);
    for (name, value) in frame.headers.iter() {
        if name == "content-length" {
            continue;
        }
        write_header_escaped(name, value, escaping, dst);
    }
    write_body(&frame.body, dst);
}

/// A cheap upper-bound guess of the encoded size, for reserving (escapes may add a little).
pub fn encoded_len_hint(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    frame.command.as_str().len() + 1 + headers + 28 + frame.body.len() + 1
}

/// Writes the command line. Low-level: follow with [`write_header`]s and [`write_body`].
pub fn write_command(command: Command, dst: &mut BytesMut) {
    dst.put_slice(command.as_str().as_bytes());
    dst.put_u8(b'\n');
}

/// Writes one `name:value` line, escaped as `version` requires for `command`'s frames.
pub fn write_header(
    name: &str,
    value: &str,
    command: Command,
    version: Version,
    dst: &mut BytesMut,
) {
    let escaping = Escaping::for_frame(version, command.escapes_headers());
    write_header_escaped(name, value, escaping, dst);
}

fn write_header_escaped(name: &str, value: &str, escaping: Escaping, dst: &mut BytesMut) {
    escape_into(name, escaping, true, dst);
    dst.put_u8(b':');
    escape_into(value, escaping, false, dst);
    dst.put_u8(b'\n');
}

/// Writes `content-length` (for a non-empty body), the blank line, the body and the NUL.
pub fn write_body(body: &[u8], dst: &mut BytesMut) {
    write_body_head(body.len(), dst);
    dst.put_slice(body);
    dst.put_u8(0);
}

/// The part of [`write_body`] before the body: `content-length` (when `body_len` is not 0) and
/// the blank line, for a caller that encodes a head once and appends the body and NUL to many
/// copies of it.
pub fn write_body_head(body_len: usize, dst: &mut BytesMut) {
    if body_len > 0 {
        dst.put_slice(b"content-length:");
        dst.put_slice(itoa::Buffer::new().format(body_len).as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_length_and_escapes() {
        let frame = Frame::new(Command::Message)
            .with_header("destination", "/topic/a:b")
            .with_header("content-length", "999")
            .with_body(&b"hi\0there"[..]);
        let mut out = BytesMut::new();
        encode(&frame, Version::V1_2, &mut out);
        assert_eq!(
            &out[..],
            b"MESSAGE\ndestination:/topic/a\\cb\ncontent-length:8\n\nhi\0there\0"
        );
        out.clear();
        encode(&Frame::new(Command::Receipt), Version::V1_2, &mut out);
        assert_eq!(&out[..], b"RECEIPT\n\n\0");
    }

    #[test]
    fn connect_frames_are_never_escaped() {
        let frame = Frame::new(Command::Connected).with_header("server", "a:b\\c");
        let mut out = BytesMut::new();
        encode(&frame, Version::V1_2, &mut out);
        assert_eq!(&out[..], b"CONNECTED\nserver:a:b\\c\n\n\0");
    }
}
