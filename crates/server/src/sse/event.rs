//! MESSAGE frames as Server-Sent Events (the `text/event-stream` format of the HTML standard).

use bytes::{BufMut, Bytes, BytesMut};
use stompbox_codec::Frame;

/// One event, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `id` field (the message id), matched against `Last-Event-ID` on a reconnect.
    pub(crate) id: Box<str>,
    /// The event's bytes, blank line included.
    pub(crate) text: Bytes,
}

/// `message` as an event named `name`: `id` the message id, `data` the body, one `data:` line
/// per line of it (an SSE field cannot hold a line break; the client joins the lines with
/// `\n`). `None` for a body that is not UTF-8, which an event stream cannot carry.
pub(crate) fn message(message: &Frame, name: &str) -> Option<Event> {
    let body = std::str::from_utf8(&message.body).ok()?;
    let id = single_line(message.header("message-id").unwrap_or_default());
    let mut text = BytesMut::with_capacity(body.len() + id.len() + name.len() + 32);
    text.put_slice(b"id: ");
    text.put_slice(id.as_bytes());
    text.put_slice(b"\nevent: ");
    text.put_slice(name.as_bytes());
    text.put_u8(b'\n');
    for line in lines(body) {
        text.put_slice(b"data: ");
        text.put_slice(line.as_bytes());
        text.put_u8(b'\n');
    }
    text.put_u8(b'\n');
    Some(Event {
        id: id.into(),
        text: text.freeze(),
    })
}

/// The first bytes of a stream: the reconnection delay, and an id for the stream itself so
/// that a client that loses it before its first event can still resume it.
pub(crate) fn opening(retry_ms: u128, stream_id: &str) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\nid: {stream_id}\n\n"))
}

/// A comment: ignored by clients, it keeps idle proxies from closing the stream.
pub(crate) const KEEPALIVE: &[u8] = b":\n\n";

/// A comment in place of a message whose body is not UTF-8.
pub(crate) fn skipped(message: &Frame) -> Bytes {
    let id = single_line(message.header("message-id").unwrap_or_default());
    Bytes::from(format!(": message {id} skipped: its body is not UTF-8\n\n"))
}

/// The body's lines by the SSE rules: CRLF, CR and LF each end one.
fn lines(body: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = match text[at..].starts_with("\r\n") {
                    true => 2,
                    false => 1,
                };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// A field value cannot hold a line break (nor a NUL, which `Last-Event-ID` could not carry).
fn single_line(value: &str) -> String {
    value.replace(['\r', '\n', '\0'], "")
}

#[cfg(test)]
mod tests {
    use stompbox_codec::Command;

    use super::*;

    fn frame(body: &str) -> Frame {
        Frame::new(Command::Message)
            .with_header("message-id", "m-7")
            .with_body(body.to_owned())
    }

    #[test]
    fn a_body_becomes_one_data_line_per_line() {
        let event = message(&frame("a\nb\r\nc\rd"), "message").unwrap();
        assert_eq!(event.id.as_ref(), "m-7");
        assert_eq!(
            event.text,
            "id: m-7\nevent: message\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn an_empty_body_is_one_empty_data_line_and_a_trailing_break_one_more() {
        let empty = message(&frame(""), "n").unwrap();
        assert_eq!(empty.text, "id: m-7\nevent: n\ndata: \n\n");
        let trailing = message(&frame("{}\n"), "n").unwrap();
        assert_eq!(trailing.text, "id: m-7\nevent: n\ndata: {}\ndata: \n\n");
    }

    #[test]
    fn binary_bodies_are_not_events() {
        let binary = Frame::new(Command::Message)
            .with_header("message-id", "m\n1")
            .with_body(vec![0xff, 0xfe]);
        assert_eq!(message(&binary, "message"), None);
        assert_eq!(
            skipped(&binary),
            ": message m1 skipped: its body is not UTF-8\n\n"
        );
    }
}
