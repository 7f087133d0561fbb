//! The relay's bookkeeping, with no I/O: which bindings local subscribers want and which
//! changes the link has not applied yet ([`Interests`]), what was published and not confirmed
//! ([`Unconfirmed`]), which queue deliveries wait for their client ([`Unsettled`]), and how
//! long to wait before reconnecting ([`Backoff`]). The link
//! (`link.rs`, `publisher.rs`, `node_queue.rs`) does the AMQP calls these decide.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use stompbox_broker::{Interest, Relayed};

use crate::Settle;

/// The bindings local subscribers want, and which changed since the link last looked.
#[derive(Debug, Default)]
pub(crate) struct Interests {
    wanted: BTreeSet<Interest>,
    dirty: BTreeSet<Interest>,
    /// Bumped on every change: `Relay::synced` waits for the link to reach it.
    generation: u64,
}

/// Bindings to make (`true`) or remove (`false`), and the generation they bring the link to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) changes: Vec<(Interest, bool)>,
    pub(crate) generation: u64,
}

impl Interests {
    /// Local interest began (`present`) or ended; true if that changes what is wanted.
    pub(crate) fn report(&mut self, interest: Interest, present: bool) -> bool {
        let changed = match present {
            true => self.wanted.insert(interest.clone()),
            false => self.wanted.remove(&interest),
        };
        if changed {
            self.dirty.insert(interest);
            self.generation += 1;
        }
        changed
    }

    /// The generation of the latest change.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// After (re)connecting: bind everything wanted (again: binding is idempotent, and the node
    /// queue may have expired with its bindings during a long outage), and unbind everything
    /// `bound` that is no longer wanted. Clears the pending changes (this plan covers them).
    pub(crate) fn plan_all(&mut self, bound: &BTreeSet<Interest>) -> Plan {
        self.dirty.clear();
        let bind = self.wanted.iter().map(|i| (i.clone(), true));
        let unbind = bound.difference(&self.wanted).map(|i| (i.clone(), false));
        Plan {
            changes: bind.chain(unbind).collect(),
            generation: self.generation,
        }
    }

    /// While connected: the changes reported since the last plan that differ from `bound`
    /// (an interest that came and went in between needs nothing).
    pub(crate) fn plan_changes(&mut self, bound: &BTreeSet<Interest>) -> Plan {
        let dirty = std::mem::take(&mut self.dirty);
        let changes = dirty
            .into_iter()
            .map(|i| {
                let wanted = self.wanted.contains(&i);
                (i, wanted)
            })
            .filter(|(i, wanted)| *wanted != bound.contains(i))
            .collect();
        Plan {
            changes,
            generation: self.generation,
        }
    }
}

/// Messages taken from the broker and not yet confirmed by RabbitMQ, oldest first, each with
/// its sequence number on this node (from 1, in the order taken). They are published in order
/// and leave only when confirmed, so after a broken link exactly the unconfirmed ones are
/// published again, with their numbers: a receiving node drops what it already delivered
/// ([`Seen`]).
#[derive(Debug, Default)]
pub(crate) struct Unconfirmed {
    messages: VecDeque<(u64, Relayed)>,
    last: u64,
}

impl Unconfirmed {
    /// Adds messages taken from the broker, after those already waiting.
    pub(crate) fn extend(&mut self, messages: impl IntoIterator<Item = Relayed>) {
        for message in messages {
            self.last += 1;
            self.messages.push_back((self.last, message));
        }
    }

    /// The oldest `n` messages and their numbers, to publish (again).
    pub(crate) fn front(&self, n: usize) -> impl Iterator<Item = (u64, &Relayed)> {
        self.messages.iter().take(n).map(|(seq, m)| (*seq, m))
    }

    /// The oldest message was confirmed.
    pub(crate) fn confirmed(&mut self) {
        self.messages.pop_front();
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// What a node delivered from each other node, to drop the copies a sender publishes again
/// after a broken link: per sender node, its current incarnation (a restart is a new one) and
/// the highest sequence number delivered. A sender's messages reach this node in the order it
/// published them (one channel, one node queue), a restarted sender's after its earlier run's,
/// so a number not above the highest is a copy.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    highest: std::collections::HashMap<String, (u64, u64)>,
}

impl Seen {
    /// Sender nodes remembered; past it, all are forgotten (a cluster has far fewer).
    const SENDERS: usize = 1024;

    /// True if message `seq` of `node`'s run `incarnation` is new (then it counts as
    /// delivered).
    #[cfg(test)]
    pub(crate) fn fresh(&mut self, node: &str, incarnation: u64, seq: u64) -> bool {
        self.copies(node, incarnation, seq, 1) == 0
    }

    /// Of `count` messages numbered from `first` (a batch), how many at the front are copies;
    /// the rest count as delivered.
    pub(crate) fn copies(&mut self, node: &str, incarnation: u64, first: u64, count: u64) -> u64 {
        let last = first + count.max(1) - 1;
        if let Some((run, highest)) = self.highest.get_mut(node) {
            let copies = match *run == incarnation {
                true => (*highest + 1).saturating_sub(first).min(count),
                false => 0,
            };
            if copies < count {
                (*run, *highest) = (incarnation, last);
            }
            return copies;
        }
        if self.highest.len() == Self::SENDERS {
            self.highest.clear();
        }
        self.highest.insert(node.to_owned(), (incarnation, last));
        0
    }
}

/// The wait before the next connection attempt: `min` after a connection that worked, doubled
/// after each failed attempt, at most `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait after a link that ended; `connected` says whether it had connected.
    pub(crate) fn after(&mut self, connected: bool) -> Duration {
        if connected {
            self.next = self.min;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

/// One queue subscription's deliveries that its client has not settled, by broker tag, with
/// the AMQP message that carried each (generic over its acknowledger, `A`). A batch of topic
/// messages (a durable subscription's) is one AMQP message carrying several deliveries: it is
/// settled with RabbitMQ once all of them are, requeued if any was requeued (they all come
/// back, `redelivered`: at least once), else rejected if any was, else acknowledged.
#[derive(Debug)]
pub(crate) struct Unsettled<A> {
    carrier: HashMap<u64, u64>,
    carried: HashMap<u64, Carried<A>>,
}

#[derive(Debug)]
struct Carried<A> {
    acker: A,
    left: usize,
    how: Settle,
}

impl<A> Default for Unsettled<A> {
    fn default() -> Self {
        Unsettled {
            carrier: HashMap::new(),
            carried: HashMap::new(),
        }
    }
}

impl<A> Unsettled<A> {
    /// One AMQP message's deliveries (`tags`), and the deliveries it carried that the
    /// subscription refused (its session is gone): with any refused it will be requeued.
    /// Returns the acknowledger back when no delivery was made (to requeue it now).
    pub(crate) fn carried(&mut self, tags: &[u64], refused: bool, acker: A) -> Option<A> {
        let Some(&first) = tags.first() else {
            return Some(acker);
        };
        for &tag in tags {
            self.carrier.insert(tag, first);
        }
        let how = if refused {
            Settle::Requeue
        } else {
            Settle::Ack
        };
        let left = tags.len();
        self.carried.insert(first, Carried { acker, left, how });
        None
    }

    /// The client settled delivery `tag`; when that was the last one its AMQP message waited
    /// for, how to settle that message. Unknown tags (settled before, or from a connection
    /// that is gone) are ignored.
    pub(crate) fn settle(&mut self, tag: u64, how: Settle) -> Option<(A, Settle)> {
        let first = self.carrier.remove(&tag)?;
        let carried = self.carried.get_mut(&first)?;
        carried.how = stronger(carried.how, how);
        carried.left -= 1;
        if carried.left > 0 {
            return None;
        }
        let carried = self.carried.remove(&first)?;
        Some((carried.acker, carried.how))
    }

    /// Deliveries not settled yet.
    pub(crate) fn pending(&self) -> usize {
        self.carrier.len()
    }

    /// Forgets everything (the channel closed: RabbitMQ requeued what was unsettled).
    pub(crate) fn clear(&mut self) {
        self.carrier.clear();
        self.carried.clear();
    }
}

/// Of two settlements of one AMQP message's deliveries, the one it gets: a requeue (nothing
/// may be lost) over a reject over an acknowledgement.
fn stronger(a: Settle, b: Settle) -> Settle {
    let rank = |s| match s {
        Settle::Ack => 0,
        Settle::Reject => 1,
        Settle::Requeue => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_carried_batch_is_settled_once_all_its_deliveries_are() {
        let mut u = Unsettled::default();
        assert_eq!(u.carried(&[1], false, "single"), None);
        assert_eq!(u.carried(&[2, 3, 4], false, "batch"), None);
        assert_eq!(u.pending(), 4);
        assert_eq!(u.settle(1, Settle::Ack), Some(("single", Settle::Ack)));
        assert_eq!(u.settle(1, Settle::Ack), None, "settled before");
        assert_eq!(u.settle(3, Settle::Ack), None);
        assert_eq!(u.settle(2, Settle::Requeue), None);
        assert_eq!(u.settle(4, Settle::Ack), Some(("batch", Settle::Requeue)));
        // A reject wins over acks, a requeue over a reject; refused deliveries requeue.
        u.carried(&[5, 6], false, "b2");
        u.settle(5, Settle::Reject);
        assert_eq!(u.settle(6, Settle::Ack), Some(("b2", Settle::Reject)));
        u.carried(&[7, 8], false, "b3");
        u.settle(7, Settle::Reject);
        assert_eq!(u.settle(8, Settle::Requeue), Some(("b3", Settle::Requeue)));
        u.carried(&[9], true, "partly refused");
        assert_eq!(
            u.settle(9, Settle::Ack),
            Some(("partly refused", Settle::Requeue))
        );
        assert_eq!(u.carried(&[], true, "refused"), Some("refused"));
        u.carried(&[10], false, "cleared");
        u.clear();
        assert_eq!(u.settle(10, Settle::Ack), None);
    }

    use bytes::Bytes;
    use stompbox_broker::Target;
    use stompbox_codec::Headers;

    use super::*;

    fn topic(p: &str) -> Interest {
        Interest::Topic(p.into())
    }

    #[test]
    fn changes_are_planned_once_and_only_when_they_differ_from_what_is_bound() {
        let mut interests = Interests::default();
        let mut bound = BTreeSet::new();
        assert!(interests.report(topic("a"), true));
        assert!(!interests.report(topic("a"), true), "already wanted");
        assert!(interests.report(topic("b"), true));
        let plan = interests.plan_changes(&bound);
        assert_eq!(plan.changes, [(topic("a"), true), (topic("b"), true)]);
        assert_eq!(plan.generation, 2);
        bound.extend([topic("a"), topic("b")]);
        assert!(
            interests.plan_changes(&bound).changes.is_empty(),
            "nothing new"
        );
        // Came and went between two looks: nothing to do.
        interests.report(topic("c"), true);
        interests.report(topic("c"), false);
        interests.report(topic("a"), false);
        let plan = interests.plan_changes(&bound);
        assert_eq!(plan.changes, [(topic("a"), false)]);
        assert_eq!(plan.generation, 5);
    }

    #[test]
    fn after_a_reconnect_everything_wanted_is_bound_and_the_rest_unbound() {
        let mut interests = Interests::default();
        interests.report(topic("a"), true);
        interests.report(topic("b"), true);
        let bound: BTreeSet<Interest> = [topic("b"), topic("stale")].into();
        let plan = interests.plan_all(&bound);
        let expected = [
            (topic("a"), true),
            (topic("b"), true),
            (topic("stale"), false),
        ];
        assert_eq!(plan.changes, expected);
        assert!(interests.plan_changes(&bound).changes.is_empty(), "covered");
    }

    #[test]
    fn only_confirmed_messages_leave_in_order() {
        let message = |key: &str| Relayed {
            target: Target::Topic(key.into()),
            headers: Headers::new(),
            body: Bytes::new(),
        };
        let mut unconfirmed = Unconfirmed::default();
        unconfirmed.extend([message("1"), message("2")]);
        unconfirmed.extend([message("3")]);
        let keys = |u: &Unconfirmed, n| {
            u.front(n)
                .map(|(_, m)| match &m.target {
                    Target::Topic(k) => k.clone(),
                    _ => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&unconfirmed, 2), ["1", "2"]);
        unconfirmed.confirmed();
        // The link broke here: 2 and 3 are published again, 1 is not.
        assert_eq!(keys(&unconfirmed, 10), ["2", "3"]);
        assert_eq!(unconfirmed.len(), 2);
        let numbers: Vec<u64> = unconfirmed.front(10).map(|(seq, _)| seq).collect();
        assert_eq!(numbers, [2, 3], "published again with their numbers");
    }

    #[test]
    fn a_copy_is_dropped_per_sender_and_incarnation() {
        let mut seen = Seen::default();
        assert!(seen.fresh("a", 1, 5));
        assert!(!seen.fresh("a", 1, 5), "the same again");
        assert!(!seen.fresh("a", 1, 3), "an older one published again");
        assert!(seen.fresh("a", 1, 9), "gaps: other destinations' messages");
        assert!(seen.fresh("b", 1, 1), "another node");
        assert!(seen.fresh("a", 2, 1), "node a restarted");
        assert!(!seen.fresh("a", 2, 1));
        for i in 0..Seen::SENDERS {
            seen.fresh(&format!("n{i}"), 1, 1);
        }
        assert!(
            seen.fresh("a", 2, 1),
            "forgotten past the bound: delivered again"
        );
    }

    #[test]
    fn a_batch_published_again_is_dropped_up_to_what_was_delivered() {
        let mut seen = Seen::default();
        assert_eq!(seen.copies("a", 1, 1, 4), 0, "1-4 new");
        assert_eq!(seen.copies("a", 1, 3, 4), 2, "3-6: 3 and 4 again");
        assert_eq!(seen.copies("a", 1, 1, 6), 6, "all again");
        assert!(seen.fresh("a", 1, 7));
    }

    #[test]
    fn backoff_doubles_to_its_bound_and_resets_after_a_connection() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(300));
        let waits: Vec<_> = (0..5).map(|_| backoff.after(false)).collect();
        assert_eq!(waits, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        assert_eq!(backoff.after(true), ms(50));
        assert_eq!(backoff.after(false), ms(100));
    }
}
