//! The link: one task per node owning its AMQP connection, with two channels used by two
//! halves that run side by side, so a wait for one never stalls the other: the publisher
//! (`publisher.rs`: what the broker forwards, with confirms) and the node queue
//! (`node_queue.rs`: bindings, deliveries from other nodes, queue subscriptions). When one
//! ends, the other finishes the item in hand and ends too.
//!
//! ```text
//!            ┌────────────┐ connected, declared, all bound ┌───────────┐
//!  start ──► │ Connecting │ ─────────────────────────────► │ Connected │ ◄─┐ publisher ║ node queue
//!            └────────────┘                                └───────────┘ ──┘ (side by side)
//!                 ▲  │ error                                    │ error in either half
//!   backoff over  │  ▼                                          ▼
//!                 └─────────────── Down { error } ◄─────────────┘
//!  stop: from any state ──► flush (if connected), delete node queue, close ──► Stopped
//! ```
//!
//! Nothing here is awaited by the broker: the link reads a bounded channel of outgoing
//! messages and a set of wanted bindings. A publish RabbitMQ did not confirm is kept and
//! published first after reconnecting (so a cut can duplicate, never drop, what was in flight).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use stompbox_broker::{Broker, HeldQueue, Interest, Relayed};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Backoff, Unconfirmed};
use crate::held::remove;
use crate::queue_consumers::{Live, apply_offline, start_or_drop};
use crate::{
    ConsumerKey, QueueOp, RelayError, RelayLink, RelayState, Shared, amqp, node_queue, publisher,
};

/// A connection attempt taking longer than this counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the link's halves need: the relay's shared state, the broker it delivers into, and
/// how STOMP queues are declared in RabbitMQ.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
    pub(crate) broker: Broker,
    pub(crate) shape: amqp::QueueShape,
    /// STOMP queues declared in RabbitMQ on this connection. Behind an async lock held while
    /// declaring, so the two halves never declare one queue at once: RabbitMQ can answer two
    /// concurrent declarations of a new quorum queue with INTERNAL_ERROR, or nack publishes to it.
    pub(crate) declared: tokio::sync::Mutex<HashSet<String>>,
    /// Inbox queues this connection declared (and bound), and when: declared again after
    /// half their `x-expires`, so one never expires unseen while messages are routed to it.
    pub(crate) inboxes: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
}

/// What survives a reconnect.
struct Carry {
    /// Bindings believed to exist on the node queue.
    bound: BTreeSet<Interest>,
    /// Taken from the broker, not confirmed by RabbitMQ: published first next time.
    unconfirmed: Unconfirmed,
    /// Queue subscriptions; their consumers are started again after a reconnect.
    consumers: HashMap<ConsumerKey, Live>,
    /// Durable subscriptions removed while down: their queues go after reconnecting.
    removals: Vec<HeldQueue>,
}

pub(crate) async fn run(link: RelayLink, broker: Broker, shape: amqp::QueueShape) {
    let RelayLink {
        mut outgoing,
        mut ops,
        stopped,
    } = link;
    let link = Link {
        shared: stopped.0.clone(),
        broker,
        shape,
        declared: tokio::sync::Mutex::default(),
        inboxes: std::sync::Mutex::default(),
    };
    let shared = &*link.shared;
    let config = &shared.config;
    let mut carry = Carry {
        bound: BTreeSet::new(),
        unconfirmed: Unconfirmed::default(),
        consumers: HashMap::new(),
        removals: Vec::new(),
    };
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut attempt = 0usize;
    while !shared.stop.is_cancelled() {
        let url = &config.urls[attempt % config.urls.len()];
        attempt += 1;
        shared.state.send_replace(RelayState::Connecting);
        let mut connected = false;
        let ended = session(
            &link,
            &mut outgoing,
            &mut ops,
            &mut carry,
            url,
            &mut connected,
        );
        let Err(e) = ended.await else {
            break;
        };
        let wait = backoff.after(connected);
        tracing::warn!(node = %shared.node_id, error = %e, retry_in = ?wait, "relay down");
        shared.state.send_replace(RelayState::Down {
            error: e.to_string(),
        });
        tokio::select! {
            () = shared.stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    for live in carry.consumers.values_mut() {
        live.stop();
    }
    outgoing.close();
    let dropped = outgoing.len() + carry.unconfirmed.len();
    if dropped > 0 {
        tracing::warn!(node = %shared.node_id, dropped, "relay stopped with unpublished messages");
    }
    // `stopped` goes last: `Relay::stop` returns once it is dropped.
    drop(stopped);
}

/// One connection's life: returns `Ok` when stopped, an error when the link broke.
async fn session(
    link: &Link,
    outgoing: &mut mpsc::Receiver<Relayed>,
    ops: &mut mpsc::UnboundedReceiver<QueueOp>,
    carry: &mut Carry,
    url: &str,
    connected: &mut bool,
) -> Result<(), RelayError> {
    let shared = &*link.shared;
    let names = &shared.names;
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(names.connection_name.clone().into_bytes()));
    // A stop while connecting (RabbitMQ unreachable, a black-holed address) ends at once.
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties));
    let connection = tokio::select! {
        connected = connect => connected.map_err(|_| RelayError::ConnectTimeout)??,
        () = shared.stop.cancelled() => return Ok(()),
    };
    let publisher_channel = connection.create_channel().await?;
    publisher_channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let node_channel = connection.create_channel().await?;
    declare(shared, &node_channel).await?;
    node_queue::sync_all(shared, &node_channel, &mut carry.bound).await?;
    node_channel
        .basic_qos(shared.config.prefetch, BasicQosOptions::default())
        .await?;
    let consume = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let mut deliveries = node_channel
        .basic_consume(
            names.node_queue.as_str().into(),
            shared.node_id.as_str().into(),
            consume,
            FieldTable::default(),
        )
        .await?;
    let retried = carry.unconfirmed.len();
    link.declared.lock().await.clear();
    crate::lock(&link.inboxes).clear();
    publisher::publish_all(link, &publisher_channel, &mut carry.unconfirmed).await?;
    // Queue subscriptions: first what changed while down (no settlement can apply: those
    // deliveries went back to their queues with the old connection), then start them all.
    while let Ok(op) = ops.try_recv() {
        apply_offline(link, &mut carry.consumers, &mut carry.removals, op);
    }
    for held in std::mem::take(&mut carry.removals) {
        remove(link, &connection, &held).await?;
    }
    let keys: Vec<ConsumerKey> = carry.consumers.keys().cloned().collect();
    for key in &keys {
        start_or_drop(link, &connection, &mut carry.consumers, key).await?;
    }
    *connected = true;
    shared.state.send_replace(RelayState::Connected);
    tracing::info!(node = %shared.node_id, url = %redact(url), bindings = carry.bound.len(), retried, "relay connected");

    // Side by side, each to the end of the item in hand: when one half ends (an error, or the
    // publisher's flush at a stop), it cancels `ended`, and the other returns before its next
    // item. So the node queue never delivers a message without acknowledging it, and a stop's
    // flush is not cut short by the other half.
    let ended = CancellationToken::new();
    let publishing = async {
        let result = publisher::run(
            link,
            &publisher_channel,
            outgoing,
            &mut carry.unconfirmed,
            &ended,
        )
        .await;
        ended.cancel();
        result
    };
    let receiving = async {
        let result = node_queue::run(
            link,
            &connection,
            &node_channel,
            &mut deliveries,
            ops,
            &mut carry.bound,
            &mut carry.consumers,
            &ended,
        )
        .await;
        ended.cancel();
        result
    };
    let (published, received) = tokio::join!(publishing, receiving);
    published?;
    received?;
    if !shared.stop.is_cancelled() {
        return Ok(());
    }
    // Stopping: this node leaves no queue and no consumers behind.
    for live in carry.consumers.values_mut() {
        live.stop();
    }
    let queue = names.node_queue.as_str().into();
    node_channel
        .queue_delete(queue, QueueDeleteOptions::default())
        .await?;
    connection
        .close(200, "stompbox node stopping".into())
        .await?;
    tracing::info!(node = %shared.node_id, "relay stopped");
    Ok(())
}

/// The exchanges (durable: shared by the cluster) and this node's queue (durable only with
/// `durable_node_queue`; expiring `node_queue_expiry` after its last consumer left). The
/// inbox exchange sends what no node is bound for to the keep exchange, where users' inbox
/// queues are bound (an alternate exchange, declared first).
async fn declare(shared: &Shared, channel: &Channel) -> Result<(), RelayError> {
    let names = &shared.names;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let mut alternate = FieldTable::default();
    alternate.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString(names.keep_exchange.as_str().into()),
    );
    for (exchange, kind, arguments) in [
        (
            &names.topic_exchange,
            ExchangeKind::Topic,
            FieldTable::default(),
        ),
        (
            &names.user_exchange,
            ExchangeKind::Direct,
            FieldTable::default(),
        ),
        (
            &names.keep_exchange,
            ExchangeKind::Direct,
            FieldTable::default(),
        ),
        (&names.inbox_exchange, ExchangeKind::Direct, alternate),
    ] {
        channel
            .exchange_declare(exchange.as_str().into(), kind, durable, arguments)
            .await?;
    }
    let mut arguments = FieldTable::default();
    let expiry = shared
        .config
        .node_queue_expiry
        .as_millis()
        .min(u32::MAX as u128) as u32;
    arguments.insert("x-expires".into(), AMQPValue::LongUInt(expiry));
    let options = QueueDeclareOptions {
        durable: shared.config.durable_node_queue,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(names.node_queue.as_str().into(), options, arguments)
        .await?;
    Ok(())
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
