//! STOMP 1.0, 1.1 and 1.2 frames: bytes in, frames out, and back. No sockets, no runtime.
//!
//! ```
//! use bytes::BytesMut;
//! use stompbox_codec::{encode, Command, Decoder, Frame, Item, Version};
//!
//! let mut buf = BytesMut::from(&b"SEND\ndestination:/topic/a\n\nhello\0\n"[..]);
//! let mut decoder = Decoder::default();
//! let Some(Item::Frame(frame)) = decoder.decode(&mut buf)? else { panic!() };
//! assert_eq!(frame.header("destination"), Some("/topic/a"));
//! assert_eq!(&frame.body[..], b"hello");
//! assert_eq!(decoder.decode(&mut buf)?, Some(Item::HeartBeat));
//! assert_eq!(decoder.decode(&mut buf)?, None); // need more bytes
//!
//! let mut out = BytesMut::new();
//! encode(&Frame::new(Command::Receipt).with_header("receipt-id", "7"), Version::V1_2, &mut out);
//! assert_eq!(&out[..], b"RECEIPT\nreceipt-id:7\n\n\0");
//! # Ok::<(), stompbox_codec::DecodeError>(())
//! ```
//!
//! # Layout
//! - [`decode`](Decoder::decode) (`decode.rs`): the incremental decoder, a two-state machine
//!   (head, body) that never rescans bytes; the head is parsed once with nom.
//! - `encode.rs`: [`encode`] and the low-level writers the broker uses to build a frame once and
//!   share it.
//! - `escape.rs`: header escaping per version.
//! - [`Frame`], [`Headers`], [`Command`], [`Version`]: the protocol nouns.
//! - [`Limits`] and [`DecodeError`]: every bound and every way input can be wrong.
//! - `tokio_codec.rs` (feature `tokio-util`): [`StompCodec`], a `tokio_util::codec` adapter.
//!
//! Evidence, outside `src/`: `tests/` (every spec example, split-at-every-byte, property
//! round trips), `fuzz/` (cargo-fuzz targets and seeds), `benches/codec.rs` (criterion, against
//! the `stomp-parser` crate; figures in `docs/benchmarks.md` at the repository root).

mod command;
mod decode;
mod encode;
mod error;
mod escape;
mod frame;
mod headers;
mod limits;
#[cfg(feature = "tokio-util")]
mod tokio_codec;
mod version;

pub use bytestring::ByteString;
pub use command::Command;
pub use decode::{Decoder, Item};
pub use encode::{
    encode, encoded_len_hint, write_body, write_body_head, write_command, write_header,
};
pub use error::DecodeError;
pub use frame::{Frame, detach};
pub use headers::Headers;
pub use limits::Limits;
#[cfg(feature = "tokio-util")]
pub use tokio_codec::{CodecError, StompCodec};
pub use version::{UnknownVersion, Version};
