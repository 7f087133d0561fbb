//! The link: one task per node owning its AMQP connection (two channels: one publishes with
//! confirms, one binds and consumes the node queue).
//!
//! ```text
//!            ┌────────────┐ connected, declared, all bound ┌───────────┐
//!  start ──► │ Connecting │ ─────────────────────────────► │ Connected │ ◄─┐ interest: bind/unbind
//!            └────────────┘                                └───────────┘ ──┘ outgoing: publish
//!                 ▲  │ error                                    │ error      node queue: inject
//!   backoff over  │  ▼                                          ▼
//!                 └─────────────── Down { error } ◄─────────────┘
//!  stop: from any state ──► flush (if connected), delete node queue, close ──► Stopped
//! ```
//!
//! Nothing here is awaited by the broker: the link reads a bounded channel of outgoing
//! messages and a set of wanted bindings. A publish RabbitMQ did not confirm is kept and
//! published first after reconnecting (so a cut can duplicate, never drop, what was in flight).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use stompbox_broker::{Broker, Interest, Relayed, Target};
use tokio::sync::mpsc;

use crate::consumers::{Live, apply, apply_offline, declare_queue, start_consumer};
use crate::{ConsumerKey, QueueOp, RelayError, RelayState, Shared, amqp};

/// Most messages published before waiting for their confirms: one round trip per batch.
const PUBLISH_BATCH: usize = 256;
/// A connection attempt taking longer than this counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What survives a reconnect.
struct Carry {
    /// Bindings believed to exist on the node queue.
    bound: BTreeSet<Interest>,
    /// Published but not confirmed before the link broke: published first next time.
    retry: VecDeque<Relayed>,
    /// Queue subscriptions; their consumers are started again after a reconnect.
    consumers: HashMap<ConsumerKey, Live>,
    /// STOMP queues declared in RabbitMQ on this connection (before the first publish).
    declared: HashSet<String>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    broker: Broker,
    mut outgoing: mpsc::Receiver<Relayed>,
    mut ops: mpsc::UnboundedReceiver<QueueOp>,
) {
    let config = &shared.config;
    let mut carry = Carry {
        bound: BTreeSet::new(),
        retry: VecDeque::new(),
        consumers: HashMap::new(),
        declared: HashSet::new(),
    };
    let mut backoff = config.reconnect_min;
    let mut attempt = 0usize;
    while !shared.stop.is_cancelled() {
        let url = &config.urls[attempt % config.urls.len()];
        attempt += 1;
        shared.state.send_replace(RelayState::Connecting);
        let mut connected = false;
        match session(
            &shared,
            &broker,
            &mut outgoing,
            &mut ops,
            &mut carry,
            url,
            &mut connected,
        )
        .await
        {
            Ok(()) => break,
            Err(e) => {
                if connected {
                    backoff = config.reconnect_min;
                }
                tracing::warn!(node = %shared.node_id, error = %e, retry_in = ?backoff, "relay down");
                shared.state.send_replace(RelayState::Down {
                    error: e.to_string(),
                });
            }
        }
        tokio::select! {
            () = shared.stop.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
    for live in carry.consumers.values_mut() {
        live.stop();
    }
    outgoing.close();
    let dropped = outgoing.len() + carry.retry.len();
    if dropped > 0 {
        tracing::warn!(node = %shared.node_id, dropped, "relay stopped with unpublished messages");
    }
    shared.state.send_replace(RelayState::Stopped);
}

/// One connection's life: returns `Ok` when stopped, an error when the link broke.
async fn session(
    shared: &Shared,
    broker: &Broker,
    outgoing: &mut mpsc::Receiver<Relayed>,
    ops: &mut mpsc::UnboundedReceiver<QueueOp>,
    carry: &mut Carry,
    url: &str,
    connected: &mut bool,
) -> Result<(), RelayError> {
    let names = &shared.names;
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(names.connection_name.clone().into_bytes()));
    // A stop while connecting (RabbitMQ unreachable, a black-holed address) ends at once.
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties));
    let connection = tokio::select! {
        connected = connect => connected.map_err(|_| RelayError::ConnectTimeout)??,
        () = shared.stop.cancelled() => return Ok(()),
    };
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let consumer_channel = connection.create_channel().await?;
    declare(shared, &consumer_channel).await?;
    sync_all(shared, &consumer_channel, &mut carry.bound).await?;
    consumer_channel
        .basic_qos(shared.config.prefetch, BasicQosOptions::default())
        .await?;
    let consume = BasicConsumeOptions {
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = consumer_channel
        .basic_consume(
            names.node_queue.as_str().into(),
            shared.node_id.as_str().into(),
            consume,
            FieldTable::default(),
        )
        .await?;
    let retried = carry.retry.len();
    carry.declared.clear();
    while !carry.retry.is_empty() {
        publish(shared, &publisher, &mut carry.retry, &mut carry.declared).await?;
    }
    // Queue subscriptions: first what changed while down (no settlement can apply: those
    // deliveries went back to their queues with the old connection), then start them all.
    while let Ok(op) = ops.try_recv() {
        apply_offline(&mut carry.consumers, op);
    }
    for live in carry.consumers.values_mut() {
        start_consumer(shared, &connection, live).await?;
    }
    *connected = true;
    shared.state.send_replace(RelayState::Connected);
    tracing::info!(node = %shared.node_id, url = %redact(url), bindings = carry.bound.len(), retried, "relay connected");

    let mut batch = VecDeque::with_capacity(PUBLISH_BATCH);
    let mut received = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => {
                // Best effort: what is buffered goes out, then this node leaves no queue.
                outgoing.close();
                while let Some(m) = outgoing.recv().await {
                    batch.push_back(m);
                    if batch.len() == PUBLISH_BATCH {
                        publish(shared, &publisher, &mut batch, &mut carry.declared).await?;
                    }
                }
                publish(shared, &publisher, &mut batch, &mut carry.declared).await?;
                for live in carry.consumers.values_mut() {
                    live.stop();
                }
                let queue = names.node_queue.as_str().into();
                consumer_channel.queue_delete(queue, QueueDeleteOptions::default()).await?;
                connection.close(200, "stompbox node stopping".into()).await?;
                tracing::info!(node = %shared.node_id, "relay stopped");
                return Ok(());
            }
            () = shared.changed.notified() => {
                sync_changes(shared, &consumer_channel, &mut carry.bound).await?;
            }
            n = outgoing.recv_many(&mut received, PUBLISH_BATCH) => {
                if n == 0 {
                    return Ok(()); // every Relay handle is gone
                }
                batch.extend(received.drain(..));
                let result = publish(shared, &publisher, &mut batch, &mut carry.declared).await;
                carry.retry.extend(batch.drain(..));
                result?;
            }
            Some(op) = ops.recv() => {
                apply(shared, &connection, &mut carry.consumers, op).await?;
            }
            delivery = consumer.next() => {
                let delivery = delivery.ok_or(RelayError::ConsumerEnded)??;
                let message = amqp::relayed(
                    names,
                    &shared.node_id,
                    delivery.exchange.as_str(),
                    delivery.routing_key.as_str(),
                    &delivery.properties,
                    delivery.data,
                );
                if let Some(message) = message {
                    broker.inject(message);
                }
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
        }
    }
}

/// Publishes `batch` and waits for the confirms; confirmed messages leave `batch`, so on an
/// error it holds exactly what must be published again.
async fn publish(
    shared: &Shared,
    channel: &Channel,
    batch: &mut VecDeque<Relayed>,
    declared: &mut HashSet<String>,
) -> Result<(), RelayError> {
    let mut confirms = Vec::with_capacity(batch.len());
    for message in batch.iter() {
        if let Target::Queue(name) = &message.target
            && !declared.contains(name)
        {
            declare_queue(shared, channel, name).await?;
            declared.insert(name.clone());
        }
        let (exchange, key) = shared.names.route(&message.target);
        let properties = amqp::properties(message, &shared.node_id);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                key.as_ref().into(),
                BasicPublishOptions::default(),
                &message.body,
                properties,
            )
            .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        match confirm.await? {
            Confirmation::Nack(_) => return Err(RelayError::NotConfirmed),
            Confirmation::Ack(_) | Confirmation::NotRequested => {
                batch.pop_front();
            }
        }
    }
    Ok(())
}

/// The two exchanges (durable: shared by the cluster) and this node's queue (not durable,
/// expiring `node_queue_expiry` after its last consumer left).
async fn declare(shared: &Shared, channel: &Channel) -> Result<(), RelayError> {
    let names = &shared.names;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for (exchange, kind) in [
        (&names.topic_exchange, ExchangeKind::Topic),
        (&names.user_exchange, ExchangeKind::Direct),
    ] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                kind,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    let mut arguments = FieldTable::default();
    let expiry = shared
        .config
        .node_queue_expiry
        .as_millis()
        .min(u32::MAX as u128) as u32;
    arguments.insert("x-expires".into(), AMQPValue::LongUInt(expiry));
    channel
        .queue_declare(
            names.node_queue.as_str().into(),
            QueueDeclareOptions::default(),
            arguments,
        )
        .await?;
    Ok(())
}

/// After (re)connecting: binds everything wanted, unbinds what was bound and is no longer.
async fn sync_all(
    shared: &Shared,
    channel: &Channel,
    bound: &mut BTreeSet<Interest>,
) -> Result<(), RelayError> {
    let (wanted, generation) = {
        let mut interests = shared.interest.lock().unwrap();
        interests.dirty.clear();
        (interests.wanted.clone(), interests.generation)
    };
    for interest in &wanted {
        bind(shared, channel, interest, true).await?;
        bound.insert(interest.clone());
    }
    let stale: Vec<Interest> = bound.difference(&wanted).cloned().collect();
    for interest in stale {
        bind(shared, channel, &interest, false).await?;
        bound.remove(&interest);
    }
    shared.synced.send_replace(generation);
    Ok(())
}

/// While connected: applies the changes reported since the last look.
async fn sync_changes(
    shared: &Shared,
    channel: &Channel,
    bound: &mut BTreeSet<Interest>,
) -> Result<(), RelayError> {
    loop {
        let (dirty, generation) = {
            let mut interests = shared.interest.lock().unwrap();
            let dirty = std::mem::take(&mut interests.dirty);
            let dirty: Vec<(Interest, bool)> = dirty
                .into_iter()
                .map(|i| {
                    let wanted = interests.wanted.contains(&i);
                    (i, wanted)
                })
                .collect();
            (dirty, interests.generation)
        };
        if dirty.is_empty() {
            shared.synced.send_replace(generation);
            return Ok(());
        }
        for (interest, wanted) in dirty {
            if wanted != bound.contains(&interest) {
                bind(shared, channel, &interest, wanted).await?;
                match wanted {
                    true => bound.insert(interest),
                    false => bound.remove(&interest),
                };
            }
        }
    }
}

async fn bind(
    shared: &Shared,
    channel: &Channel,
    interest: &Interest,
    present: bool,
) -> Result<(), RelayError> {
    let (exchange, key) = shared.names.binding(interest);
    let queue = shared.names.node_queue.as_str();
    tracing::debug!(node = %shared.node_id, exchange, key, present, "relay binding");
    match present {
        true => {
            channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?
        }
        false => {
            channel
                .queue_unbind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    FieldTable::default(),
                )
                .await?
        }
    }
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
