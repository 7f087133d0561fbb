//! Queue subscriptions held in RabbitMQ: one AMQP consumer per STOMP subscription, on a
//! channel of its own (so `basic.qos` is its prefetch and closing the channel returns what it
//! had not acknowledged), delivering into the subscription's outbox through its
//! [`QueueSink`](stompbox_broker::QueueSink), settled by broker delivery tag. A subscription
//! consumes a STOMP `/queue`'s RabbitMQ queue or a durable topic subscription's
//! ([`HeldQueue`]); the latter is declared, bound to its topic and (when its destination
//! changed) emptied first, and its deliveries may be batches of topic messages.
//!
//! The registry of subscriptions survives reconnects (the link starts every consumer again);
//! what changed while the link was down is applied to the registry only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Connection};
use stompbox_broker::{HeldQueue, QueueConsumer};

use crate::core::Unsettled;
use crate::held::{declare_durable, declare_inbox, remove};
use crate::link::Link;
use crate::{ConsumerKey, Gate, QueueOp, RelayError, Settle, amqp, lock};

/// One queue subscription's AMQP consumer: its own channel, so `basic.qos` is its prefetch
/// and closing the channel returns its unacknowledged messages to the queue.
pub(crate) struct Live {
    consumer: Arc<QueueConsumer>,
    gate: Gate,
    /// Broker delivery tags → the AMQP deliveries to settle.
    unsettled: Arc<Mutex<Unsettled<Acker>>>,
    channel: Option<Channel>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// An inbox with messages left to get (`drain`).
    draining: bool,
}

impl Live {
    /// A subscription not started yet, and its key.
    fn new(consumer: QueueConsumer, gate: Gate) -> (ConsumerKey, Live) {
        let key = (consumer.session, consumer.subscription.clone());
        let live = Live {
            consumer: Arc::new(consumer),
            gate,
            unsettled: Arc::default(),
            channel: None,
            task: None,
            draining: false,
        };
        (key, live)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        lock(&self.unsettled).clear();
    }
}

/// The durable RabbitMQ queue of a STOMP queue, after its dead-letter queue (see
/// [`amqp::QueueShape`]).
pub(crate) async fn declare_queue(
    link: &Link,
    channel: &Channel,
    name: &str,
) -> Result<(), RelayError> {
    let mut declared = link.declared.lock().await;
    if declared.contains(name) {
        return Ok(());
    }
    let shared = &*link.shared;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let shape = &link.shape;
    let (arguments, dead) = shape.arguments(&shared.names, name);
    if let Some(dead) = dead {
        let (dead_arguments, _) = shape.arguments(&shared.names, &dead);
        let dead = shared.names.queue(&dead);
        channel
            .queue_declare(dead.as_str().into(), durable, dead_arguments)
            .await?;
    }
    let queue = shared.names.queue(name);
    channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await?;
    declared.insert(name.to_owned());
    Ok(())
}

/// A queue subscription change while connected.
pub(crate) async fn apply(
    link: &Link,
    connection: &Connection,
    consumers: &mut HashMap<ConsumerKey, Live>,
    op: QueueOp,
) -> Result<(), RelayError> {
    match op {
        QueueOp::Subscribe(consumer, gate, seq) => {
            let (key, live) = Live::new(consumer, gate);
            // In the registry first: if the link breaks while it starts, the reconnect
            // starts it.
            consumers.insert(key.clone(), live);
            start_or_drop(link, connection, consumers, &key).await?;
            done(link, seq);
        }
        QueueOp::Remove(held, seq) => {
            remove(link, connection, &held).await?;
            done(link, seq);
        }
        QueueOp::Unsubscribe(key) => {
            if let Some(mut live) = consumers.remove(&key) {
                live.stop();
                if let Some(channel) = live.channel.take() {
                    // Its unacknowledged messages go back to the queue.
                    channel.close(200, "unsubscribed".into()).await?;
                }
            }
        }
        QueueOp::Settle { key, tags, how } => {
            let Some(live) = consumers.get_mut(&key) else {
                return Ok(());
            };
            for tag in tags {
                let settled = lock(&live.unsettled).settle(tag, how);
                // Nothing: delivered on a connection that is gone (already requeued), or
                // part of a batch whose other deliveries are not settled yet.
                let Some((acker, how)) = settled else {
                    continue;
                };
                let settled = match how {
                    Settle::Ack => acker.ack(BasicAckOptions::default()).await,
                    Settle::Requeue => acker.nack(requeue_options()).await,
                    Settle::Reject => acker.nack(BasicNackOptions::default()).await,
                };
                if let Err(e) = settled {
                    tracing::debug!(error = %e, "settling a queue delivery failed");
                }
            }
            // An inbox: settled ones make room for more.
            if let Err(e) = drain(link, live).await {
                if !connection.status().connected() {
                    return Err(e);
                }
                tracing::warn!(node = %link.shared.node_id, error = %e, "an inbox could not be read");
                live.stop();
                live.channel = None;
            }
        }
    }
    Ok(())
}

/// Starts a registered subscription's consumer. When RabbitMQ refuses this one subscription
/// (it closes the subscription's channel, the connection stays up: the queue exists with
/// other arguments, access is refused), the subscription is dropped from the registry with a
/// warning, instead of taking the link down, where every reconnect would meet it again.
pub(crate) async fn start_or_drop(
    link: &Link,
    connection: &Connection,
    consumers: &mut HashMap<ConsumerKey, Live>,
    key: &ConsumerKey,
) -> Result<(), RelayError> {
    let Some(live) = consumers.get_mut(key) else {
        return Ok(());
    };
    match start_consumer(link, connection, live).await {
        Err(e) if connection.status().connected() => {
            tracing::warn!(
                node = %link.shared.node_id,
                queue = ?live.consumer.queue,
                error = %e,
                "RabbitMQ refused a queue subscription; it will receive nothing"
            );
            if let Some(mut live) = consumers.remove(key) {
                live.stop();
            }
            Ok(())
        }
        started => started,
    }
}

/// Reports queue operation `seq` carried out (see `Shared::queue_ops_done`).
fn done(link: &Link, seq: u64) {
    (link.shared.queue_ops_done).send_if_modified(|n| {
        let later = seq > *n;
        *n = (*n).max(seq);
        later
    });
}

/// A queue subscription change while down: only the registry changes; removals wait in
/// `removals` for the connection.
pub(crate) fn apply_offline(
    link: &Link,
    consumers: &mut HashMap<ConsumerKey, Live>,
    removals: &mut Vec<HeldQueue>,
    op: QueueOp,
) {
    match op {
        QueueOp::Subscribe(consumer, gate, seq) => {
            let (key, live) = Live::new(consumer, gate);
            consumers.insert(key, live);
            done(link, seq);
        }
        QueueOp::Remove(held, seq) => {
            removals.retain(|r| *r != held);
            removals.push(held);
            done(link, seq);
        }
        QueueOp::Unsubscribe(key) => {
            if let Some(mut live) = consumers.remove(&key) {
                live.stop();
            }
        }
        QueueOp::Settle { .. } => {}
    }
}

fn requeue_options() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    }
}

/// Opens the subscription's channel with `basic.qos` = its prefetch, declares its queue and
/// consumes it into the subscription's outbox.
pub(crate) async fn start_consumer(
    link: &Link,
    connection: &Connection,
    live: &mut Live,
) -> Result<(), RelayError> {
    live.stop();
    let shared = &*link.shared;
    let channel = connection.create_channel().await?;
    let mut prefetch = live.consumer.prefetch;
    if let HeldQueue::Inbox { user, destination } = &live.consumer.queue {
        let waiting = declare_inbox(link, &channel, user, destination).await?;
        live.channel = Some(channel);
        live.draining = waiting > 0;
        return drain(link, live).await;
    }
    let queue = match &live.consumer.queue {
        HeldQueue::Queue(name) => {
            declare_queue(link, &channel, name).await?;
            shared.names.queue(name)
        }
        HeldQueue::Durable { user, name, topic } => {
            // `basic.qos` counts AMQP messages, and one may be a batch of topic messages.
            prefetch = prefetch.div_ceil(crate::publisher::BATCH_MESSAGES);
            declare_durable(link, &channel, user, name, topic).await?
        }
        HeldQueue::Inbox { .. } => unreachable!("drained above"),
    };
    let prefetch = prefetch.clamp(1, u16::MAX as usize) as u16;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (subscription, gate, unsettled) = (
        live.consumer.clone(),
        live.gate.clone(),
        live.unsettled.clone(),
    );
    let names = shared.names.clone();
    live.task = Some(tokio::spawn(async move {
        while let Some(Ok(mut delivery)) = consumer.next().await {
            let redelivered = delivery.redelivered;
            let data = std::mem::take(&mut delivery.data);
            let messages = messages(&names, &subscription.queue, &delivery, data);
            let topic = match subscription.queue {
                HeldQueue::Durable { .. } => Some(delivery.routing_key.as_str()),
                HeldQueue::Queue(_) | HeldQueue::Inbox { .. } => None,
            };
            let requeue = {
                // Gate, then the unsettled: a settlement (which locks them) finds the tags.
                let open = lock(&gate);
                let mut unsettled = lock(&unsettled);
                let mut tags = Vec::with_capacity(messages.len());
                let mut refused = false;
                for (headers, body) in messages {
                    let tag = (*open)
                        .then(|| match topic {
                            Some(topic) => {
                                (subscription.sink).deliver_from(topic, headers, body, redelivered)
                            }
                            None => subscription.sink.deliver(headers, body, redelivered),
                        })
                        .flatten();
                    match tag {
                        Some(tag) => tags.push(tag),
                        None => refused = true,
                    }
                }
                unsettled.carried(&tags, refused, delivery.acker)
            };
            if let Some(acker) = requeue {
                // The subscription or its session is gone: back to the queue.
                let _ = acker.nack(requeue_options()).await;
            }
        }
    }));
    live.channel = Some(channel);
    Ok(())
}

/// Gets an inbox's messages one by one (`basic.get`) into its subscription while fewer than
/// its prefetch are unsettled. Messages land in an inbox only while no session of the user is
/// subscribed (the subscription's binding is in place before it is drained), so once it is
/// empty and all it gave is settled the channel goes: a node holds a channel only per inbox
/// being drained, not per subscribed user.
async fn drain(link: &Link, live: &mut Live) -> Result<(), RelayError> {
    let (Some(channel), HeldQueue::Inbox { user, destination }) =
        (live.channel.clone(), &live.consumer.queue)
    else {
        return Ok(());
    };
    let queue = link.shared.names.inbox(user, destination);
    let room = live.consumer.prefetch.max(1);
    while live.draining && lock(&live.unsettled).pending() < room {
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await?;
        let Some(got) = got else {
            live.draining = false;
            break;
        };
        let lapin::message::Delivery {
            properties,
            data,
            acker,
            redelivered,
            ..
        } = got.delivery;
        let (headers, _) = amqp::stomp_headers(&properties);
        let refused = {
            let open = lock(&live.gate);
            let mut unsettled = lock(&live.unsettled);
            let sink = &live.consumer.sink;
            let tag = (*open)
                .then(|| sink.deliver(headers, bytes::Bytes::from(data), redelivered))
                .flatten();
            unsettled.carried(&tag.into_iter().collect::<Vec<_>>(), false, acker)
        };
        if let Some(acker) = refused {
            // The subscription or its session is gone: back to the inbox.
            acker.nack(requeue_options()).await?;
            live.draining = false;
        }
    }
    if !live.draining
        && lock(&live.unsettled).pending() == 0
        && let Some(channel) = live.channel.take()
    {
        channel.close(200, "inbox drained".into()).await?;
    }
    Ok(())
}

/// The STOMP messages an AMQP delivery from `queue` carries: itself, or each of a batch (a
/// durable subscription's topic messages; RabbitMQ's delivery count on each).
fn messages(
    names: &amqp::Names,
    queue: &HeldQueue,
    delivery: &lapin::message::Delivery,
    data: Vec<u8>,
) -> Vec<(stompbox_codec::Headers, bytes::Bytes)> {
    let (mut headers, _) = amqp::stomp_headers(&delivery.properties);
    let batch = matches!(queue, HeldQueue::Durable { .. }) && amqp::is_batch(&delivery.properties);
    if batch {
        let key = delivery.routing_key.as_str();
        let Some(messages) = amqp::unbatch(key, data) else {
            tracing::warn!(?queue, "an unreadable batch was dropped");
            return Vec::new();
        };
        let count = headers.get(amqp::DELIVERY_COUNT).map(str::to_owned);
        return (messages.into_iter())
            .map(|mut m| {
                if let Some(count) = &count {
                    m.headers.push(amqp::DELIVERY_COUNT, count.clone());
                }
                (m.headers, m.body)
            })
            .collect();
    }
    if let Some(original) = amqp::original_destination(names, &headers) {
        headers.push("x-original-destination", original);
    }
    vec![(headers, bytes::Bytes::from(data))]
}
