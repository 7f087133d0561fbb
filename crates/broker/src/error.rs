//! Why a session is ended by the broker: each cause becomes one ERROR frame (a short `message`
//! header, the detail in the body) and a [`CloseReason`].

use std::time::Duration;

use stompbox_codec::{ByteString, Command, DecodeError, Frame, Version};

use crate::CloseReason;
use crate::backplane::BackplaneUnavailable;
use crate::destination::{DestinationError, DestinationKind};
use crate::router::{OverLimit, RouteError};

/// The versions this broker speaks, as listed in the `version` header of a refusal.
pub(crate) const SUPPORTED_VERSIONS: &str = "1.0,1.1,1.2";

/// A protocol violation, a limit crossed, or the broker ending the session.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not a valid frame, or a decode limit was crossed.
    #[error("{0}; the stream cannot be resynchronised")]
    Decode(#[from] DecodeError),
    /// A frame other than CONNECT or STOMP came first.
    #[error("expected CONNECT or STOMP as the first frame, got {command}")]
    NotConnected {
        /// The frame's command.
        command: Command,
    },
    /// CONNECT or STOMP on a session that is already connected (or connecting).
    #[error("{command} received on a session that is already connected")]
    AlreadyConnected {
        /// CONNECT or STOMP.
        command: Command,
    },
    /// None of the versions in `accept-version` is spoken here.
    #[error(
        "accept-version {requested:?} names no supported version; supported versions are {SUPPORTED_VERSIONS}"
    )]
    UnsupportedVersion {
        /// The header value.
        requested: String,
    },
    /// The `heart-beat` header is not two comma-separated integers.
    #[error("heart-beat {value:?} is not two comma-separated millisecond counts")]
    InvalidHeartBeat {
        /// The header value.
        value: String,
    },
    /// A header the frame requires is absent.
    #[error("{command} requires {} {header} header", article(header))]
    MissingHeader {
        /// The frame's command.
        command: Command,
        /// The missing header.
        header: &'static str,
    },
    /// The `destination` header names nothing.
    #[error("{0}")]
    InvalidDestination(#[from] DestinationError),
    /// The destination's kind is not served yet.
    #[error(
        "{destination:?}: {kind} destinations are not served; /topic, /queue, /user and application destinations are"
    )]
    DestinationNotServed {
        /// The destination as sent.
        destination: String,
        /// Its kind.
        kind: DestinationKind,
    },
    /// SUBSCRIBE with an `id` already in use on this session.
    #[error("subscription id {id:?} is already in use on this session")]
    DuplicateSubscription {
        /// The id.
        id: String,
    },
    /// UNSUBSCRIBE with an `id` that is not subscribed.
    #[error("no subscription with id {id:?} on this session")]
    UnknownSubscription {
        /// The id.
        id: String,
    },
    /// SUBSCRIBE beyond `max_subscriptions_per_session`.
    #[error("this session already holds {max} subscriptions, the maximum per session")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
    /// SEND or SUBSCRIBE to a destination longer than `max_destination_length`.
    #[error(
        "destination of {length} bytes exceeds the maximum of {max} (broker.max_destination_length)"
    )]
    DestinationTooLong {
        /// The destination's length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// SEND to a `/topic` key, or SUBSCRIBE to a pattern, of more than `max_topic_words` words.
    #[error("topic of {words} words exceeds the maximum of {max} (broker.max_topic_words)")]
    TooManyTopicWords {
        /// The key's or pattern's words.
        words: usize,
        /// The limit.
        max: usize,
    },
    /// SUBSCRIBE to a `/topic` pattern with wildcards when the node holds
    /// `max_wildcard_subscriptions` of them.
    #[error(
        "{destination:?}: this node holds {max} wildcard topic subscriptions, the maximum (broker.max_wildcard_subscriptions)"
    )]
    TooManyWildcardSubscriptions {
        /// The pattern subscribed to.
        destination: String,
        /// The limit.
        max: usize,
    },
    /// A durable SUBSCRIBE (or UNSUBSCRIBE) that cannot be done: not to a `/topic`, durable
    /// subscriptions off, or at `durable.max_subscriptions` / `durable.max_per_user`.
    #[error("{destination:?}: {reason}")]
    Durable {
        /// What was subscribed to.
        destination: String,
        /// Why not.
        reason: String,
    },
    /// SUBSCRIBE with an `ack` header that is not `auto`, `client` or `client-individual`.
    #[error("ack mode {mode:?} is not one of auto, client, client-individual")]
    InvalidAckMode {
        /// The header value.
        mode: String,
    },
    /// SUBSCRIBE with a `prefetch-count` that is not a number from 1 to `queues.max_prefetch`.
    #[error("prefetch-count {value:?} is not a number from 1 to {max}")]
    InvalidPrefetch {
        /// The header value.
        value: String,
        /// `queues.max_prefetch`.
        max: usize,
    },
    /// ACK or NACK naming a message this session was not given, or already settled.
    #[error(
        "{command} {id:?} names no unacknowledged message of this session (never delivered, already settled, or its subscription is gone)"
    )]
    UnknownAck {
        /// ACK or NACK.
        command: Command,
        /// The `id` (1.2) or `message-id` (1.0/1.1) value.
        id: String,
    },
    /// SEND to a queue at its bound (or with the node's queues at theirs) under the `reject`
    /// overflow policy.
    #[error("{}", queue_full(destination, *bound))]
    QueueFull {
        /// The queue.
        destination: String,
        /// Which bound was met.
        bound: QueueBound,
    },
    /// SEND to a destination other nodes may subscribe to while the backplane (the RabbitMQ
    /// relay) refuses messages: its bounded buffer is full (RabbitMQ down for a while) or it
    /// stopped. The message was delivered nowhere.
    #[error(
        "{destination}: the relay to the other nodes refused the message ({reason}); it was delivered nowhere"
    )]
    RelayUnavailable {
        /// The destination.
        destination: String,
        /// Why the relay refused.
        reason: String,
    },
    /// SEND or SUBSCRIBE that would create a queue beyond `queues.max_queues`.
    #[error("this node holds {max} queues, the maximum")]
    TooManyQueues {
        /// The limit.
        max: usize,
    },
    /// BEGIN with a transaction id already open on this session.
    #[error("transaction {id:?} is already open on this session")]
    DuplicateTransaction {
        /// The id.
        id: String,
    },
    /// A frame naming a transaction that is not open.
    #[error("no open transaction {id:?} on this session")]
    UnknownTransaction {
        /// The id.
        id: String,
    },
    /// BEGIN beyond `transactions.max_open`.
    #[error("this session already has {max} open transactions, the maximum")]
    TooManyTransactions {
        /// The limit.
        max: usize,
    },
    /// A transaction beyond `transactions.max_frames` or `transactions.max_bytes`.
    #[error(
        "transaction {id:?} would hold more than {max_frames} frames or {max_bytes} body bytes"
    )]
    TransactionTooLarge {
        /// The id.
        id: String,
        /// `transactions.max_frames`.
        max_frames: usize,
        /// `transactions.max_bytes`.
        max_bytes: usize,
    },
    /// A server command (CONNECTED, MESSAGE, RECEIPT, ERROR) sent by the client.
    #[error("{command} is a server frame; clients may not send it")]
    ServerFrame {
        /// The frame's command.
        command: Command,
    },
    /// The authenticator refused the CONNECT.
    #[error("authentication failed")]
    AuthenticationFailed {
        /// The authenticator's message.
        message: String,
    },
    /// No CONNECT within `connect_timeout`.
    #[error("no CONNECT within {} ms", .0.as_millis())]
    ConnectTimeout(Duration),
    /// Nothing read within the negotiated interval times the grace factor.
    #[error("nothing received for {} ms (heart-beat {} ms × grace)", .timeout.as_millis(), .interval.as_millis())]
    HeartbeatTimeout {
        /// The negotiated client interval.
        interval: Duration,
        /// interval × grace.
        timeout: Duration,
    },
    /// The outbox crossed a bound under the `disconnect` policy.
    #[error(
        "the session's outbox crossed its bounds ({max_frames} frames or {max_bytes} bytes); messages were lost"
    )]
    SlowConsumer {
        /// `outbox.max_frames`.
        max_frames: usize,
        /// `outbox.max_bytes`.
        max_bytes: usize,
    },
    /// The connection's address failed to log in too often (`login.max_failures`).
    #[error("too many failed logins from this address; try again in {} s", wait.as_secs().max(1))]
    LoginsThrottled {
        /// Until the address may try again.
        wait: Duration,
    },
    /// The credential the session was admitted with (a token) expired.
    #[error("the credential this session was admitted with expired; connect again with a new one")]
    CredentialsExpired,
    /// The broker is shutting down.
    #[error("the server is shutting down; reconnect later")]
    ShuttingDown,
    /// An operator ended the session (the admin API, [`crate::Broker::close_session`]).
    #[error("closed by an operator: {reason}")]
    ClosedByOperator {
        /// What the operator gave as the reason.
        reason: String,
    },
    /// The message store failed to write: persistent messages since its last sync may be lost,
    /// so the RECEIPT that would promise them is not sent.
    #[error("{0}; persistent messages sent since the last RECEIPT may not be stored")]
    StoreFailed(crate::StoreError),
    /// The connection's address is at `admission.max_per_address`.
    #[error("this node serves at most {max} connections from one address")]
    TooManyFromAddress {
        /// The limit.
        max: usize,
    },
    /// The session's user is at `admission.max_per_user`.
    #[error("user {user:?} may have at most {max} sessions at once on this node")]
    TooManyForUser {
        /// The user.
        user: String,
        /// The limit.
        max: usize,
    },
    /// The connection's address opens connections faster than `admission.rate_per_address`.
    #[error("this node accepts at most {rate} new connections per second from one address")]
    ConnectionRate {
        /// The limit.
        rate: f64,
    },
    /// The transport saw the peer go past one of the transport's own limits (a WebSocket
    /// ping flood), reported as [`Inbound::LimitExceeded`](crate::Inbound::LimitExceeded).
    #[error("{detail}")]
    TransportLimit {
        /// The ERROR's `message` header.
        message: String,
        /// The ERROR's body: which limit, and its value.
        detail: String,
    },
    /// The node is at `max_connections`.
    #[error("this node serves at most {max} connections")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// The permission rules refuse this SEND or SUBSCRIBE (see [`crate::Permissions`]).
    #[error("{access} to {destination:?} is not permitted for {who}")]
    AccessRefused {
        /// The destination as the client wrote it.
        destination: String,
        /// What was refused.
        access: crate::Access,
        /// `user "alice"` or `an anonymous session`.
        who: String,
    },
    /// A SEND to `/user/...` that is not of the form `/user/{name}/{destination}`.
    #[error("{destination:?}: {reason}")]
    UserSend {
        /// The destination as sent.
        destination: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An `/app` handler failed (or rejected the message) under
    /// `HandlerErrorPolicy::ErrorAndClose`.
    #[error("{detail}")]
    Handler {
        /// The short message.
        message: String,
        /// The detail.
        detail: String,
    },
    /// An interceptor rejected the frame.
    #[error("{detail}")]
    FrameRejected {
        /// The short message.
        message: String,
        /// The detail.
        detail: String,
    },
}

impl ProtocolError {
    /// The short `message` header.
    pub fn message(&self) -> String {
        match self {
            ProtocolError::Decode(e) => e.to_string(),
            ProtocolError::NotConnected { .. } => "not connected".into(),
            ProtocolError::AlreadyConnected { .. } => "already connected".into(),
            ProtocolError::UnsupportedVersion { .. } => "unsupported protocol version".into(),
            ProtocolError::InvalidHeartBeat { .. } => "invalid heart-beat header".into(),
            ProtocolError::MissingHeader { header, .. } => format!("missing {header} header"),
            ProtocolError::InvalidDestination(_) => "invalid destination".into(),
            ProtocolError::DestinationNotServed { kind, .. } => {
                format!("{kind} destinations are not supported yet")
            }
            ProtocolError::DuplicateSubscription { .. } => "duplicate subscription id".into(),
            ProtocolError::UnknownSubscription { .. } => "unknown subscription id".into(),
            ProtocolError::TooManySubscriptions { max } => {
                format!("too many subscriptions (max {max})")
            }
            ProtocolError::DestinationTooLong { max, .. } => {
                format!("destination too long (max {max} bytes)")
            }
            ProtocolError::TooManyTopicWords { max, .. } => {
                format!("too many words in topic (max {max})")
            }
            ProtocolError::TooManyWildcardSubscriptions { max, .. } => {
                format!("too many wildcard subscriptions (max {max})")
            }
            ProtocolError::Durable { reason, .. } => reason.clone(),
            ProtocolError::InvalidAckMode { .. } => "invalid ack mode".into(),
            ProtocolError::InvalidPrefetch { .. } => "invalid prefetch-count".into(),
            ProtocolError::UnknownAck { .. } => "unknown ack id".into(),
            ProtocolError::QueueFull { destination, .. } => format!("queue full: {destination}"),
            ProtocolError::RelayUnavailable { .. } => "relay unavailable".into(),
            ProtocolError::TooManyQueues { max } => format!("too many queues (max {max})"),
            ProtocolError::DuplicateTransaction { .. } => "duplicate transaction id".into(),
            ProtocolError::UnknownTransaction { .. } => "unknown transaction id".into(),
            ProtocolError::TooManyTransactions { max } => {
                format!("too many transactions (max {max})")
            }
            ProtocolError::TransactionTooLarge { .. } => "transaction too large".into(),
            ProtocolError::ServerFrame { command } => format!("unexpected {command} frame"),
            ProtocolError::AuthenticationFailed { message } => message.clone(),
            ProtocolError::ConnectTimeout(_) => "connect timeout".into(),
            ProtocolError::HeartbeatTimeout { .. } => "heart-beat timeout".into(),
            ProtocolError::SlowConsumer { .. } => "slow consumer".into(),
            ProtocolError::ShuttingDown => "server shutting down".into(),
            ProtocolError::ClosedByOperator { .. } => "closed by an operator".into(),
            ProtocolError::StoreFailed(_) => "message store failed".into(),
            ProtocolError::CredentialsExpired => "token expired".into(),
            ProtocolError::LoginsThrottled { .. } => "too many failed logins".into(),
            ProtocolError::TooManyConnections { .. } => "too many connections".into(),
            ProtocolError::TooManyFromAddress { .. } => {
                "too many connections from this address".into()
            }
            ProtocolError::TooManyForUser { .. } => "too many connections for this user".into(),
            ProtocolError::ConnectionRate { .. } => "connection rate exceeded".into(),
            ProtocolError::UserSend { .. } => "user destination not allowed".into(),
            ProtocolError::AccessRefused { destination, .. } => {
                format!("access refused: {destination}")
            }
            ProtocolError::Handler { message, .. }
            | ProtocolError::FrameRejected { message, .. }
            | ProtocolError::TransportLimit { message, .. } => message.clone(),
        }
    }

    /// How the session ends because of this error.
    pub fn close_reason(&self) -> CloseReason {
        match self {
            ProtocolError::AuthenticationFailed { .. }
            | ProtocolError::CredentialsExpired
            | ProtocolError::LoginsThrottled { .. } => CloseReason::AuthenticationFailed,
            ProtocolError::ConnectTimeout(_) => CloseReason::ConnectTimeout,
            ProtocolError::HeartbeatTimeout { .. } => CloseReason::HeartbeatTimeout,
            ProtocolError::SlowConsumer { .. } => CloseReason::SlowConsumer,
            ProtocolError::ShuttingDown => CloseReason::Shutdown,
            ProtocolError::ClosedByOperator { reason } => {
                CloseReason::ClosedByOperator(reason.clone())
            }
            ProtocolError::TooManyConnections { .. }
            | ProtocolError::TooManyFromAddress { .. }
            | ProtocolError::TooManyForUser { .. }
            | ProtocolError::ConnectionRate { .. } => CloseReason::TooManyConnections,
            ProtocolError::AccessRefused { .. } => CloseReason::AccessRefused(self.message()),
            other => CloseReason::ProtocolError(other.message()),
        }
    }

    /// The ERROR frame: `message`, `receipt-id` when the failing frame asked for a receipt,
    /// `version` when no version could be agreed, the detail as a text body.
    pub(crate) fn to_frame(&self, receipt: Option<ByteString>) -> Frame {
        let mut frame = Frame::new(Command::Error).with_header("message", self.message());
        if let Some(r) = receipt {
            frame = frame.with_header("receipt-id", r);
        }
        if let ProtocolError::UnsupportedVersion { .. } = self {
            frame = frame.with_header("version", SUPPORTED_VERSIONS);
        }
        frame
            .with_header("content-type", "text/plain")
            .with_body(self.to_string())
    }
}

/// The bound a SEND to a full queue met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueBound {
    /// The queue's `queues.max_messages` or `queues.max_bytes`.
    Queue,
    /// The node's queues together hold `queues.max_total_bytes` (the value).
    Node(usize),
    /// The queue's tail on disk holds `queues.max_stored_messages` (the value).
    Stored(usize),
}

/// The body of a `queue full` ERROR: which limit was met.
fn queue_full(destination: &str, bound: QueueBound) -> String {
    match bound {
        QueueBound::Queue => format!(
            "queue {destination} is full (queues.max_messages or queues.max_bytes reached); the message was not queued"
        ),
        QueueBound::Node(max) => format!(
            "the node's queues hold their maximum of {max} bytes (queues.max_total_bytes); the message was not queued in {destination}"
        ),
        QueueBound::Stored(max) => format!(
            "queue {destination} keeps its maximum of {max} messages on disk (queues.max_stored_messages); the message was not queued"
        ),
    }
}

/// "an" before a header name that starts with a vowel (`an id header`), else "a".
fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

/// Versions offered in `accept-version`, best first among those we speak.
pub(crate) fn negotiate_version(accept_version: Option<&str>) -> Option<Version> {
    match accept_version {
        None => Some(Version::V1_0),
        Some(list) => list.split(',').filter_map(|v| v.parse().ok()).max(),
    }
}

impl From<OverLimit> for ProtocolError {
    fn from(over: OverLimit) -> Self {
        match over {
            OverLimit::Length { length, max } => ProtocolError::DestinationTooLong { length, max },
            OverLimit::TopicWords { words, max } => ProtocolError::TooManyTopicWords { words, max },
        }
    }
}

impl From<RouteError> for ProtocolError {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::InvalidDestination(e) => ProtocolError::InvalidDestination(e),
            RouteError::NotServed { destination, kind } => {
                ProtocolError::DestinationNotServed { destination, kind }
            }
            // `NotSendable` is what server code and handlers get; a client's SEND to the same
            // places is refused as `UserSend` or handled (`/app`) before it is routed.
            RouteError::UserSend {
                destination,
                reason,
            }
            | RouteError::NotSendable {
                destination,
                reason,
            } => ProtocolError::UserSend {
                destination,
                reason,
            },
            RouteError::AccessRefused {
                destination,
                access,
                who,
            } => ProtocolError::AccessRefused {
                destination,
                access,
                who,
            },
            RouteError::QueueFull { destination, bound } => {
                ProtocolError::QueueFull { destination, bound }
            }
            RouteError::TooManyQueues { max } => ProtocolError::TooManyQueues { max },
            RouteError::TooManyWildcardSubscriptions { destination, max } => {
                ProtocolError::TooManyWildcardSubscriptions { destination, max }
            }
            RouteError::Durable {
                destination,
                reason,
            } => ProtocolError::Durable {
                destination,
                reason,
            },
            RouteError::Unavailable { destination, cause } => ProtocolError::RelayUnavailable {
                destination,
                reason: cause.reason,
            },
            // Only server code and handlers are checked by the router (a client's NUL is a
            // decode error); kept total for the compiler, as the same cause.
            RouteError::NulInHeader { name } => {
                ProtocolError::Decode(DecodeError::NulInHeader { name })
            }
        }
    }
}

/// A message could not be sent from server code ([`Broker::send`](crate::Broker::send),
/// [`Broker::send_to_user`](crate::Broker::send_to_user)) or a handler's reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The destination text names nothing.
    #[error(transparent)]
    InvalidDestination(#[from] DestinationError),
    /// The destination's kind cannot be sent to from the server side.
    #[error("{destination:?}: {reason}")]
    NotSendable {
        /// The destination.
        destination: String,
        /// Why.
        reason: &'static str,
    },
    /// The payload could not be serialized.
    #[error("payload not serializable: {0}")]
    Payload(String),
    /// The queue is at its bound and its overflow policy is `reject`.
    #[error("queue full: {destination}")]
    QueueFull {
        /// The queue.
        destination: String,
    },
    /// Sending would create a queue beyond `queues.max_queues`.
    #[error("too many queues (max {max})")]
    TooManyQueues {
        /// The limit.
        max: usize,
    },
    /// The backplane (RabbitMQ relay) cannot take the message: its buffer is full or it
    /// stopped. The message was delivered nowhere.
    #[error(transparent)]
    RelayUnavailable(#[from] BackplaneUnavailable),
    /// A header (or the destination) holds a NUL byte: STOMP has no way to carry it (no escape
    /// exists, and a NUL ends a frame for most readers). The message was delivered nowhere.
    #[error("NUL byte in header {name:?}: STOMP cannot carry it")]
    NulInHeader {
        /// The header's name (`destination` for the destination).
        name: String,
    },
}

impl From<RouteError> for SendError {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::InvalidDestination(e) => SendError::InvalidDestination(e),
            RouteError::NotServed { destination, .. } => SendError::NotSendable {
                destination,
                reason: "this destination kind is not served",
            },
            RouteError::NotSendable {
                destination,
                reason,
            }
            | RouteError::UserSend {
                destination,
                reason,
            } => SendError::NotSendable {
                destination,
                reason,
            },
            // Only clients are held to permission rules; kept total for the compiler.
            RouteError::AccessRefused { destination, .. } => SendError::NotSendable {
                destination,
                reason: "access refused",
            },
            RouteError::QueueFull { destination, .. } => SendError::QueueFull { destination },
            RouteError::TooManyQueues { max } => SendError::TooManyQueues { max },
            // Only subscriptions count against it; kept total for the compiler.
            RouteError::TooManyWildcardSubscriptions { destination, .. } => {
                SendError::NotSendable {
                    destination,
                    reason: "too many wildcard subscriptions",
                }
            }
            // Only subscriptions are durable; kept total for the compiler.
            RouteError::Durable { destination, .. } => SendError::NotSendable {
                destination,
                reason: "durable subscriptions are for clients",
            },
            RouteError::Unavailable { cause, .. } => SendError::RelayUnavailable(cause),
            RouteError::NulInHeader { name } => SendError::NulInHeader { name },
        }
    }
}

/// Why [`Broker::delete_queue`](crate::Broker::delete_queue) did not delete a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteQueueError {
    /// No such queue on this node (or the destination is not a `/queue`, or the relay holds
    /// the queues).
    #[error("no such queue on this node")]
    NotFound,
    /// A subscription consumes it: unsubscribe (or close) its consumers first.
    #[error("the queue has consumers; they must unsubscribe first")]
    HasConsumers,
    /// Another operation was using it at that instant; try again.
    #[error("the queue is in use at this instant; try again")]
    Busy,
}
