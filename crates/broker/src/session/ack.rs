//! Acknowledgements from the session's side: each subscription's ack mode and prefetch, and
//! which deliveries the client was given and may still ACK or NACK.
//!
//! A delivery is recorded when the session writes it (the client cannot name one it has not
//! seen). The queue keeps its own record of what is in flight (to redeliver it however the
//! session ends); this book only answers "which deliveries does this ACK/NACK settle?".
//!
//! Identification, as the spec says for each version: STOMP 1.2 ACK/NACK carry `id`, the
//! MESSAGE's `ack` header (a node-unique delivery tag); 1.1 carry `message-id` and
//! `subscription`; 1.0 carry `message-id` only.

use std::collections::{HashMap, VecDeque};

use stompbox_codec::{ByteString, Frame, Version};

use super::{Action, Session, State};
use crate::error::ProtocolError;
use crate::router::Outcome;

/// Most unacknowledged deliveries remembered per topic subscription in a client mode. Topics
/// have no redelivery, so forgetting the oldest loses nothing but the ability to ACK it (an
/// ERROR `unknown ack id`); without a window, a client that never ACKs would grow this without
/// bound. Queue subscriptions need none: their prefetch bounds them.
pub(crate) const TOPIC_UNACKED_WINDOW: usize = 4096;

/// The `ack` header of SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckMode {
    /// A message is done with once written (queues: once the session takes it for writing).
    Auto,
    /// ACK/NACK settle the named message and every earlier one of the subscription.
    Client,
    /// ACK/NACK settle the named message only.
    ClientIndividual,
}

impl AckMode {
    pub(crate) fn parse(value: Option<&str>) -> Option<AckMode> {
        match value {
            None | Some("auto") => Some(AckMode::Auto),
            Some("client") => Some(AckMode::Client),
            Some("client-individual") => Some(AckMode::ClientIndividual),
            Some(_) => None,
        }
    }
}

/// What an ACK or NACK names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckKey<'a> {
    /// STOMP 1.2: the `id` header, the MESSAGE's `ack` value.
    Tag(u64),
    /// STOMP 1.0/1.1: `message-id`, and `subscription` when given.
    MessageId {
        id: u64,
        subscription: Option<&'a str>,
    },
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    tag: u64,
    message_id: u64,
}

#[derive(Debug)]
struct Sub {
    mode: AckMode,
    prefetch: usize,
    /// `TOPIC_UNACKED_WINDOW` for topic subscriptions, none for queues.
    window: Option<usize>,
    /// In tag order (the order written).
    pending: VecDeque<Pending>,
}

/// Every subscription of one session, for acknowledgements.
#[derive(Debug, Default)]
pub(crate) struct AckBook {
    subs: HashMap<ByteString, Sub>,
    /// Subscriptions whose deliveries need a look when written: client modes and queues.
    tracked: usize,
}

impl AckBook {
    pub(crate) fn add(&mut self, id: ByteString, mode: AckMode, prefetch: usize, queue: bool) {
        let window = (!queue).then_some(TOPIC_UNACKED_WINDOW);
        if queue || mode != AckMode::Auto {
            self.tracked += 1;
        }
        let sub = Sub {
            mode,
            prefetch,
            window,
            pending: VecDeque::new(),
        };
        self.subs.insert(id, sub);
    }

    /// Forgets a subscription and what it was given (its queue redelivers it).
    pub(crate) fn remove(&mut self, id: &str) {
        if let Some(sub) = self.subs.remove(id)
            && (sub.window.is_none() || sub.mode != AckMode::Auto)
        {
            self.tracked -= 1;
        }
    }

    /// False when every subscription is an `auto` topic one: written deliveries need no look.
    pub(crate) fn tracks_deliveries(&self) -> bool {
        self.tracked > 0
    }

    pub(crate) fn mode(&self, id: &str) -> Option<AckMode> {
        self.subs.get(id).map(|s| s.mode)
    }

    /// Whether the subscription's unacknowledged deliveries come back (a queue's): only then
    /// do ACK and NACK settle anything.
    pub(crate) fn redelivers(&self, id: &str) -> bool {
        self.subs.get(id).is_some_and(|s| s.window.is_none())
    }

    pub(crate) fn prefetch(&self, id: &str) -> Option<usize> {
        self.subs.get(id).map(|s| s.prefetch)
    }

    /// A delivery in a client mode was written: the client may now settle it.
    pub(crate) fn delivered(&mut self, subscription: &str, tag: u64, message_id: u64) {
        let Some(sub) = self.subs.get_mut(subscription) else {
            return;
        };
        if sub.mode == AckMode::Auto {
            return;
        }
        if sub.window.is_some_and(|w| sub.pending.len() >= w) {
            sub.pending.pop_front();
        }
        sub.pending.push_back(Pending { tag, message_id });
    }

    /// The deliveries an ACK or NACK settles (the named one, and in `client` mode every earlier
    /// one of its subscription), removed from the book. `None` if the client was not given it or
    /// already settled it.
    pub(crate) fn take(&mut self, key: AckKey<'_>) -> Option<(ByteString, Vec<u64>)> {
        let (id, sub, index) = self.subs.iter_mut().find_map(|(id, sub)| {
            let index = match key {
                AckKey::Tag(tag) => sub.pending.binary_search_by_key(&tag, |p| p.tag).ok(),
                AckKey::MessageId {
                    id: m,
                    subscription,
                } => {
                    if subscription.is_some_and(|s| s != &**id) {
                        return None;
                    }
                    sub.pending.iter().position(|p| p.message_id == m)
                }
            }?;
            Some((id, sub, index))
        })?;
        let tags = match sub.mode {
            AckMode::Client => sub.pending.drain(..=index).map(|p| p.tag).collect(),
            _ => vec![sub.pending.remove(index).expect("found").tag],
        };
        Some((id.clone(), tags))
    }
}

/// ACK and NACK frames.
impl Session<'_> {
    pub(super) fn version(&self) -> Version {
        match self.state {
            State::Connected { version } | State::Authenticating { version, .. } => version,
            _ => Version::V1_2,
        }
    }

    /// What an ACK/NACK names, per the session's version, and the id as written (for errors).
    pub(super) fn ack_key<'f>(
        &self,
        frame: &'f Frame,
    ) -> Result<(Option<AckKey<'f>>, &'f str), ProtocolError> {
        let missing = |header| ProtocolError::MissingHeader {
            command: frame.command,
            header,
        };
        if self.version() == Version::V1_2 {
            let id = frame.header("id").ok_or(missing("id"))?;
            return Ok((id.parse().ok().map(AckKey::Tag), id));
        }
        let id = frame.header("message-id").ok_or(missing("message-id"))?;
        let key = id.parse().ok().map(|id| AckKey::MessageId {
            id,
            subscription: frame.header("subscription"),
        });
        Ok((key, id))
    }

    pub(super) fn ack(
        &mut self,
        frame: &Frame,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) -> Result<(), ProtocolError> {
        let (key, id) = self.ack_key(frame)?;
        let unknown = || ProtocolError::UnknownAck {
            command: frame.command,
            id: id.to_owned(),
        };
        let (subscription, tags) = key
            .and_then(|key| self.acks.take(key))
            .ok_or_else(unknown)?;
        let target = self.subscriptions.get(&subscription).ok_or_else(unknown)?;
        // RabbitMQ's `requeue:false` on NACK: dead-letter now instead of redelivering.
        let outcome = match (outcome, frame.header("requeue")) {
            (Outcome::Nack, Some("false")) => Outcome::Reject,
            (outcome, _) => outcome,
        };
        // A queue's (and a durable subscription's) deliveries come back unless settled; so do
        // those a user subscription was given from its inbox.
        if self.acks.redelivers(&subscription) || target.queue.is_some() {
            out.push(Action::Settle {
                target: target.clone(),
                subscription,
                tags,
                outcome,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AckBook {
        let mut book = AckBook::default();
        book.add("cum".into(), AckMode::Client, 10, true);
        book.add("ind".into(), AckMode::ClientIndividual, 10, true);
        book.add("auto".into(), AckMode::Auto, 10, true);
        for (tag, msg) in [(1, 100), (3, 101), (5, 102)] {
            book.delivered("cum", tag, msg);
            book.delivered("ind", tag + 1, msg);
            book.delivered("auto", tag + 10, msg);
        }
        book
    }

    #[test]
    fn client_mode_is_cumulative_per_subscription() {
        let mut b = book();
        assert_eq!(b.take(AckKey::Tag(3)), Some(("cum".into(), vec![1, 3])));
        assert_eq!(b.take(AckKey::Tag(1)), None, "already settled");
        assert_eq!(b.take(AckKey::Tag(5)), Some(("cum".into(), vec![5])));
    }

    #[test]
    fn client_individual_settles_one() {
        let mut b = book();
        assert_eq!(b.take(AckKey::Tag(4)), Some(("ind".into(), vec![4])));
        assert_eq!(b.take(AckKey::Tag(2)), Some(("ind".into(), vec![2])));
        assert_eq!(b.take(AckKey::Tag(4)), None);
    }

    #[test]
    fn auto_mode_and_unknown_ids_have_nothing_to_settle() {
        let mut b = book();
        assert_eq!(b.take(AckKey::Tag(11)), None);
        assert_eq!(b.take(AckKey::Tag(99)), None);
    }

    #[test]
    fn by_message_id_with_and_without_subscription() {
        let mut b = book();
        let key = |subscription| AckKey::MessageId {
            id: 101,
            subscription,
        };
        assert_eq!(b.take(key(Some("ind"))), Some(("ind".into(), vec![4])));
        assert_eq!(b.take(key(Some("nope"))), None);
        // 1.0: the first subscription holding it.
        assert_eq!(b.take(key(None)), Some(("cum".into(), vec![1, 3])));
    }

    #[test]
    fn topic_subscriptions_remember_a_bounded_window() {
        let mut b = AckBook::default();
        b.add("t".into(), AckMode::ClientIndividual, 10, false);
        for tag in 1..=(TOPIC_UNACKED_WINDOW as u64 + 1) {
            b.delivered("t", tag, tag);
        }
        assert_eq!(b.take(AckKey::Tag(1)), None, "the oldest was forgotten");
        assert!(b.take(AckKey::Tag(2)).is_some());
        assert!(b.tracks_deliveries());
        b.remove("t");
        assert_eq!(b.take(AckKey::Tag(3)), None);
        assert!(!b.tracks_deliveries());
        b.add("auto".into(), AckMode::Auto, 10, false);
        assert!(
            !b.tracks_deliveries(),
            "auto topic subscriptions need no tracking"
        );
    }
}
