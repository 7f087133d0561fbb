//! The node's own queues, beside clients' `/queue/...` ones: each durable topic subscription's
//! (`durable_table.rs`) and each user's inbox for one user destination (`Router::keep_inbox`).
//! They live in the same queue table, so everything a queue does (order, acks, redelivery,
//! bounds, expiry, the store) holds for them, under names no client can write: they start
//! with a NUL, which STOMP cannot carry. The user's length comes first, so no two (user, name)
//! pairs share a name.

use std::sync::Arc;

/// What an internal queue is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A durable topic subscription: (user, subscription name).
    Durable,
    /// A user's inbox: (user, user destination such as `/queue/notifications`).
    Inbox,
}

impl Kind {
    const fn prefix(self) -> &'static str {
        match self {
            Kind::Durable => "\0durable:",
            Kind::Inbox => "\0inbox:",
        }
    }

    const fn label(self) -> &'static str {
        match self {
            Kind::Durable => "durable",
            Kind::Inbox => "inbox",
        }
    }
}

/// The queue name of `kind` for `user` and `name`.
pub(crate) fn name(kind: Kind, user: &str, name: &str) -> Arc<str> {
    format!("{}{}:{user}{name}", kind.prefix(), user.len()).into()
}

/// Which kind of internal queue `queue` is, if it is one.
pub(crate) fn kind(queue: &str) -> Option<Kind> {
    [Kind::Durable, Kind::Inbox]
        .into_iter()
        .find(|k| queue.starts_with(k.prefix()))
}

/// (kind, user, name) of an internal queue's name.
pub(crate) fn parts(queue: &str) -> Option<(Kind, &str, &str)> {
    let kind = kind(queue)?;
    let (len, rest) = queue[kind.prefix().len()..].split_once(':')?;
    let len: usize = len.parse().ok()?;
    Some((kind, rest.get(..len)?, rest.get(len..)?))
}

/// How an internal queue is shown (queue listings, metrics): `durable:<user>:<name>`,
/// `inbox:<user>:<destination>`; the user is empty for anonymous sessions.
pub(crate) fn shown(queue: &str) -> Option<String> {
    let (kind, user, name) = parts(queue)?;
    Some(format!("{}:{user}:{name}", kind.label()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unambiguous_and_shown_readably() {
        assert_ne!(
            name(Kind::Durable, "a/b", "c"),
            name(Kind::Durable, "a", "b/c")
        );
        let q = name(Kind::Durable, "a:1", "b:2");
        assert_eq!(parts(&q), Some((Kind::Durable, "a:1", "b:2")));
        assert_eq!(kind("durable:alice"), None);
        assert_eq!(kind("jobs"), None);
        assert_eq!(
            shown(&name(Kind::Durable, "alice", "feed")).as_deref(),
            Some("durable:alice:feed")
        );
        assert_eq!(
            shown(&name(Kind::Durable, "", "x")).as_deref(),
            Some("durable::x")
        );
        let inbox = name(Kind::Inbox, "bob", "/queue/notifications");
        assert_eq!(kind(&inbox), Some(Kind::Inbox));
        assert_eq!(
            shown(&inbox).as_deref(),
            Some("inbox:bob:/queue/notifications")
        );
        assert_eq!(shown("jobs"), None);
    }
}
