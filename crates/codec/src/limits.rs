//! Size limits, enforced while decoding and before buffering.

/// Every limit the decoder enforces. Crossing one is a distinct [`crate::DecodeError`] that
/// carries the numbers, checked as soon as the bytes seen so far prove it (never after buffering
/// a whole oversize frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, head plus body, in bytes. Default 4 MiB + 64 KiB: room for a body at
    /// [`Limits::max_body_size`] plus a generous head.
    pub max_frame_size: usize,
    /// Most header lines in one frame, repeats included. Default 64: real clients send fewer
    /// than 15; the bound keeps the head parse cheap.
    pub max_headers: usize,
    /// Longest single line (command or `name:value`) in bytes, before unescaping. Default
    /// 8 KiB, as HTTP servers allow, so a JWT in a `passcode` or custom header fits.
    pub max_header_line: usize,
    /// Largest body in bytes. Default 4 MiB, RabbitMQ's default STOMP frame limit; stomp.js
    /// splits larger payloads across WebSocket messages, which the decoder joins.
    pub max_body_size: usize,
}

impl Limits {
    /// The defaults documented on each field.
    pub const DEFAULT: Limits = Limits {
        max_frame_size: 4 * 1024 * 1024 + 64 * 1024,
        max_headers: 64,
        max_header_line: 8 * 1024,
        max_body_size: 4 * 1024 * 1024,
    };

    /// No limit at all (for tests and trusted peers such as a client reading its own broker).
    pub const UNLIMITED: Limits = Limits {
        max_frame_size: usize::MAX,
        max_headers: usize::MAX,
        max_header_line: usize::MAX,
        max_body_size: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
