//! `/topic/...`: every current subscriber whose pattern matches gets each message.
//!
//! Subscriptions without wildcards are found by exact lookup (one hash of the key: the hot
//! path); patterns with `*` or `#` are held in a word trie (`topic_trie.rs`) that finds every
//! matching one in a single walk, whose cost grows with the key's words and the matching
//! branches, not with the number of patterns. Delivering is a `try`-style offer into each
//! subscriber's bounded outbox under a read lock that is never held across an `.await`.
//!
//! A durable subscription (`durable_table.rs`) is an entry whose messages go to its node queue
//! instead of an outbox: the table hands those queues to the router, which keeps the message in
//! each, whether or not a session is consuming it now.
//!
//! With a backplane, the first local subscriber of a pattern and the last one leaving are
//! reported to it ([`Backplane::interest`]) under the table's write lock, so a pattern's reports
//! are in order; the router forwards publishes itself (`Router::route`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use stompbox_codec::ByteString;

use super::deliver::Deliveries;
use super::topic_pattern::is_wildcard;
use super::topic_trie::WordTrie;
use crate::backplane::{Backplane, Interest};
use crate::message::{Delivery, Message};
use crate::outbox::{Outbox, WhenFull};

/// Who receives: one subscription of one session.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    pub(crate) session: u64,
    pub(crate) subscription: ByteString,
    pub(crate) outbox: Arc<Outbox>,
}

/// One entry of the table: a session's subscription, or a durable subscription's queue.
#[derive(Clone, Debug)]
enum Entry {
    Live(Subscriber),
    /// The node queue of a durable subscription (its internal name).
    Durable(Arc<str>),
}

impl Entry {
    fn is(&self, session: u64, subscription: &str) -> bool {
        match self {
            Entry::Live(s) => s.session == session && s.subscription == subscription,
            Entry::Durable(_) => false,
        }
    }

    fn is_durable(&self, queue: &str) -> bool {
        matches!(self, Entry::Durable(q) if &**q == queue)
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Routing key → subscribers whose pattern is exactly that key.
    exact: HashMap<Box<str>, Vec<Entry>>,
    /// Subscribers whose pattern has wildcards, by pattern.
    wildcard: WordTrie<Entry>,
}

impl Table {
    fn has(&self, pattern: &str) -> bool {
        self.exact.contains_key(pattern) || self.wildcard.contains(pattern)
    }
}

/// The topic routing table of one node.
#[derive(Debug)]
pub(crate) struct TopicTable {
    table: RwLock<Table>,
    backplane: Option<Arc<dyn Backplane>>,
    /// `max_wildcard_subscriptions`.
    max_wildcards: usize,
}

impl Default for TopicTable {
    fn default() -> Self {
        TopicTable::new(None, crate::Config::default().max_wildcard_subscriptions)
    }
}

impl TopicTable {
    pub(crate) fn new(backplane: Option<Arc<dyn Backplane>>, max_wildcards: usize) -> Self {
        TopicTable {
            table: RwLock::default(),
            backplane,
            max_wildcards,
        }
    }

    /// The most wildcard subscriptions the table holds.
    pub(crate) fn max_wildcards(&self) -> usize {
        self.max_wildcards
    }

    /// Adds `subscriber` under `pattern`; returns false, adding nothing, when `pattern` has
    /// wildcards and the table already holds [`TopicTable::max_wildcards`] such subscriptions.
    pub(crate) fn subscribe(&self, pattern: &str, subscriber: Subscriber) -> bool {
        self.insert(pattern, Entry::Live(subscriber))
    }

    /// Adds the queue of a durable subscription under `pattern` (see [`TopicTable::subscribe`]).
    pub(crate) fn subscribe_durable(&self, pattern: &str, queue: Arc<str>) -> bool {
        self.insert(pattern, Entry::Durable(queue))
    }

    fn insert(&self, pattern: &str, subscriber: Entry) -> bool {
        let wildcard = is_wildcard(pattern);
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if wildcard && table.wildcard.len() >= self.max_wildcards {
            return false;
        }
        if let Some(backplane) = &self.backplane
            && !table.has(pattern)
        {
            backplane.interest(Interest::Topic(pattern.to_owned()), true);
        }
        if wildcard {
            table.wildcard.insert(pattern, subscriber);
        } else {
            let subscribers = table.exact.entry(pattern.into()).or_default();
            subscribers.push(subscriber);
        }
        true
    }

    pub(crate) fn unsubscribe(&self, pattern: &str, session: u64, subscription: &str) {
        self.remove(pattern, |s| s.is(session, subscription));
    }

    /// Removes the queue of a durable subscription from under `pattern`.
    pub(crate) fn unsubscribe_durable(&self, pattern: &str, queue: &str) {
        self.remove(pattern, |s| s.is_durable(queue));
    }

    fn remove(&self, pattern: &str, is: impl Fn(&Entry) -> bool) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = false;
        if let Some(subs) = table.exact.get_mut(pattern) {
            let before = subs.len();
            subs.retain(|s| !is(s));
            removed |= subs.len() < before;
            if subs.is_empty() {
                table.exact.remove(pattern);
            }
        }
        if is_wildcard(pattern) {
            removed |= (table.wildcard).remove(pattern, &is);
        }
        if let Some(backplane) = &self.backplane
            && removed
            && !table.has(pattern)
        {
            backplane.interest(Interest::Topic(pattern.to_owned()), false);
        }
    }

    /// Offers `message` to every matching subscriber; adds the queues of the matching durable
    /// subscriptions to `durable`, for the caller to keep it in.
    pub(crate) fn publish(
        &self,
        key: &str,
        message: &Arc<Message>,
        out: &mut Deliveries<'_>,
        durable: &mut Vec<Arc<str>>,
    ) {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut offer = |s: &Entry| match s {
            Entry::Live(s) => {
                let delivery = Delivery::new(message.clone(), s.subscription.clone());
                out.offer(&s.outbox, delivery, WhenFull::Policy);
            }
            Entry::Durable(queue) => durable.push(queue.clone()),
        };
        if let Some(subs) = table.exact.get(key) {
            subs.iter().for_each(&mut offer);
        }
        if !table.wildcard.is_empty() {
            table.wildcard.for_each_match(key, offer);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stompbox_codec::Headers;

    use super::*;
    use crate::OutboxConfig;
    use crate::stats::Counters;

    fn sub(session: u64, id: &str, outbox: &Arc<Outbox>) -> Subscriber {
        Subscriber {
            session,
            subscription: id.into(),
            outbox: outbox.clone(),
        }
    }

    fn publish(router: &TopicTable, key: &str, counters: &Counters) -> usize {
        let msg = Message::new(1, key.into(), Headers::new(), Bytes::from_static(b"x"));
        let mut out = Deliveries::new(counters);
        router.publish(key, &Arc::new(msg), &mut out, &mut Vec::new());
        out.finish()
    }

    #[test]
    fn unsubscribe_removes_only_that_subscription() {
        let counters = Arc::new(Counters::default());
        let router = TopicTable::default();
        let outbox = || Arc::new(Outbox::new(&OutboxConfig::default(), counters.clone()));
        let (a, b) = (outbox(), outbox());
        router.subscribe("x.y", sub(1, "0", &a));
        router.subscribe("x.*", sub(1, "1", &a));
        router.subscribe("x.y", sub(2, "0", &b));
        router.subscribe("#", sub(2, "1", &b));
        assert_eq!(publish(&router, "x.y", &counters), 4);
        router.unsubscribe("x.y", 1, "0");
        assert_eq!(publish(&router, "x.y", &counters), 3);
        router.unsubscribe("#", 2, "1");
        router.unsubscribe("x.*", 2, "1"); // not subscribed like that: no effect
        assert_eq!(publish(&router, "x.y", &counters), 2);
        router.unsubscribe("x.*", 1, "1");
        router.unsubscribe("x.y", 2, "0");
        assert_eq!(publish(&router, "x.y", &counters), 0);
        let table = router.table.read().unwrap();
        assert!(table.exact.is_empty() && table.wildcard.is_empty());
    }

    #[test]
    fn durable_entries_hand_their_queues_to_the_caller() {
        let counters = Arc::new(Counters::default());
        let router = TopicTable::default();
        let outbox = Arc::new(Outbox::new(&OutboxConfig::default(), counters.clone()));
        router.subscribe("x.y", sub(1, "0", &outbox));
        router.subscribe_durable("x.*", "q1".into());
        router.subscribe_durable("x.y", "q2".into());
        let msg = Arc::new(Message::new(1, "x.y".into(), Headers::new(), Bytes::new()));
        let (mut out, mut durable) = (Deliveries::new(&counters), Vec::new());
        router.publish("x.y", &msg, &mut out, &mut durable);
        assert_eq!(out.finish(), 1);
        durable.sort();
        assert_eq!(durable, [Arc::<str>::from("q1"), "q2".into()]);
        // A session's unsubscribe never removes a durable entry, and the reverse.
        router.unsubscribe("x.*", 0, "q1");
        router.unsubscribe_durable("x.y", "0");
        router.unsubscribe_durable("x.y", "q2");
        let (mut out, mut durable) = (Deliveries::new(&counters), Vec::new());
        router.publish("x.y", &msg, &mut out, &mut durable);
        assert_eq!((out.finish(), durable), (1, vec![Arc::<str>::from("q1")]));
    }
}
