//! The bounded per-session outbox: the router offers deliveries without ever waiting; the
//! session's own task takes them out when its socket can take more. A data path only: signals
//! to the session that are not deliveries (a handler's ERROR, a wake-up) travel on its
//! [`Control`](crate::control::Control).
//!
//! Bounded in frames and bytes (`config.outbox`). A delivery that would cross a bound is refused,
//! and what happens then depends on who offered it ([`WhenFull`]): for a topic or user
//! delivery, the [`SlowConsumerPolicy`] decides (`Disconnect` marks the outbox overflowed, so
//! the session sends ERROR `slow consumer` and closes; `DropNewest` drops it and counts); a
//! queue keeps its message instead and the outbox is marked starved.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::message::Delivery;
use crate::stats::Counters;
use crate::{OutboxConfig, SlowConsumerPolicy};

/// What happened to an offered delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued; the session was woken.
    Queued,
    /// Refused: full, dropped under `DropNewest`, or the session is overflowed or closing.
    Refused,
}

/// What a full outbox does with a delivery it has no room for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Apply the session's [`SlowConsumerPolicy`] (topic and user deliveries).
    Policy,
    /// Refuse it and mark the outbox starved (a queue, which keeps the message and dispatches
    /// again once the session drained).
    Refuse,
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
    /// An operator asked for the session to end ([`Outbox::request_close`]); the reason is in
    /// the state. Read on every wake-up, so an atomic before the lock.
    close_requested: AtomicBool,
    /// The node's gauges of queued deliveries, and its slow-consumer counters.
    counters: Arc<Counters>,
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
    /// Why an operator asked for the session to end.
    close_reason: Option<String>,
}

impl Outbox {
    pub(crate) fn new(config: &OutboxConfig, counters: Arc<Counters>) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            max_frames: config.max_frames,
            max_bytes: config.max_bytes,
            policy: config.slow_consumer,
            starved: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            counters,
        }
    }

    /// True (once) if a queue delivery was refused since the last call.
    pub(crate) fn take_starved(&self) -> bool {
        self.starved.swap(false, Relaxed)
    }

    /// Forgets the deliveries still queued for one subscription (after UNSUBSCRIBE of a queue
    /// subscription, whose unacknowledged messages go back to the queue: none may be written).
    pub(crate) fn remove_subscription(&self, subscription: &str) {
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
        self.release(frames, bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update is
        // a single push or take), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a delivery if it fits; never waits. One that does not fit is refused and handled
    /// as `when_full` says. What is queued is added to `tally`, which the router applies to the
    /// node's gauges once per fan-out. Only the router's exit (`router/deliver.rs`) calls this.
    pub(crate) fn offer(
        &self,
        delivery: Delivery,
        when_full: WhenFull,
        tally: &mut Tally,
    ) -> Offer {
        let weight = delivery.weight();
        let mut state = self.lock();
        if state.closed || state.overflowed {
            return Offer::Refused;
        }
        let fits = state.queue.len() < self.max_frames
            && (state.bytes + weight <= self.max_bytes || state.queue.is_empty());
        if !fits {
            match (when_full, self.policy) {
                (WhenFull::Refuse, _) => {
                    drop(state);
                    self.starved.store(true, Relaxed);
                }
                (WhenFull::Policy, SlowConsumerPolicy::Disconnect) => {
                    state.overflowed = true;
                    let dropped = std::mem::take(&mut state.queue);
                    let bytes = std::mem::take(&mut state.bytes);
                    drop(state);
                    self.release(dropped.len(), bytes);
                    self.counters.slow_consumers.fetch_add(1, Relaxed);
                    self.notify.notify_one();
                }
                (WhenFull::Policy, SlowConsumerPolicy::DropNewest) => {
                    if !state.dropping {
                        state.dropping = true;
                        self.counters.slow_consumers.fetch_add(1, Relaxed);
                    }
                    self.counters.dropped_deliveries.fetch_add(1, Relaxed);
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
    pub(crate) fn take_up_to(&self, max_bytes: usize, mut each: impl FnMut(Delivery, usize)) {
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
        self.release(n, taken);
    }

    /// Deliveries waiting, and their bytes.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let state = self.lock();
        (state.queue.len(), state.bytes)
    }

    /// Asks the session to end (an operator's request): it wakes, sends what it holds, then
    /// ERROR `closed by an operator`. The first reason wins.
    pub(crate) fn request_close(&self, reason: &str) {
        let mut state = self.lock();
        state.close_reason.get_or_insert_with(|| reason.to_owned());
        drop(state);
        self.close_requested
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }

    /// The reason of a close an operator asked for, once.
    pub(crate) fn take_close_request(&self) -> Option<String> {
        if !self
            .close_requested
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return None;
        }
        self.close_requested
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.lock().close_reason.take()
    }

    /// True once a delivery was refused under the `Disconnect` policy.
    pub(crate) fn is_overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Waits until a delivery arrives or the outbox overflows (cancel-safe; a wake-up that came
    /// while nobody waited is kept for the next call).
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Refuses everything from now on and forgets what is queued.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let dropped = std::mem::take(&mut state.queue);
        let bytes = std::mem::take(&mut state.bytes);
        drop(state);
        self.release(dropped.len(), bytes);
    }

    fn release(&self, frames: usize, bytes: usize) {
        self.counters.queued_frames.fetch_sub(frames, Relaxed);
        self.counters.queued_bytes.fetch_sub(bytes, Relaxed);
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

    /// Offers one delivery the way a topic does, and applies its tally at once.
    fn offer(outbox: &Outbox, delivery: Delivery) -> Offer {
        let mut tally = Tally::default();
        let offer = outbox.offer(delivery, WhenFull::Policy, &mut tally);
        tally.apply(&outbox.counters);
        offer
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
        let counters = Arc::new(Counters::default());
        let outbox = Outbox::new(
            &config(2, 1 << 20, SlowConsumerPolicy::Disconnect),
            counters.clone(),
        );
        assert_eq!(offer(&outbox, delivery(b"a")), Offer::Queued);
        assert_eq!(offer(&outbox, delivery(b"b")), Offer::Queued);
        assert_eq!(counters.snapshot().queued_frames, 2);
        assert_eq!(offer(&outbox, delivery(b"c")), Offer::Refused);
        assert!(outbox.is_overflowed());
        assert_eq!(offer(&outbox, delivery(b"d")), Offer::Refused);
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
        let counters = Arc::new(Counters::default());
        let one = delivery(b"0123456789").weight();
        let outbox = Outbox::new(
            &config(100, one * 2, SlowConsumerPolicy::DropNewest),
            counters.clone(),
        );
        for _ in 0..2 {
            assert_eq!(offer(&outbox, delivery(b"0123456789")), Offer::Queued);
        }
        assert_eq!(offer(&outbox, delivery(b"0123456789")), Offer::Refused);
        assert_eq!(offer(&outbox, delivery(b"0123456789")), Offer::Refused);
        assert!(!outbox.is_overflowed());
        let stats = counters.snapshot();
        assert_eq!((stats.slow_consumers, stats.dropped_deliveries), (1, 2));
        assert_eq!(stats.queued_bytes, 2 * one);
        let mut taken = 0;
        outbox.take_up_to(usize::MAX, |_, _| taken += 1);
        assert_eq!(taken, 2);
        assert_eq!(counters.snapshot().queued_bytes, 0);
        // A new episode of dropping counts as a new slow consumer.
        for _ in 0..3 {
            offer(&outbox, delivery(b"0123456789"));
        }
        assert_eq!(counters.snapshot().slow_consumers, 2);
    }

    #[test]
    fn an_oversize_delivery_fits_an_empty_outbox_only() {
        let counters = Arc::new(Counters::default());
        let outbox = Outbox::new(
            &config(100, 8, SlowConsumerPolicy::DropNewest),
            counters.clone(),
        );
        assert_eq!(offer(&outbox, delivery(b"much too big")), Offer::Queued);
        assert_eq!(offer(&outbox, delivery(b"x")), Offer::Refused);
    }

    #[test]
    fn take_up_to_takes_at_least_one_and_close_releases() {
        let counters = Arc::new(Counters::default());
        let outbox = Outbox::new(
            &config(100, 1 << 20, SlowConsumerPolicy::Disconnect),
            counters.clone(),
        );
        for _ in 0..3 {
            offer(&outbox, delivery(b"abc"));
        }
        let mut taken = 0;
        outbox.take_up_to(1, |_, _| taken += 1);
        assert_eq!(taken, 1);
        outbox.close();
        assert_eq!(counters.snapshot().queued_frames, 0);
        assert_eq!(offer(&outbox, delivery(b"abc")), Offer::Refused);
    }
}
