//! Queue subscriptions held in RabbitMQ: one AMQP consumer per STOMP subscription, on a
//! channel of its own (so `basic.qos` is its prefetch and closing the channel returns what it
//! had not acknowledged), delivering into the subscription's outbox through its
//! [`QueueSink`](stompbox_broker::QueueSink), settled by broker delivery tag.
//!
//! The registry of subscriptions survives reconnects (the link starts every consumer again);
//! what changed while the link was down is applied to the registry only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Connection};
use stompbox_broker::QueueConsumer;

use crate::link::Link;
use crate::{ConsumerKey, Gate, QueueOp, RelayError, Settle, amqp, lock};

/// One queue subscription's AMQP consumer: its own channel, so `basic.qos` is its prefetch
/// and closing the channel returns its unacknowledged messages to the queue.
pub(crate) struct Live {
    consumer: Arc<QueueConsumer>,
    gate: Gate,
    /// Broker delivery tag → the AMQP delivery to settle.
    ackers: Arc<Mutex<HashMap<u64, Acker>>>,
    channel: Option<Channel>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Live {
    /// A subscription not started yet, and its key.
    fn new(consumer: QueueConsumer, gate: Gate) -> (ConsumerKey, Live) {
        let key = (consumer.session, consumer.subscription.clone());
        let live = Live {
            consumer: Arc::new(consumer),
            gate,
            ackers: Arc::default(),
            channel: None,
            task: None,
        };
        (key, live)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        lock(&self.ackers).clear();
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
        QueueOp::Subscribe(consumer, gate) => {
            let (key, live) = Live::new(consumer, gate);
            // In the registry first: if the link breaks while it starts, the reconnect
            // starts it.
            consumers.insert(key.clone(), live);
            start_or_drop(link, connection, consumers, &key).await?;
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
            let Some(live) = consumers.get(&key) else {
                return Ok(());
            };
            for tag in tags {
                let acker = lock(&live.ackers).remove(&tag);
                // No acker: delivered on a connection that is gone (already requeued).
                let Some(acker) = acker else { continue };
                let settled = match how {
                    Settle::Ack => acker.ack(BasicAckOptions::default()).await,
                    Settle::Requeue => acker.nack(requeue()).await,
                    Settle::Reject => acker.nack(BasicNackOptions::default()).await,
                };
                if let Err(e) = settled {
                    tracing::debug!(error = %e, "settling a queue delivery failed");
                }
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
                queue = %live.consumer.queue,
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

/// A queue subscription change while down: only the registry changes.
pub(crate) fn apply_offline(consumers: &mut HashMap<ConsumerKey, Live>, op: QueueOp) {
    match op {
        QueueOp::Subscribe(consumer, gate) => {
            let (key, live) = Live::new(consumer, gate);
            consumers.insert(key, live);
        }
        QueueOp::Unsubscribe(key) => {
            if let Some(mut live) = consumers.remove(&key) {
                live.stop();
            }
        }
        QueueOp::Settle { .. } => {}
    }
}

fn requeue() -> BasicNackOptions {
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
    let prefetch = live.consumer.prefetch.clamp(1, u16::MAX as usize) as u16;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    declare_queue(link, &channel, &live.consumer.queue).await?;
    let queue = shared.names.queue(&live.consumer.queue);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (subscription, gate, ackers) = (
        live.consumer.clone(),
        live.gate.clone(),
        live.ackers.clone(),
    );
    let names = shared.names.clone();
    live.task = Some(tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let (mut headers, _) = amqp::stomp_headers(&delivery.properties);
            if let Some(original) = amqp::original_destination(&names, &headers) {
                headers.push("x-original-destination", original);
            }
            let body = bytes::Bytes::from(delivery.data);
            let refused = {
                // Gate, then ackers: a settlement (which locks the ackers) finds the acker.
                let open = lock(&gate);
                let mut ackers = lock(&ackers);
                let tag = (*open)
                    .then(|| {
                        subscription
                            .sink
                            .deliver(headers, body, delivery.redelivered)
                    })
                    .flatten();
                match tag {
                    Some(tag) => {
                        ackers.insert(tag, delivery.acker);
                        None
                    }
                    None => Some(delivery.acker),
                }
            };
            if let Some(acker) = refused {
                // The subscription or its session is gone: back to the queue.
                let _ = acker.nack(requeue()).await;
            }
        }
    }));
    live.channel = Some(channel);
    Ok(())
}
