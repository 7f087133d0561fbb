//! The RabbitMQ queues behind durable topic subscriptions and users' inboxes, with the relay
//! holding queues: their names and bounds are in `amqp.rs`; here they are declared, bound,
//! moved and removed. Consuming them is `queue_consumers.rs`'s.
//!
//! - A durable subscription: a queue bound to the topic exchange with its pattern, and a
//!   one-message definition queue holding that pattern, so any node can tell a subscriber
//!   came back with another destination.
//! - An inbox: a queue bound to the inbox exchange's alternate, declared by the node that
//!   sends before its first message, so RabbitMQ keeps what no node was bound for.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use stompbox_broker::HeldQueue;

use crate::link::Link;
use crate::{RelayError, amqp, lock};

/// Declares `user`'s inbox queue for `destination`, bound to the keep exchange with its key
/// (so what no node is bound for lands there); returns how many messages wait in it.
pub(crate) async fn declare_inbox(
    link: &Link,
    channel: &Channel,
    user: &str,
    destination: &str,
) -> Result<u32, RelayError> {
    let names = &link.shared.names;
    let queue = names.inbox(user, destination);
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let arguments = link.shape.inbox_arguments();
    let declared = channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await?;
    let key = amqp::inbox_key(user, destination);
    channel
        .queue_bind(
            queue.as_str().into(),
            names.keep_exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// Inbox queues remembered as declared by the publisher; past it, all are forgotten (and
/// declared again when next sent to).
const INBOXES_REMEMBERED: usize = 100_000;

/// Before the first message to `user`'s inbox destination on this connection (and again
/// after half the queue's `x-expires`): its inbox queue exists, bound, so that the message
/// is kept when no node routes it.
pub(crate) async fn ensure_inbox(
    link: &Link,
    channel: &Channel,
    user: &str,
    destination: &str,
) -> Result<(), RelayError> {
    let key = amqp::inbox_key(user, destination);
    let now = tokio::time::Instant::now();
    let fresh = link.shape.inbox.max_age / 2;
    let known = lock(&link.inboxes).get(&key).copied();
    if known.is_some_and(|at| fresh.is_zero() || now.duration_since(at) < fresh) {
        return Ok(());
    }
    declare_inbox(link, channel, user, destination).await?;
    let mut inboxes = lock(&link.inboxes);
    if inboxes.len() >= INBOXES_REMEMBERED {
        inboxes.clear();
    }
    inboxes.insert(key, now);
    Ok(())
}

/// Removes a durable subscription's queues (UNSUBSCRIBE with `durable:true`), on a channel
/// of its own: a refusal closes only that channel.
pub(crate) async fn remove(
    link: &Link,
    connection: &Connection,
    held: &HeldQueue,
) -> Result<(), RelayError> {
    let HeldQueue::Durable { user, name, .. } = held else {
        return Ok(());
    };
    let (queue, definition) = link.shared.names.durable(user, name);
    let channel = connection.create_channel().await?;
    for queue in [queue, definition] {
        let deleted = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        if let Err(e) = deleted {
            tracing::warn!(node = %link.shared.node_id, %queue, error = %e, "a durable subscription's queue was not deleted");
            return Ok(());
        }
    }
    let _ = channel.close(200, "removed".into()).await;
    Ok(())
}

/// Declares `user`'s durable subscription `name` fed by `topic`, and returns its queue's
/// name. Its destination is kept as the one message of its definition queue, so that any
/// node can tell when a subscriber comes back with another one: then the old binding goes
/// and what it kept is dropped (it starts afresh, as on one node and in JMS).
pub(crate) async fn declare_durable(
    link: &Link,
    channel: &Channel,
    user: &str,
    name: &str,
    topic: &str,
) -> Result<String, RelayError> {
    let names = &link.shared.names;
    let (queue, definition) = names.durable(user, name);
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let arguments = amqp::definition_arguments();
    channel
        .queue_declare(definition.as_str().into(), durable, arguments)
        .await?;
    let arguments = link.shape.durable_arguments();
    channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await?;
    let kept = channel
        .basic_get(definition.as_str().into(), BasicGetOptions::default())
        .await?;
    let old = (kept.as_ref()).map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned());
    let exchange = names.topic_exchange.as_str();
    if let Some(old) = old.as_deref().filter(|old| *old != topic) {
        channel
            .queue_unbind(
                queue.as_str().into(),
                exchange.into(),
                old.into(),
                FieldTable::default(),
            )
            .await?;
        (channel.queue_purge(queue.as_str().into(), QueuePurgeOptions::default())).await?;
    }
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            topic.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    if old.as_deref() != Some(topic) {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let persistent = BasicProperties::default().with_delivery_mode(2);
        channel
            .basic_publish(
                "".into(),
                definition.as_str().into(),
                BasicPublishOptions::default(),
                topic.as_bytes(),
                persistent,
            )
            .await?
            .await?;
    }
    if let Some(kept) = kept {
        // The newest definition stays: this one if unchanged, else the one just published
        // (the queue keeps one message, and this one goes when acknowledged).
        match old.as_deref() == Some(topic) {
            true => {
                kept.delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?
            }
            false => kept.delivery.acker.ack(BasicAckOptions::default()).await?,
        };
    }
    Ok(queue)
}
