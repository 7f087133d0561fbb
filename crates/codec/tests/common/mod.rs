//! Helpers shared by the codec's integration tests: drive a [`Decoder`] over whole inputs or
//! over chunks, collecting every item until it needs more bytes or fails.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use bytes::BytesMut;
use stompbox_codec::{DecodeError, Decoder, Frame, Item, Limits, Version};

/// What decoding a stream produced: the items in order, then the error that stopped it (if any).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub items: Vec<Item>,
    pub error: Option<DecodeError>,
    /// Bytes left in the buffer, not yet part of a complete item.
    pub leftover: usize,
}

/// Decodes `chunks` fed one after another, draining the decoder after each chunk.
pub fn decode_chunks<'a>(
    version: Version,
    limits: Limits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        items,
                        error: Some(e),
                        leftover: buf.len(),
                    };
                }
            }
        }
    }
    Outcome {
        items,
        error: None,
        leftover: buf.len(),
    }
}

/// Decodes `input` in one go.
pub fn decode_whole(version: Version, limits: Limits, input: &[u8]) -> Outcome {
    decode_chunks(version, limits, [input])
}

/// Decodes `input` (1.2, default limits), which must hold exactly one frame and nothing else.
pub fn one_frame(input: &[u8]) -> Frame {
    one_frame_v(Version::V1_2, input)
}

/// Decodes `input` with `version`, which must hold exactly one frame and nothing else.
pub fn one_frame_v(version: Version, input: &[u8]) -> Frame {
    let out = decode_whole(version, Limits::default(), input);
    assert_eq!(
        out.error,
        None,
        "decoding {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(out.leftover, 0, "bytes left over");
    match &out.items[..] {
        [Item::Frame(f)] => f.clone(),
        other => panic!("expected exactly one frame, got {other:?}"),
    }
}

/// The error decoding `input` (whole) with `version` and `limits` stops at.
pub fn decode_error(version: Version, limits: Limits, input: &[u8]) -> DecodeError {
    match decode_whole(version, limits, input).error {
        Some(e) => e,
        None => panic!("expected an error for {:?}", String::from_utf8_lossy(input)),
    }
}

/// The headers of `frame` as owned pairs, in wire order.
pub fn headers(frame: &Frame) -> Vec<(String, String)> {
    frame
        .headers
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Owned header pairs from literals, for comparing with [`headers`].
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}
