//! Destinations: what a `destination` header names, parsed once into a kind and a name.

use std::fmt;

use stompbox_codec::ByteString;

/// The kinds of destination Stompbox knows, by prefix. Routing has one place per kind (see
/// `router/mod.rs`), so serving a new kind touches that match and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// `/topic/<routing key>`: publish/subscribe, every current subscriber gets each message.
    Topic,
    /// `/queue/<name>`: point-to-point with acknowledgements.
    Queue,
    /// `/app/<path>`, or under another configured application prefix: application handlers.
    App,
    /// `/user/<...>`: destinations private to the authenticated user.
    User,
    /// Anything else.
    Other,
}

impl DestinationKind {
    /// The prefix a destination of this kind starts with (empty for [`DestinationKind::Other`]).
    pub const fn prefix(self) -> &'static str {
        match self {
            DestinationKind::Topic => "/topic/",
            DestinationKind::Queue => "/queue/",
            DestinationKind::App => "/app/",
            DestinationKind::User => "/user/",
            DestinationKind::Other => "",
        }
    }
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DestinationKind::Topic => "/topic",
            DestinationKind::Queue => "/queue",
            DestinationKind::App => "/app",
            DestinationKind::User => "/user",
            DestinationKind::Other => "other",
        })
    }
}

/// A parsed `destination` header: the text as the client wrote it, and its kind.
///
/// Cheap to clone (the text is a shared [`ByteString`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    raw: ByteString,
    kind: DestinationKind,
    /// Where the name starts: the prefix length, unless an application prefix other than `/app`
    /// was configured (see `app::Rules::classify`).
    name_start: usize,
}

/// The destination text cannot name anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// The header is empty.
    #[error("empty destination")]
    Empty,
    /// A known prefix with nothing after it, such as `/topic/`.
    #[error("destination {0:?} has an empty name after its prefix")]
    EmptyName(String),
}

impl Destination {
    /// Parses a `destination` header value.
    pub fn parse(raw: impl Into<ByteString>) -> Result<Destination, DestinationError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(DestinationError::Empty);
        }
        let kind = [
            DestinationKind::Topic,
            DestinationKind::Queue,
            DestinationKind::App,
            DestinationKind::User,
        ]
        .into_iter()
        .find(|k| raw.starts_with(k.prefix()))
        .unwrap_or(DestinationKind::Other);
        if kind != DestinationKind::Other && raw.len() == kind.prefix().len() {
            return Err(DestinationError::EmptyName(raw.to_string()));
        }
        let name_start = kind.prefix().len();
        Ok(Destination {
            raw,
            kind,
            name_start,
        })
    }

    /// The same text as another kind whose prefix is `prefix_len` bytes (a configured
    /// application prefix).
    pub(crate) fn reclassify(self, kind: DestinationKind, prefix_len: usize) -> Destination {
        debug_assert!(self.raw.is_char_boundary(prefix_len));
        Destination {
            kind,
            name_start: prefix_len,
            ..self
        }
    }

    /// The kind, from the prefix.
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The whole text, as the client wrote it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The whole text as a shared string (cheap to clone).
    pub fn as_shared(&self) -> &ByteString {
        &self.raw
    }

    /// The text after the prefix: the routing key of a topic, the name of a queue, the path of an
    /// `/app` destination. The whole text for [`DestinationKind::Other`].
    pub fn name(&self) -> &str {
        &self.raw[self.name_start..]
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        let cases = [
            ("/topic/a.b", DestinationKind::Topic, "a.b"),
            ("/queue/jobs", DestinationKind::Queue, "jobs"),
            ("/app/chat.send", DestinationKind::App, "chat.send"),
            ("/user/queue/reply", DestinationKind::User, "queue/reply"),
            ("/exchange/x/y", DestinationKind::Other, "/exchange/x/y"),
            ("/topicx", DestinationKind::Other, "/topicx"),
            ("/topic", DestinationKind::Other, "/topic"),
        ];
        for (raw, kind, name) in cases {
            let d = Destination::parse(raw).unwrap();
            assert_eq!((d.kind(), d.name(), d.as_str()), (kind, name, raw), "{raw}");
        }
    }

    #[test]
    fn empty_names_are_errors() {
        assert_eq!(Destination::parse(""), Err(DestinationError::Empty));
        assert!(matches!(
            Destination::parse("/topic/"),
            Err(DestinationError::EmptyName(_))
        ));
    }
}
