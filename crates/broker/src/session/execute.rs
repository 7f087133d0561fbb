//! Carries out what the state machine decided ([`Action`]s), in order, on the [`Conn`]:
//! replies into the writer, authentication, subscriptions and messages into the router
//! (`Router::subscribe`, `Router::route`), `/app` calls to the handler task, and the lifecycle
//! events each effect causes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use stompbox_codec::Command;
use tokio::time::Instant;

use super::Action;
use super::conn::Conn;
use super::driver::sleep_opt;
use crate::ConnectRequest;
use crate::app::worker::Call;
use crate::error::ProtocolError;
use crate::events::Event;
use crate::message::Payload;
use crate::router::{Origin, Subscribed, To, UserKey};

/// The longest a SUBSCRIBE's RECEIPT waits for the backplane ([`Conn::wait_bound`]): a session
/// waiting neither reads nor writes, so not long enough to miss a client's heart-beat.
const BIND_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Conn<'_> {
    /// Carries out the state machine's actions in order (authentication may add more). An
    /// effect that fails (a full queue) ends the session: the actions after it are dropped, and
    /// the receipt among them (that of the frame being applied) goes on the ERROR.
    pub(super) async fn execute(&mut self) {
        let mut queue: VecDeque<Action> = std::mem::take(&mut self.actions).into();
        while let Some(action) = queue.pop_front() {
            let event = self.observe(&action);
            match self.apply(action).await {
                // Events describe effects that happened: a refused subscription emits none.
                Ok(()) => self.emit(event),
                Err(error) => {
                    let receipt = queue.drain(..).find_map(|a| match a {
                        Action::Reply(f) if f.command == Command::Receipt => {
                            f.headers.get_shared("receipt-id").cloned()
                        }
                        _ => None,
                    });
                    self.session.fail(error, receipt, &mut self.actions);
                }
            }
            queue.extend(self.actions.drain(..));
        }
        // Nothing is kept between frames: an idle session holds no action buffer.
        self.actions = Vec::new();
    }

    async fn apply(&mut self, action: Action) -> Result<(), ProtocolError> {
        let shared = self.shared;
        let router = &shared.router;
        match action {
            Action::Reply(frame) => {
                if frame.command == Command::Receipt && std::mem::take(&mut self.bind_pending) {
                    self.wait_bound().await;
                }
                if frame.command == Command::Receipt && self.hold_receipt(&frame) {
                    // A RECEIPT promises that the frames before it took effect: persistent
                    // messages they stored are on disk. It goes out once they are
                    // (`release_receipts`), and the session reads on meanwhile.
                    return Ok(());
                }
                // Everything routed to this session before the reply goes out before it.
                self.drain_outbox(usize::MAX);
                self.writer.push_frame(&frame, self.version);
            }
            Action::Authenticate(headers) => {
                let Some(connection) = self.info.as_ref() else {
                    unreachable!("authentication happens once, before the info is dropped")
                };
                let request = ConnectRequest {
                    login: headers.get("login"),
                    passcode: headers.get("passcode"),
                    host: headers.get("host"),
                    headers: &headers,
                    connection,
                };
                let address = connection.peer.map(|p| p.ip().to_canonical());
                let counters = router.counters();
                let attempt = match shared.logins.begin(address, Instant::now()) {
                    Ok(attempt) => attempt,
                    Err(wait) => {
                        counters.throttled_logins.fetch_add(1, Relaxed);
                        return Err(ProtocolError::LoginsThrottled { wait });
                    }
                };
                let verdict = shared.authenticator.authenticate(request);
                tokio::select! {
                    result = verdict => {
                        match result {
                            Ok(_) => attempt.succeeded(),
                            Err(_) => {
                                counters.failed_logins.fetch_add(1, Relaxed);
                            }
                        }
                        self.session.on_authenticated(result, &mut self.actions);
                    }
                    () = sleep_opt(self.connect_deadline) => {
                        let error = ProtocolError::ConnectTimeout(shared.config.connect_timeout);
                        self.session.fail(error, None, &mut self.actions);
                    }
                    () = shared.shutdown.cancelled() => {
                        self.session.fail(ProtocolError::ShuttingDown, None, &mut self.actions);
                    }
                }
            }
            Action::Open {
                version,
                heartbeat,
                principal,
            } => {
                self.version = version;
                self.heartbeat = heartbeat;
                self.decoder.set_version(version);
                self.decoder.set_limits(shared.config.limits());
                self.last_read = Instant::now();
                let info = self.info.take();
                let live = crate::LiveSession {
                    id: self.id(),
                    user: principal.as_ref().map(|p| p.name.clone()),
                    peer: info.as_ref().and_then(|i| i.peer),
                    transport: info
                        .as_ref()
                        .map_or(crate::TransportKind::Memory, |i| i.transport),
                    version: version.as_str(),
                    connected_at: std::time::SystemTime::now(),
                    heartbeat_send: heartbeat.send,
                    heartbeat_receive: heartbeat.receive,
                    subscriptions: 0,
                    outbox_frames: 0,
                    outbox_bytes: 0,
                };
                let outbox = self.route.outbox.clone();
                let traffic = self.writer.traffic().clone();
                self.registered = Some(shared.sessions.register(live, outbox, traffic));
                self.accepted.set_connected();
                let span = tracing::Span::current();
                span.record("version", version.as_str());
                if let Some(p) = &principal {
                    span.record("principal", p.name.as_str());
                    self.user_slot = shared.admission.admit_user(&p.name).inspect_err(|_| {
                        (router.counters().refused_connections).fetch_add(1, Relaxed);
                    })?;
                    // `None` past the end of time (a token that never really expires).
                    self.expires = p.expires.and_then(|at| {
                        let left = at.duration_since(std::time::SystemTime::now());
                        Instant::now().checked_add(left.unwrap_or_default())
                    });
                    self.route.user = UserKey::Named(p.name.as_str().into());
                }
                tracing::info!(
                    heartbeat_send_ms = heartbeat.send.as_millis() as u64,
                    heartbeat_receive_ms = heartbeat.receive.as_millis() as u64,
                    "connected"
                );
            }
            Action::Subscribe { id, subscription } => {
                let destination = &subscription.destination;
                tracing::debug!(id = %id, destination = %destination, queue = ?subscription.queue, "subscribe");
                let prefetch = self.session.prefetch(&id);
                let subscribed = router.subscribe(
                    &self.route,
                    id.clone(),
                    &subscription,
                    prefetch,
                    self.me.principal.as_ref(),
                )?;
                if let Some(entry) = &self.registered {
                    let ack = self.session.ack_label(&id);
                    let destination = subscription.destination.as_shared();
                    entry.subscribed(&id, destination, ack, subscription.is_durable());
                }
                self.bind_pending |= router.has_backplane();
                match subscribed {
                    Subscribed::ByHandler => self.call_handler(Call {
                        subscription: Some(id),
                        destination: subscription.destination,
                        headers: stompbox_codec::Headers::new(),
                        body: bytes::Bytes::new(),
                    }),
                    Subscribed::Durable(written) => self.note_written(written),
                    Subscribed::Routed => {}
                }
            }
            Action::Unsubscribe {
                id,
                subscription,
                forget,
            } => {
                let destination = &subscription.destination;
                tracing::debug!(id = %id, destination = %destination, forget, "unsubscribe");
                let written = router.unsubscribe(&self.route, &id, &subscription, forget);
                self.note_written(written);
                // Removing a durable subscription the backplane holds: its RECEIPT waits too.
                self.bind_pending |= forget && router.has_backplane();
                if let Some(entry) = &self.registered {
                    entry.unsubscribed(&id);
                }
            }
            Action::Settle {
                target,
                subscription,
                tags,
                outcome,
            } => {
                let id = self.id();
                let written = router.settle(id, &subscription, &target, &tags, outcome);
                self.note_written(written);
            }
            Action::Publish {
                destination,
                headers,
                body,
            } => {
                let to = To::Destination(destination);
                let origin = Origin::Client(self.me.principal.as_ref());
                let routed = router.route(origin, to, Payload::new(headers, body))?;
                self.forwards |= router.has_backplane();
                self.note_written(routed.written);
            }
            Action::Handle {
                destination,
                headers,
                body,
            } => self.call_handler(Call {
                subscription: None,
                destination,
                headers,
                body,
            }),
            Action::Close(reason) => {
                tracing::debug!(?reason, "closing");
                self.closing = Some(reason);
            }
        }
        Ok(())
    }

    /// Notes a store write the next RECEIPT waits for.
    fn note_written(&mut self, written: Option<u64>) {
        if written.is_some() {
            self.unsynced = self.unsynced.max(written);
        }
    }

    /// Waits (bounded by [`BIND_WAIT`]) until the backplane has every subscription of this
    /// session in effect: what another node publishes after the RECEIPT reaches it, as a
    /// RECEIPT from a single node promises. Usually one round trip to RabbitMQ; the session
    /// neither reads nor writes meanwhile, and a SUBSCRIBE without a receipt never waits.
    async fn wait_bound(&mut self) {
        let Some(bound) = self.shared.router.backplane_bound() else {
            return;
        };
        if tokio::time::timeout(BIND_WAIT, bound).await.is_err() {
            tracing::warn!(
                after = ?BIND_WAIT,
                "the backplane did not confirm a subscription; RECEIPT sent anyway"
            );
        }
    }

    /// Holds `frame` (a RECEIPT) when a store write of this session since the last RECEIPT,
    /// or an earlier held RECEIPT, is not known to be synced; true if held.
    fn hold_receipt(&mut self, frame: &stompbox_codec::Frame) -> bool {
        let waits_for = self
            .unsynced
            .take()
            .or_else(|| self.held_receipts.back().map(|(seq, _)| *seq));
        match waits_for {
            Some(seq) if self.shared.router.store().is_some() => {
                self.held_receipts.push_back((seq, frame.clone()));
                true
            }
            _ => false,
        }
    }

    /// The store has synced every write up to `synced`: the RECEIPTs that waited for them go
    /// out, in order.
    pub(super) fn release_receipts(&mut self, synced: u64) {
        while let Some((seq, _)) = self.held_receipts.front() {
            if *seq > synced {
                break;
            }
            let (_, frame) = self.held_receipts.pop_front().expect("front exists");
            self.drain_outbox(usize::MAX);
            self.writer.push_frame(&frame, self.version);
        }
    }

    /// The wait for the newest held RECEIPT's write, if any is held: (its write, the wait).
    pub(super) fn receipts_wait(&self) -> Option<(u64, crate::store::Synced)> {
        let (seq, _) = self.held_receipts.back()?;
        let store = self.shared.router.store()?;
        Some((*seq, store.synced(*seq)))
    }

    /// Before an action: notes the principal on `Open`, and builds the event the action will
    /// cause, if anyone listens. Emitted by [`Conn::emit`] once the action took effect.
    /// Boxed: it is held across the action's `.await`, and the session future stays small.
    fn observe(&mut self, action: &Action) -> Option<Box<Event>> {
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
            Action::Subscribe { id, subscription } => Event::Subscribed {
                session,
                subscription: id.to_string(),
                destination: subscription.destination.to_string(),
            },
            Action::Unsubscribe {
                id, subscription, ..
            } => Event::Unsubscribed {
                session,
                subscription: id.to_string(),
                destination: subscription.destination.to_string(),
            },
            _ => return None,
        }))
    }

    /// Emits what [`Conn::observe`] built.
    fn emit(&self, event: Option<Box<Event>>) {
        if let Some(event) = event {
            self.shared.events.emit(|| *event);
        }
    }
}
