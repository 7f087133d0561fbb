//! The publisher half of the link: publishes what the broker forwards, on its own channel
//! with publisher confirms, a batch at a time. A message leaves [`Unconfirmed`] only when
//! RabbitMQ confirmed it, so after a broken link exactly what was not confirmed is published
//! again. Runs beside the node queue half (`node_queue.rs`), so waiting for confirms never
//! stalls deliveries from other nodes or binding changes.

use lapin::options::BasicPublishOptions;
use lapin::{Channel, Confirmation};
use stompbox_broker::{Relayed, Target};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::Unconfirmed;
use crate::link::Link;
use crate::queue_consumers::declare_queue;
use crate::{RelayError, amqp};

/// Most messages published before waiting for their confirms: one round trip per batch.
const PUBLISH_BATCH: usize = 256;

/// Publishes what arrives until stopped (then flushes what is buffered), until every `Relay`
/// handle is gone, or until the node queue half `ended`: all `Ok`. An error means the link
/// broke. A batch in hand is always published to its confirms (or its error) first.
pub(crate) async fn run(
    link: &Link,
    channel: &Channel,
    outgoing: &mut mpsc::Receiver<Relayed>,
    unconfirmed: &mut Unconfirmed,
    ended: &CancellationToken,
) -> Result<(), RelayError> {
    let mut received = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        tokio::select! {
            biased;
            () = ended.cancelled() => return Ok(()),
            () = link.shared.stop.cancelled() => {
                // Best effort: what is buffered goes out before the node leaves.
                outgoing.close();
                while outgoing.recv_many(&mut received, PUBLISH_BATCH).await > 0 {
                    unconfirmed.extend(received.drain(..));
                    publish_all(link, channel, unconfirmed).await?;
                }
                return publish_all(link, channel, unconfirmed).await;
            }
            n = outgoing.recv_many(&mut received, PUBLISH_BATCH) => {
                if n == 0 {
                    return Ok(()); // every Relay handle is gone
                }
                unconfirmed.extend(received.drain(..));
                publish_all(link, channel, unconfirmed).await?;
            }
        }
    }
}

/// Publishes every unconfirmed message, a batch at a time, each batch's confirms awaited.
pub(crate) async fn publish_all(
    link: &Link,
    channel: &Channel,
    unconfirmed: &mut Unconfirmed,
) -> Result<(), RelayError> {
    while !unconfirmed.is_empty() {
        publish_batch(link, channel, unconfirmed).await?;
    }
    Ok(())
}

async fn publish_batch(
    link: &Link,
    channel: &Channel,
    unconfirmed: &mut Unconfirmed,
) -> Result<(), RelayError> {
    let shared = &*link.shared;
    let mut confirms = Vec::with_capacity(PUBLISH_BATCH);
    for message in unconfirmed.front(PUBLISH_BATCH) {
        if let Target::Queue(name) = &message.target {
            declare_queue(link, channel, name).await?;
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
            Confirmation::Ack(_) | Confirmation::NotRequested => unconfirmed.confirmed(),
        }
    }
    Ok(())
}
