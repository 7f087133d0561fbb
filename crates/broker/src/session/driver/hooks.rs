//! The session task's side of the embedder features: the `/app` handler task, `/user`
//! routing keyed by the session's user, interceptors and lifecycle events.

use super::Conn;
use crate::CloseReason;
use crate::app::worker::{self, Call, Worker};
use crate::destination::{Destination, DestinationKind};
use crate::error::ProtocolError;
use crate::events::Event;
use crate::router::UserKey;

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
    pub(super) async fn call_handler(&mut self, call: Call) {
        if self.worker.is_none() {
            self.worker = Some(Worker::spawn(worker::Context {
                broker: self.broker.clone(),
                session: self.me.clone(),
                session_id: self.id,
                user: self.user_key(),
                outbox: self.outbox.clone(),
            }));
        }
        let worker = self.worker.as_ref().expect("just spawned");
        worker.call(call).await;
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
            _ => self
                .shared
                .router
                .unsubscribe(destination, self.id, subscription),
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
}
