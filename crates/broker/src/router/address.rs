//! What a destination leads to: the one place that matches on [`DestinationKind`]. Serving a new
//! kind means a prefix in `destination.rs` and an arm in each function here; the rest of the
//! broker matches on what these return ([`Address`], [`Feed`], [`ClientSend`]).
//!
//! Everything here is pure (no tables, no locks), so the session state machine can check a
//! frame with it and answer ERROR before anything happens, and [`Rules::permit`] is where
//! permission checks plug in.

use stompbox_codec::ByteString;

use arc_swap::ArcSwap;

use super::{Origin, RouteError, To, UserKey};
use crate::destination::{Destination, DestinationKind};
use crate::permissions::{Access, Permissions};
use crate::{Config, Principal};

/// The application prefix when none is configured, as in Spring's tutorials.
pub const DEFAULT_APP_PREFIX: &str = "/app";

/// Which destinations are application ones, and which a client may send to or subscribe to.
#[derive(Debug)]
pub(crate) struct Rules {
    /// Each with its trailing `/`.
    app_prefixes: Vec<Box<str>>,
    /// The permission rules; swapped whole when reloaded ([`crate::Broker::set_permissions`]).
    permissions: ArcSwap<Permissions>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            app_prefixes: vec![format!("{DEFAULT_APP_PREFIX}/").into()],
            permissions: ArcSwap::from_pointee(Permissions::default()),
        }
    }
}

/// Where a message goes, resolved once by [`Rules::resolve`] from a destination (or a user or
/// subscription address) and its origin.
#[derive(Debug)]
pub(crate) enum Address {
    /// `/topic/<key>`: every matching subscriber, on every node.
    Topic(Destination),
    /// `/queue/<name>`: one consumer, here or in the backplane.
    Queue(Destination),
    /// The subscriptions of `user`'s sessions to `/user<path>`; only `session`'s when set.
    /// `written` is the destination as sent (`/user/bob/queue/x`), when it came as text.
    User {
        user: UserKey,
        path: Box<str>,
        session: Option<u64>,
        written: Option<Destination>,
    },
    /// One subscription of one session.
    Subscription(super::SubscriptionAddress),
}

/// A client's destination beyond a configured limit: refused before anything is resolved or
/// routed ([`within_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// Longer than `max_destination_length` bytes.
    Length { length: usize, max: usize },
    /// A topic key or pattern of more than `max_topic_words` words.
    TopicWords { words: usize, max: usize },
}

/// Holds a destination a client sends or subscribes to to the node's limits: its length in
/// bytes, and the words of a `/topic` key or pattern (what matching costs grows with).
pub(crate) fn within_limits(destination: &Destination, config: &Config) -> Result<(), OverLimit> {
    let (length, max) = (destination.as_str().len(), config.max_destination_length);
    if length > max {
        return Err(OverLimit::Length { length, max });
    }
    if destination.kind() == DestinationKind::Topic {
        // A topic's name is never empty (`Destination::parse`), so dots + 1 words.
        let words = memchr::memchr_iter(b'.', destination.name().as_bytes()).count() + 1;
        let max = config.max_topic_words;
        if words > max {
            return Err(OverLimit::TopicWords { words, max });
        }
    }
    Ok(())
}

/// What a SEND from a client does, decided before anything happens.
#[derive(Debug)]
pub(crate) enum ClientSend {
    /// It is routed ([`super::Router::route`]).
    Route(Destination),
    /// It goes to the session's `/app` handlers.
    Handle(Destination),
}

/// What feeds a subscription, by its destination's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed<'d> {
    /// Topic messages whose routing key matches this pattern.
    Topic(&'d str),
    /// One queue, which redelivers what the subscription does not acknowledge.
    Queue(&'d str),
    /// The subscribing session's user destination `/user<path>`, e.g. `/queue/x`.
    User(&'d str),
    /// One reply from the session's subscribe handler.
    Handler,
}

impl Feed<'_> {
    /// Whether unacknowledged deliveries come back (so the session tracks them by prefetch,
    /// not by a window).
    pub(crate) fn redelivers(self) -> bool {
        matches!(self, Feed::Queue(_))
    }
}

impl Rules {
    /// Replaces the permission rules; sessions see the new ones from their next frame.
    pub(crate) fn set_permissions(&self, permissions: Permissions) {
        self.permissions.store(std::sync::Arc::new(permissions));
    }

    /// Sets the application prefixes, replacing the default.
    pub(crate) fn set_app_prefixes(
        &mut self,
        prefixes: Vec<String>,
    ) -> Result<(), crate::ConfigError> {
        let mut out = Vec::new();
        for p in prefixes {
            let p = p.trim_end_matches('/');
            let reserved = ["/topic", "/queue", "/user"].contains(&p);
            if !p.starts_with('/') || p.len() < 2 || reserved {
                return Err(crate::ConfigError {
                    field: "app_prefixes",
                    reason: format!(
                        "{p:?} must start with '/', name something, and not be /topic, /queue or /user"
                    ),
                });
            }
            out.push(format!("{p}/").into());
        }
        self.app_prefixes = out;
        Ok(())
    }

    /// Parses destination text and marks destinations under an application prefix as
    /// [`DestinationKind::App`], and only those (`/app/...` is not one when the prefixes were
    /// changed).
    pub(crate) fn parse(&self, raw: impl Into<ByteString>) -> Result<Destination, RouteError> {
        let destination = Destination::parse(raw)?;
        Ok(self.classify(destination))
    }

    /// See [`Rules::parse`].
    pub(crate) fn classify(&self, destination: Destination) -> Destination {
        let raw = destination.as_str();
        match self.app_prefixes.iter().find(|p| raw.starts_with(&***p)) {
            Some(p) if raw.len() > p.len() => {
                let len = p.len();
                destination.reclassify(DestinationKind::App, len)
            }
            _ if destination.kind() == DestinationKind::App => {
                destination.reclassify(DestinationKind::Other, 0)
            }
            _ => destination,
        }
    }

    /// The path after the application prefix, with its leading `/` (`/chat.general`).
    pub(crate) fn app_path<'a>(&self, raw: &'a str) -> Option<&'a str> {
        let p = self.app_prefixes.iter().find(|p| raw.starts_with(&***p))?;
        Some(&raw[p.len() - 1..])
    }

    /// A client's SEND: routed, or for the session's handlers. Checked when the frame arrives
    /// (also when it is held in a transaction), so a refusal carries the frame's receipt;
    /// [`super::Router::route`] applies the same checks again when it is routed.
    pub(crate) fn client_send(
        &self,
        destination: Destination,
        principal: Option<&Principal>,
    ) -> Result<ClientSend, RouteError> {
        let origin = Origin::Client(principal);
        self.permit(origin, Access::Send, &destination)?;
        if destination.kind() == DestinationKind::App {
            return Ok(ClientSend::Handle(destination));
        }
        match self.resolve(origin, To::Destination(destination))? {
            Address::Topic(d)
            | Address::Queue(d)
            | Address::User {
                written: Some(d), ..
            } => Ok(ClientSend::Route(d)),
            Address::User { written: None, .. } | Address::Subscription(_) => {
                unreachable!("a destination resolves to an address that keeps it")
            }
        }
    }

    /// Where a message to `to` from `origin` goes: the match on destination kinds for messages.
    pub(crate) fn resolve(&self, origin: Origin<'_>, to: To) -> Result<Address, RouteError> {
        let destination = match to {
            To::Destination(destination) => destination,
            To::User {
                user,
                path,
                session,
            } => {
                return Ok(Address::User {
                    user,
                    path,
                    session,
                    written: None,
                });
            }
            To::Subscription(subscription) => return Ok(Address::Subscription(subscription)),
        };
        let not_sendable = |reason| RouteError::NotSendable {
            destination: destination.to_string(),
            reason,
        };
        match destination.kind() {
            DestinationKind::Topic => Ok(Address::Topic(destination)),
            DestinationKind::Queue => Ok(Address::Queue(destination)),
            DestinationKind::User => {
                let Some((user, path)) = split_user(destination.name()) else {
                    return Err(match origin {
                        Origin::Client(_) => RouteError::UserSend {
                            destination: destination.to_string(),
                            reason: "a user destination to send to is /user/{name}/{destination}",
                        },
                        _ => not_sendable("a user destination is /user/{name}/{destination}"),
                    });
                };
                let (user, path) = (UserKey::Named(user.into()), path.into());
                Ok(Address::User {
                    user,
                    path,
                    session: None,
                    written: Some(destination),
                })
            }
            DestinationKind::App => Err(not_sendable("application destinations are for clients")),
            DestinationKind::Other => Err(RouteError::NotServed {
                destination: destination.to_string(),
                kind: DestinationKind::Other,
            }),
        }
    }

    /// What feeds a subscription to `destination`: the match on destination kinds for
    /// subscriptions.
    pub(crate) fn feed<'d>(&self, destination: &'d Destination) -> Result<Feed<'d>, RouteError> {
        match destination.kind() {
            DestinationKind::Topic => Ok(Feed::Topic(destination.name())),
            DestinationKind::Queue => Ok(Feed::Queue(destination.name())),
            // `/user/queue/x` is keyed by the subscriber's user and `/queue/x`.
            DestinationKind::User => Ok(Feed::User(&destination.as_str()["/user".len()..])),
            DestinationKind::App => Ok(Feed::Handler),
            kind @ DestinationKind::Other => Err(RouteError::NotServed {
                destination: destination.to_string(),
                kind,
            }),
        }
    }

    /// Whether `origin` may do `access` on `destination`: the permission check, before
    /// anything is resolved or routed. A client is held to the permission rules
    /// ([`Permissions`]); server code, handlers and other nodes may send anywhere.
    pub(crate) fn permit(
        &self,
        origin: Origin<'_>,
        access: Access,
        destination: &Destination,
    ) -> Result<(), RouteError> {
        let Origin::Client(principal) = origin else {
            return Ok(());
        };
        if self
            .permissions
            .load()
            .allows(principal, access, destination.as_str())
        {
            Ok(())
        } else {
            Err(RouteError::AccessRefused {
                destination: destination.to_string(),
                access,
                who: match principal {
                    Some(p) => format!("user {:?}", p.name),
                    None => "an anonymous session".to_owned(),
                },
            })
        }
    }
}

/// The `destination` header of a message to `address`, as its subscribers see it.
pub(crate) fn shown_destination(address: &Address) -> ByteString {
    match address {
        Address::Topic(d) | Address::Queue(d) => d.as_shared().clone(),
        // Delivered as what the client subscribed to: `/user/queue/x`.
        Address::User { path, .. } => ByteString::from(format!("/user{path}")),
        Address::Subscription(s) => s.destination.clone(),
    }
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
    use super::*;

    fn destination(raw: &str) -> Destination {
        Rules::default().parse(raw).unwrap()
    }

    fn kind(address: &Address) -> &'static str {
        match address {
            Address::Topic(_) => "topic",
            Address::Queue(_) => "queue",
            Address::User { .. } => "user",
            Address::Subscription(_) => "subscription",
        }
    }

    #[test]
    fn each_origin_has_its_rules() {
        let rules = Rules::default();
        let resolve = |origin, raw| rules.resolve(origin, To::Destination(destination(raw)));
        for origin in [
            Origin::Client(None),
            Origin::Handler,
            Origin::Server,
            Origin::Backplane,
        ] {
            assert_eq!(kind(&resolve(origin, "/topic/a").unwrap()), "topic");
            assert_eq!(kind(&resolve(origin, "/queue/a").unwrap()), "queue");
            assert!(matches!(
                resolve(origin, "/exchange/a"),
                Err(RouteError::NotServed { .. })
            ));
            assert!(matches!(
                resolve(origin, "/app/a"),
                Err(RouteError::NotSendable { .. })
            ));
        }
        let Ok(Address::User {
            user,
            path,
            session,
            ..
        }) = resolve(Origin::Server, "/user/bob/queue/x")
        else {
            panic!("a named user's destination");
        };
        assert_eq!(
            (user, &*path, session),
            (UserKey::Named("bob".into()), "/queue/x", None)
        );
        // A malformed user destination: the client's error says what the form is.
        assert!(matches!(
            resolve(Origin::Client(None), "/user/bob"),
            Err(RouteError::UserSend { .. })
        ));
        assert!(matches!(
            resolve(Origin::Server, "/user/bob"),
            Err(RouteError::NotSendable { .. })
        ));
    }

    #[test]
    fn clients_send_to_users_only_when_allowed_and_app_goes_to_handlers() {
        let rules = Rules::default();
        let user = destination("/user/bob/queue/x");
        let alice = Principal::new("alice");
        assert!(matches!(
            rules.client_send(user.clone(), Some(&alice)),
            Err(RouteError::AccessRefused { access: Access::Send, who, .. }) if who == "user \"alice\""
        ));
        assert!(rules.permit(Origin::Server, Access::Send, &user).is_ok());
        let client = Origin::Client(Some(&alice));
        assert!(rules.permit(client, Access::Subscribe, &user).is_ok());
        rules.set_permissions(
            Permissions::new(vec![
                crate::PermissionRule::allow(&[Access::Send], ["/user/#"]),
                crate::PermissionRule::deny(&[Access::Send], ["/app/admin.#"]),
                crate::PermissionRule::allow(&[Access::Send], ["/app/#"]),
            ])
            .unwrap(),
        );
        assert!(matches!(
            rules.client_send(user, None),
            Ok(ClientSend::Route(_))
        ));
        assert!(matches!(
            rules.client_send(destination("/app/chat"), None),
            Ok(ClientSend::Handle(_))
        ));
        // Handler destinations are held to the rules too.
        assert!(matches!(
            rules.client_send(destination("/app/admin.kick"), None),
            Err(RouteError::AccessRefused { .. })
        ));
    }

    #[test]
    fn subscriptions_are_fed_by_kind() {
        let rules = Rules::default();
        let feed = |raw: &str| rules.feed(&destination(raw)).map(|f| format!("{f:?}"));
        assert_eq!(feed("/topic/a.*").unwrap(), "Topic(\"a.*\")");
        assert_eq!(feed("/queue/jobs").unwrap(), "Queue(\"jobs\")");
        assert_eq!(feed("/user/queue/n").unwrap(), "User(\"/queue/n\")");
        assert_eq!(feed("/app/init").unwrap(), "Handler");
        assert!(feed("/exchange/x").is_err());
        assert!(
            rules
                .feed(&destination("/queue/jobs"))
                .unwrap()
                .redelivers()
        );
        assert!(!rules.feed(&destination("/topic/a")).unwrap().redelivers());
    }

    #[test]
    fn split_user_destinations() {
        assert_eq!(split_user("alice/queue/x"), Some(("alice", "/queue/x")));
        assert_eq!(split_user("alice/"), None);
        assert_eq!(split_user("/queue/x"), None);
        assert_eq!(split_user("alice"), None);
    }
}
