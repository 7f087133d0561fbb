//! WebSocket for axum over tokio-tungstenite, with the `permessage-deflate` extension
//! (RFC 7692) that tungstenite lacks.
//!
//! - [`WebSocketUpgrade`] (`upgrade.rs`): the opening handshake as an axum extractor, in place
//!   of axum's, choosing a subprotocol and accepting permessage-deflate.
//! - [`negotiate`] (`negotiate.rs`): the extension's offers and answers.
//! - [`Inflating`] (`inflating.rs`): a byte stream under tungstenite that replaces each
//!   compressed message by its uncompressed frame, bounded by the message size limit.
//! - [`WebSocket`] (`socket.rs`): the connection, compressing each text or binary message it
//!   sends (from a size up) into a frame with RSV1 set.
//! - `codec.rs`: DEFLATE itself (flate2 on zlib-rs), one message at a time.
//!
//! Without context takeover in either direction (see [`negotiate`]) a connection holds no
//! compression state: a compressed connection costs nothing more while it is idle.
//!
//! ```no_run
//! use futures::{SinkExt, StreamExt};
//! use stompbox_websocket::{DeflateConfig, WebSocketUpgrade};
//!
//! let app: axum::Router = axum::Router::new().route(
//!     "/echo",
//!     axum::routing::get(|upgrade: WebSocketUpgrade| async move {
//!         upgrade
//!             .deflate(Some(&DeflateConfig::default()))
//!             .on_upgrade(|mut socket| async move {
//!                 while let Some(Ok(message)) = socket.next().await {
//!                     if message.is_text() && socket.send(message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             })
//!     }),
//! );
//! ```

mod codec;
mod inflating;
pub mod negotiate;
mod socket;
mod upgrade;

pub use inflating::Inflating;
pub use negotiate::{Deflate, DeflateConfig};
pub use socket::WebSocket;
pub use tokio_tungstenite::tungstenite;
pub use upgrade::{Rejection, ServerSocket, WebSocketUpgrade};
