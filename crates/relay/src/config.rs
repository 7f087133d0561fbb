//! [`RelayConfig`]: where RabbitMQ is, how things are named there, and how hard to try.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RelayError;

/// The relay's configuration (the server's `[relay]` table). `Default` is the single source of
/// truth; the defaults work against a stock RabbitMQ with guest/guest on localhost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Join other nodes through RabbitMQ at all. Default `false`: a single node needs no
    /// RabbitMQ, and the relay only runs when asked for.
    pub enabled: bool,
    /// AMQP URLs, tried in turn on every (re)connect. Default
    /// `["amqp://guest:guest@127.0.0.1:5672/%2f"]`, a stock local RabbitMQ.
    pub urls: Vec<String>,
    /// Prefix of every exchange and queue the relay declares (`<prefix>.topic`,
    /// `<prefix>.user`, `<prefix>.node.<node_id>`). Default `stompbox`; the nodes of one
    /// cluster share it, two clusters on one RabbitMQ use two.
    pub prefix: String,
    /// This node's id, unique in the cluster: names its queue and marks what it publishes
    /// (AMQP `app-id`) so it can drop its own echo. Default empty: a random id at start.
    pub node_id: String,
    /// First wait before reconnecting after RabbitMQ went away. Default 100 ms: a restarted
    /// broker or a closed connection is usually back at once.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest wait between reconnect attempts; the wait doubles up to it. Default 5 s, so a
    /// long outage costs one attempt per 5 s per node.
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Messages published on this node and not yet handed to RabbitMQ that the relay holds.
    /// When it is nearly full, the sessions that publish through the relay stop being read
    /// (their clients feel TCP back-pressure) until it has room again; past
    /// `unavailable_after` of being full, a SEND gets ERROR `relay unavailable` (and
    /// `Broker::send` an error) instead. Default 10 000: a few seconds of a busy node's
    /// traffic, a few MiB at typical message sizes.
    pub buffer_messages: usize,
    /// How long publishers are held while the relay's buffer stays full (RabbitMQ down or too
    /// slow) before their SENDs are refused with ERROR `relay unavailable`. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub unavailable_after: Duration,
    /// How long RabbitMQ keeps this node's queue (and its bindings and messages) once the
    /// node's connection is gone (`x-expires`). Default 60 s: a node that reconnects within
    /// it misses nothing other nodes sent meanwhile; a node that died leaves nothing behind
    /// for longer. A node that stops cleanly deletes its queue at once.
    #[serde(with = "humantime_serde")]
    pub node_queue_expiry: Duration,
    /// Keep this node's queue across a RabbitMQ restart: the queue is declared durable and
    /// every relayed message is sent persistent (delivery mode 2), so what RabbitMQ confirmed
    /// waits on its disk while it restarts and reaches this node's subscribers afterwards,
    /// once each, in order. Default `false`: the queue and what waits in it vanish with a
    /// RabbitMQ restart (not with a lost connection), and confirms come without an fsync.
    /// Every node of a cluster should agree; a node with a fixed `node_id` that changes it
    /// needs its queue deleted first (RabbitMQ refuses to redeclare a queue as durable).
    pub durable_node_queue: bool,
    /// Unacknowledged deliveries RabbitMQ may push to this node at once (`basic.qos`).
    /// Default 1 000: enough to keep the link busy, bounded memory on a slow node.
    pub prefetch: u16,
    /// Keep `/queue` destinations in RabbitMQ: one durable queue per STOMP queue
    /// (`<prefix>.queue.<name>`), one consumer in the cluster per message, messages surviving
    /// node restarts. Default `true`; `false` keeps each node's queues local.
    pub queues: bool,
    /// The kind of RabbitMQ queue behind each STOMP queue. Default `quorum`: replicated,
    /// always durable, and the only kind with a delivery limit, which carries the broker's
    /// `queues.max_deliveries` and dead-lettering into RabbitMQ. `classic` is for RabbitMQ
    /// older than 3.8 or for queues already declared classic: there a message NACKed forever
    /// is redelivered forever. Changing it for existing queues needs them deleted first
    /// (RabbitMQ refuses to redeclare a queue with another type).
    pub queue_type: QueueType,
}

/// See [`RelayConfig::queue_type`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// `x-queue-type: quorum`, with `x-delivery-limit` and a dead-letter queue.
    #[default]
    Quorum,
    /// A durable classic queue: no delivery limit, no dead letters.
    Classic,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            enabled: false,
            urls: vec!["amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()],
            prefix: "stompbox".to_owned(),
            node_id: String::new(),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            buffer_messages: 10_000,
            unavailable_after: Duration::from_secs(30),
            node_queue_expiry: Duration::from_secs(60),
            durable_node_queue: false,
            prefetch: 1_000,
            queues: true,
            queue_type: QueueType::Quorum,
        }
    }
}

impl RelayConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), RelayError> {
        let bad = |key: &'static str, reason: &str| {
            Err(RelayError::InvalidConfig {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.urls.is_empty() {
            return bad("urls", "at least one AMQP URL is needed");
        }
        if self.prefix.is_empty() || self.prefix.len() > 100 {
            return bad("prefix", "must be 1 to 100 bytes");
        }
        if self.node_id.len() > 100 {
            return bad("node_id", "must be at most 100 bytes");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad(
                "reconnect_min",
                "must be greater than zero and at most reconnect_max",
            );
        }
        if self.buffer_messages == 0 {
            return bad("buffer_messages", "must be greater than zero");
        }
        if self.node_queue_expiry < Duration::from_secs(1) {
            return bad("node_queue_expiry", "must be at least 1s");
        }
        if self.prefetch == 0 {
            return bad("prefetch", "must be greater than zero");
        }
        Ok(())
    }
}
