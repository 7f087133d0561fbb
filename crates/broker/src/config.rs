//! Broker configuration. `Default` is the single source of truth for every default; each field
//! says its default and why.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use stompbox_codec::Limits;

/// A configuration value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, dotted (`heartbeat.grace`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Everything the broker core can be told. Deserializes from any serde format with missing fields
/// taking their defaults; durations are written like `"10s"` or `"250ms"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The `server` header of CONNECTED. Default `stompbox/<version>`.
    pub server_name: String,
    /// Largest frame (head plus body) once the session is connected. Default 4 MiB + 64 KiB:
    /// a body at `max_body_size` plus a generous head.
    pub max_frame_size: usize,
    /// Largest frame before CONNECT succeeds. Default 64 KiB: a CONNECT with a large JWT fits,
    /// an unauthenticated peer cannot make us buffer megabytes.
    pub max_frame_size_before_connect: usize,
    /// Largest body. Default 4 MiB, RabbitMQ's default STOMP frame limit.
    pub max_body_size: usize,
    /// Most header lines per frame. Default 64; real clients send fewer than 15.
    pub max_headers: usize,
    /// Longest command or header line in bytes. Default 8 KiB, as HTTP servers allow.
    pub max_header_line: usize,
    /// Most subscriptions one session may hold. Default 1,024: a dashboard with hundreds of
    /// widgets fits; a runaway client does not grow the routing table without bound.
    pub max_subscriptions_per_session: usize,
    /// Longest `destination` a client may SEND or SUBSCRIBE to, in bytes, prefix included;
    /// beyond it, ERROR `destination too long`. Default 1,024: room for RabbitMQ's longest
    /// names (255-byte exchange names and routing keys) and for
    /// `/user/<a 254-byte e-mail address>/queue/<a 255-byte name>`, while a client cannot make
    /// the routing tables keep keys as long as a header line (`max_header_line`, 8 KiB). Not
    /// RabbitMQ's 255 bytes for the name: a single node has no reason to refuse longer keys
    /// that work today (the RabbitMQ relay refuses what it cannot carry, `docs/relay.md`).
    pub max_destination_length: usize,
    /// Most `.`-separated words in a `/topic` routing key a client sends to or a pattern it
    /// subscribes to; beyond it, ERROR `too many words in topic`. Default 32: hierarchies in
    /// use have a handful (`stock.usd.nyse`, `site.building.floor.room.sensor.metric`). What
    /// matching a publish costs is the matching branches of the pattern trie times the key's
    /// words plus one below a `#`: at most 33 steps a branch here, where a 1 KiB key of empty
    /// words (`a....`) would take a thousand.
    pub max_topic_words: usize,
    /// Most subscriptions to `/topic` patterns with a `*` or `#` word on this node, all
    /// sessions together; beyond it, SUBSCRIBE gets ERROR `too many wildcard subscriptions`.
    /// Subscriptions without wildcards do not count. Default 100,000: one per session at
    /// 100,000 connections, beyond what applications use. It bounds memory, not publish cost
    /// (a publish walks only the matching branches of the pattern trie): besides what any
    /// subscription costs, the trie holds about 250 bytes for a short distinct pattern
    /// (`room.42.*`: 25 MiB at the limit) and about 5 KiB for one of the longest (1,024 bytes
    /// of 32 words: 500 MiB at the limit, only for patterns made to be costly).
    pub max_wildcard_subscriptions: usize,
    /// Most concurrent sessions on this node. Default 100,000; further connections get ERROR
    /// `too many connections` and are closed.
    pub max_connections: usize,
    /// Time a new connection has to send CONNECT. Default 10 s: generous for mobile networks,
    /// short enough that idle sockets cannot pile up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Bounds and policy of each session's outbound queue.
    pub outbox: OutboxConfig,
    /// Heart-beat negotiation bounds.
    pub heartbeat: HeartbeatConfig,
    /// How long a graceful shutdown waits for sessions to flush their last frames. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `/queue/...` destinations: bounds, overflow policy, prefetch, dead letters.
    pub queues: QueueConfig,
    /// BEGIN / COMMIT / ABORT: what one session may buffer.
    pub transactions: TransactionConfig,
    /// End every frame the server writes with an EOL after its NUL (`^@\n`), as RabbitMQ and
    /// ActiveMQ do, on every transport. Default `true`: older readers (PHP's `stomp`
    /// extension, Python's `stomper`) consume one byte after the NUL and lose frames without
    /// it, and every STOMP reader accepts it (the 1.2 grammar allows EOLs after a frame).
    pub frame_trailing_eol: bool,
    /// Failed logins per source address: password guessing is held off.
    pub login: LoginConfig,
    /// Connections per source address and per user, and the connection rate per address.
    pub admission: AdmissionConfig,
    /// Durable `/topic` subscriptions: what they keep while their subscriber is away.
    pub durable: DurableConfig,
    /// Users' offline inboxes: user destinations whose messages wait for the user.
    pub inbox: InboxConfig,
}

/// Offline inboxes: a message for a user (`/user/{name}/...` from a client, server code,
/// a handler or `/publish`) to one of these destinations, that no session of the user is
/// subscribed to, waits in the user's inbox for that destination and is delivered, in order,
/// when the user subscribes to it again. With a relay that holds queues, RabbitMQ keeps the
/// inboxes (`docs/persistence.md`); with one that does not, nothing is kept (the node cannot
/// know whether another node delivered it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxConfig {
    /// User destinations with an inbox, as subscribed to after `/user`: `/queue/notifications`
    /// keeps messages for `/user/queue/notifications` and any destination it starts a word of
    /// (`/queue/notifications.likes`, `/queue/notifications/x`). Default none: every message
    /// for an absent user is dropped, as Spring's broker does.
    pub destinations: Vec<String>,
    /// Most messages one user's inbox for one destination keeps; beyond, its oldest are
    /// dropped (counted). Default 100.
    pub max_messages: usize,
    /// Most bytes one inbox keeps; at least `max_body_size`. Default 4 MiB.
    pub max_bytes: usize,
    /// How long a kept message waits at most: it gets an `expires` header of the time it was
    /// kept plus this, unless it has one. Default 7 days; 0 for no limit.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            destinations: Vec::new(),
            max_messages: 100,
            max_bytes: 4 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl InboxConfig {
    /// Whether messages for user destination `path` (`/queue/x`) are kept.
    pub(crate) fn keeps(&self, path: &str) -> bool {
        self.destinations.iter().any(|d| {
            path.strip_prefix(d.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '/']))
        })
    }
}

/// Durable topic subscriptions (SUBSCRIBE to a `/topic` with `durable:true`, or ActiveMQ's
/// `activemq.subscriptionName`, or Artemis's `durable-subscription-name`): each is keyed by
/// the session's user and the subscription name, and keeps the messages that match it while
/// no session is subscribed, oldest dropped first at these bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurableConfig {
    /// Durable subscriptions on the node; a SUBSCRIBE that would create one more gets ERROR
    /// `too many durable subscriptions`. Default 10,000. 0 turns durable subscriptions off
    /// (ERROR for every durable SUBSCRIBE).
    pub max_subscriptions: usize,
    /// Durable subscriptions of one user (every anonymous session counts as one user).
    /// Default 100.
    pub max_per_user: usize,
    /// Most messages one durable subscription keeps waiting; beyond, its oldest are dropped
    /// (counted as `dropped` of that subscription). Default 10,000.
    pub max_messages: usize,
    /// Most bytes one durable subscription keeps waiting; at least `max_body_size`. Default
    /// 8 MiB. (All queues and durable subscriptions together stay within
    /// `queues.max_total_bytes`.)
    pub max_bytes: usize,
    /// How long a message waits for the subscriber at most: it gets an `expires` header of
    /// the time it was kept plus this, unless it has one. Default 1 day; 0 for no limit.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for DurableConfig {
    fn default() -> Self {
        DurableConfig {
            max_subscriptions: 10_000,
            max_per_user: 100,
            max_messages: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Limits on who may open sessions, beyond `max_connections` (`admission.rs`). Each is off at
/// 0, the default: one address can be a whole office behind NAT, or a load test; set them for
/// the clients you expect (`docs/security.md` has an example).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Live connections from one source address; beyond it, ERROR
    /// `too many connections from this address` and close.
    pub max_per_address: usize,
    /// Live sessions of one authenticated user; beyond it, the new session gets ERROR
    /// `too many connections for this user` instead of CONNECTED.
    pub max_per_user: usize,
    /// New connections per second from one source address (a token bucket); beyond it, ERROR
    /// `connection rate exceeded` and close, before anything else is done for the connection.
    pub rate_per_address: f64,
    /// Connections one address may open at once before `rate_per_address` applies. Default 20.
    pub rate_burst: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_per_address: 0,
            max_per_user: 0,
            rate_per_address: 0.0,
            rate_burst: 20,
        }
    }
}

/// Failed logins, counted per source address (`login_guard.rs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Failed logins from one address within `failure_window` after which its CONNECTs are
    /// refused at once (ERROR `too many failed logins`), without asking the authenticator,
    /// until the window is over. Logins from the address still being checked count too, so
    /// this also bounds the password checks one address runs at once. Default 10; 0 turns
    /// the guard off. Raise it for many users behind one NAT address.
    pub max_failures: u32,
    /// The window, counted from an address's first failure. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            max_failures: 10,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// `/queue/...` destinations: point-to-point with acknowledgements. Messages wait in the queue
/// (bounded here), never in subscriber outboxes beyond each subscription's prefetch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Most messages waiting in one queue (not counting those in flight to a consumer).
    /// Default 10,000: minutes of backlog for a typical worker pool, and a bound a producer
    /// with no consumer reaches quickly enough to notice.
    pub max_messages: usize,
    /// Most body and header bytes waiting in one queue. Default 16 MiB: four maximum-size
    /// messages, or thousands of typical ones.
    pub max_bytes: usize,
    /// Most bytes waiting in all queues of the node together. Default 256 MiB, so that many
    /// queues each below `max_bytes` still cannot exhaust memory.
    pub max_total_bytes: usize,
    /// Most queues on the node; a SEND or SUBSCRIBE that would create one more is an ERROR.
    /// Default 10,000.
    pub max_queues: usize,
    /// A queue with no message and no consumer for this long is removed (with its counters),
    /// so per-client reply queues do not pile up to `max_queues`; it is created again by the
    /// next SEND or SUBSCRIBE. Default 5 min; zero keeps queues until the node stops. At
    /// least 1 s otherwise.
    #[serde(with = "humantime_serde")]
    pub idle_expiry: Duration,
    /// What a SEND to a full queue does. Default `reject`: the producer learns at once (ERROR
    /// naming the queue) instead of messages vanishing silently.
    pub overflow: OverflowPolicy,
    /// Unacknowledged messages per subscription when SUBSCRIBE has no `prefetch-count`.
    /// Default 100: enough to keep a consumer busy across a round trip, small enough that
    /// work spreads across competing consumers. Capped by `outbox.max_frames`.
    pub default_prefetch: usize,
    /// Largest `prefetch-count` a client may ask for. Default 1,000.
    pub max_prefetch: usize,
    /// Deliveries after which a message that comes back (NACK, UNSUBSCRIBE, session end) is
    /// dead-lettered instead of redelivered. Default 20, RabbitMQ's quorum-queue delivery
    /// limit: a poison message cannot loop forever, a flaky consumer has room. 0 turns
    /// dead-lettering off (redeliver forever).
    pub max_deliveries: u32,
    /// Where dead letters of queue `<name>` go: `/queue/<prefix><name>`. Default `dlq.`, so
    /// `/queue/jobs` dead-letters into `/queue/dlq.jobs`. Queues whose name starts with the
    /// prefix never dead-letter (no chains); an empty prefix drops dead letters (counted).
    pub dead_letter_prefix: String,
    /// With a message store: most messages one queue keeps on disk only, beyond its memory
    /// bounds. A persistent message that does not fit in memory joins the queue's tail on disk
    /// instead of being refused; past this many there, a SEND gets ERROR `queue full` naming
    /// this key. Default 10,000,000 (about 10 GB of 1 KiB messages).
    pub max_stored_messages: usize,
    /// How long a message may wait in a queue when its SEND has no `expires` header: the
    /// header is set to the time it joins plus this (and passed on to consumers, so it
    /// survives a restart with the message). Default 0: no limit. A message past its `expires`
    /// is never delivered.
    #[serde(with = "humantime_serde")]
    pub message_ttl: Duration,
    /// TTLs of their own for some queues, as `[[broker.queues.ttl]]` tables in order: the
    /// first whose `queues` matches a queue's name gives its messages' TTL instead of
    /// `message_ttl` (as RabbitMQ's `message-ttl` policy, ActiveMQ's per-destination
    /// policies). Default none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ttl: Vec<QueueTtl>,
    /// What happens to a message that expires in a queue. Default `drop` (counted as
    /// `expired`); `dead-letter` moves it to the queue's dead-letter queue (its `expires` header
    /// removed, `x-original-destination` added), like a message delivered `max_deliveries`
    /// times.
    pub expired: ExpiredPolicy,
}

/// One entry of `queues.ttl`: the TTL of the queues whose name `queues` matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueTtl {
    /// A queue name (`jobs`, for `/queue/jobs`), or a prefix followed by `*` (`reports.*`,
    /// `*` for every queue).
    pub queues: String,
    /// How long a message without its own `expires` may wait in those queues; `0s` for no
    /// limit.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl QueueTtl {
    /// Whether this entry is about queue `name`.
    pub(crate) fn matches(&self, name: &str) -> bool {
        match self.queues.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.queues == name,
        }
    }
}

/// What happens to a queued message whose `expires` time has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiredPolicy {
    /// Dropped, counted as `expired`.
    #[default]
    Drop,
    /// Moved to the dead-letter queue (`queues.dead_letter_prefix`), counted as `expired`;
    /// dropped when the queue has none.
    DeadLetter,
}

/// What happens to a SEND when its queue is at `max_messages` or `max_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowPolicy {
    /// ERROR `queue full` naming the queue; the SEND is not queued and the session closes.
    #[default]
    Reject,
    /// Drop the oldest waiting messages until the new one fits; counted per queue.
    DropOldest,
}

/// Transactions (BEGIN / COMMIT / ABORT): frames are buffered until COMMIT, so these bound what
/// a session may hold back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionConfig {
    /// Most transactions open at once on one session. Default 16; clients rarely use more than
    /// one.
    pub max_open: usize,
    /// Most frames (SEND, ACK, NACK) buffered in one transaction. Default 1,024: a batch job's
    /// worth, without letting one session buffer without bound.
    pub max_frames: usize,
    /// Most body bytes buffered in all open transactions of one session. Default 16 MiB: four
    /// maximum-size SENDs.
    pub max_bytes: usize,
}

/// Per-session outbound queue: fan-out never waits on a subscriber; these bound what a slow one
/// may hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Most frames queued for one session. Default 4,096: several seconds of a busy chat room.
    pub max_frames: usize,
    /// Most encoded bytes queued for one session. Default 8 MiB: two maximum-size frames, so a
    /// large message never trips the policy on its own. (A single delivery larger than this is
    /// still accepted into an empty outbox.) The same bound pauses reading from a client whose
    /// own replies (receipts) pile up unwritten, so a session holds at most about twice this.
    pub max_bytes: usize,
    /// What happens when a delivery would cross a bound. Default `disconnect`.
    pub slow_consumer: SlowConsumerPolicy,
    /// A write to the socket that takes longer than this closes the session as a slow consumer.
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

/// What to do with a subscriber whose outbox is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Send ERROR `slow consumer` and close the session (what nats-server does). The default:
    /// loss is visible to the client, which can reconnect.
    #[default]
    Disconnect,
    /// Drop the message for that subscriber only and count it; the session stays open.
    DropNewest,
}

/// Heart-beat negotiation (spec 1.2 "Heart-beating"). Clients get the intervals they ask for,
/// as RabbitMQ and Artemis give them: a client that wants a beat every second gets one, and one
/// that promised a beat every second and falls silent is closed after `grace` seconds. Mobile
/// apps and browsers ask for short intervals to notice a dead link behind idle proxies and NAT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Whether the server sends heart-beats to clients that ask for them: zero never, any other
    /// value yes (at the client's interval `cy`, bounded by `min` and `max`). Default 10 s.
    #[serde(with = "humantime_serde")]
    pub send: Duration,
    /// Whether the server holds clients to the heart-beats they offer: zero never (a silent
    /// client is not closed), any other value yes (at the client's interval `cx`, at least
    /// `min`). Default 10 s.
    #[serde(with = "humantime_serde")]
    pub receive: Duration,
    /// Shortest interval in either direction, so a client cannot ask for 1 ms beats. Default
    /// 1 s: fast enough to notice a dead mobile link, a beat costs a 1-byte write.
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// Longest interval between the server's beats, whatever the client asks for. Default 30 s:
    /// under the 60 s idle timeout of common load balancers and proxies. (A client offering to
    /// beat less often than this is held to its own interval: STOMP lets no server ask a
    /// client for more than it offered.)
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// A client is declared dead after `grace × interval` of silence. Default 2.0, so one late
    /// or lost beat on a flaky mobile network is forgiven.
    pub grace: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: concat!("stompbox/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_frame_size: Limits::DEFAULT.max_frame_size,
            max_frame_size_before_connect: 64 * 1024,
            max_body_size: Limits::DEFAULT.max_body_size,
            max_headers: Limits::DEFAULT.max_headers,
            max_header_line: Limits::DEFAULT.max_header_line,
            max_subscriptions_per_session: 1024,
            max_destination_length: 1024,
            max_topic_words: 32,
            max_wildcard_subscriptions: 100_000,
            max_connections: 100_000,
            connect_timeout: Duration::from_secs(10),
            outbox: OutboxConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            queues: QueueConfig::default(),
            transactions: TransactionConfig::default(),
            frame_trailing_eol: true,
            login: LoginConfig::default(),
            admission: AdmissionConfig::default(),
            durable: DurableConfig::default(),
            inbox: InboxConfig::default(),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_messages: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_queues: 10_000,
            idle_expiry: Duration::from_secs(300),
            overflow: OverflowPolicy::Reject,
            default_prefetch: 100,
            max_prefetch: 1000,
            max_deliveries: 20,
            dead_letter_prefix: "dlq.".to_owned(),
            max_stored_messages: 10_000_000,
            message_ttl: Duration::ZERO,
            ttl: Vec::new(),
            expired: ExpiredPolicy::Drop,
        }
    }
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            max_open: 16,
            max_frames: 1024,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_frames: 4096,
            max_bytes: 8 * 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            send: Duration::from_secs(10),
            receive: Duration::from_secs(10),
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            grace: 2.0,
        }
    }
}

impl Config {
    /// Codec limits once connected.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_size: self.max_frame_size,
            max_headers: self.max_headers,
            max_header_line: self.max_header_line,
            max_body_size: self.max_body_size,
        }
    }

    /// Codec limits before CONNECT succeeds.
    pub fn limits_before_connect(&self) -> Limits {
        Limits {
            max_frame_size: self.max_frame_size_before_connect,
            max_body_size: self.max_body_size.min(self.max_frame_size_before_connect),
            ..self.limits()
        }
    }

    /// Checks the values make sense together; the message names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_frame_size == 0 || self.max_frame_size_before_connect == 0 {
            return bad("max_frame_size", "must be greater than zero");
        }
        if self.max_body_size > self.max_frame_size {
            return bad("max_body_size", "must not exceed max_frame_size");
        }
        if self.outbox.max_frames == 0 || self.outbox.max_bytes == 0 {
            return bad(
                "outbox",
                "max_frames and max_bytes must be greater than zero",
            );
        }
        let grace = self.heartbeat.grace;
        if !grace.is_finite() || grace < 1.0 {
            return bad("heartbeat.grace", "must be a finite number of at least 1.0");
        }
        if !self.queues.idle_expiry.is_zero() && self.queues.idle_expiry < Duration::from_secs(1) {
            return bad("queues.idle_expiry", "must be zero (never) or at least 1s");
        }
        if self.heartbeat.max < self.heartbeat.min {
            return bad("heartbeat.max", "must not be below heartbeat.min");
        }
        let rate = self.admission.rate_per_address;
        if !rate.is_finite() || rate < 0.0 {
            return bad(
                "admission.rate_per_address",
                "must be 0 (off) or a positive number",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be greater than zero");
        }
        if self.max_destination_length == 0 {
            return bad("max_destination_length", "must be greater than zero");
        }
        if self.max_topic_words == 0 {
            return bad("max_topic_words", "must be greater than zero");
        }
        if self.max_wildcard_subscriptions == 0 {
            return bad("max_wildcard_subscriptions", "must be greater than zero");
        }
        let q = &self.queues;
        if q.max_messages == 0 || q.max_bytes == 0 || q.max_total_bytes == 0 || q.max_queues == 0 {
            return bad(
                "queues",
                "max_messages, max_bytes, max_total_bytes and max_queues must be greater than zero",
            );
        }
        if q.max_bytes < self.max_body_size {
            return bad(
                "queues.max_bytes",
                "must hold at least one max_body_size message",
            );
        }
        if let Some(t) = (q.ttl.iter()).find(|t| {
            let name = t.queues.strip_suffix('*').unwrap_or(&t.queues);
            t.queues.is_empty() || name.contains('*')
        }) {
            return bad(
                "queues.ttl",
                &format!(
                    "{:?}: a queue name, or a prefix followed by one final '*'",
                    t.queues
                ),
            );
        }
        let d = &self.durable;
        if d.max_subscriptions > 0 && (d.max_messages == 0 || d.max_per_user == 0) {
            return bad(
                "durable",
                "max_messages and max_per_user must be greater than zero",
            );
        }
        if d.max_subscriptions > 0 && d.max_bytes < self.max_body_size {
            return bad(
                "durable.max_bytes",
                "must hold at least one max_body_size message",
            );
        }
        let i = &self.inbox;
        if !i.destinations.is_empty() && (i.max_messages == 0 || i.max_bytes < self.max_body_size) {
            return bad(
                "inbox",
                "max_messages must be greater than zero and max_bytes hold a max_body_size message",
            );
        }
        if let Some(d) = (i.destinations.iter()).find(|d| !d.starts_with('/') || d.len() < 2) {
            return bad(
                "inbox.destinations",
                &format!("{d:?} is not a user destination such as /queue/notifications"),
            );
        }
        if q.default_prefetch == 0 || q.default_prefetch > q.max_prefetch {
            return bad(
                "queues.default_prefetch",
                "must be between 1 and queues.max_prefetch",
            );
        }
        if q.dead_letter_prefix.contains('/') {
            return bad("queues.dead_letter_prefix", "must not contain '/'");
        }
        let t = &self.transactions;
        if t.max_open == 0 || t.max_frames == 0 {
            return bad(
                "transactions",
                "max_open and max_frames must be greater than zero",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: Config) -> &'static str {
        config.validate().expect_err("invalid").field
    }

    #[test]
    fn queue_and_transaction_bounds_are_validated() {
        assert!(Config::default().validate().is_ok());
        let queues = |q: QueueConfig| Config {
            queues: q,
            ..Config::default()
        };
        let cases = [
            (
                queues(QueueConfig {
                    max_messages: 0,
                    ..QueueConfig::default()
                }),
                "queues",
            ),
            (
                queues(QueueConfig {
                    max_bytes: 1024,
                    ..QueueConfig::default()
                }),
                "queues.max_bytes",
            ),
            (
                queues(QueueConfig {
                    default_prefetch: 2000,
                    ..QueueConfig::default()
                }),
                "queues.default_prefetch",
            ),
            (
                queues(QueueConfig {
                    dead_letter_prefix: "dead/".into(),
                    ..QueueConfig::default()
                }),
                "queues.dead_letter_prefix",
            ),
            (
                Config {
                    transactions: TransactionConfig {
                        max_frames: 0,
                        ..TransactionConfig::default()
                    },
                    ..Config::default()
                },
                "transactions",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(config), field);
        }
    }

    #[test]
    fn destination_limits_are_validated() {
        let cases = [
            (
                Config {
                    max_destination_length: 0,
                    ..Config::default()
                },
                "max_destination_length",
            ),
            (
                Config {
                    max_topic_words: 0,
                    ..Config::default()
                },
                "max_topic_words",
            ),
            (
                Config {
                    max_wildcard_subscriptions: 0,
                    ..Config::default()
                },
                "max_wildcard_subscriptions",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(config), field);
        }
    }
}
