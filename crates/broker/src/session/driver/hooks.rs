//! The session task's side of the embedder features: the `/app` handler task, `/user`
//! routing keyed by the session's user, interceptors and lifecycle events.

use super::Conn;
use crate::CloseReason;
use crate::Payload;
use crate::app::worker::{self, Call, Worker};
use crate::destination::{Destination, DestinationKind};
use crate::error::ProtocolError;
use crate::events::Event;
use crate::router::{Subscriber, UserKey};
use crate::session::Action;

impl Conn<'_> {
    /// Announces the end of a connected session; returns `reason`.
    pub(super) fn ended(&mut self, reason: CloseReason) -> CloseReason {
        if std::mem::take(&mut self.owes_disconnected) {
            let session = self.me.clone();
            let reason = reason.clone();
            self.shared
                .events
                .emit(|| Event::Disconnected { session, reason });
        }
        reason
    }

    /// Whose `/user/...` destinations this session's are.
    pub(super) fn user_key(&self) -> UserKey {
        match &self.me.principal {
            Some(p) => UserKey::Named(p.name.as_str().into()),
            None => UserKey::Session(self.id),
        }
    }

    /// Queues a call for the session's handler task, starting it if needed.
    fn call_handler(&mut self, call: Call) {
        if self.worker.is_none() {
            self.worker = Some(Worker::spawn(worker::Context {
                broker: self.broker.clone(),
                session: self.me.clone(),
                session_id: self.id,
                user: self.user_key(),
                outbox: self.outbox.clone(),
            }));
        }
        self.worker.as_ref().expect("just spawned").call(call);
    }

    /// False while the session's handler task has `MAX_PENDING_CALLS` calls queued: the
    /// session stops reading (and goes on writing) until it catches up.
    pub(super) fn handlers_have_room(&self) -> bool {
        self.worker.as_ref().is_none_or(Worker::has_room)
    }

    /// Removes one subscription from wherever its kind is routed.
    pub(super) fn unroute(&self, destination: &Destination, subscription: &str) {
        match destination.kind() {
            DestinationKind::User => {
                self.shared
                    .router
                    .users
                    .unsubscribe(&self.user_key(), self.id, subscription)
            }
            // Application subscriptions are not routed: their handler replied once.
            DestinationKind::App => {}
            _ => self.shared.router.unsubscribe(
                destination,
                self.id,
                subscription,
                &self.shared.counters,
            ),
        }
    }

    /// Runs the interceptors on an inbound frame.
    pub(super) fn intercept(&self, frame: &mut stompbox_codec::Frame) -> Result<(), ProtocolError> {
        for interceptor in self.shared.interceptors.iter() {
            if let Err(r) = interceptor.inbound(frame, &self.me) {
                return Err(ProtocolError::Rejected {
                    message: r.message,
                    detail: r.detail,
                });
            }
        }
        Ok(())
    }

    /// Carries out the actions about `/app` and `/user` destinations; returns the others.
    /// Synchronous: nothing here waits, and the session future does not grow.
    pub(super) fn apply_app(&mut self, action: Action) -> Option<Action> {
        let kind = match &action {
            Action::Subscribe { destination, .. }
            | Action::Unsubscribe { destination, .. }
            | Action::Publish { destination, .. }
            | Action::Handle { destination, .. } => destination.kind(),
            _ => return Some(action),
        };
        match (action, kind) {
            (
                Action::Handle {
                    destination,
                    headers,
                    body,
                },
                _,
            ) => {
                let subscription = None;
                let call = Call {
                    subscription,
                    destination,
                    headers,
                    body,
                };
                self.call_handler(call);
            }
            (Action::Subscribe { id, destination }, DestinationKind::App) => {
                tracing::debug!(id = %id, destination = %destination, "subscribe (app)");
                let call = Call {
                    subscription: Some(id),
                    destination,
                    headers: stompbox_codec::Headers::new(),
                    body: bytes::Bytes::new(),
                };
                self.call_handler(call);
            }
            (Action::Subscribe { id, destination }, DestinationKind::User) => {
                tracing::debug!(id = %id, destination = %destination, "subscribe (user)");
                let subscriber = Subscriber {
                    session: self.id,
                    subscription: id,
                    outbox: self.outbox.clone(),
                };
                let rest = &destination.as_str()["/user".len()..];
                let users = &self.shared.router.users;
                users.subscribe(self.user_key(), rest, subscriber);
            }
            (
                Action::Unsubscribe { id, destination },
                DestinationKind::App | DestinationKind::User,
            ) => {
                tracing::debug!(id = %id, destination = %destination, "unsubscribe");
                self.unroute(&destination, &id);
            }
            (
                Action::Publish {
                    destination,
                    headers,
                    body,
                },
                DestinationKind::User,
            ) => {
                // Allowed by the session's rules: `/user/{name}/...`, delivered as `/user/...`.
                let payload = Payload { headers, body };
                if let Err(e) = self.broker.send(destination.as_str(), payload) {
                    tracing::debug!(error = %e, "user destination send failed");
                }
            }
            (action, _) => return Some(action),
        }
        None
    }

    /// Removes the session's `/user` subscriptions (the router's table holds the others).
    pub(super) fn leave_user_destinations(&self) {
        for (id, destination) in self.session.subscriptions() {
            if destination.kind() == DestinationKind::User {
                self.unroute(destination, id);
            }
        }
    }

    /// Before an action: notes the principal on `Open`, and builds the event the action will
    /// cause, if anyone listens. Emitted by [`Conn::emit`] once the action took effect.
    /// Boxed: it is held across the action's `.await`, and the session future stays small.
    pub(super) fn observe(&mut self, action: &Action) -> Option<Box<Event>> {
        if let Action::Open { principal, .. } = action {
            self.me.principal = principal.clone();
            self.owes_disconnected = true;
        }
        if !self.shared.events.listening() {
            return None;
        }
        let session = self.me.clone();
        Some(Box::new(match action {
            Action::Open { .. } => Event::Connected { session },
            Action::Subscribe { id, destination } => Event::Subscribed {
                session,
                subscription: id.to_string(),
                destination: destination.to_string(),
            },
            Action::Unsubscribe { id, destination } => Event::Unsubscribed {
                session,
                subscription: id.to_string(),
                destination: destination.to_string(),
            },
            _ => return None,
        }))
    }

    /// Emits what [`Conn::observe`] built.
    pub(super) fn emit(&self, event: Option<Box<Event>>) {
        if let Some(event) = event {
            self.shared.events.emit(|| *event);
        }
    }
}
