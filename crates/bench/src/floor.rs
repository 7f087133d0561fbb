//! The floor: a bare WebSocket server that forwards every data message verbatim to every other
//! connection. No STOMP, no routing, no per-subscriber work beyond the copy into a channel, so
//! its fan-out rate on this machine is the ceiling Stompbox's figures are stated against.
//!
//! Each connection has a reader (forwards what it receives) and a writer (drains its channel,
//! feeding the socket and flushing only when the channel is empty, so bursts leave as few large
//! writes). Channels are bounded: a reader waits for a full peer, so a slow connection slows its
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
use futures::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::HeaderValue,
};

use crate::transport::SUBPROTOCOL;

/// Messages a connection's channel holds before its senders wait.
const CHANNEL: usize = 4096;

type Peers = Arc<RwLock<Arc<HashMap<u64, mpsc::Sender<Message>>>>>;

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
    let (tx, mut rx) = mpsc::channel::<Message>(CHANNEL);
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
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
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
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = rx.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                let snapshot = peers.read().expect("peers lock").clone();
                for (&peer, sender) in snapshot.iter() {
                    if peer != id {
                        // A closed peer is being removed; nothing to do.
                        let _ = sender.send(message.clone()).await;
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    update(&peers, |map| {
        map.remove(&id);
    });
    writer.abort();
}

/// Copy-on-write update of the peer map: readers take a snapshot `Arc` per message and never
/// hold the lock while sending.
fn update(peers: &Peers, change: impl FnOnce(&mut HashMap<u64, mpsc::Sender<Message>>)) {
    let mut guard = peers.write().expect("peers lock");
    let mut map = HashMap::clone(&guard);
    change(&mut map);
    *guard = Arc::new(map);
}
