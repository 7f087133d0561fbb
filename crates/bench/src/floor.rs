//! The floor: a bare WebSocket server that forwards every data message verbatim to every other
//! connection. No STOMP, no routing, no per-subscriber work beyond the copy into a channel, so
//! its fan-out rate on this machine is the ceiling Stompbox's figures are stated against.
//!
//! Each connection has a reader (forwards what it receives, everything one read delivered as one
//! shared batch) and a writer (drains its channel, feeding the socket and flushing only when the
//! channel is empty, so bursts leave as few large writes). Channels are bounded: a reader waits for a full peer, so a slow connection slows its
//! senders instead of losing messages or growing without bound. A connection is registered
//! before its handshake response is sent, so a client that saw the response receives every
//! message sent after it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Result;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::HeaderValue,
    protocol::WebSocketConfig,
};

use crate::transport::{READ_BUFFER, SUBPROTOCOL};

/// Batches a connection's channel holds before its senders wait.
const CHANNEL: usize = 1024;
/// Most messages forwarded as one batch.
const MAX_BATCH: usize = 256;

/// Messages read together, shared by every peer's channel.
type Batch = Arc<Vec<Message>>;
type Peers = Arc<RwLock<Arc<HashMap<u64, mpsc::Sender<Batch>>>>>;

/// A bound floor server; [`Floor::run`] serves until the future is dropped.
pub struct Floor {
    listener: TcpListener,
}

impl Floor {
    /// Binds `addr` (port 0 for any).
    pub async fn bind(addr: SocketAddr) -> Result<Floor> {
        Ok(Floor {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts and forwards forever (drop the future to stop; connections end with it only
    /// when their peers close).
    pub async fn run(self) -> Result<()> {
        let peers: Peers = Arc::default();
        let ids = AtomicU64::new(0);
        loop {
            let (stream, _) = self.listener.accept().await?;
            let id = ids.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(stream, id, peers.clone()));
        }
    }
}

async fn serve(stream: TcpStream, id: u64, peers: Peers) {
    let _ = stream.set_nodelay(true);
    let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL);
    let registry = peers.clone();
    // tungstenite's callback signature fixes the error type; we never reject.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        if offered {
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        update(&registry, |map| {
            map.insert(id, tx);
        });
        Ok::<_, ErrorResponse>(response)
    };
    // The same read buffer as the harness's connections, for the same reason (see READ_BUFFER).
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
    {
        Ok(ws) => ws,
        Err(_) => {
            update(&peers, |map| {
                map.remove(&id);
            });
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            if feed(&mut sink, &batch).await.is_err() {
                return;
            }
            while let Ok(batch) = rx.try_recv() {
                if feed(&mut sink, &batch).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(first)) = source.next().await {
        // Everything the socket already delivered travels as one batch: one channel send per
        // peer per read rather than per message (messages still leave one by one, verbatim).
        let mut batch = Vec::with_capacity(8);
        let mut closed = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Text(_) | Message::Binary(_) => batch.push(message),
                Message::Close(_) => closed = true,
                _ => {}
            }
            if closed || batch.len() >= MAX_BATCH {
                break;
            }
            if let Some(Some(Ok(message))) = source.next().now_or_never() {
                next = Some(message);
            }
        }
        if !batch.is_empty() {
            let batch: Batch = Arc::new(batch);
            let snapshot = peers.read().expect("peers lock").clone();
            for (&peer, sender) in snapshot.iter() {
                if peer != id {
                    // A closed peer is being removed; nothing to do.
                    let _ = sender.send(batch.clone()).await;
                }
            }
        }
        if closed {
            break;
        }
    }
    update(&peers, |map| {
        map.remove(&id);
    });
    writer.abort();
}

async fn feed<S>(sink: &mut S, batch: &[Message]) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    for message in batch {
        sink.feed(message.clone()).await?;
    }
    Ok(())
}

/// Copy-on-write update of the peer map: readers take a snapshot `Arc` per message and never
/// hold the lock while sending.
fn update(peers: &Peers, change: impl FnOnce(&mut HashMap<u64, mpsc::Sender<Batch>>)) {
    let mut guard = peers.write().expect("peers lock");
    let mut map = HashMap::clone(&guard);
    change(&mut map);
    *guard = Arc::new(map);
}
