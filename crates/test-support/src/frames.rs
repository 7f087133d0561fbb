//! Builders for the frames a client sends. Add headers with [`Frame::with_header`].

use stompbox_codec::{Command, Frame};

/// `CONNECT` for STOMP 1.2 with no heart-beats.
pub fn connect() -> Frame {
    connect_with_versions("1.2")
}

/// `CONNECT` offering `accept-version: versions`, no heart-beats.
pub fn connect_with_versions(versions: &str) -> Frame {
    Frame::new(Command::Connect)
        .with_header("accept-version", versions)
        .with_header("host", "localhost")
        .with_header("heart-beat", "0,0")
}

/// `CONNECT` with no `accept-version` (STOMP 1.0) and no heart-beat header.
pub fn connect_1_0() -> Frame {
    Frame::new(Command::Connect).with_header("host", "localhost")
}

/// `SUBSCRIBE` with `id` and `destination`.
pub fn subscribe(id: &str, destination: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", id)
        .with_header("destination", destination)
}

/// `UNSUBSCRIBE` with `id`.
pub fn unsubscribe(id: &str) -> Frame {
    Frame::new(Command::Unsubscribe).with_header("id", id)
}

/// `SEND` to `destination` with a text body.
pub fn send(destination: &str, body: impl Into<bytes::Bytes>) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", destination)
        .with_body(body)
}

/// `DISCONNECT` asking for receipt `receipt`.
pub fn disconnect(receipt: &str) -> Frame {
    Frame::new(Command::Disconnect).with_header("receipt", receipt)
}
