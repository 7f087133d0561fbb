//! Durable `/topic` subscriptions: SUBSCRIBE to a topic with `durable:true` (RabbitMQ's
//! header), `activemq.subscriptionName` (ActiveMQ's) or `durable-subscription-name`
//! (Artemis's), keyed by the session's user and the subscription's name.
//!
//! A durable subscription is a node queue that the topic table feeds whether or not a session
//! is subscribed (`topic_table.rs`), under an internal name no client can write
//! (`internal_queue.rs`). The sessions subscribed to it are consumers of that
//! queue, so everything queues do holds for them: messages wait in order while nobody
//! consumes, what a client-ack consumer does not acknowledge comes back `redelivered`, and a
//! `persistent:true` message is stored with the node's store. Its bounds are
//! [`DurableConfig`]'s, oldest dropped first, so a subscriber that never returns costs a
//! bounded amount.
//!
//! This table holds the definitions (user, name, topic pattern). With a store, each is written
//! as a record of the reserved store queue [`REGISTRY`] (in the queue record format, its
//! destination the subscription's), so that after a restart the topic table feeds the
//! subscription again before any session is served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use stompbox_codec::Headers;

use super::internal_queue::{self, Kind};
use crate::DurableConfig;
use crate::message::Message;
use crate::store::{StoredRecord, decode_record, encode_record};

/// The store queue whose records are the durable subscriptions.
pub(crate) const REGISTRY: &str = "\0subscriptions";

/// The internal queue name of `user`'s durable subscription `name`.
pub(crate) fn queue_name(user: &str, name: &str) -> Arc<str> {
    internal_queue::name(Kind::Durable, user, name)
}

/// One durable subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Definition {
    /// Its user ("" for anonymous sessions, which share one namespace).
    pub(crate) user: Box<str>,
    /// The subscription's name.
    pub(crate) name: Box<str>,
    /// The destination subscribed to (`/topic/<pattern>`).
    pub(crate) destination: Box<str>,
    /// Its record in [`REGISTRY`].
    position: u64,
}

/// What [`DurableTable::ensure`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ensured {
    /// A new durable subscription: the caller adds it to the topic table.
    New,
    /// It existed with this destination.
    Same,
    /// It existed with another destination (returned): as in JMS, changing what a durable
    /// subscription is subscribed to starts it afresh (the caller empties its queue).
    Moved(Box<str>),
}

/// Why a durable subscription cannot be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DurableError {
    /// `durable.max_subscriptions` is 0.
    Off,
    /// The node holds `durable.max_subscriptions`.
    TooMany(usize),
    /// The user holds `durable.max_per_user`.
    TooManyForUser(usize),
}

#[derive(Debug, Default)]
struct Inner {
    /// Queue name → definition.
    by_queue: HashMap<Arc<str>, Definition>,
    /// Subscriptions per user.
    per_user: HashMap<Box<str>, usize>,
    /// The next record position in [`REGISTRY`].
    next_position: u64,
}

/// Every durable subscription of the node.
#[derive(Debug)]
pub(crate) struct DurableTable {
    inner: Mutex<Inner>,
    config: DurableConfig,
}

/// A registry record to store.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) position: u64,
    pub(crate) bytes: Bytes,
}

impl DurableTable {
    pub(crate) fn new(config: DurableConfig) -> Self {
        DurableTable {
            inner: Mutex::new(Inner {
                next_position: 1,
                ..Inner::default()
            }),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every operation leaves the table consistent between statements that can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether durable subscriptions are turned off (`max_subscriptions = 0`).
    pub(crate) fn is_off(&self) -> bool {
        self.config.max_subscriptions == 0
    }

    /// The definitions, in queue-name order.
    #[cfg(test)]
    pub(crate) fn all(&self) -> Vec<(Arc<str>, Definition)> {
        let inner = self.lock();
        let mut all: Vec<_> = (inner.by_queue.iter())
            .map(|(q, d)| (q.clone(), d.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Finds or creates `user`'s durable subscription `name` (queue `queue`) to
    /// `destination`; returns what it found and, when the definition changed, the registry
    /// record to store.
    pub(crate) fn ensure(
        &self,
        queue: &Arc<str>,
        user: &str,
        name: &str,
        destination: &str,
    ) -> Result<(Ensured, Option<Record>), DurableError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(d) = inner.by_queue.get_mut(queue) {
            if &*d.destination == destination {
                return Ok((Ensured::Same, None));
            }
            let old = std::mem::replace(&mut d.destination, destination.into());
            return Ok((Ensured::Moved(old), Some(record(d))));
        }
        let max = self.config.max_subscriptions;
        if max == 0 {
            return Err(DurableError::Off);
        }
        if inner.by_queue.len() >= max {
            return Err(DurableError::TooMany(max));
        }
        let mine = inner.per_user.get(user).copied().unwrap_or(0);
        if mine >= self.config.max_per_user {
            return Err(DurableError::TooManyForUser(self.config.max_per_user));
        }
        let d = Definition {
            user: user.into(),
            name: name.into(),
            destination: destination.into(),
            position: inner.next_position,
        };
        inner.next_position += 1;
        *inner.per_user.entry(user.into()).or_default() += 1;
        let record = record(&d);
        inner.by_queue.insert(queue.clone(), d);
        Ok((Ensured::New, Some(record)))
    }

    /// Removes a durable subscription; returns its definition (its record position to remove
    /// from the store) if it existed.
    pub(crate) fn remove(&self, queue: &str) -> Option<(Definition, u64)> {
        let mut inner = self.lock();
        let d = inner.by_queue.remove(queue)?;
        if let Some(n) = inner.per_user.get_mut(&d.user) {
            *n -= 1;
            if *n == 0 {
                inner.per_user.remove(&d.user);
            }
        }
        let position = d.position;
        Some((d, position))
    }

    /// Learns the definitions a store held (the records of [`REGISTRY`]); returns them (queue
    /// name, destination) for the topic table. Unreadable records are skipped and logged.
    pub(crate) fn restore(&self, records: Vec<StoredRecord>) -> Vec<(Arc<str>, Box<str>)> {
        let mut inner = self.lock();
        let mut restored = Vec::new();
        for StoredRecord { position, record } in records {
            inner.next_position = inner.next_position.max(position + 1);
            let Some(decoded) = decode_record(&record) else {
                tracing::warn!(position, "unreadable durable subscription record; skipped");
                continue;
            };
            let m = decoded.message;
            let (Some(user), Some(name)) = (m.headers().get("user"), m.headers().get("name"))
            else {
                tracing::warn!(position, "durable subscription record without user or name");
                continue;
            };
            let queue = queue_name(user, name);
            let d = Definition {
                user: user.into(),
                name: name.into(),
                destination: m.destination().to_string().into(),
                position,
            };
            *inner.per_user.entry(d.user.clone()).or_default() += 1;
            restored.push((queue.clone(), d.destination.clone()));
            inner.by_queue.insert(queue, d);
        }
        restored
    }
}

/// The registry record of a definition: a record of the queue format (`store.rs`) whose
/// destination is the subscription's and whose headers name its user and name.
fn record(d: &Definition) -> Record {
    let headers: Headers = [("user", &*d.user), ("name", &*d.name)]
        .into_iter()
        .collect();
    let message = Message::new(0, d.destination.to_string().into(), headers, Bytes::new());
    Record {
        position: d.position,
        bytes: encode_record(&message, 0, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_user: usize) -> DurableTable {
        DurableTable::new(DurableConfig {
            max_subscriptions: max,
            max_per_user: per_user,
            ..DurableConfig::default()
        })
    }

    #[test]
    fn ensure_creates_once_moves_and_counts_bounds() {
        let t = table(3, 2);
        let q = queue_name("alice", "a");
        let (found, record) = t.ensure(&q, "alice", "a", "/topic/x").unwrap();
        assert_eq!(found, Ensured::New);
        assert!(record.is_some());
        assert_eq!(
            t.ensure(&q, "alice", "a", "/topic/x").unwrap().0,
            Ensured::Same
        );
        assert_eq!(
            t.ensure(&q, "alice", "a", "/topic/y").unwrap().0,
            Ensured::Moved("/topic/x".into())
        );
        let q2 = queue_name("alice", "b");
        t.ensure(&q2, "alice", "b", "/topic/x").unwrap();
        let q3 = queue_name("alice", "c");
        assert_eq!(
            t.ensure(&q3, "alice", "c", "/topic/x").unwrap_err(),
            DurableError::TooManyForUser(2)
        );
        let q4 = queue_name("bob", "a");
        t.ensure(&q4, "bob", "a", "/topic/x").unwrap();
        let q5 = queue_name("carol", "a");
        assert_eq!(
            t.ensure(&q5, "carol", "a", "/topic/x").unwrap_err(),
            DurableError::TooMany(3)
        );
        assert!(t.remove(&q2).is_some());
        assert!(t.remove(&q2).is_none());
        t.ensure(&q3, "alice", "c", "/topic/x").unwrap();
        assert_eq!(
            table(0, 1)
                .ensure(&q, "alice", "a", "/topic/x")
                .unwrap_err(),
            DurableError::Off
        );
    }

    #[test]
    fn records_restore_the_definitions() {
        let t = table(10, 10);
        let mut records = Vec::new();
        for (user, name, destination) in [("alice", "a", "/topic/x.*"), ("", "b:c", "/topic/y")] {
            let q = queue_name(user, name);
            let (_, record) = t.ensure(&q, user, name, destination).unwrap();
            let record = record.unwrap();
            records.push(StoredRecord {
                position: record.position,
                record: record.bytes,
            });
        }
        records.push(StoredRecord {
            position: 9,
            record: Bytes::from_static(b"junk"),
        });
        let again = table(10, 10);
        let restored = again.restore(records);
        assert_eq!(
            restored,
            [
                (queue_name("alice", "a"), "/topic/x.*".into()),
                (queue_name("", "b:c"), "/topic/y".into()),
            ]
        );
        assert_eq!(again.all(), t.all());
        // New records are numbered after every restored one, unreadable ones included.
        let q = queue_name("bob", "z");
        let (_, record) = again.ensure(&q, "bob", "z", "/topic/z").unwrap();
        assert_eq!(record.unwrap().position, 10);
    }
}
