//! SockJS frames and their encodings: no I/O.
//!
//! A frame is what the server sends down a session: `o` (open), `h` (heartbeat), `a[...]`
//! (messages, a JSON array of strings) and `c[code,"reason"]` (close). Each transport wraps the
//! frame its own way ([`Framing`]): a line for XHR, `data:` for EventSource, a `<script>` for
//! htmlfile, a callback call for JSONP, the bare frame for WebSocket.
//!
//! The client sends a JSON array of strings (or, over WebSocket, a single string);
//! [`decode_messages`] reads it.

use bytes::{BufMut, Bytes, BytesMut};

/// The close frame of a session closed by the application with no code of its own (sockjs-node's
/// and Spring's `GO_AWAY`).
pub const GO_AWAY: (u16, &str) = (3000, "Go away!");
/// Sent to a second receiver while one is attached; that request ends, the session goes on.
pub const ANOTHER_CONNECTION: (u16, &str) = (2010, "Another connection still open");
/// The close frame of a session whose receiver went away mid-response (a dropped stream or
/// poll), as sockjs-node reports it to the next request.
pub const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

/// One frame of the SockJS protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `o`: the session is open.
    Open,
    /// `h`: nothing to say, the session is alive.
    Heartbeat,
    /// `a[...]`: one or more application messages.
    Messages(Vec<String>),
    /// `c[code,"reason"]`: the session is closed.
    Close(u16, String),
}

impl Frame {
    /// The close frame for `(code, reason)`.
    pub fn close((code, reason): (u16, &str)) -> Frame {
        Frame::Close(code, reason.to_owned())
    }

    /// The frame's text (`o`, `h`, `a["..."]`, `c[3000,"Go away!"]`).
    pub fn encode(&self) -> String {
        match self {
            Frame::Open => "o".to_owned(),
            Frame::Heartbeat => "h".to_owned(),
            Frame::Messages(messages) => {
                let len = messages.iter().map(|m| m.len() + 3).sum::<usize>() + 3;
                let mut out = String::with_capacity(len);
                out.push_str("a[");
                for (i, message) in messages.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(&mut out, message);
                }
                out.push(']');
                out
            }
            Frame::Close(code, reason) => {
                let mut out = format!("c[{code},");
                write_json_string(&mut out, reason);
                out.push(']');
                out
            }
        }
    }
}

/// How a transport wraps each frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `frame\n`: `xhr`, `xhr_streaming`.
    Line,
    /// `data: frame\r\n\r\n`: `eventsource`.
    EventSource,
    /// `<script>\np("frame");\n</script>\r\n`: `htmlfile`.
    HtmlFile,
    /// `/**/callback("frame");\r\n`: `jsonp`.
    Jsonp(String),
}

impl Framing {
    /// `frame` as this transport writes it.
    pub fn wrap(&self, frame: &Frame) -> Bytes {
        let text = frame.encode();
        let mut out = BytesMut::with_capacity(text.len() + 32);
        match self {
            Framing::Line => {
                out.put_slice(text.as_bytes());
                out.put_u8(b'\n');
            }
            Framing::EventSource => {
                out.put_slice(b"data: ");
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n\r\n");
            }
            Framing::HtmlFile => {
                let mut quoted = String::with_capacity(text.len() + 8);
                write_json_string(&mut quoted, &text);
                out.put_slice(b"<script>\np(");
                out.put_slice(quoted.as_bytes());
                out.put_slice(b");\n</script>\r\n");
            }
            Framing::Jsonp(callback) => {
                let mut quoted = String::with_capacity(text.len() + 8);
                write_json_string(&mut quoted, &text);
                out.put_slice(b"/**/");
                out.put_slice(callback.as_bytes());
                out.put_u8(b'(');
                out.put_slice(quoted.as_bytes());
                out.put_slice(b");\r\n");
            }
        }
        out.freeze()
    }
}

/// Appends `s` as a JSON string, escaping what the protocol asks a server to escape: besides
/// JSON's own (`"`, `\`, controls below U+0020), the characters that some browsers drop or
/// mangle when they arrive raw (U+200C–U+200F, U+2028–U+202F, U+2060–U+206F, U+FFF0–U+FFFF),
/// as `\uXXXX` in lower-case hex, as sockjs-node does.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        if short.is_none() && !needs_unicode_escape(c) {
            continue;
        }
        out.push_str(&s[start..i]);
        match short {
            Some(escape) => out.push_str(escape),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn needs_unicode_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{200c}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{2060}'..='\u{206f}'
        | '\u{fff0}'..='\u{ffff}')
}

/// Why a client's payload was refused; the texts are the protocol's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// An empty body (`xhr_send`, `jsonp_send`): 500 `Payload expected.`
    Empty,
    /// Not a JSON array of strings (nor one string): 500 `Broken JSON encoding.`
    BrokenJson,
}

impl PayloadError {
    /// The response body the protocol gives for this error.
    pub fn text(self) -> &'static str {
        match self {
            PayloadError::Empty => "Payload expected.",
            PayloadError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

/// The messages of a client payload: a JSON array of strings, or one JSON string (sockjs-client
/// sends arrays; a single string is accepted as other servers do).
pub fn decode_messages(payload: &[u8]) -> Result<Vec<String>, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    if let Ok(messages) = serde_json::from_slice::<Vec<String>>(payload) {
        return Ok(messages);
    }
    serde_json::from_slice::<String>(payload)
        .map(|one| vec![one])
        .map_err(|_| PayloadError::BrokenJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_encode_as_the_protocol_writes_them() {
        assert_eq!(Frame::Open.encode(), "o");
        assert_eq!(Frame::Heartbeat.encode(), "h");
        assert_eq!(Frame::close(GO_AWAY).encode(), r#"c[3000,"Go away!"]"#);
        let frame = Frame::Messages(vec!["a".into(), "b\"c".into()]);
        assert_eq!(frame.encode(), r#"a["a","b\"c"]"#);
    }

    #[test]
    fn controls_and_the_protocols_unicode_ranges_are_escaped() {
        let mut out = String::new();
        write_json_string(
            &mut out,
            "  \0\n\r \u{200c}\u{2028}\u{2060}\u{fff0}\u{ffff}é€\u{1F600}",
        );
        assert_eq!(out, r#""  \u0000\n\r \u200c\u2028\u2060\ufff0\uffffé€😀""#);
        // What the escaped text decodes to is what was written.
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            "  \0\n\r \u{200c}\u{2028}\u{2060}\u{fff0}\u{ffff}é€\u{1F600}"
        );
    }

    #[test]
    fn framings_wrap_frames() {
        let frame = Frame::Messages(vec!["x".into()]);
        assert_eq!(&Framing::Line.wrap(&frame)[..], b"a[\"x\"]\n");
        assert_eq!(
            &Framing::EventSource.wrap(&frame)[..],
            b"data: a[\"x\"]\r\n\r\n"
        );
        assert_eq!(
            &Framing::HtmlFile.wrap(&frame)[..],
            b"<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        assert_eq!(
            &Framing::Jsonp("cb".into()).wrap(&Frame::Open)[..],
            b"/**/cb(\"o\");\r\n"
        );
    }

    #[test]
    fn payloads_decode_or_say_why_not() {
        assert_eq!(
            decode_messages(b"[\"a\",\"b\"]"),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(decode_messages(b"\"a\""), Ok(vec!["a".into()]));
        assert_eq!(decode_messages(b"[]"), Ok(vec![]));
        assert_eq!(decode_messages(b""), Err(PayloadError::Empty));
        assert_eq!(decode_messages(b"[\"a"), Err(PayloadError::BrokenJson));
        assert_eq!(decode_messages(b"[1]"), Err(PayloadError::BrokenJson));
        assert_eq!(decode_messages(b"\xff"), Err(PayloadError::BrokenJson));
    }
}
