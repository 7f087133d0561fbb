//! Header escaping, exactly per version (spec 1.2 "Value Encoding", 1.1 "Value Encoding").
//!
//! | version | on the wire            | decoded |
//! |---------|------------------------|---------|
//! | 1.2     | `\r` `\n` `\c` `\\`    | CR, LF, `:`, `\` |
//! | 1.1     | `\n` `\c` `\\`         | LF, `:`, `\` |
//! | 1.0     | none                   |         |
//!
//! Any other backslash sequence in 1.1/1.2 is an error. 1.1 has no escape for CR: a CR inside a
//! value is sent as is, but one that ends a value would read as part of a CRLF, so the encoder
//! sends it as a space. Frames that are never escaped
//! (`CONNECT`, `STOMP`, `CONNECTED`) and 1.0 frames cannot carry CR or LF in a header, nor a colon
//! in a name; the encoder replaces those characters (CR/LF by a space, `:` in a name by `_`) rather
//! than emit a frame that desynchronises the stream.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::{DecodeError, Version};

/// How header text is escaped in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// 1.0, or a CONNECT/STOMP/CONNECTED frame.
    None,
    /// 1.1 rules.
    V1_1,
    /// 1.2 rules.
    V1_2,
}

impl Escaping {
    pub(crate) fn for_frame(version: Version, escapes_headers: bool) -> Escaping {
        match (version, escapes_headers) {
            (_, false) | (Version::V1_0, _) => Escaping::None,
            (Version::V1_1, true) => Escaping::V1_1,
            (Version::V1_2, true) => Escaping::V1_2,
        }
    }
}

/// Decodes raw header text (`raw` is a slice of a frozen read buffer). Zero-copy when the text
/// holds no backslash or escaping is off.
pub(crate) fn unescape(raw: Bytes, escaping: Escaping) -> Result<ByteString, DecodeError> {
    if escaping == Escaping::None || memchr::memchr(b'\\', &raw).is_none() {
        return ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut iter = raw.iter().copied();
    while let Some(b) = iter.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let decoded = match (iter.next(), escaping) {
            (Some(b'n'), _) => b'\n',
            (Some(b'c'), _) => b':',
            (Some(b'\\'), _) => b'\\',
            (Some(b'r'), Escaping::V1_2) => b'\r',
            (next, _) => {
                let mut sequence = String::from("\\");
                if let Some(n) = next {
                    sequence.push_str(&String::from_utf8_lossy(&[n]));
                }
                return Err(DecodeError::InvalidEscape { sequence });
            }
        };
        out.push(decoded);
    }
    String::from_utf8(out)
        .map(ByteString::from)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// Writes header text (a name when `is_name`), escaped for `escaping`.
pub(crate) fn escape_into(text: &str, escaping: Escaping, is_name: bool, dst: &mut BytesMut) {
    if escaping == Escaping::V1_1
        && !is_name
        && let Some(head) = text.strip_suffix('\r')
    {
        // 1.1 has no escape for CR, and decoders accept CRLF line ends (1.2 requires it, most
        // 1.1 peers do it), so a CR ending a value would be read as part of the EOL and one more
        // CR lost on every hop: send that one CR as a space.
        escape_text(head, escaping, false, dst);
        dst.put_u8(b' ');
        return;
    }
    escape_text(text, escaping, is_name, dst);
}

fn escape_text(text: &str, escaping: Escaping, is_name: bool, dst: &mut BytesMut) {
    let bytes = text.as_bytes();
    let special = |b: u8| match escaping {
        Escaping::None => b == b'\r' || b == b'\n' || (is_name && b == b':'),
        Escaping::V1_1 => b == b'\n' || b == b':' || b == b'\\',
        Escaping::V1_2 => b == b'\r' || b == b'\n' || b == b':' || b == b'\\',
    };
    let Some(first) = bytes.iter().position(|&b| special(b)) else {
        dst.put_slice(bytes);
        return;
    };
    dst.reserve(bytes.len() + 8);
    dst.put_slice(&bytes[..first]);
    for &b in &bytes[first..] {
        if !special(b) {
            dst.put_u8(b);
            continue;
        }
        match (escaping, b) {
            (Escaping::None, b':') => dst.put_u8(b'_'),
            (Escaping::None, _) => dst.put_u8(b' '),
            (_, b'\n') => dst.put_slice(b"\\n"),
            (_, b'\r') => dst.put_slice(b"\\r"),
            (_, b':') => dst.put_slice(b"\\c"),
            _ => dst.put_slice(b"\\\\"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &'static str, e: Escaping) -> Result<String, DecodeError> {
        unescape(Bytes::from_static(s.as_bytes()), e).map(|s| s.to_string())
    }

    fn esc(s: &str, e: Escaping) -> String {
        let mut b = BytesMut::new();
        escape_into(s, e, false, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn version_rules() {
        assert_eq!(un(r"a\r\n\c\\b", Escaping::V1_2).unwrap(), "a\r\n:\\b");
        assert_eq!(un(r"a\n\c\\b", Escaping::V1_1).unwrap(), "a\n:\\b");
        assert!(matches!(
            un(r"a\rb", Escaping::V1_1),
            Err(DecodeError::InvalidEscape { .. })
        ));
        assert!(matches!(
            un(r"a\tb", Escaping::V1_2),
            Err(DecodeError::InvalidEscape { .. })
        ));
        assert!(matches!(
            un(r"trailing\", Escaping::V1_2),
            Err(DecodeError::InvalidEscape { .. })
        ));
        assert_eq!(un(r"a\tb", Escaping::None).unwrap(), r"a\tb");
        assert_eq!(esc("a\r\n:\\b", Escaping::V1_2), r"a\r\n\c\\b");
        assert_eq!(esc("a\n:\\b", Escaping::V1_1), r"a\n\c\\b");
        assert_eq!(esc("a\rb\r\r", Escaping::V1_1), "a\rb\r ");
        assert_eq!(esc("a\r\n:\\b", Escaping::None), "a  :\\b");
    }
}
