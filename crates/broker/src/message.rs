//! What is routed: a [`Payload`] as handed in (headers and body), the [`Message`] built from it
//! once and shared by every subscriber, and one [`Delivery`] of it to one subscription.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use stompbox_codec::{
    ByteString, Command, Headers, Version, write_body_head, write_command, write_header,
};

/// Headers a client may put on SEND that are about that frame, not the message: never forwarded
/// to subscribers. `destination` and `content-length` are rewritten by the broker itself.
pub(crate) const RESERVED_SEND_HEADERS: &[&str] = &[
    "destination",
    "content-length",
    "receipt",
    "transaction",
    "message-id",
    "subscription",
    "ack",
    "receipt-id",
    // Written by the broker on queue deliveries.
    "redelivered",
    "x-delivery-count",
];

/// A message body with its headers (`content-type` and any custom ones): what a client's SEND,
/// a handler's reply, [`Broker::send`](crate::Broker::send) or another node hands to routing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

impl Payload {
    /// A `text/plain;charset=utf-8` body.
    pub fn text(text: impl Into<String>) -> Payload {
        Payload::bytes(Bytes::from(text.into())).header("content-type", "text/plain;charset=utf-8")
    }

    /// An `application/json` body.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Payload, serde_json::Error> {
        let body = serde_json::to_vec(value)?;
        Ok(Payload::bytes(body).header("content-type", "application/json"))
    }

    /// A body with no `content-type`.
    pub fn bytes(body: impl Into<Bytes>) -> Payload {
        Payload {
            headers: Headers::new(),
            body: body.into(),
        }
    }

    /// Headers and a body as they are (a SEND's, or a relayed message's).
    pub(crate) fn new(headers: Headers, body: Bytes) -> Payload {
        Payload { headers, body }
    }

    /// Sets a header (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Payload {
        self.headers.set(name.to_owned(), value.to_owned());
        self
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// One message as routed: built once per SEND, then shared (`Arc`) by every delivery. The body is
/// the decoder's `Bytes` slice, never copied until a subscriber's final write.
#[derive(Debug)]
pub(crate) struct Message {
    /// Unique per node.
    id: u64,
    destination: ByteString,
    /// Forwarded headers (`content-type` and user headers), reserved ones removed.
    headers: Headers,
    body: Bytes,
    /// The body is not UTF-8, so the frame must go out as a binary WebSocket message.
    binary: bool,
    /// The `expires` header: milliseconds since the UNIX epoch after which a queued message is
    /// dropped instead of delivered (ActiveMQ's header; 0 or absent means never).
    expires: Option<u64>,
    /// When it was routed, for one message in [`crate::stats::TIMED_ONE_IN`]: its
    /// subscribers' writers observe the time since (`Stats::publish_to_write`).
    timed: Option<std::time::Instant>,
    /// [`Message::head_estimate`], computed once: every offer and take weighs the delivery.
    head_estimate: usize,
    /// Everything common to every delivery between the per-subscription headers and the body
    /// (`destination`, `message-id`, forwarded headers, `content-length`, the blank line),
    /// encoded once per version on first use and copied into each subscriber's batch.
    encoded: [OnceLock<Bytes>; 3],
}

/// A message kept in a user's offline inbox (`inbox.destinations`), as the hook set with
/// [`crate::BrokerBuilder::on_inbox`] is given it: for example to push it to the user's phone.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Kept {
    /// Whose inbox.
    pub user: String,
    /// The destination as the user subscribes to it (`/user/queue/notifications`).
    pub destination: String,
    /// The node-unique message id (the `message-id` it will be delivered with).
    pub message_id: u64,
    /// Its headers, in order.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Bytes,
}

/// What [`crate::BrokerBuilder::on_inbox`] keeps.
#[derive(Clone)]
pub(crate) struct InboxHook(pub(crate) std::sync::Arc<dyn Fn(Kept) + Send + Sync>);

impl std::fmt::Debug for InboxHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboxHook")
    }
}

impl Message {
    /// A message from SEND's headers (reserved ones are removed here) and body.
    pub(crate) fn new(id: u64, destination: ByteString, mut headers: Headers, body: Bytes) -> Self {
        headers.retain(|name, _| !RESERVED_SEND_HEADERS.contains(&name));
        let binary = std::str::from_utf8(&body).is_err();
        let expires = headers
            .get("expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0);
        let head_estimate = head_estimate(&destination, &headers);
        Message {
            id,
            destination,
            headers,
            body,
            binary,
            expires,
            timed: None,
            head_estimate,
            encoded: Default::default(),
        }
    }

    /// The same, timed from `routed` (`Stats::publish_to_write`).
    pub(crate) fn timed_from(mut self, routed: std::time::Instant) -> Self {
        self.timed = Some(routed);
        self
    }

    /// When it was routed, if it is one of the messages timed.
    pub(crate) fn timed(&self) -> Option<std::time::Instant> {
        self.timed
    }

    /// The same message (id, headers, body) moved to `destination`, with an
    /// `x-original-destination` header naming where it came from: a dead letter. One that
    /// `expired` loses its `expires` header (it would expire in the dead-letter queue too).
    pub(crate) fn dead_letter(&self, destination: ByteString, expired: bool) -> Message {
        let mut headers = self.headers.clone();
        if expired {
            headers.remove("expires");
        }
        headers.set("x-original-destination", self.destination.clone());
        Message::new(self.id, destination, headers, self.body.clone())
    }

    /// A copy to keep (a durable subscription's): its bytes its own, not slices of a buffer
    /// it was read into, with `expires` set to `expires` when given.
    pub(crate) fn kept(&self, expires: Option<u64>) -> Message {
        let mut headers = self.headers.clone();
        let mut body = self.body.clone();
        let mut destination = self.destination.clone();
        stompbox_codec::detach(&mut headers, &mut body, &mut [&mut destination]);
        if let Some(at) = expires {
            headers.set("expires", at.to_string());
        }
        Message::new(self.id, destination, headers, body)
    }

    /// A dead letter sent back to a queue (`destination`) by an operator: without its
    /// `x-original-destination`, its delivery count starting again.
    pub(crate) fn redriven(&self, destination: ByteString) -> Message {
        let mut headers = self.headers.clone();
        headers.remove("x-original-destination");
        Message::new(self.id, destination, headers, self.body.clone())
    }

    /// Where it was sent, as its subscribers see it (the MESSAGE's `destination` header).
    pub(crate) fn destination(&self) -> &ByteString {
        &self.destination
    }

    /// The node-unique message id (the `message-id` header).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// When the message expires, in milliseconds since the UNIX epoch.
    pub(crate) fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// Bytes the message holds in a queue: body and forwarded headers.
    pub(crate) fn size(&self) -> usize {
        self.body.len() + self.head_estimate()
    }

    /// True when the body is not valid UTF-8.
    pub(crate) fn is_binary(&self) -> bool {
        self.binary
    }

    /// The body.
    pub(crate) fn body(&self) -> &Bytes {
        &self.body
    }

    /// The forwarded headers (reserved ones removed).
    pub(crate) fn headers(&self) -> &Headers {
        &self.headers
    }

    fn common_head(&self, version: Version) -> &Bytes {
        let slot = &self.encoded[version as usize];
        slot.get_or_init(|| {
            // The estimate bounds the unescaped head: one allocation, no growth.
            let mut buf = BytesMut::with_capacity(self.head_estimate);
            let cmd = Command::Message;
            write_header("destination", &self.destination, cmd, version, &mut buf);
            write_header(
                "message-id",
                itoa::Buffer::new().format(self.id),
                cmd,
                version,
                &mut buf,
            );
            for (name, value) in self.headers.iter() {
                write_header(name, value, cmd, version, &mut buf);
            }
            write_body_head(self.body.len(), &mut buf);
            buf.freeze()
        })
    }

    /// An upper bound of the head size, for outbox accounting before encoding.
    fn head_estimate(&self) -> usize {
        self.head_estimate
    }
}

/// An upper bound of a MESSAGE's head size without the per-subscription headers.
fn head_estimate(destination: &str, headers: &Headers) -> usize {
    let headers: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    // "MESSAGE\n" + destination + message-id + content-length + blank line + NUL.
    8 + 13 + destination.len() + 32 + 36 + headers
}

/// One message for one subscription: the only per-subscriber bytes are the `subscription` id
/// and, for acknowledged deliveries, the `ack` and `redelivered` headers.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) message: Arc<Message>,
    pub(crate) subscription: ByteString,
    /// The node-unique delivery tag: set by a queue for each of its deliveries, and by the
    /// session for topic deliveries on client-ack subscriptions. ACK/NACK name it.
    pub(crate) tag: Option<u64>,
    /// Write `ack:<tag>` (STOMP 1.2 sessions, client ack modes).
    pub(crate) ack_header: bool,
    /// The message was delivered before and came back: write `redelivered:true`.
    pub(crate) redelivered: bool,
    /// A queue's delivery: how many times the message was delivered before. Written as
    /// `redelivered:true|false` (always, as RabbitMQ does for queues) and `x-delivery-count`.
    pub(crate) delivery_count: Option<u32>,
}

impl Delivery {
    /// A plain delivery (no tag, first delivery).
    pub(crate) fn new(message: Arc<Message>, subscription: ByteString) -> Self {
        Delivery {
            message,
            subscription,
            tag: None,
            ack_header: false,
            redelivered: false,
            delivery_count: None,
        }
    }

    /// Bytes this delivery accounts for in an outbox (close to its encoded size).
    pub(crate) fn weight(&self) -> usize {
        // 14: "subscription:\n"; 44: "ack:<u64>\n" and "redelivered:true\n"; 1: the EOL that may
        // follow the NUL.
        self.message.head_estimate()
            + self.subscription.len()
            + 14
            + 44
            + 1
            + self.message.body.len()
    }

    /// Appends the MESSAGE frame, escaped for `version`.
    #[cfg(test)]
    pub(crate) fn encode(&self, version: Version, dst: &mut BytesMut) {
        let mut prefix = BytesMut::new();
        encode_prefix(&self.subscription, version, &mut prefix);
        self.encode_after(&prefix, version, dst);
    }

    /// Appends the MESSAGE frame whose start, [`encode_prefix`] of this delivery's
    /// subscription, is already encoded: a session's writer keeps it for consecutive deliveries
    /// of one subscription instead of escaping the id again for each.
    pub(crate) fn encode_after(&self, prefix: &[u8], version: Version, dst: &mut BytesMut) {
        let head = self.message.common_head(version);
        dst.reserve(prefix.len() + head.len() + self.message.body.len() + 48);
        dst.extend_from_slice(prefix);
        if let (Some(tag), true, Version::V1_2) = (self.tag, self.ack_header, version) {
            write_header(
                "ack",
                itoa::Buffer::new().format(tag),
                Command::Message,
                version,
                dst,
            );
        }
        match self.delivery_count {
            Some(count) => {
                // A message read back after a crash may have been delivered: `redelivered`
                // although its count of known deliveries is 0.
                let redelivered = if count > 0 || self.redelivered {
                    "true"
                } else {
                    "false"
                };
                write_header("redelivered", redelivered, Command::Message, version, dst);
                let mut digits = itoa::Buffer::new();
                let count = digits.format(count);
                write_header("x-delivery-count", count, Command::Message, version, dst);
            }
            None if self.redelivered => {
                write_header("redelivered", "true", Command::Message, version, dst);
            }
            None => {}
        }
        dst.extend_from_slice(head);
        dst.extend_from_slice(&self.message.body);
        dst.extend_from_slice(b"\0");
    }
}

/// The start of every MESSAGE to `subscription`: the command line and the `subscription`
/// header, escaped for `version`.
pub(crate) fn encode_prefix(subscription: &str, version: Version, dst: &mut BytesMut) {
    write_command(Command::Message, dst);
    write_header("subscription", subscription, Command::Message, version, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_stripped_and_body_shared() {
        let headers: Headers = [
            ("destination", "/topic/a"),
            ("receipt", "r1"),
            ("transaction", "tx"),
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("x-user", "a:b"),
        ]
        .into_iter()
        .collect();
        let body = Bytes::from_static(b"hello");
        let msg = Arc::new(Message::new(7, "/topic/a".into(), headers, body.clone()));
        assert_eq!(msg.body().as_ptr(), body.as_ptr(), "the body is not copied");
        let mut d = Delivery::new(msg, "s-1".into());
        let mut out = BytesMut::new();
        d.encode(Version::V1_2, &mut out);
        assert_eq!(
            &out[..],
            &b"MESSAGE\nsubscription:s-1\ndestination:/topic/a\nmessage-id:7\ncontent-type:text/plain\nx-user:a\\cb\ncontent-length:5\n\nhello\0"[..]
        );
        assert!(d.weight() >= out.len());
        out.clear();
        d.encode(Version::V1_0, &mut out);
        assert!(out.starts_with(b"MESSAGE\nsubscription:s-1\n"));
        assert!(out.windows(9).any(|w| w == b"x-user:a:"));
        // Acknowledged deliveries: `ack` on 1.2 only, `redelivered` on every version.
        d.tag = Some(42);
        d.ack_header = true;
        d.redelivered = true;
        for (version, prefix) in [
            (
                Version::V1_2,
                &b"MESSAGE\nsubscription:s-1\nack:42\nredelivered:true\ndestination:"[..],
            ),
            (
                Version::V1_1,
                &b"MESSAGE\nsubscription:s-1\nredelivered:true\ndestination:"[..],
            ),
        ] {
            out.clear();
            d.encode(version, &mut out);
            assert!(out.starts_with(prefix), "{version}: {out:?}");
            assert!(d.weight() >= out.len());
        }
    }

    #[test]
    fn expires_is_parsed_and_dead_letters_keep_id_and_body() {
        let headers: Headers = [("expires", "1700000000000")].into_iter().collect();
        let body = Bytes::from_static(b"x");
        let m = Message::new(3, "/queue/a".into(), headers, body.clone());
        assert_eq!(m.expires(), Some(1_700_000_000_000));
        let d = m.dead_letter("/queue/dlq.a".into(), false);
        assert_eq!((d.id(), d.expires()), (3, Some(1_700_000_000_000)));
        assert_eq!(d.body().as_ptr(), body.as_ptr());
        assert_eq!(d.headers.get("x-original-destination"), Some("/queue/a"));
        for never in ["0", "soon", ""] {
            let headers: Headers = [("expires", never)].into_iter().collect();
            let m = Message::new(1, "/queue/a".into(), headers, Bytes::new());
            assert_eq!(m.expires(), None, "{never:?}");
        }
    }

    #[test]
    fn binary_bodies_are_flagged() {
        let m = Message::new(
            1,
            "/topic/a".into(),
            Headers::new(),
            Bytes::from_static(b"\xff"),
        );
        assert!(m.is_binary());
        let m = Message::new(
            1,
            "/topic/a".into(),
            Headers::new(),
            Bytes::from_static(b"ok"),
        );
        assert!(!m.is_binary());
    }
}
