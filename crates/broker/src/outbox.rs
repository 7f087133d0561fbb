//! The bounded per-session outbox: publishers `offer` deliveries without ever waiting; the
//! session's own task takes them out when its socket can take more.
//!
//! Bounded in frames and bytes (`config.outbox`). A delivery that would cross a bound is refused
//! and the [`SlowConsumerPolicy`] decides: `Disconnect` marks the outbox overflowed (the session
//! sees it, sends ERROR `slow consumer` and closes); `DropNewest` drops it and counts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::Notify;

use crate::error::ProtocolError;
use crate::message::Delivery;
use crate::stats::Counters;
use crate::{OutboxConfig, SlowConsumerPolicy};

/// What happened to an offered delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued; the session was woken.
    Queued,
    /// Refused: dropped under `DropNewest`, or the session is overflowed or closing.
    Refused,
}

/// One session's outbox. Shared (`Arc`) between the session and the router entries of its
/// subscriptions. Starts empty and allocates nothing until a delivery arrives.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    max_frames: usize,
    max_bytes: usize,
    policy: SlowConsumerPolicy,
    /// A queue delivery was refused (the outbox was full): once the session drains, it asks
    /// its queues to dispatch again, since nothing else would wake them for this consumer.
    starved: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Delivery>,
    bytes: usize,
    /// Crossed a bound under `Disconnect`: refuse everything, the session is going away.
    overflowed: bool,
    /// Dropping under `DropNewest` since the last time the outbox was drained.
    dropping: bool,
    closed: bool,
    /// Set from outside the session (its `/app` handler task): send this ERROR and close.
    failure: Option<ProtocolError>,
}

impl Outbox {
    pub(crate) fn new(config: &OutboxConfig) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            max_frames: config.max_frames,
            max_bytes: config.max_bytes,
            policy: config.slow_consumer,
            starved: AtomicBool::new(false),
        }
    }

    /// A queue refused to lose a delivery this outbox had no room for; see `take_starved`.
    pub(crate) fn mark_starved(&self) {
        self.starved.store(true, Relaxed);
    }

    /// True (once) if a queue delivery was refused since the last call.
    pub(crate) fn take_starved(&self) -> bool {
        self.starved.swap(false, Relaxed)
    }

    /// Forgets the deliveries still queued for one subscription (after UNSUBSCRIBE of a queue
    /// subscription, whose unacknowledged messages go back to the queue: none may be written).
    pub(crate) fn remove_subscription(&self, subscription: &str, counters: &Counters) {
        let mut state = self.lock();
        let (mut frames, mut bytes) = (0, 0);
        state.queue.retain(|d| {
            let keep = d.subscription != subscription;
            if !keep {
                frames += 1;
                bytes += d.weight();
            }
            keep
        });
        state.bytes -= bytes;
        drop(state);
        release(counters, frames, bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update is
        // a single push or take), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a delivery if it fits; never waits. A delivery that does not fit is handled by
    /// the slow-consumer policy.
    pub(crate) fn offer(&self, delivery: Delivery, counters: &Counters) -> Offer {
        let mut tally = Tally::default();
        let offer = self.offer_with(delivery, counters, true, &mut tally);
        tally.apply(counters);
        offer
    }

    /// [`Outbox::offer`] for one of many deliveries of a fan-out: the node's queued gauges are
    /// updated once for the whole fan-out ([`Tally::apply`]), not once per subscriber.
    pub(crate) fn offer_tallied(
        &self,
        delivery: Delivery,
        counters: &Counters,
        tally: &mut Tally,
    ) -> Offer {
        self.offer_with(delivery, counters, true, tally)
    }

    /// Queues a delivery if it fits; refuses it otherwise, with no slow-consumer policy: for a
    /// queue, which keeps the message and marks the outbox starved instead.
    pub(crate) fn offer_if_room(&self, delivery: Delivery, counters: &Counters) -> Offer {
        let mut tally = Tally::default();
        let offer = self.offer_with(delivery, counters, false, &mut tally);
        tally.apply(counters);
        offer
    }

    fn offer_with(
        &self,
        delivery: Delivery,
        counters: &Counters,
        policy: bool,
        tally: &mut Tally,
    ) -> Offer {
        let weight = delivery.weight();
        let mut state = self.lock();
        if state.closed || state.overflowed {
            return Offer::Refused;
        }
        let fits = state.queue.len() < self.max_frames
            && (state.bytes + weight <= self.max_bytes || state.queue.is_empty());
        if !fits && !policy {
            drop(state);
            self.mark_starved();
            return Offer::Refused;
        }
        if !fits {
            match self.policy {
                SlowConsumerPolicy::Disconnect => {
                    state.overflowed = true;
                    let dropped = std::mem::take(&mut state.queue);
                    release(counters, dropped.len(), std::mem::take(&mut state.bytes));
                    counters.slow_consumers.fetch_add(1, Relaxed);
                    drop(state);
                    self.notify.notify_one();
                }
                SlowConsumerPolicy::DropNewest => {
                    if !state.dropping {
                        state.dropping = true;
                        counters.slow_consumers.fetch_add(1, Relaxed);
                    }
                    counters.dropped_deliveries.fetch_add(1, Relaxed);
                }
            }
            return Offer::Refused;
        }
        state.bytes += weight;
        state.queue.push_back(delivery);
        tally.frames += 1;
        tally.bytes += weight;
        let was_empty = state.queue.len() == 1;
        drop(state);
        if was_empty {
            // Later deliveries find the session already woken (a stored permit or a pending
            // drain); waking once per batch keeps fan-out cheap.
            self.notify.notify_one();
        }
        Offer::Queued
    }

    /// Takes deliveries from the front until about `max_bytes` are taken (at least one if any).
    /// Each comes with an upper bound of the bytes still to come, itself included, so the
    /// caller can size a buffer once for the whole batch.
    pub(crate) fn take_up_to(
        &self,
        max_bytes: usize,
        counters: &Counters,
        mut each: impl FnMut(Delivery, usize),
    ) {
        let mut state = self.lock();
        let expected = state.bytes.min(max_bytes);
        let (mut taken, mut n) = (0, 0);
        while taken < max_bytes {
            let Some(d) = state.queue.pop_front() else {
                break;
            };
            let weight = d.weight();
            each(d, expected.saturating_sub(taken).max(weight));
            taken += weight;
            n += 1;
        }
        state.bytes -= taken;
        if state.queue.is_empty() {
            state.dropping = false;
            if state.queue.capacity() > 16 {
                // An idle session keeps no queue memory.
                state.queue = VecDeque::new();
            }
        }
        drop(state);
        release(counters, n, taken);
    }

    /// True once a delivery was refused under the `Disconnect` policy.
    pub(crate) fn is_overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Asks the session to end with `error` (it wakes up, sends what is queued, then the
    /// ERROR). The first failure wins.
    pub(crate) fn fail(&self, error: ProtocolError) {
        let mut state = self.lock();
        if state.closed || state.failure.is_some() {
            return;
        }
        state.failure = Some(error);
        drop(state);
        self.notify.notify_one();
    }

    /// Wakes the session without a delivery (its `/app` handler queue has room again).
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// The failure asked for by [`Outbox::fail`], once.
    pub(crate) fn take_failure(&self) -> Option<ProtocolError> {
        self.lock().failure.take()
    }

    /// Waits until a delivery arrives or the outbox overflows (cancel-safe; a wake-up that came
    /// while nobody waited is kept for the next call).
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Refuses everything from now on and forgets what is queued.
    pub(crate) fn close(&self, counters: &Counters) {
        let mut state = self.lock();
        state.closed = true;
        let dropped = std::mem::take(&mut state.queue);
        release(counters, dropped.len(), std::mem::take(&mut state.bytes));
    }
}

/// Changes to the node's queued gauges gathered over one fan-out.
#[derive(Debug, Default)]
#[must_use = "apply the tally to the counters"]
pub(crate) struct Tally {
    frames: usize,
    bytes: usize,
}

impl Tally {
    /// Adds what was queued to the node's gauges: two atomic updates per fan-out instead of two
    /// per delivery. A session may take (and release) a delivery before its publisher applies
    /// the tally, so a gauge can be below zero for that instant; [`Counters::snapshot`] reads
    /// such a value as 0.
    pub(crate) fn apply(self, counters: &Counters) {
        if self.frames > 0 {
            counters.queued_frames.fetch_add(self.frames, Relaxed);
            counters.queued_bytes.fetch_add(self.bytes, Relaxed);
        }
    }
}

fn release(counters: &Counters, frames: usize, bytes: usize) {
    counters.queued_frames.fetch_sub(frames, Relaxed);
    counters.queued_bytes.fetch_sub(bytes, Relaxed);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use stompbox_codec::Headers;

    use super::*;
    use crate::message::Message;

    fn delivery(body: &'static [u8]) -> Delivery {
        let message = Message::new(
            1,
            "/topic/t".into(),
            Headers::new(),
            Bytes::from_static(body),
        );
        Delivery::new(Arc::new(message), "0".into())
    }

    fn config(max_frames: usize, max_bytes: usize, policy: SlowConsumerPolicy) -> OutboxConfig {
        OutboxConfig {
            max_frames,
            max_bytes,
            slow_consumer: policy,
            ..OutboxConfig::default()
        }
    }

    #[test]
    fn frame_bound_with_disconnect_policy_overflows_once() {
        let counters = Counters::default();
        let outbox = Outbox::new(&config(2, 1 << 20, SlowConsumerPolicy::Disconnect));
        assert_eq!(outbox.offer(delivery(b"a"), &counters), Offer::Queued);
        assert_eq!(outbox.offer(delivery(b"b"), &counters), Offer::Queued);
        assert_eq!(counters.snapshot().queued_frames, 2);
        assert_eq!(outbox.offer(delivery(b"c"), &counters), Offer::Refused);
        assert!(outbox.is_overflowed());
        assert_eq!(outbox.offer(delivery(b"d"), &counters), Offer::Refused);
        let stats = counters.snapshot();
        assert_eq!(
            (
                stats.slow_consumers,
                stats.queued_frames,
                stats.queued_bytes
            ),
            (1, 0, 0)
        );
    }

    #[test]
    fn byte_bound_with_drop_newest_drops_and_recovers() {
        let counters = Counters::default();
        let one = delivery(b"0123456789").weight();
        let outbox = Outbox::new(&config(100, one * 2, SlowConsumerPolicy::DropNewest));
        for _ in 0..2 {
            assert_eq!(
                outbox.offer(delivery(b"0123456789"), &counters),
                Offer::Queued
            );
        }
        assert_eq!(
            outbox.offer(delivery(b"0123456789"), &counters),
            Offer::Refused
        );
        assert_eq!(
            outbox.offer(delivery(b"0123456789"), &counters),
            Offer::Refused
        );
        assert!(!outbox.is_overflowed());
        let stats = counters.snapshot();
        assert_eq!((stats.slow_consumers, stats.dropped_deliveries), (1, 2));
        assert_eq!(stats.queued_bytes, 2 * one);
        let mut taken = 0;
        outbox.take_up_to(usize::MAX, &counters, |_, _| taken += 1);
        assert_eq!(taken, 2);
        assert_eq!(counters.snapshot().queued_bytes, 0);
        // A new episode of dropping counts as a new slow consumer.
        for _ in 0..3 {
            outbox.offer(delivery(b"0123456789"), &counters);
        }
        assert_eq!(counters.snapshot().slow_consumers, 2);
    }

    #[test]
    fn an_oversize_delivery_fits_an_empty_outbox_only() {
        let counters = Counters::default();
        let outbox = Outbox::new(&config(100, 8, SlowConsumerPolicy::DropNewest));
        assert_eq!(
            outbox.offer(delivery(b"much too big"), &counters),
            Offer::Queued
        );
        assert_eq!(outbox.offer(delivery(b"x"), &counters), Offer::Refused);
    }

    #[test]
    fn take_up_to_takes_at_least_one_and_close_releases() {
        let counters = Counters::default();
        let outbox = Outbox::new(&config(100, 1 << 20, SlowConsumerPolicy::Disconnect));
        for _ in 0..3 {
            outbox.offer(delivery(b"abc"), &counters);
        }
        let mut taken = 0;
        outbox.take_up_to(1, &counters, |_, _| taken += 1);
        assert_eq!(taken, 1);
        outbox.close(&counters);
        assert_eq!(counters.snapshot().queued_frames, 0);
        assert_eq!(outbox.offer(delivery(b"abc"), &counters), Offer::Refused);
    }
}
