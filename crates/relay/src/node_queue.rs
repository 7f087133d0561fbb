//! The node queue half of the link: binds this node's queue to what local subscribers want,
//! delivers what other nodes published into the broker ([`Broker::inject`]), and applies
//! queue subscription changes. Runs beside the publisher (`publisher.rs`), so neither a
//! binding nor a delivery ever waits for a publish confirm.
//!
//! [`Broker::inject`]: stompbox_broker::Broker::inject

use std::collections::{BTreeSet, HashMap};

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use stompbox_broker::Interest;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::Plan;
use crate::link::Link;
use crate::queue_consumers::{Live, apply};
use crate::{ConsumerKey, QueueOp, RelayError, Shared, amqp, lock};

/// Runs until the link breaks (an error) or the publisher half `ended` (`Ok`). An item in
/// hand (a delivery and its ack, a binding change, a subscription change) is always finished.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    link: &Link,
    connection: &Connection,
    channel: &Channel,
    deliveries: &mut Consumer,
    ops: &mut mpsc::UnboundedReceiver<QueueOp>,
    bound: &mut BTreeSet<Interest>,
    consumers: &mut HashMap<ConsumerKey, Live>,
    ended: &CancellationToken,
) -> Result<(), RelayError> {
    let shared = &*link.shared;
    loop {
        tokio::select! {
            biased;
            () = ended.cancelled() => return Ok(()),
            () = shared.changed.notified() => sync_changes(shared, channel, bound).await,
            Some(op) = ops.recv() => apply(link, connection, consumers, op).await,
            delivery = deliveries.next() => deliver_ready(link, delivery, deliveries).await,
        }?;
    }
}

/// Most deliveries acknowledged together (well under `relay.prefetch`'s default of 1,000, so
/// RabbitMQ keeps sending while they are settled).
const ACK_BATCH: usize = 256;

/// `first` and the deliveries already waiting behind it (up to [`ACK_BATCH`]), into the
/// broker, then acknowledged at once (`multiple`): an acknowledgement is written by lapin's
/// I/O loop, and one per message would cost a round trip to it each.
async fn deliver_ready(
    link: &Link,
    first: Option<lapin::Result<lapin::message::Delivery>>,
    deliveries: &mut Consumer,
) -> Result<(), RelayError> {
    let mut last = deliver(link, first)?;
    for _ in 1..ACK_BATCH {
        match deliveries.next().now_or_never() {
            Some(delivery) => last = deliver(link, delivery)?,
            None => break,
        }
    }
    let all = BasicAckOptions { multiple: true };
    last.ack(all).await?;
    Ok(())
}

/// One delivery from the node queue into the broker (unless it is this node's own echo): a
/// message, or each message of a batch ([`amqp::unbatch`]) in order. Returns what
/// acknowledges it.
fn deliver(
    link: &Link,
    delivery: Option<lapin::Result<lapin::message::Delivery>>,
) -> Result<lapin::Acker, RelayError> {
    let delivery = delivery.ok_or(RelayError::ConsumerEnded)??;
    let shared = &*link.shared;
    let sender = delivery.properties.app_id().as_ref().map(|id| id.as_str());
    let own = sender == Some(shared.node_id.as_str());
    // Copies published again after the sender's link broke are dropped here: how many of the
    // `count` messages of this delivery (a batch's first ones) were delivered before.
    let stamp = amqp::Stamp::read(&delivery.properties);
    let copies = |count: u64| match (sender, stamp) {
        (Some(node), Some(stamp)) => {
            lock(&shared.seen).copies(node, stamp.incarnation, stamp.seq, count)
        }
        _ => 0,
    };
    if amqp::is_batch(&delivery.properties)
        && delivery.exchange.as_str() == shared.names.topic_exchange
    {
        if !own {
            match amqp::unbatch(delivery.routing_key.as_str(), delivery.data) {
                Some(messages) => {
                    let skip = copies(messages.len() as u64) as usize;
                    for message in messages.into_iter().skip(skip) {
                        link.broker.inject(message);
                    }
                }
                None => tracing::warn!(node = %shared.node_id, "an unreadable batch was dropped"),
            }
        }
        return Ok(delivery.acker);
    }
    if !own && copies(1) > 0 {
        return Ok(delivery.acker);
    }
    let message = amqp::relayed(
        &shared.names,
        &shared.node_id,
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
        &delivery.properties,
        delivery.data,
    );
    if let Some(message) = message {
        link.broker.inject(message);
    }
    Ok(delivery.acker)
}

/// After (re)connecting: binds everything wanted, unbinds what was bound and is no longer.
pub(crate) async fn sync_all(
    shared: &Shared,
    channel: &Channel,
    bound: &mut BTreeSet<Interest>,
) -> Result<(), RelayError> {
    let plan = lock(&shared.interests).plan_all(bound);
    carry_out(shared, channel, bound, plan).await
}

/// While connected: applies the changes reported since the last look, until there are none.
async fn sync_changes(
    shared: &Shared,
    channel: &Channel,
    bound: &mut BTreeSet<Interest>,
) -> Result<(), RelayError> {
    loop {
        let plan = lock(&shared.interests).plan_changes(bound);
        if plan.changes.is_empty() {
            shared.synced.send_replace(plan.generation);
            return Ok(());
        }
        carry_out(shared, channel, bound, plan).await?;
    }
}

async fn carry_out(
    shared: &Shared,
    channel: &Channel,
    bound: &mut BTreeSet<Interest>,
    plan: Plan,
) -> Result<(), RelayError> {
    for (interest, present) in plan.changes {
        bind(shared, channel, &interest, present).await?;
        match present {
            true => bound.insert(interest),
            false => bound.remove(&interest),
        };
    }
    shared.synced.send_replace(plan.generation);
    Ok(())
}

async fn bind(
    shared: &Shared,
    channel: &Channel,
    interest: &Interest,
    present: bool,
) -> Result<(), RelayError> {
    let (exchange, key) = shared.names.binding(interest);
    let queue = shared.names.node_queue.as_str();
    tracing::debug!(node = %shared.node_id, exchange, key = %key, present, "relay binding");
    match present {
        true => {
            channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    key.as_ref().into(),
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
                    key.as_ref().into(),
                    FieldTable::default(),
                )
                .await?
        }
    }
    Ok(())
}
