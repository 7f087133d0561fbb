//! DEFLATE for one message at a time (RFC 7692 §7.2): compress a payload into what goes in a
//! frame with RSV1 set, and decompress such a payload, bounded.
//!
//! Without context takeover each message starts from an empty window, so the compressor and
//! decompressor are per thread, reset before each message, not per connection: a connection
//! that negotiated compression holds no DEFLATE state of its own.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::negotiate::Deflate;

/// The four bytes a sync flush ends with, removed from each compressed message and put back
/// before decompressing it (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    /// Compressors by (window bits, level): a process normally uses one.
    static COMPRESSORS: RefCell<Vec<(u8, u32, Compress)>> = const { RefCell::new(Vec::new()) };
    /// The decompressor of messages compressed without context takeover (a 32 KiB window
    /// reads any smaller one).
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// `payload` compressed as one message, or None when that would not make it smaller (the
/// message is then sent as it is, which a peer must accept: RSV1 is per message).
pub(crate) fn compress(deflate: &Deflate, payload: &[u8]) -> Option<Vec<u8>> {
    COMPRESSORS.with_borrow_mut(|compressors| {
        let (bits, level) = (deflate.window_bits, deflate.level);
        let index = match compressors
            .iter()
            .position(|(b, l, _)| (*b, *l) == (bits, level))
        {
            Some(index) => index,
            None => {
                let compress = Compress::new_with_window_bits(Compression::new(level), false, bits);
                compressors.push((bits, level, compress));
                compressors.len() - 1
            }
        };
        let compress = &mut compressors[index].2;
        compress.reset();
        // Worst case of a sync-flushed stream: stored blocks, 5 bytes per 64 KiB, the tail.
        let mut out = Vec::with_capacity(payload.len() + payload.len() / 16_000 + 16);
        loop {
            let read = compress.total_in() as usize;
            match compress.compress_vec(&payload[read..], &mut out, FlushCompress::Sync) {
                Ok(Status::Ok | Status::BufError) => {}
                Ok(Status::StreamEnd) | Err(_) => return None,
            }
            // Done when all was read and the flush had room to finish.
            if compress.total_in() as usize == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if !out.ends_with(&TAIL) {
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        (out.len() < payload.len()).then_some(out)
    })
}

/// Why a message could not be decompressed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It decompresses to more than the limit (checked as it goes: a small message that
    /// inflates to gigabytes stops at the limit).
    TooLarge,
    /// Not a valid DEFLATE stream.
    Corrupt,
}

/// A connection's decompressor when its peer keeps its context between messages (see
/// [`Deflate::peer_takeover`]): the window must carry over, so it cannot be shared.
pub(crate) struct Inflater {
    own: Option<Box<Decompress>>,
}

impl Inflater {
    pub(crate) fn new(deflate: &Deflate) -> Inflater {
        Inflater {
            own: deflate
                .peer_takeover
                .then(|| Box::new(Decompress::new(false))),
        }
    }

    /// The message whose compressed payload is `input` (the tail already removed, as it
    /// arrives), at most `max` bytes.
    pub(crate) fn inflate(
        &mut self,
        mut input: Vec<u8>,
        max: usize,
    ) -> Result<Vec<u8>, InflateError> {
        input.extend_from_slice(&TAIL);
        match &mut self.own {
            Some(own) => inflate_with(own, &input, max),
            None => DECOMPRESSOR.with_borrow_mut(|shared| {
                let decompress = shared.get_or_insert_with(|| Decompress::new(false));
                decompress.reset(false);
                inflate_with(decompress, &input, max)
            }),
        }
    }
}

fn inflate_with(
    decompress: &mut Decompress,
    input: &[u8],
    max: usize,
) -> Result<Vec<u8>, InflateError> {
    let limit = max.saturating_add(1);
    let mut out = Vec::with_capacity((input.len() * 4).clamp(64, limit));
    let start = decompress.total_in();
    loop {
        let read = (decompress.total_in() - start) as usize;
        let before = (decompress.total_in(), decompress.total_out());
        let status = decompress
            .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        if out.len() > max {
            return Err(InflateError::TooLarge);
        }
        let consumed = (decompress.total_in() - start) as usize == input.len();
        let full = out.len() == out.capacity();
        if status == Status::StreamEnd || (consumed && !full) {
            return Ok(out);
        }
        if full {
            // Grow by what was written so far, never past one byte over the limit.
            out.reserve_exact(out.len().max(1024).min(limit - out.len()));
        } else if before == (decompress.total_in(), decompress.total_out()) {
            // Input left, room left, and nothing moved: not a DEFLATE stream we can finish.
            return Err(InflateError::Corrupt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(takeover: bool) -> Deflate {
        Deflate {
            level: 1,
            min_size: 0,
            window_bits: 15,
            peer_takeover: takeover,
        }
    }

    const JSON: &[u8] = br#"{"type":"match-found","match":{"id":81237,"opponent":{"id":42,"name":"ada","rating":1712},"map":"harbour","starts_in":15}}"#;

    #[test]
    fn a_message_round_trips_and_shrinks() {
        let body = JSON.repeat(8);
        let compressed = compress(&deflate(false), &body).unwrap();
        assert!(
            compressed.len() < body.len() / 4,
            "{} bytes",
            compressed.len()
        );
        assert!(!compressed.ends_with(&TAIL));
        let inflated = Inflater::new(&deflate(false)).inflate(compressed.clone(), 1 << 20);
        assert_eq!(inflated.unwrap(), body);
    }

    #[test]
    fn what_does_not_shrink_is_left_alone() {
        assert_eq!(compress(&deflate(false), b"\n"), None);
        let mut x = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift32: bytes DEFLATE cannot shrink.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(compress(&deflate(false), &noise), None);
    }

    #[test]
    fn large_messages_round_trip() {
        let body: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        let compressed = compress(&deflate(false), &body).unwrap();
        let inflated = Inflater::new(&deflate(false)).inflate(compressed.clone(), body.len());
        assert_eq!(inflated.unwrap(), body);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10_000_000];
        let compressed = compress(&deflate(false), &zeros).unwrap();
        assert!(compressed.len() < zeros.len() / 100, "{}", compressed.len());
        let mut inflater = Inflater::new(&deflate(false));
        assert_eq!(
            inflater.inflate(compressed.clone(), 65_536),
            Err(InflateError::TooLarge)
        );
        // The shared decompressor is fine for the next message.
        let ok = compress(&deflate(false), JSON).unwrap();
        assert_eq!(inflater.inflate(ok, 65_536).unwrap(), JSON);
    }

    #[test]
    fn garbage_is_refused() {
        let mut inflater = Inflater::new(&deflate(false));
        assert_eq!(
            inflater.inflate(vec![0xff; 32], 1024),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn smaller_windows_are_readable_by_the_shared_decompressor() {
        for bits in 9..=15 {
            let small = Deflate {
                window_bits: bits,
                ..deflate(false)
            };
            let body = JSON.repeat(40);
            let compressed = compress(&small, &body).unwrap();
            let inflated = Inflater::new(&small).inflate(compressed.clone(), body.len());
            assert_eq!(inflated.unwrap(), body, "{bits} bits");
        }
    }

    #[test]
    fn a_peer_with_context_takeover_is_followed() {
        // A peer that keeps its window: the second message refers back to the first.
        let mut peer = Compress::new(Compression::new(6), false);
        let mut inflater = Inflater::new(&deflate(true));
        for round in 0..3 {
            let mut out = Vec::with_capacity(4096);
            peer.compress_vec(JSON, &mut out, FlushCompress::Sync)
                .unwrap();
            assert!(out.ends_with(&TAIL));
            out.truncate(out.len() - 4);
            if round > 0 {
                assert!(
                    out.len() < 20,
                    "the window was not used: {} bytes",
                    out.len()
                );
            }
            assert_eq!(inflater.inflate(out, 4096).unwrap(), JSON);
        }
    }
}
