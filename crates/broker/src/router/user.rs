//! `/user/...`: destinations private to one user (Spring's user destinations).
//!
//! A SUBSCRIBE to `/user/queue/x` is keyed by the subscribing session's user (its principal, or
//! the session itself when anonymous) and the rest of the destination, `/queue/x`. Sending to
//! user `alice` at `/queue/x` offers the message to every subscription of alice's sessions to
//! `/user/queue/x`, and to nobody else; a reply to one session only filters on the session id.
//! The MESSAGE carries `destination:/user/queue/x`, what the client subscribed to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::topic::Subscriber;
use crate::backplane::{Backplane, Interest};
use crate::message::{Delivery, Message};
use crate::outbox::{Offer, Outbox};
use crate::stats::Counters;

/// Whose destinations: a named user's (every session of theirs), or one anonymous session's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UserKey {
    Named(Box<str>),
    Session(u64),
}

#[derive(Debug)]
struct Entry {
    /// After `/user`: `/queue/x`.
    destination: Box<str>,
    subscriber: Subscriber,
}

/// The user-destination table of one node. With a backplane, a named user's first entry and
/// the removal of their last are reported as [`Interest::User`], under the write lock.
#[derive(Debug, Default)]
pub(crate) struct UserRouter {
    table: RwLock<HashMap<UserKey, Vec<Entry>>>,
    backplane: Option<Arc<dyn Backplane>>,
}

impl UserRouter {
    pub(crate) fn new(backplane: Option<Arc<dyn Backplane>>) -> Self {
        UserRouter {
            table: RwLock::default(),
            backplane,
        }
    }

    /// `destination` is the part after `/user` (`/queue/x`).
    pub(crate) fn subscribe(&self, user: UserKey, destination: &str, subscriber: Subscriber) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let (Some(backplane), UserKey::Named(name)) = (&self.backplane, &user)
            && !table.contains_key(&user)
        {
            backplane.interest(Interest::User(name.to_string()), true);
        }
        table.entry(user).or_default().push(Entry {
            destination: destination.into(),
            subscriber,
        });
    }

    pub(crate) fn unsubscribe(&self, user: &UserKey, session: u64, subscription: &str) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entries) = table.get_mut(user) {
            entries.retain(|e| {
                !(e.subscriber.session == session && e.subscriber.subscription == subscription)
            });
            if entries.is_empty() {
                table.remove(user);
                if let (Some(backplane), UserKey::Named(name)) = (&self.backplane, user) {
                    backplane.interest(Interest::User(name.to_string()), false);
                }
            }
        }
    }

    /// Offers `message` to `user`'s subscriptions to `/user<destination>`, only those of
    /// `session` when given; returns how many queued it.
    pub(crate) fn publish(
        &self,
        user: &UserKey,
        destination: &str,
        session: Option<u64>,
        message: Arc<Message>,
        counters: &Counters,
    ) -> usize {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = table.get(user) else {
            return 0;
        };
        entries
            .iter()
            .filter(|e| &*e.destination == destination)
            .filter(|e| session.is_none_or(|s| e.subscriber.session == s))
            .filter(|e| offer(&e.subscriber.outbox, &e.subscriber, &message, counters))
            .count()
    }
}

fn offer(outbox: &Outbox, s: &Subscriber, message: &Arc<Message>, counters: &Counters) -> bool {
    let delivery = Delivery::new(message.clone(), s.subscription.clone());
    outbox.offer(delivery, counters) == Offer::Queued
}

/// Splits a client's `/user/{name}/queue/x` (given as `{name}/queue/x`, the destination's name)
/// into the user and the destination `/queue/x`.
pub(crate) fn split_user(name: &str) -> Option<(&str, &str)> {
    let slash = name.find('/')?;
    let (user, rest) = name.split_at(slash);
    (!user.is_empty() && rest.len() > 1).then_some((user, rest))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stompbox_codec::Headers;

    use super::*;
    use crate::OutboxConfig;

    #[test]
    fn only_that_users_sessions_receive() {
        let counters = Counters::default();
        let router = UserRouter::default();
        let outboxes: Vec<Arc<Outbox>> = (0..3)
            .map(|_| Arc::new(Outbox::new(&OutboxConfig::default())))
            .collect();
        let sub = |session: u64| Subscriber {
            session,
            subscription: "0".into(),
            outbox: outboxes[session as usize].clone(),
        };
        let alice = UserKey::Named("alice".into());
        let bob = UserKey::Named("bob".into());
        router.subscribe(alice.clone(), "/queue/n", sub(0));
        router.subscribe(alice.clone(), "/queue/n", sub(1));
        router.subscribe(bob.clone(), "/queue/n", sub(2));
        let msg = || {
            Arc::new(Message::new(
                1,
                "/user/queue/n".into(),
                Headers::new(),
                Bytes::from_static(b"x"),
            ))
        };
        assert_eq!(
            router.publish(&alice, "/queue/n", None, msg(), &counters),
            2
        );
        assert_eq!(
            router.publish(&alice, "/queue/n", Some(1), msg(), &counters),
            1
        );
        assert_eq!(
            router.publish(&alice, "/queue/other", None, msg(), &counters),
            0
        );
        assert_eq!(router.publish(&bob, "/queue/n", None, msg(), &counters), 1);
        router.unsubscribe(&alice, 0, "0");
        router.unsubscribe(&alice, 1, "0");
        assert_eq!(
            router.publish(&alice, "/queue/n", None, msg(), &counters),
            0
        );
        assert!(!router.table.read().unwrap().contains_key(&alice));
    }

    #[test]
    fn split_user_destinations() {
        assert_eq!(split_user("alice/queue/x"), Some(("alice", "/queue/x")));
        assert_eq!(split_user("alice/"), None);
        assert_eq!(split_user("/queue/x"), None);
        assert_eq!(split_user("alice"), None);
    }
}
