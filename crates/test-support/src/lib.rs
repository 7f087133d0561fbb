//! Test helpers for Stompbox: drive a [`stompbox_broker::Broker`] in-process, deterministically.
//!
//! ```no_run
//! # async fn demo() {
//! use stompbox_broker::Broker;
//! use stompbox_codec::Command;
//! use stompbox_test_support::{TestClient, frames};
//!
//! let broker = Broker::new();
//! let mut sub = TestClient::connect(&broker).await;
//! sub.subscribe("0", "/topic/news").await;
//! let mut publisher = TestClient::connect(&broker).await;
//! publisher.send_frame(frames::send("/topic/news", "hi")).await;
//! let msg = sub.expect_frame(Command::Message).await;
//! assert_eq!(&msg.body[..], b"hi");
//! # }
//! ```
//!
//! # Layout
//! - `client.rs`: [`Client`], the one test client, generic over its [`Transport`], with
//!   `expect_*` helpers; every wait is bounded and panics on timeout.
//! - `memory.rs`: [`TestClient`] = `Client` over [`memory::pair`], an in-memory transport
//!   implementing the broker's `Stream`/`Sink` seam over bounded channels; the session runs on
//!   a spawned task (default wait [`DEFAULT_WAIT`]).
//! - `ws.rs`, `tcp.rs`: [`ws::WsClient`] and [`tcp::TcpClient`], the same client over real
//!   sockets for the server's integration tests, plus [`ws::raw_upgrade`] for handshake
//!   assertions; `wire.rs`: bounded waits and frames as bytes; `http.rs`: a raw HTTP/1.0
//!   request and a Server-Sent Events reader, for the SSE and publish endpoints.
//! - `cut_proxy.rs`: [`cut_proxy::CutProxy`], a TCP proxy a test cuts to make an outage.
//! - `frames.rs`: builders for client frames; `memory_store.rs`: [`MemoryStore`], a broker
//!   store in memory that syncs when told to and can be crashed.

mod client;
pub mod cut_proxy;
pub mod frames;
pub mod http;
pub mod memory;
mod memory_store;
pub mod tcp;
pub mod wire;
pub mod ws;

pub use client::{Client, DEFAULT_WAIT, Transport};
pub use memory::TestClient;
pub use memory_store::MemoryStore;
