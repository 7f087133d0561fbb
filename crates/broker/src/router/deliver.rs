//! The one way out of the router: every delivery to a subscriber, whatever found it (a topic's
//! fan-out, a user's sessions, a queue's dispatch, a subscribe handler's reply, a queue held in
//! the backplane), is offered to its outbox by [`Deliveries::offer`], and counted there.
//!
//! One [`Deliveries`] gathers one fan-out, so the node's counters and gauges are updated once
//! per publish, not once per subscriber.

use crate::message::Delivery;
use crate::outbox::{Offer, Outbox, Tally, WhenFull};
use crate::stats::Counters;

/// The deliveries of one publish (or one queue dispatch), counted when finished.
#[derive(Debug)]
#[must_use = "finish the deliveries so they are counted"]
pub(crate) struct Deliveries<'a> {
    counters: &'a Counters,
    tally: Tally,
    queued: usize,
    /// The kind of the (first) message's destination (`stats::kind_index`), once one is queued.
    kind: usize,
}

impl<'a> Deliveries<'a> {
    pub(crate) fn new(counters: &'a Counters) -> Self {
        Deliveries {
            counters,
            tally: Tally::default(),
            queued: 0,
            kind: 0,
        }
    }

    /// Offers one delivery to a subscriber's outbox; never waits. A full outbox does what
    /// `when_full` says.
    pub(crate) fn offer(
        &mut self,
        outbox: &Outbox,
        delivery: Delivery,
        when_full: WhenFull,
    ) -> Offer {
        if self.queued == 0 {
            self.kind = crate::stats::kind_index(delivery.message.destination().as_bytes());
        }
        let offer = outbox.offer(delivery, when_full, &mut self.tally);
        if offer == Offer::Queued {
            self.queued += 1;
        }
        offer
    }

    /// Counts what was queued (`delivered`, the queued gauges); returns how many.
    pub(crate) fn finish(self) -> usize {
        let Deliveries {
            counters,
            tally,
            queued,
            kind,
        } = self;
        tally.apply(counters);
        if queued > 0 {
            counters.delivered[kind].fetch_add(queued as u64, std::sync::atomic::Ordering::Relaxed);
        }
        queued
    }
}
