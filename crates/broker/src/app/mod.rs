//! Application destinations: `/app` handlers as plain `async fn`s of extractors whose return
//! values become replies (Spring's `@MessageMapping`, `@SubscribeMapping`, `@SendTo`,
//! `@SendToUser`, done the axum way).
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use stompbox_broker::{Broker, Json, Path, SendTo, SessionInfo};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Chat { text: String }
//!
//! async fn chat(Path(room): Path<String>, who: SessionInfo, Json(msg): Json<Chat>) -> SendTo<Json<Chat>> {
//!     let text = format!("{}: {}", who.user().unwrap_or("anonymous"), msg.text);
//!     SendTo::new(format!("/topic/chat.{room}"), Json(Chat { text }))
//! }
//!
//! let broker = Broker::builder().on_send("/chat.{room}", chat).build().unwrap();
//! ```
//!
//! # Execution
//! Each session that uses `/app` gets one handler task, spawned on its first `/app` frame. The
//! session task only queues the call, never waiting; the handler task runs that session's calls
//! one at a time, in the order the frames arrived. So a slow handler never blocks other
//! sessions, nor its own session's deliveries and heart-beats, and one session's handler replies
//! come out in the order of its frames. With `MAX_PENDING_CALLS` (64) calls queued the session
//! stops reading (and goes on writing) until its handler task catches up. Sessions run their
//! handlers concurrently with each other.
//!
//! # Layout
//! - `handler.rs`: [`Handler`], implemented for async fns of up to eight extractors.
//! - `extract.rs`: [`FromMessage`], [`AppMessage`] and the extractors.
//! - `rejection.rs`: [`ExtractRejection`]. `path.rs`: destination variables into `Path<T>`.
//! - `reply.rs`: [`IntoReply`], [`SendTo`], [`SendToUser`], [`HandlerError`].
//! - `route_pattern.rs`: handler patterns (`/chat.{room}`).
//! - `worker.rs`: the per-session handler task; each reply enters routing like any message
//!   (`Router::route`, origin `Handler`).
//!
//! Sending from server code, Spring's `SimpMessagingTemplate`, is
//! [`Broker::send`](crate::Broker::send) and [`Broker::send_to_user`](crate::Broker::send_to_user).

mod extract;
mod handler;
mod path;
mod rejection;
mod reply;
mod route_pattern;
pub(crate) mod worker;

use std::any::{Any, TypeId};
use std::collections::HashMap;

pub use extract::{AppMessage, FromMessage, Json, Path, SessionInfo, State};
pub use handler::Handler;
pub use rejection::ExtractRejection;
pub use reply::{HandlerError, IntoPayload, IntoReply, Reply, SendTo, SendToUser};

use handler::BoxedHandler;
pub(crate) use handler::boxed;
use route_pattern::Pattern;

/// The user destination that handler errors and rejections are sent to by default (the client
/// subscribes to `/user/queue/errors`), as in Spring's `@SendToUser("/queue/errors")` idiom.
pub const ERRORS_DESTINATION: &str = "/queue/errors";

/// What happens when a handler returns an error or an extractor rejects a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerErrorPolicy {
    /// A MESSAGE to the sending session's `/user/queue/errors` (`message` header short, body the
    /// detail); the session stays connected. The default: one bad payload should not cost a
    /// browser its connection and subscriptions.
    #[default]
    ReplyToSender,
    /// An ERROR frame with the same `message` and body, then the connection is closed (STOMP's
    /// own error model).
    ErrorAndClose,
}

/// Shared application state, by type.
#[derive(Default)]
pub(crate) struct StateMap(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl StateMap {
    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub(crate) fn get<T: Clone + 'static>(&self) -> Option<T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref::<T>().cloned()
    }
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateMap({} values)", self.0.len())
    }
}

struct Route {
    pattern: Pattern,
    handler: BoxedHandler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pattern.as_str())
    }
}

/// Every application route of a node, its state and its policies.
#[derive(Debug, Default)]
pub(crate) struct AppRoutes {
    send: Vec<Route>,
    subscribe: Vec<Route>,
    pub(crate) state: StateMap,
    pub(crate) errors: HandlerErrorPolicy,
}

/// A matched route: the handler and the destination variables.
pub(crate) type Matched<'a> = (&'a BoxedHandler, Vec<(Box<str>, Box<str>)>);

impl AppRoutes {
    fn add(routes: &mut Vec<Route>, pattern: &str, handler: BoxedHandler) {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        routes.push(Route { pattern, handler });
    }

    pub(crate) fn on_send(&mut self, pattern: &str, handler: BoxedHandler) {
        Self::add(&mut self.send, pattern, handler);
    }

    pub(crate) fn on_subscribe(&mut self, pattern: &str, handler: BoxedHandler) {
        Self::add(&mut self.subscribe, pattern, handler);
    }

    /// The route for `path`: a pattern without variables that equals it, else the first
    /// registered pattern that matches.
    pub(crate) fn find(&self, subscribe: bool, path: &str) -> Option<Matched<'_>> {
        let routes = if subscribe {
            &self.subscribe
        } else {
            &self.send
        };
        routes
            .iter()
            .filter(|r| r.pattern.is_literal())
            .chain(routes.iter().filter(|r| !r.pattern.is_literal()))
            .find_map(|r| r.pattern.matches(path).map(|vars| (&r.handler, vars)))
    }
}
