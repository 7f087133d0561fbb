//! One client session: the protocol state machine ([`Session`], no I/O) and the task that drives
//! it over a transport.
//!
//! # Layout
//! - `mod.rs`: the state machine: frames in, [`Action`]s out.
//! - `driver.rs`: the session's task, one `select!` loop doing the I/O (socket, outbox, control
//!   channel, timers, shutdown); `conn.rs`: the state it drives besides the state machine
//!   (decoder, writer, outbox, handler task); `execute.rs`: carries out the actions.
//! - `ack.rs`: what the client may acknowledge; `transaction.rs`: frames held until COMMIT;
//!   `heartbeat.rs`: heart-beat negotiation; `writer.rs`: output batching.

mod ack;
mod conn;
pub(crate) mod driver;
mod execute;
mod heartbeat;
mod transaction;
mod writer;

use std::collections::HashMap;

use bytes::Bytes;
use stompbox_codec::{ByteString, Command, DecodeError, Frame, Headers, Version};

pub(crate) use ack::AckMode;
pub(crate) use heartbeat::Heartbeat;

use self::ack::AckBook;
use self::transaction::Transactions;
use crate::destination::Destination;
use crate::error::{ProtocolError, negotiate_version};
use crate::router::{ClientSend, Feed, Outcome, Rules, Subscription, within_limits};
use crate::{AuthError, CloseReason, Config, Principal};

/// What the driver must do, in order, after feeding the state machine.
#[derive(Debug)]
pub(crate) enum Action {
    /// Write this frame to the client.
    Reply(Frame),
    /// Ask the authenticator about these CONNECT headers, then call
    /// [`Session::on_authenticated`].
    Authenticate(Headers),
    /// The session is open: decode with this version and the connected limits, run these
    /// heart-beats. (The CONNECTED frame follows as a `Reply`.)
    Open {
        version: Version,
        heartbeat: Heartbeat,
        principal: Option<Principal>,
    },
    /// Register a subscription with the router.
    Subscribe {
        id: ByteString,
        subscription: Subscription,
    },
    /// Remove a subscription from the router; `forget` a durable one for good.
    Unsubscribe {
        id: ByteString,
        subscription: Subscription,
        forget: bool,
    },
    /// Route a message.
    Publish {
        destination: Destination,
        headers: Headers,
        body: Bytes,
    },
    /// ACK or NACK deliveries of a subscription (a queue redelivers NACKed ones).
    Settle {
        target: Subscription,
        subscription: ByteString,
        tags: Vec<u64>,
        outcome: Outcome,
    },
    /// Hand a SEND to an application destination to the session's handlers.
    Handle {
        destination: Destination,
        headers: Headers,
        body: Bytes,
    },
    /// Stop reading, flush what is queued, end the session.
    Close(CloseReason),
}

/// The protocol state of one session. Frames go in, [`Action`]s come out.
///
/// ```text
///         CONNECT / STOMP                     authenticated
///  ──► ┌─────────────────┐ ──────────► ┌────────────────┐ ─────────► ┌───────────┐ ◄──┐ SEND,
///      │ AwaitingConnect │             │ Authenticating │            │ Connected │    │ SUBSCRIBE, ACK,
///      └─────────────────┘             └────────────────┘            └───────────┘ ───┘ BEGIN, ...
///              │ any other frame,               │ refused                  │ DISCONNECT, error,
///              │ decode error, timeout          ▼                          │ timeout, shutdown,
///              └─────────────────────────► ┌────────┐ ◄────────────────────┘ slow consumer
///                                          │ Closed │
///                                          └────────┘
/// ```
#[derive(Debug)]
enum State {
    AwaitingConnect,
    Authenticating {
        version: Version,
        heartbeat: Heartbeat,
    },
    Connected {
        version: Version,
    },
    Closed,
}

/// The state machine of one session.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    id: ByteString,
    config: &'a Config,
    /// Which destinations are application ones; the permission rules.
    rules: &'a Rules,
    state: State,
    /// Subscription id → what it subscribed to; kept after the session closes, so the driver
    /// can unregister them. Empty maps do not allocate.
    subscriptions: HashMap<ByteString, Subscription>,
    /// Each subscription's ack mode and prefetch, and what the client may still ACK/NACK.
    acks: AckBook,
    /// Open transactions; dropped (aborted) with the session.
    transactions: Transactions,
}

fn receipt_of(frame: &Frame) -> Option<ByteString> {
    frame.headers.get_shared("receipt").cloned()
}

fn receipt(id: ByteString) -> Frame {
    Frame::new(Command::Receipt).with_header("receipt-id", id)
}

impl<'a> Session<'a> {
    pub(crate) fn new(id: ByteString, config: &'a Config) -> Self {
        static DEFAULT_RULES: std::sync::LazyLock<Rules> = std::sync::LazyLock::new(Rules::default);
        Session {
            id,
            config,
            rules: &DEFAULT_RULES,
            state: State::AwaitingConnect,
            subscriptions: HashMap::new(),
            acks: AckBook::default(),
            transactions: Transactions::default(),
        }
    }

    /// What a subscription subscribed to.
    pub(crate) fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.get(id)
    }

    /// Subscription `id`'s ack mode as the client named it (`auto` when acks are not tracked).
    pub(crate) fn ack_label(&self, id: &str) -> &'static str {
        match self.acks.mode(id) {
            Some(AckMode::Client) => "client",
            Some(AckMode::ClientIndividual) => "client-individual",
            Some(AckMode::Auto) | None => "auto",
        }
    }

    /// A subscription's ack mode (`None` once unsubscribed, and for every subscription when
    /// none needs its written deliveries tracked: only `auto` topic subscriptions).
    pub(crate) fn ack_mode(&self, id: &str) -> Option<AckMode> {
        if !self.acks.tracks_deliveries() {
            return None;
        }
        self.acks.mode(id)
    }

    /// Most unacknowledged deliveries of a subscription (what a queue may have in flight to it).
    pub(crate) fn prefetch(&self, id: &str) -> usize {
        self.acks.prefetch(id).unwrap_or(1)
    }

    /// A delivery on a client-ack subscription was written: the client may now ACK/NACK it.
    pub(crate) fn on_delivered(&mut self, subscription: &str, tag: u64, message_id: u64) {
        self.acks.delivered(subscription, tag, message_id);
    }

    /// Uses the node's destination rules instead of the defaults.
    pub(crate) fn with_rules(mut self, rules: &'a Rules) -> Self {
        self.rules = rules;
        self
    }

    /// True once CONNECTED was produced and until the session closes.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// True once the session decided to close.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Every subscription held (for cleanup when the session ends however it ends).
    pub(crate) fn subscriptions(&self) -> impl Iterator<Item = (&ByteString, &Subscription)> {
        self.subscriptions.iter()
    }

    /// Ends the session with an ERROR: a protocol violation, or a cause from outside (timeout,
    /// slow consumer, shutdown).
    pub(crate) fn fail(
        &mut self,
        error: ProtocolError,
        receipt: Option<ByteString>,
        out: &mut Vec<Action>,
    ) {
        if matches!(self.state, State::Closed) {
            return;
        }
        tracing::debug!(error = %error, message = %error.message(), "session error");
        out.push(Action::Reply(error.to_frame(receipt)));
        out.push(Action::Close(error.close_reason()));
        self.state = State::Closed;
    }

    /// The inbound bytes could not be decoded.
    pub(crate) fn on_decode_error(&mut self, error: DecodeError, out: &mut Vec<Action>) {
        self.fail(ProtocolError::Decode(error), None, out);
    }

    /// One decoded frame, from a session authenticated as `principal` (whom permission rules
    /// are about; the driver keeps it, so the state machine holds no copy).
    pub(crate) fn on_frame(
        &mut self,
        frame: Frame,
        principal: Option<&Principal>,
        out: &mut Vec<Action>,
    ) {
        let command = frame.command;
        let receipt = receipt_of(&frame);
        let result = match (&self.state, command) {
            (State::Closed, _) => return,
            (_, Command::Connected | Command::Message | Command::Receipt | Command::Error) => {
                Err(ProtocolError::ServerFrame { command })
            }
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => {
                return self.connect(frame, out);
            }
            (State::AwaitingConnect, _) => Err(ProtocolError::NotConnected { command }),
            (_, Command::Connect | Command::Stomp) => {
                Err(ProtocolError::AlreadyConnected { command })
            }
            (State::Authenticating { .. }, _) => Err(ProtocolError::NotConnected { command }),
            (State::Connected { .. }, _) => self.connected_frame(frame, principal, out),
        };
        match result {
            Ok(()) => {
                if let Some(id) = receipt {
                    out.push(Action::Reply(self::receipt(id)));
                }
                if command == Command::Disconnect {
                    // After its receipt, so the receipt is flushed before the close.
                    out.push(Action::Close(CloseReason::Disconnect));
                }
            }
            Err(error) => self.fail(error, receipt, out),
        }
    }

    fn connect(&mut self, frame: Frame, out: &mut Vec<Action>) {
        let Some(version) = negotiate_version(frame.header("accept-version")) else {
            let requested = frame
                .header("accept-version")
                .unwrap_or_default()
                .to_owned();
            return self.fail(ProtocolError::UnsupportedVersion { requested }, None, out);
        };
        let client_beats = match (version, frame.header("heart-beat")) {
            (Version::V1_0, _) | (_, None) => (0, 0),
            (_, Some(value)) => match heartbeat::parse(value) {
                Some(beats) => beats,
                None => {
                    let value = value.to_owned();
                    return self.fail(ProtocolError::InvalidHeartBeat { value }, None, out);
                }
            },
        };
        let heartbeat = heartbeat::negotiate(client_beats, &self.config.heartbeat);
        self.state = State::Authenticating { version, heartbeat };
        out.push(Action::Authenticate(frame.headers));
    }

    /// The authenticator answered.
    pub(crate) fn on_authenticated(
        &mut self,
        result: Result<Option<Principal>, AuthError>,
        out: &mut Vec<Action>,
    ) {
        let State::Authenticating { version, heartbeat } = self.state else {
            return;
        };
        let principal = match result {
            Ok(principal) => principal,
            Err(e) => {
                let message = e.message;
                tracing::info!(reason = %message, "login refused");
                return self.fail(ProtocolError::AuthenticationFailed { message }, None, out);
            }
        };
        let mut connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("heart-beat", heartbeat.header())
            .with_header("server", self.config.server_name.as_str())
            .with_header("session", self.id.clone());
        if let Some(principal) = &principal {
            // As Spring's broker does: the client learns who it was admitted as (the name
            // that `/user/` destinations resolve to).
            connected = connected.with_header("user-name", principal.name.as_str());
        }
        self.state = State::Connected { version };
        out.push(Action::Open {
            version,
            heartbeat,
            principal,
        });
        out.push(Action::Reply(connected));
    }

    /// A frame on a connected session; the caller sends its receipt once this succeeded.
    fn connected_frame(
        &mut self,
        frame: Frame,
        principal: Option<&Principal>,
        out: &mut Vec<Action>,
    ) -> Result<(), ProtocolError> {
        if matches!(frame.command, Command::Send | Command::Ack | Command::Nack)
            && let Some(tx) = frame.headers.get_shared("transaction").cloned()
        {
            return self.hold(&tx, frame, principal);
        }
        match frame.command {
            Command::Send => self.send(frame, principal, out),
            Command::Subscribe => self.subscribe(&frame, principal, out),
            Command::Unsubscribe => self.unsubscribe(&frame, out),
            Command::Ack => self.ack(&frame, Outcome::Ack, out),
            Command::Nack => self.ack(&frame, Outcome::Nack, out),
            Command::Begin => self.begin(&frame),
            Command::Commit => self.commit(&frame, principal, out),
            Command::Abort => self.abort(&frame),
            Command::Disconnect => {
                // `on_frame` pushes the receipt, then the close; open transactions are dropped.
                self.state = State::Closed;
                Ok(())
            }
            // CONNECT and server commands are handled before this point.
            command => Err(ProtocolError::ServerFrame { command }),
        }
    }

    /// The `destination` header of `frame`, parsed and classified by the node's rules, and
    /// held to the node's limits on destinations.
    pub(super) fn destination(&self, frame: &Frame) -> Result<Destination, ProtocolError> {
        let raw = frame
            .headers
            .get_shared("destination")
            .ok_or(ProtocolError::MissingHeader {
                command: frame.command,
                header: "destination",
            })?;
        let destination = self.rules.parse(raw.clone())?;
        within_limits(&destination, self.config)?;
        Ok(destination)
    }

    /// What a SEND does, with the rules on who may send where applied. Also used to check a
    /// SEND held in a transaction when it arrives.
    pub(super) fn client_send(
        &self,
        frame: &Frame,
        principal: Option<&Principal>,
    ) -> Result<ClientSend, ProtocolError> {
        let destination = self.destination(frame)?;
        Ok(self.rules.client_send(destination, principal)?)
    }

    pub(super) fn send(
        &mut self,
        frame: Frame,
        principal: Option<&Principal>,
        out: &mut Vec<Action>,
    ) -> Result<(), ProtocolError> {
        out.push(match self.client_send(&frame, principal)? {
            ClientSend::Handle(destination) => Action::Handle {
                destination,
                headers: frame.headers,
                body: frame.body,
            },
            ClientSend::Route(destination) => Action::Publish {
                destination,
                headers: frame.headers,
                body: frame.body,
            },
        });
        Ok(())
    }

    fn subscribe(
        &mut self,
        frame: &Frame,
        principal: Option<&Principal>,
        out: &mut Vec<Action>,
    ) -> Result<(), ProtocolError> {
        let max = self.config.max_subscriptions_per_session;
        let State::Connected { version } = self.state else {
            unreachable!("only called when connected")
        };
        let destination = self.destination(frame)?;
        let subscriptions = &mut self.subscriptions;
        let mut redelivers = self.rules.feed(&destination)?.redelivers();
        let id = match (frame.headers.get_shared("id"), version) {
            (Some(id), _) => id.clone(),
            // STOMP 1.0 made `id` optional; brokers then key the subscription by destination.
            (None, Version::V1_0) => destination.as_shared().clone(),
            (None, _) => {
                return Err(ProtocolError::MissingHeader {
                    command: Command::Subscribe,
                    header: "id",
                });
            }
        };
        let mode =
            AckMode::parse(frame.header("ack")).ok_or_else(|| ProtocolError::InvalidAckMode {
                mode: frame.header("ack").unwrap_or_default().to_owned(),
            })?;
        let queues = &self.config.queues;
        let prefetch = match frame.header("prefetch-count") {
            None => queues.default_prefetch,
            Some(value) => value
                .parse()
                .ok()
                .filter(|n| (1..=queues.max_prefetch).contains(n))
                .ok_or_else(|| ProtocolError::InvalidPrefetch {
                    value: value.to_owned(),
                    max: queues.max_prefetch,
                })?,
        };
        // More in flight than the outbox holds would only wait in the outbox, not the queue.
        let prefetch = prefetch.min(self.config.outbox.max_frames);
        if subscriptions.contains_key(&id) {
            return Err(ProtocolError::DuplicateSubscription { id: id.to_string() });
        }
        if subscriptions.len() >= max {
            return Err(ProtocolError::TooManySubscriptions { max });
        }
        let user = principal.map(|p| p.name.as_str());
        // A `/queue` is durable already; the router refuses other kinds than `/topic`.
        let durable = durable_name(frame, &id)
            .filter(|_| destination.kind() != crate::DestinationKind::Queue)
            .map(|name| Subscription::durable_queue(user, name));
        // A durable subscription is consumed like a queue: what is not acknowledged comes back.
        redelivers |= durable.is_some();
        // A user destination with an inbox: what waited there is consumed like a queue too.
        let inbox = match (self.rules.feed(&destination)?, user) {
            (Feed::User(path), Some(user)) if self.config.inbox.keeps(path) => {
                Some(Subscription::inbox_queue(user, path))
            }
            _ => None,
        };
        self.acks.add(id.clone(), mode, prefetch, redelivers);
        let subscription = Subscription {
            destination,
            queue: durable.or(inbox),
        };
        subscriptions.insert(id.clone(), subscription.clone());
        out.push(Action::Subscribe { id, subscription });
        Ok(())
    }

    fn unsubscribe(&mut self, frame: &Frame, out: &mut Vec<Action>) -> Result<(), ProtocolError> {
        let State::Connected { version } = self.state else {
            unreachable!("only called when connected")
        };
        let subscriptions = &mut self.subscriptions;
        let id = match (frame.headers.get_shared("id"), version) {
            (Some(id), _) => id.clone(),
            (None, Version::V1_0) if frame.headers.contains("destination") => frame
                .headers
                .get_shared("destination")
                .cloned()
                .unwrap_or_default(),
            (None, _) => {
                return Err(ProtocolError::MissingHeader {
                    command: Command::Unsubscribe,
                    header: "id",
                });
            }
        };
        let Some(subscription) = subscriptions.remove(&id) else {
            return Err(ProtocolError::UnknownSubscription { id: id.to_string() });
        };
        self.acks.remove(&id);
        let forget = frame.header("durable").is_some_and(is_true)
            || DURABLE_NAMES.iter().any(|h| frame.headers.contains(h));
        out.push(Action::Unsubscribe {
            id,
            subscription,
            forget,
        });
        Ok(())
    }
}

/// The headers that name a durable subscription: Artemis's, then ActiveMQ's.
const DURABLE_NAMES: [&str; 2] = ["durable-subscription-name", "activemq.subscriptionName"];

fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// The name of the durable subscription a SUBSCRIBE asks for, if it asks for one: a name
/// header (Artemis's, ActiveMQ's), or `durable:true` (RabbitMQ's) with the subscription id.
fn durable_name<'f>(frame: &'f Frame, id: &'f str) -> Option<&'f str> {
    DURABLE_NAMES
        .iter()
        .find_map(|h| frame.header(h))
        .or_else(|| frame.header("durable").filter(|v| is_true(v)).map(|_| id))
}

#[cfg(test)]
mod tests;
