//! `tokio_util::codec` adapter, for framing a raw TCP stream with `Framed`.

use bytes::BytesMut;

use crate::{DecodeError, Decoder, Frame, Item, Limits, Version};

/// A `tokio_util::codec::{Decoder, Encoder}` over [`Decoder`] and [`crate::encode`].
#[derive(Debug, Default)]
pub struct StompCodec {
    decoder: Decoder,
}

impl StompCodec {
    /// A codec with these decode limits, for STOMP 1.2.
    pub fn new(limits: Limits) -> Self {
        StompCodec {
            decoder: Decoder::new(limits),
        }
    }

    /// The version used to escape and unescape headers from now on.
    pub fn set_version(&mut self, version: Version) {
        self.decoder.set_version(version);
    }
}

/// An I/O error or a decode error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl tokio_util::codec::Decoder for StompCodec {
    type Item = Item;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Item>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl tokio_util::codec::Encoder<&Frame> for StompCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        crate::encode(frame, self.decoder.version(), dst);
        Ok(())
    }
}
