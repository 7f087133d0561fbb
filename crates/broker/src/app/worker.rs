//! The per-session handler task: runs the session's `/app` calls one at a time, in frame order,
//! and sends each reply where it belongs. Spawned on the session's first `/app` frame; ends when
//! the session ends and its queued calls are done (or at the end of a shutdown's grace).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use futures::FutureExt;
use stompbox_codec::{ByteString, Headers};
use tokio::sync::mpsc;

use super::extract::{AppMessage, SessionInfo};
use super::reply::{HandlerError, Payload, Reply};
use super::{ERRORS_DESTINATION, HandlerErrors};
use crate::Broker;
use crate::destination::Destination;
use crate::error::ProtocolError;
use crate::message::Delivery;
use crate::outbox::{Offer, Outbox};
use crate::router::UserKey;

/// Calls one session may have queued for its handler task before the session stops decoding
/// and reading (it goes on writing) until the handler task catches up. Enough to
/// absorb a burst from a chat client typing fast; few enough that a stuck handler cannot make
/// the broker hold much of that client's input.
pub(crate) const MAX_PENDING_CALLS: usize = 64;

/// A SEND or SUBSCRIBE for an application destination.
#[derive(Debug)]
pub(crate) struct Call {
    /// `Some(id)` for a SUBSCRIBE.
    pub(crate) subscription: Option<ByteString>,
    pub(crate) destination: Destination,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

/// Who the calls come from, and where their replies go.
pub(crate) struct Context {
    pub(crate) broker: Broker,
    pub(crate) session: SessionInfo,
    pub(crate) session_id: u64,
    pub(crate) user: UserKey,
    pub(crate) outbox: Arc<Outbox>,
}

/// The session's end of its handler task.
#[derive(Debug)]
pub(crate) struct Worker {
    tx: mpsc::UnboundedSender<Call>,
    /// Calls queued or running; the session reads only while below [`MAX_PENDING_CALLS`].
    pending: Arc<AtomicUsize>,
}

impl Worker {
    pub(crate) fn spawn(context: Context) -> Worker {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let tracker = context.broker.shared.tracker.clone();
        tracker.spawn(run(rx, context, pending.clone()));
        Worker { tx, pending }
    }

    /// Queues a call; never waits (the session checks [`Worker::has_room`] before reading).
    pub(crate) fn call(&self, call: Call) {
        self.pending.fetch_add(1, Relaxed);
        if self.tx.send(call).is_err() {
            tracing::debug!("handler task gone; call dropped");
        }
    }

    /// Whether the session may read more frames.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.load(Relaxed) < MAX_PENDING_CALLS
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Call>, context: Context, pending: Arc<AtomicUsize>) {
    let hard_stop = context.broker.shared.hard_stop.clone();
    loop {
        let call = tokio::select! {
            call = rx.recv() => match call {
                Some(call) => call,
                None => break,
            },
            () = hard_stop.cancelled() => break,
        };
        let closing = tokio::select! {
            closing = context.handle(call) => closing,
            () = hard_stop.cancelled() => break,
        };
        if pending.fetch_sub(1, Relaxed) == MAX_PENDING_CALLS {
            // The session stopped reading at the limit: wake it to read again.
            context.outbox.wake();
        }
        if closing {
            break;
        }
    }
}

impl Context {
    /// Runs one call; true when it ended the session (an error under `ErrorAndClose`).
    async fn handle(&self, call: Call) -> bool {
        let routes = self.broker.app_routes();
        let raw = call.destination.as_str();
        let path = routes.rules.app_path(raw).unwrap_or(raw);
        let subscribe = call.subscription.is_some();
        let replies = match routes.find(subscribe, path) {
            None => {
                let kind = if subscribe { "subscribe" } else { "send" };
                let detail = format!("no {kind} handler matches {raw:?}");
                vec![Reply::Error(HandlerError::new("no handler", detail))]
            }
            Some((handler, params)) => {
                let message = AppMessage {
                    destination: call.destination.clone(),
                    path: path.into(),
                    params,
                    headers: call.headers,
                    body: call.body,
                    session: self.session.clone(),
                    subscription: call.subscription.clone(),
                    broker: self.broker.clone(),
                };
                match AssertUnwindSafe(handler(message)).catch_unwind().await {
                    Ok(replies) => replies,
                    Err(_) => {
                        tracing::error!(destination = raw, "handler panicked");
                        let detail = format!("the handler for {raw:?} panicked");
                        vec![Reply::Error(HandlerError::new("handler failed", detail))]
                    }
                }
            }
        };
        for reply in replies {
            if self.deliver(reply, &call.destination, path, call.subscription.as_ref()) {
                return true;
            }
        }
        false
    }

    /// Sends one reply; true when it ended the session.
    fn deliver(
        &self,
        reply: Reply,
        destination: &Destination,
        path: &str,
        subscription: Option<&ByteString>,
    ) -> bool {
        let broker = &self.broker;
        let result = match reply {
            Reply::Payload(payload) => match subscription {
                // `@SubscribeMapping`: to this subscription only.
                Some(id) => {
                    let message = broker.new_message(destination.as_shared().clone(), payload);
                    let delivery = Delivery::new(message, id.clone());
                    let counters = &broker.shared.counters;
                    if self.outbox.offer(delivery, counters) == Offer::Queued {
                        counters.messages_delivered.fetch_add(1, Relaxed);
                    }
                    Ok(())
                }
                // `@MessageMapping` without `@SendTo`: `/topic` + the path, as Spring does.
                None => broker.send(&format!("/topic{path}"), payload).map(drop),
            },
            Reply::SendTo {
                destination,
                payload,
            } => broker.send(&destination, payload).map(drop),
            Reply::ToUser {
                destination,
                payload,
                broadcast,
            } => {
                let session = (!broadcast).then_some(self.session_id);
                (broker.publish_user(&self.user, &destination, session, payload)).map(drop)
            }
            Reply::Error(error) => return self.error(error, destination),
        };
        match result {
            Ok(()) => false,
            Err(e) => self.error(HandlerError::new("reply not delivered", e), destination),
        }
    }

    fn error(&self, error: HandlerError, destination: &Destination) -> bool {
        tracing::debug!(destination = %destination, message = %error.message, detail = %error.detail, "handler error");
        match self.broker.app_routes().errors {
            HandlerErrors::ReplyToSender => {
                let payload = Payload::text(error.detail)
                    .header("message", &error.message)
                    .header("failed-destination", destination.as_str());
                let session = Some(self.session_id);
                // To this session only: never relayed, so it cannot fail.
                let _ =
                    (self.broker).publish_user(&self.user, ERRORS_DESTINATION, session, payload);
                false
            }
            HandlerErrors::ErrorAndClose => {
                self.outbox.fail(ProtocolError::Handler {
                    message: error.message,
                    detail: error.detail,
                });
                true
            }
        }
    }
}
