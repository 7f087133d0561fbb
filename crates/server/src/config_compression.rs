//! `[websocket.compression]`: permessage-deflate (RFC 7692) on the WebSocket endpoints.

use serde::{Deserialize, Serialize};
use stompbox_websocket::DeflateConfig;

use crate::Error;

/// Compression of WebSocket messages, for clients that offer it (browsers do). Each message
/// is compressed on its own (no context takeover either way), so a connection keeps no
/// compression state: the cost is CPU per message sent and received, never memory per idle
/// connection. Figures in `docs/benchmarks.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Negotiate permessage-deflate when a client offers it. Default `true`.
    pub enabled: bool,
    /// zlib's level, 1 (fastest) to 9 (smallest). Default 1.
    pub level: u32,
    /// Messages shorter than this many bytes go uncompressed (a heart-beat, a RECEIPT). A
    /// message that would not shrink goes uncompressed too. Default 256.
    pub min_size: usize,
    /// The compressor's window, as base-2 logarithm, 9 to 15 (a client may ask for less).
    /// Default 15 (32 KiB): the window is per thread, not per connection.
    pub max_window_bits: u8,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        let defaults = DeflateConfig::default();
        CompressionConfig {
            enabled: true,
            level: defaults.level,
            min_size: defaults.min_size,
            max_window_bits: defaults.max_window_bits,
        }
    }
}

impl CompressionConfig {
    /// The settings handed to the endpoints; None when compression is off.
    pub fn deflate(&self) -> Option<DeflateConfig> {
        self.enabled.then_some(DeflateConfig {
            level: self.level,
            min_size: self.min_size,
            max_window_bits: self.max_window_bits,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, reason: &str| {
            Err(Error::InvalidConfig {
                key: format!("websocket.compression.{key}"),
                reason: reason.to_owned(),
            })
        };
        if !(1..=9).contains(&self.level) {
            return bad("level", "must be 1 to 9");
        }
        if !(9..=15).contains(&self.max_window_bits) {
            return bad("max_window_bits", "must be 9 to 15");
        }
        Ok(())
    }
}
