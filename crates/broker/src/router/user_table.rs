//! `/user/...`: destinations private to one user (Spring's user destinations).
//!
//! A SUBSCRIBE to `/user/queue/x` is keyed by the subscribing session's user (its principal, or
//! the session itself when anonymous) and the rest of the destination, `/queue/x`. Sending to
//! user `alice` at `/queue/x` offers the message to every subscription of alice's sessions to
//! `/user/queue/x`, and to nobody else; a reply to one session only filters on the session id.
//! The MESSAGE carries `destination:/user/queue/x`, what the client subscribed to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::deliver::Deliveries;
use super::topic_table::Subscriber;
use crate::backplane::{Backplane, Interest};
use crate::message::{Delivery, Message};
use crate::outbox::WhenFull;

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
/// the removal of their last are reported as [`Interest::User`], under the write lock; with
/// one that holds queues, so are the first and last entry of a user for each destination with
/// an inbox ([`Interest::Inbox`]).
#[derive(Debug, Default)]
pub(crate) struct UserTable {
    table: RwLock<HashMap<UserKey, Vec<Entry>>>,
    backplane: Option<Arc<dyn Backplane>>,
    /// Destinations whose interest is reported per destination (the backplane keeps inboxes).
    inboxes: Option<crate::InboxConfig>,
}

impl UserTable {
    pub(crate) fn new(backplane: Option<Arc<dyn Backplane>>, inbox: &crate::InboxConfig) -> Self {
        let inboxes = (backplane.as_ref())
            .filter(|b| b.handles_queues() && !inbox.destinations.is_empty())
            .map(|_| inbox.clone());
        UserTable {
            table: RwLock::default(),
            backplane,
            inboxes,
        }
    }

    /// Reports the interest of user `name` in inbox destination `destination` beginning or
    /// ending, when `entries` (the user's, without or with the change) hold no other.
    fn inbox_interest(
        &self,
        name: &str,
        entries: Option<&Vec<Entry>>,
        destination: &str,
        present: bool,
    ) {
        let (Some(backplane), Some(inboxes)) = (&self.backplane, &self.inboxes) else {
            return;
        };
        let others = entries.is_some_and(|e| e.iter().any(|e| &*e.destination == destination));
        if inboxes.keeps(destination) && !others {
            let interest = Interest::Inbox {
                user: name.to_owned(),
                destination: destination.to_owned(),
            };
            backplane.interest(interest, present);
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
        if let UserKey::Named(name) = &user {
            self.inbox_interest(name, table.get(&user), destination, true);
        }
        table.entry(user).or_default().push(Entry {
            destination: destination.into(),
            subscriber,
        });
    }

    pub(crate) fn unsubscribe(&self, user: &UserKey, session: u64, subscription: &str) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entries) = table.get_mut(user) {
            let gone = entries.iter().position(|e| {
                e.subscriber.session == session && e.subscriber.subscription == subscription
            });
            let Some(gone) = gone else {
                return;
            };
            let gone = entries.remove(gone);
            if let UserKey::Named(name) = user {
                self.inbox_interest(name, Some(entries), &gone.destination, false);
            }
            if entries.is_empty() {
                table.remove(user);
                if let (Some(backplane), UserKey::Named(name)) = (&self.backplane, user) {
                    backplane.interest(Interest::User(name.to_string()), false);
                }
            }
        }
    }

    /// Offers `message` to `user`'s subscriptions to `/user<destination>`, only those of
    /// `session` when given; returns how many subscriptions it was offered to.
    pub(crate) fn publish(
        &self,
        user: &UserKey,
        destination: &str,
        session: Option<u64>,
        message: &Arc<Message>,
        out: &mut Deliveries<'_>,
    ) -> usize {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let Some(entries) = table.get(user) else {
            return 0;
        };
        let mut reached = 0;
        for e in entries
            .iter()
            .filter(|e| &*e.destination == destination)
            .filter(|e| session.is_none_or(|s| e.subscriber.session == s))
        {
            let s = &e.subscriber;
            let delivery = Delivery::new(message.clone(), s.subscription.clone());
            out.offer(&s.outbox, delivery, WhenFull::Policy);
            reached += 1;
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stompbox_codec::Headers;

    use super::*;
    use crate::OutboxConfig;
    use crate::outbox::Outbox;
    use crate::stats::Counters;

    #[test]
    fn only_that_users_sessions_receive() {
        let counters = Arc::new(Counters::default());
        let router = UserTable::default();
        let outboxes: Vec<Arc<Outbox>> = (0..3)
            .map(|_| Arc::new(Outbox::new(&OutboxConfig::default(), counters.clone())))
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
        let publish =
            |user: &UserKey, destination: &str, session: Option<u64>, msg: Arc<Message>| {
                let mut out = Deliveries::new(&counters);
                router.publish(user, destination, session, &msg, &mut out);
                out.finish()
            };
        let msg = || {
            Arc::new(Message::new(
                1,
                "/user/queue/n".into(),
                Headers::new(),
                Bytes::from_static(b"x"),
            ))
        };
        assert_eq!(publish(&alice, "/queue/n", None, msg()), 2);
        assert_eq!(publish(&alice, "/queue/n", Some(1), msg()), 1);
        assert_eq!(publish(&alice, "/queue/other", None, msg()), 0);
        assert_eq!(publish(&bob, "/queue/n", None, msg()), 1);
        router.unsubscribe(&alice, 0, "0");
        router.unsubscribe(&alice, 1, "0");
        assert_eq!(publish(&alice, "/queue/n", None, msg()), 0);
        assert!(!router.table.read().unwrap().contains_key(&alice));
    }
}
