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
use crate::link::Link;
use crate::queue_consumers::declare_queue;
use crate::{RelayError, amqp};

/// Most messages taken from the broker at once.
const PUBLISH_BATCH: usize = 256;

/// Most messages published and not confirmed: enough to keep the link busy for a confirm's
/// round trip at the rates one node produces, few enough that a broken link republishes
/// little.
const IN_FLIGHT: usize = 4 * PUBLISH_BATCH;

/// The confirms of what was published on this channel: those of the oldest messages of
/// [`Unconfirmed`], in order.
#[derive(Default)]
struct InFlight(VecDeque<PublisherConfirm>);

impl InFlight {
    /// Publishes the messages of `unconfirmed` not yet published, while fewer than
    /// [`IN_FLIGHT`] wait for their confirms.
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
        let next: Vec<&Relayed> = unconfirmed.front(IN_FLIGHT).skip(self.0.len()).collect();
        for message in &next {
            if let Target::Queue(name) = &message.target {
                declare_queue(link, channel, name).await?;
            }
        }
        let publishes = next.iter().map(|message| publish(link, channel, message));
        self.0
            .extend(futures::future::try_join_all(publishes).await?);
        Ok(())
    }

    /// Waits for the oldest confirm; then its message leaves `unconfirmed`.
    async fn confirm_one(&mut self, unconfirmed: &mut Unconfirmed) -> Result<(), RelayError> {
        let Some(confirm) = self.0.front_mut() else {
            return Ok(());
        };
        let confirmation = confirm.await?;
        self.0.pop_front();
        match confirmation {
            Confirmation::Nack(_) => Err(RelayError::NotConfirmed),
            Confirmation::Ack(_) | Confirmation::NotRequested => {
                unconfirmed.confirmed();
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
            self.confirm_one(unconfirmed).await?;
        }
        Ok(())
    }
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
        let waiting = !in_flight.0.is_empty();
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
            confirmed = in_flight.confirm_one(unconfirmed), if waiting => confirmed?,
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

/// Publishes one message (its queue, for a queue message, already declared); its confirm
/// follows.
async fn publish(
    link: &Link,
    channel: &Channel,
    message: &Relayed,
) -> Result<PublisherConfirm, RelayError> {
    let shared = &*link.shared;
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
    Ok(confirm)
}
