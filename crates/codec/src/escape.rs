//! Header escaping, exactly per version (spec 1.2 "Value Encoding", 1.1 "Value Encoding").
//!
//! | version | on the wire            | decoded |
//! |---------|------------------------|---------|
//! | 1.2     | `\r` `\n` `\c` `\\`    | CR, LF, `:`, `\` |
//! | 1.1     | `\n` `\c` `\\`         | LF, `:`, `\` |
//! | 1.0     | none                   |         |
//!
//! Any other backslash sequence in 1.1/1.2 is an error. The decoder refuses a raw NUL or a bare
//! CR (one not followed by LF) in header text in every version, so the encoder never writes
//! either: no version has an escape for NUL, and only 1.2 has one for CR. Where there is no
//! escape the encoder replaces the character rather than emit a frame that desynchronises the
//! stream or that the peer must refuse: NUL (any version), CR (1.1, 1.0, and the frames that are
//! never escaped: `CONNECT`, `STOMP`, `CONNECTED`) and LF (1.0 and those frames) by a space, and a
//! colon in a name (1.0 and those frames) by `_`.

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
    let bytes = text.as_bytes();
    let special = |b: u8| match escaping {
        Escaping::None => b == 0 || b == b'\r' || b == b'\n' || (is_name && b == b':'),
        Escaping::V1_1 | Escaping::V1_2 => {
            b == 0 || b == b'\r' || b == b'\n' || b == b':' || b == b'\\'
        }
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
            // No escape exists: NUL in any version, CR before 1.2, anything unescaped.
            (_, 0) | (Escaping::None, _) | (Escaping::V1_1, b'\r') => dst.put_u8(b' '),
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
        // 1.1 cannot escape CR, and a raw CR that is not part of a CRLF is refused.
        assert_eq!(esc("a\rb\r\r", Escaping::V1_1), "a b  ");
        assert_eq!(esc("a\r\n:\\b", Escaping::None), "a  :\\b");
    }

    #[test]
    fn nul_is_never_written() {
        // No version has an escape for NUL; a raw one would end the frame for most readers.
        for e in [Escaping::None, Escaping::V1_1, Escaping::V1_2] {
            assert_eq!(esc("a\0b\0", e), "a b ");
            let mut name = BytesMut::new();
            escape_into("\0x", e, true, &mut name);
            assert_eq!(&name[..], b" x");
        }
    }
}
