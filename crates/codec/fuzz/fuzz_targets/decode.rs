//! Arbitrary bytes, any version, any chunking, tight or default limits.
//!
//! Input layout: byte 0 picks the version (and whether limits are tight), bytes 1..5 are the
//! chunk sizes to cycle through, the rest is the stream. Checks, beyond "no panic":
//! - with default limits, the chunked decode gives exactly the items and error of a whole decode;
//! - no frame that comes out is over any limit (size checked from the bytes it consumed);
//! - no header that comes out holds a NUL, nor a CR unless 1.2's `\r` escape made it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stompbox_codec::{DecodeError, Decoder, Item, Limits, Version};

const TIGHT: Limits = Limits {
    max_frame_size: 96,
    max_headers: 4,
    max_header_line: 24,
    max_body_size: 48,
};

fn decode(version: Version, limits: Limits, chunks: &[&[u8]]) -> (Vec<Item>, Option<DecodeError>) {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut consumed = 0usize;
    for piece in chunks {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            let result = decoder.decode(&mut buf);
            consumed += before - buf.len();
            match result {
                Ok(Some(item)) => {
                    if let Item::Frame(f) = &item {
                        assert!(f.body.len() <= limits.max_body_size);
                        assert!(consumed - 1 <= limits.max_frame_size);
                        assert!(f.headers.len() <= limits.max_headers);
                        let cr_escape = version == Version::V1_2 && f.command.escapes_headers();
                        for (n, v) in f.headers.iter() {
                            assert!(!n.is_empty());
                            assert!(n.len() + 1 + v.len() <= limits.max_header_line);
                            assert!(!n.contains('\0') && !v.contains('\0'));
                            assert!(cr_escape || !(n.contains('\r') || v.contains('\r')));
                        }
                    }
                    consumed = 0;
                    items.push(item);
                }
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((size as usize).max(1).min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let (sizes, data) = rest.split_at(rest.len().min(4));
    let version = Version::ALL[usize::from(selector % 3)];
    let chunked = chunks(data, if sizes.is_empty() { &[1] } else { sizes });
    if selector & 0x80 != 0 {
        // Tight limits: which limit is reported may depend on what had arrived, so only the
        // per-frame limit checks (inside `decode`) and the items before any error are compared.
        let whole = decode(version, TIGHT, &[data]);
        let split = decode(version, TIGHT, &chunked);
        assert_eq!(whole.0, split.0);
        assert_eq!(whole.1.is_some(), split.1.is_some());
    } else {
        let whole = decode(version, Limits::default(), &[data]);
        let split = decode(version, Limits::default(), &chunked);
        if data.len() < 8 * 1024 {
            // Below every default limit, so errors are the same exactly.
            assert_eq!(whole, split);
        } else {
            assert_eq!(whole.0, split.0);
        }
    }
});
