//! The per-session handler task: runs the session's `/app` calls one at a time, in frame order,
//! and routes each reply (`Router::route`, origin `Handler`). Spawned on the session's first
//! `/app` frame; ends when the session ends and its queued calls are done (or at the end of a
//! shutdown's grace). It talks back to its session through the session's [`Control`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use futures::FutureExt;
use stompbox_codec::{ByteString, Headers};
use tokio::sync::mpsc;

use super::extract::{AppMessage, SessionInfo};
use super::reply::{HandlerError, Reply};
use super::{ERRORS_DESTINATION, HandlerErrorPolicy};
use crate::Broker;
use crate::control::Control;
use crate::destination::Destination;
use crate::error::{ProtocolError, SendError};
use crate::message::Payload;
use crate::router::{Origin, SessionRef, SubscriptionAddress, To};

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
struct Context {
    broker: Broker,
    /// Id and principal, for the handlers.
    session: SessionInfo,
    /// The session as the router knows it: its id, user and outbox.
    me: SessionRef,
    control: Arc<Control>,
}

/// The session's end of its handler task.
#[derive(Debug)]
pub(crate) struct Worker {
    tx: mpsc::UnboundedSender<Call>,
    /// Calls queued or running; the session reads only while below [`MAX_PENDING_CALLS`].
    pending: Arc<AtomicUsize>,
    /// The session's control channel, made with the task.
    control: Arc<Control>,
}

impl Worker {
    /// Starts the handler task of session `me` (`session` is what handlers see of it).
    pub(crate) fn spawn(broker: &Broker, session: SessionInfo, me: SessionRef) -> Worker {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let control = Arc::new(Control::default());
        let context = Context {
            broker: broker.clone(),
            session,
            me,
            control: control.clone(),
        };
        let tracker = broker.shared.tracker.clone();
        tracker.spawn(run(rx, context, pending.clone()));
        Worker {
            tx,
            pending,
            control,
        }
    }

    /// The session's control channel (the handler task's signals to it).
    pub(crate) fn control(&self) -> &Arc<Control> {
        &self.control
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
            context.control.wake();
        }
        if closing {
            break;
        }
    }
}

impl Context {
    /// Runs one call; true when it ended the session (an error under `ErrorAndClose`).
    async fn handle(&self, call: Call) -> bool {
        let routes = &self.broker.shared.app;
        let raw = call.destination.as_str();
        let path = (self.broker.shared.router.rules())
            .app_path(raw)
            .unwrap_or(raw);
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

    /// Routes one reply; true when it ended the session.
    fn deliver(
        &self,
        reply: Reply,
        destination: &Destination,
        path: &str,
        subscription: Option<&ByteString>,
    ) -> bool {
        let (broker, me) = (&self.broker, &self.me);
        let routed = match reply {
            Reply::Payload(payload) => match subscription {
                // `@SubscribeMapping`: to this subscription only.
                Some(id) => self.route(
                    To::Subscription(SubscriptionAddress {
                        destination: destination.as_shared().clone(),
                        id: id.clone(),
                        outbox: me.outbox.clone(),
                        tag: None,
                        redelivered: false,
                        delivery_count: None,
                    }),
                    payload,
                ),
                // `@MessageMapping` without `@SendTo`: `/topic` + the path, as Spring does.
                None => broker.send_from(Origin::Handler, &format!("/topic{path}"), payload),
            },
            Reply::SendTo {
                destination,
                payload,
            } => broker.send_from(Origin::Handler, &destination, payload),
            Reply::ToUser {
                destination,
                payload,
                broadcast,
            } => self.to_user(&destination, (!broadcast).then_some(me.id), payload),
            Reply::Error(error) => return self.error(error, destination),
        };
        match routed {
            Ok(_) => false,
            Err(e) => self.error(HandlerError::new("reply not delivered", e), destination),
        }
    }

    fn route(&self, to: To, payload: Payload) -> Result<usize, SendError> {
        Ok((self.broker.shared.router)
            .route(Origin::Handler, to, payload)?
            .deliveries)
    }

    /// To the session's user's subscriptions to `/user<path>`, only this session's when
    /// `session` is set.
    fn to_user(
        &self,
        path: &str,
        session: Option<u64>,
        payload: Payload,
    ) -> Result<usize, SendError> {
        let to = To::User {
            user: self.me.user.clone(),
            path: path.into(),
            session,
        };
        self.route(to, payload)
    }

    fn error(&self, error: HandlerError, destination: &Destination) -> bool {
        tracing::debug!(destination = %destination, message = %error.message, detail = %error.detail, "handler error");
        match self.broker.shared.app.errors {
            HandlerErrorPolicy::ReplyToSender => {
                let payload = Payload::text(error.detail)
                    .header("message", &error.message)
                    .header("failed-destination", destination.as_str());
                // To this session only: never relayed, so it cannot fail.
                let _ = self.to_user(ERRORS_DESTINATION, Some(self.me.id), payload);
                false
            }
            HandlerErrorPolicy::ErrorAndClose => {
                self.control.fail(ProtocolError::Handler {
                    message: error.message,
                    detail: error.detail,
                });
                true
            }
        }
    }
}
