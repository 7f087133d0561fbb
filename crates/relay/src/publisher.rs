//! The publisher half of the link: publishes what the broker forwards, on its own channel
//! with publisher confirms, pipelined: up to [`IN_FLIGHT`] messages published and not yet
//! confirmed, their confirms taken as they arrive while more are published. A message leaves
//! [`Unconfirmed`] only when RabbitMQ confirmed it (confirms come in publishing order on one
//! channel), so after a broken link exactly what was not confirmed is published again, in
//! order. Runs beside the node queue half (`node_queue.rs`), so waiting for confirms never
//! stalls deliveries from other nodes or binding changes.

use std::collections::VecDeque;

use lapin::options::BasicPublishOptions;
use lapin::{Channel, Confirmation, PublisherConfirm};
use stompbox_broker::{Relayed, Target};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::Unconfirmed;
use crate::held::ensure_inbox;
use crate::link::Link;
use crate::queue_consumers::declare_queue;
use crate::{RelayError, amqp};

/// Most messages taken from the broker at once.
const PUBLISH_BATCH: usize = 256;

/// Most messages published and not confirmed: enough to keep the link busy for a confirm's
/// round trip at the rates one node produces, few enough that a broken link republishes
/// little.
const IN_FLIGHT: usize = 4 * PUBLISH_BATCH;

/// Most `/topic` messages of one routing key carried by one AMQP message, and most bytes of
/// bodies in it: RabbitMQ's cost is per AMQP message, so a burst to one topic costs it one
/// message per batch.
pub(crate) const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: usize = 64 * 1024;

/// The confirms of what was published on this channel, oldest first, each with the number of
/// messages its AMQP message carried: those are the oldest of [`Unconfirmed`], in order.
#[derive(Default)]
struct InFlight {
    /// Each publish's confirm, how many messages it carries, and when it was handed over.
    confirms: VecDeque<(PublisherConfirm, usize, std::time::Instant)>,
    /// Messages the confirms stand for.
    messages: usize,
}

impl InFlight {
    /// Publishes the messages of `unconfirmed` not yet published, while fewer than
    /// [`IN_FLIGHT`] wait for their confirms: consecutive `/topic` messages of one routing key
    /// together ([`amqp::batch`]), the others one by one.
    ///
    /// The publishes of one call are handed to the connection together: lapin resolves each
    /// publish once its frames are written, so one at a time would cost a round trip to its
    /// I/O loop per message. They are written in order (each takes its place and its delivery
    /// tag when first polled, and `try_join_all` polls them in order).
    async fn fill(
        &mut self,
        link: &Link,
        channel: &Channel,
        unconfirmed: &Unconfirmed,
    ) -> Result<(), RelayError> {
        let next: Vec<(u64, &Relayed)> = unconfirmed.front(IN_FLIGHT).skip(self.messages).collect();
        for (_, message) in &next {
            match &message.target {
                Target::Queue(name) => declare_queue(link, channel, name).await?,
                Target::Inbox { user, destination } => {
                    ensure_inbox(link, channel, user, destination).await?
                }
                _ => {}
            }
        }
        let groups = groups(&next);
        let publishes = groups.iter().map(|group| publish(link, channel, group));
        let confirms = futures::future::try_join_all(publishes).await?;
        let now = std::time::Instant::now();
        for (confirm, group) in confirms.into_iter().zip(&groups) {
            self.messages += group.len();
            self.confirms.push_back((confirm, group.len(), now));
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.confirms.is_empty()
    }

    /// Waits for the oldest confirm; then its messages leave `unconfirmed`.
    async fn confirm_one(
        &mut self,
        link: &Link,
        unconfirmed: &mut Unconfirmed,
    ) -> Result<(), RelayError> {
        let Some((confirm, count, published)) = self.confirms.front_mut() else {
            return Ok(());
        };
        let confirmation = confirm.await?;
        (link.shared.confirm_latency).observe(published.elapsed());
        let count = *count;
        self.confirms.pop_front();
        self.messages -= count;
        match confirmation {
            Confirmation::Nack(_) => Err(RelayError::NotConfirmed),
            Confirmation::Ack(_) | Confirmation::NotRequested => {
                for _ in 0..count {
                    unconfirmed.confirmed();
                }
                Ok(())
            }
        }
    }

    /// Publishes and confirms every message of `unconfirmed`.
    async fn drain(
        &mut self,
        link: &Link,
        channel: &Channel,
        unconfirmed: &mut Unconfirmed,
    ) -> Result<(), RelayError> {
        while !unconfirmed.is_empty() {
            self.fill(link, channel, unconfirmed).await?;
            self.confirm_one(link, unconfirmed).await?;
        }
        Ok(())
    }
}

/// `messages` cut into what goes in one AMQP message each, in order: runs of `/topic`
/// messages with the same routing key (up to [`BATCH_MESSAGES`] and [`BATCH_BYTES`]), and
/// every other message alone.
fn groups<'a>(messages: &[(u64, &'a Relayed)]) -> Vec<Vec<(u64, &'a Relayed)>> {
    let mut groups: Vec<Vec<(u64, &Relayed)>> = Vec::new();
    let mut bytes = 0;
    for &(seq, message) in messages {
        let joins = match (groups.last(), &message.target) {
            (Some(group), Target::Topic(key)) => match &group[0].1.target {
                Target::Topic(last) => {
                    last == key
                        && group.len() < BATCH_MESSAGES
                        && bytes + message.body.len() <= BATCH_BYTES
                }
                _ => false,
            },
            _ => false,
        };
        match joins {
            true => {
                bytes += message.body.len();
                groups.last_mut().expect("joined").push((seq, message));
            }
            false => {
                bytes = message.body.len();
                groups.push(vec![(seq, message)]);
            }
        }
    }
    groups
}

/// Publishes what arrives until stopped (then flushes what is buffered), until every `Relay`
/// handle is gone, or until the node queue half `ended`: all `Ok`. An error means the link
/// broke; what was not confirmed stays in `unconfirmed` for the next connection.
pub(crate) async fn run(
    link: &Link,
    channel: &Channel,
    outgoing: &mut mpsc::Receiver<Relayed>,
    unconfirmed: &mut Unconfirmed,
    ended: &CancellationToken,
) -> Result<(), RelayError> {
    let mut received = Vec::with_capacity(PUBLISH_BATCH);
    let mut in_flight = InFlight::default();
    loop {
        in_flight.fill(link, channel, unconfirmed).await?;
        let waiting = !in_flight.is_empty();
        tokio::select! {
            biased;
            () = ended.cancelled() => return Ok(()),
            () = link.shared.stop.cancelled() => {
                // Best effort: what is buffered goes out before the node leaves.
                outgoing.close();
                while outgoing.recv_many(&mut received, PUBLISH_BATCH).await > 0 {
                    unconfirmed.extend(received.drain(..));
                }
                return in_flight.drain(link, channel, unconfirmed).await;
            }
            confirmed = in_flight.confirm_one(link, unconfirmed), if waiting => confirmed?,
            n = outgoing.recv_many(&mut received, PUBLISH_BATCH), if unconfirmed.len() < IN_FLIGHT => {
                if n == 0 {
                    // Every Relay handle is gone: what was taken is still confirmed.
                    return in_flight.drain(link, channel, unconfirmed).await;
                }
                unconfirmed.extend(received.drain(..));
                // Publishers held for room may go on.
                link.shared.taken.notify_waiters();
            }
        }
    }
}

/// Publishes every unconfirmed message (after a reconnect), pipelined, to its confirms.
pub(crate) async fn publish_all(
    link: &Link,
    channel: &Channel,
    unconfirmed: &mut Unconfirmed,
) -> Result<(), RelayError> {
    InFlight::default().drain(link, channel, unconfirmed).await
}

/// Publishes one AMQP message for `group` (its queue, for a queue message, already declared):
/// the message itself, or a batch of several; its confirm follows.
async fn publish(
    link: &Link,
    channel: &Channel,
    group: &[(u64, &Relayed)],
) -> Result<PublisherConfirm, RelayError> {
    let shared = &*link.shared;
    let (exchange, key) = shared.names.route(&group[0].1.target);
    // Numbered for the receivers, which drop what they already delivered (a batch: by its
    // first message's number, the others following).
    let stamp = amqp::Stamp {
        incarnation: shared.incarnation,
        seq: group[0].0,
    };
    let (properties, batch);
    let body: &[u8] = match group {
        [(_, message)] => {
            properties = amqp::properties(message, &shared.node_id, stamp);
            &message.body
        }
        _ => {
            let messages: Vec<&Relayed> = group.iter().map(|(_, m)| *m).collect();
            (properties, batch) = amqp::batch(&messages, &shared.node_id, stamp);
            &batch
        }
    };
    // With a durable node queue, everything is stored by RabbitMQ before it confirms, so it
    // outlives a RabbitMQ restart in the receiving nodes' queues.
    let properties = match shared.config.durable_node_queue {
        true => properties.with_delivery_mode(2),
        false => properties,
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.as_ref().into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await?;
    Ok(confirm)
}

#[cfg(test)]
mod tests {
    use stompbox_codec::Headers;

    use super::*;

    fn message(target: Target, body: usize) -> Relayed {
        Relayed {
            target,
            headers: Headers::new(),
            body: vec![b'x'; body].into(),
        }
    }

    #[test]
    fn runs_of_one_topic_go_together_and_the_rest_alone() {
        let topic = |k: &str| Target::Topic(k.to_owned());
        let messages = [
            message(topic("a"), 10),
            message(topic("a"), 10),
            message(topic("b"), 10),
            message(Target::Queue("q".to_owned()), 10),
            message(Target::Queue("q".to_owned()), 10),
            message(topic("b"), BATCH_BYTES),
            message(topic("b"), 1),
        ];
        let refs: Vec<(u64, &Relayed)> = (1..).zip(messages.iter()).collect();
        let cut = groups(&refs);
        let sizes: Vec<usize> = cut.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1, 1, 1, 1], "a a | b | q | q | b(64 KiB) | b");
        let firsts: Vec<u64> = cut.iter().map(|g| g[0].0).collect();
        assert_eq!(
            firsts,
            [1, 3, 4, 5, 6, 7],
            "each numbered by its first message"
        );
        let many: Vec<Relayed> = (0..BATCH_MESSAGES + 1)
            .map(|_| message(topic("a"), 1))
            .collect();
        let refs: Vec<(u64, &Relayed)> = (1..).zip(many.iter()).collect();
        let sizes: Vec<usize> = groups(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [BATCH_MESSAGES, 1]);
    }
}
