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
//! - `memory.rs`: [`memory::pair`], an in-memory transport implementing the broker's
//!   `Stream`/`Sink` seam over bounded channels.
//! - `frames.rs`: builders for client frames.
//! - `client.rs`: [`TestClient`], which runs a session on a spawned task and offers
//!   `expect_*` helpers; every wait is bounded (default [`DEFAULT_WAIT`]) and panics on timeout.
//! - `ws.rs`, `tcp.rs`: [`ws::WsClient`] and [`tcp::TcpClient`], STOMP clients over real sockets
//!   for the server's integration tests, plus [`ws::raw_upgrade`] for handshake assertions;
//!   `wire.rs`: what they share (bounded waits, a frame reader).

mod client;
pub mod frames;
pub mod memory;
pub mod tcp;
pub mod wire;
pub mod ws;

pub use client::{DEFAULT_WAIT, TestClient};
