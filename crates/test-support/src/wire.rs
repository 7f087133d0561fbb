//! What socket tests share: bounded waits, frames as bytes (encoded, or written by hand).

use std::{future::Future, time::Duration};

use bytes::BytesMut;
use stompbox_codec::{Frame, Version};

/// Upper bound on every wait of the socket clients: real sockets on a loaded 2-core CI machine
/// are slower than the in-memory transport (see [`crate::DEFAULT_WAIT`]), but a hang still
/// fails instead of blocking the suite.
pub const SOCKET_WAIT: Duration = Duration::from_secs(20);

/// Awaits `fut` for at most [`SOCKET_WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(SOCKET_WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {SOCKET_WAIT:?} waiting for {what}"),
    }
}

/// `frame` encoded as STOMP 1.2.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    stompbox_codec::encode(frame, Version::V1_2, &mut out);
    out.to_vec()
}

/// A frame written by hand, headers verbatim (no escaping, no `content-length` added), for
/// tests that cut frames at exact byte positions.
pub fn raw_frame(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}:{value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
    out
}
