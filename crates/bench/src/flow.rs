//! State shared by the tasks of one load run: delivery counters that drive the publishers'
//! flow-control window, the completion signal, the stop signal and the first failure.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use hdrhistogram::Histogram;
use tokio::sync::{Notify, watch};

/// Highest latency the histograms track, ns (longer ones are clamped to it).
const MAX_LATENCY_NS: u64 = 600_000_000_000;

/// Shared by every publisher and subscriber of a run (behind an `Arc`).
pub(crate) struct Flow {
    publishers: usize,
    /// Deliveries of publisher `p`'s messages in group `g` at `g * publishers + p`. Fan-out has
    /// one group per subscriber (a publisher waits for the slowest); topics and queue have one
    /// group (a publisher waits for its messages wherever they went).
    counters: Vec<AtomicU64>,
    groups: usize,
    /// Publisher `p` is waiting for its window to open.
    waiting: Vec<AtomicBool>,
    wake: Vec<Notify>,
    /// First-time deliveries so far, all subscribers.
    delivered: AtomicU64,
    /// Deliveries owed, once the publishers are done (`u64::MAX` until then).
    target: AtomicU64,
    /// Signalled when `delivered` reaches `target`.
    pub(crate) complete: Notify,
    stop: watch::Sender<bool>,
    failure: Mutex<Option<String>>,
    /// Latency from the scheduled send time and from the actual send time, ns.
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Flow {
    pub(crate) fn new(publishers: usize, groups: usize) -> Flow {
        let histogram =
            || Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds");
        Flow {
            publishers,
            counters: (0..publishers * groups)
                .map(|_| AtomicU64::new(0))
                .collect(),
            groups,
            waiting: (0..publishers).map(|_| AtomicBool::new(false)).collect(),
            wake: (0..publishers).map(|_| Notify::new()).collect(),
            delivered: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            complete: Notify::new(),
            stop: watch::channel(false).0,
            failure: Mutex::new(None),
            latency: Mutex::new((histogram(), histogram())),
        }
    }

    /// Counts one first-time delivery of publisher `p`'s message in `group`, and wakes `p` if
    /// it is waiting for its window.
    pub(crate) fn delivered_one(&self, group: usize, publisher: usize) {
        self.counters[group * self.publishers + publisher].fetch_add(1, Ordering::SeqCst);
        if self.waiting[publisher].load(Ordering::SeqCst) {
            self.waiting[publisher].store(false, Ordering::SeqCst);
            self.wake[publisher].notify_one();
        }
    }

    /// Adds `n` first-time deliveries to the total; signals completion when it reaches the
    /// target.
    pub(crate) fn add_delivered(&self, n: u64) {
        if n == 0 {
            return;
        }
        let total = self.delivered.fetch_add(n, Ordering::SeqCst) + n;
        if total >= self.target.load(Ordering::SeqCst) {
            self.complete.notify_one();
        }
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    pub(crate) fn set_target(&self, target: u64) {
        self.target.store(target, Ordering::SeqCst);
    }

    /// The slowest group's deliveries of publisher `p`'s messages.
    pub(crate) fn slowest(&self, publisher: usize) -> u64 {
        (0..self.groups)
            .map(|g| self.counters[g * self.publishers + publisher].load(Ordering::SeqCst))
            .min()
            .unwrap_or(0)
    }

    /// Waits until publisher `p`, having sent `sent`, is less than `window` ahead of its
    /// slowest group. `false` if the run was stopped meanwhile.
    pub(crate) async fn wait_window(&self, publisher: usize, sent: u64, window: u64) -> bool {
        let mut stop = self.stop.subscribe();
        loop {
            if sent - self.slowest(publisher).min(sent) < window {
                return true;
            }
            let woken = self.wake[publisher].notified();
            self.waiting[publisher].store(true, Ordering::SeqCst);
            if sent - self.slowest(publisher).min(sent) < window {
                return true;
            }
            if *stop.borrow() {
                return false;
            }
            // The timeout is a safety net only: deliveries wake us.
            tokio::select! {
                _ = woken => {}
                _ = stop.changed() => return false,
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
    }

    /// A receiver that turns `true` when the run stops.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Records the first failure and stops the run.
    pub(crate) fn fail(&self, what: impl Into<String>) {
        {
            let mut failure = self.failure.lock().expect("failure lock");
            if failure.is_none() {
                *failure = Some(what.into());
            }
        }
        self.stop();
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Records a batch of (from scheduled, from sent) latencies, ns.
    pub(crate) fn record_latencies(&self, samples: &[(u64, u64)]) {
        if samples.is_empty() {
            return;
        }
        let mut latency = self.latency.lock().expect("latency lock");
        for &(scheduled, sent) in samples {
            latency
                .0
                .saturating_record(scheduled.clamp(1, MAX_LATENCY_NS));
            latency.1.saturating_record(sent.clamp(1, MAX_LATENCY_NS));
        }
    }

    pub(crate) fn latencies(&self) -> (Histogram<u64>, Histogram<u64>) {
        self.latency.lock().expect("latency lock").clone()
    }
}
