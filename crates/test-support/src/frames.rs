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

/// `SUBSCRIBE` with `id`, `destination` and an `ack` mode (`auto`, `client`,
/// `client-individual`).
pub fn subscribe_ack(id: &str, destination: &str, ack: &str) -> Frame {
    subscribe(id, destination).with_header("ack", ack)
}

/// STOMP 1.2 `ACK` of the MESSAGE whose `ack` header is `id`.
pub fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).with_header("id", id)
}

/// STOMP 1.2 `NACK` of the MESSAGE whose `ack` header is `id`.
pub fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).with_header("id", id)
}

/// `BEGIN` of transaction `transaction`.
pub fn begin(transaction: &str) -> Frame {
    Frame::new(Command::Begin).with_header("transaction", transaction)
}

/// `COMMIT` of transaction `transaction`.
pub fn commit(transaction: &str) -> Frame {
    Frame::new(Command::Commit).with_header("transaction", transaction)
}

/// `ABORT` of transaction `transaction`.
pub fn abort(transaction: &str) -> Frame {
    Frame::new(Command::Abort).with_header("transaction", transaction)
}
