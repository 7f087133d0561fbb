//! The mapping between STOMP messages and AMQP ones, with no I/O: names of exchanges and
//! queues, a [`Relayed`] message as an AMQP publish, and a delivery back as a [`Relayed`].
//!
//! | STOMP                      | AMQP                                                        |
//! |----------------------------|-------------------------------------------------------------|
//! | `/topic/a.b`               | exchange `<prefix>.topic` (topic), routing key `a.b`        |
//! | SUBSCRIBE `/topic/a.*`     | binding `a.*` of the node queue to `<prefix>.topic`         |
//! | `/user/{alice}/queue/x`    | exchange `<prefix>.user` (direct), routing key `alice`,     |
//! |                            | header `x-stompbox-destination: /queue/x`                   |
//! | SUBSCRIBE `/user/queue/x`  | binding `alice` of the node queue to `<prefix>.user`        |
//! | `/queue/jobs`              | durable queue `<prefix>.queue.jobs` (default exchange);     |
//! |                            | SUBSCRIBE: one consumer, its own channel, `basic.qos`       |
//! |                            | quorum: `x-delivery-limit` = `queues.max_deliveries`,       |
//! |                            | dead letters to `<prefix>.queue.<dead_letter_prefix>jobs`   |
//! | SUBSCRIBE `/topic/a.*`     | durable queue `<prefix>.durable.<user>.<name>` bound `a.*`  |
//! | with `durable:true`        | to `<prefix>.topic`; its destination kept in the one message |
//! |                            | of `<prefix>.durable-def.<user>.<name>`                     |
//! | `/user/{bob}/queue/n`, a   | exchange `<prefix>.inbox` (direct), routing key             |
//! | destination with an inbox  | `<len(bob)>:bob/queue/n`; unroutable (bob subscribed        |
//! |                            | nowhere) → `<prefix>.inbox-keep` → durable classic queue    |
//! |                            | `<prefix>.inbox.bob./queue/n`, bounded                      |
//! | SUBSCRIBE there            | binding of that key to the node queue; the inbox drained    |
//! | `persistent:true`          | delivery mode 2                                             |
//! | headers                    | AMQP headers (long strings); `app-id` = the sender's node id |

use std::borrow::Cow;

use bytes::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use stompbox_broker::{HeldQueue, Interest, Relayed, Target};
use stompbox_codec::Headers;

use crate::QueueType;

/// The content type of an AMQP message that carries several `/topic` messages of one
/// routing key (`batch`, `unbatch`): each a STOMP SEND frame (headers, then the body with its
/// `content-length`), one after the other.
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/x-stompbox-batch";
/// How many messages a batch carries (an AMQP header, for people reading queues).
pub(crate) const BATCH_HEADER: &str = "x-stompbox-batch";

/// Headers numbering what a node publishes ([`Stamp`]), read by the receiving node to drop
/// copies published again after a broken link. Numbers, so never taken for STOMP headers.
pub(crate) const SEQ_HEADER: &str = "x-stompbox-seq";
pub(crate) const INCARNATION_HEADER: &str = "x-stompbox-incarnation";

/// Who published a message and its number: the sending node's incarnation (chosen when its
/// relay starts) and the message's sequence number (a batch: its first message's; the others
/// follow one by one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
}

impl Stamp {
    fn write(self, table: &mut FieldTable) {
        table.insert(
            INCARNATION_HEADER.into(),
            AMQPValue::LongLongInt(self.incarnation as i64),
        );
        table.insert(SEQ_HEADER.into(), AMQPValue::LongLongInt(self.seq as i64));
    }

    /// The stamp of a delivery, when its sender wrote one.
    pub(crate) fn read(properties: &BasicProperties) -> Option<Stamp> {
        let table = properties.headers().as_ref()?;
        let number = |name: &str| match table.inner().get(name)? {
            AMQPValue::LongLongInt(n) => Some(*n as u64),
            _ => None,
        };
        Some(Stamp {
            incarnation: number(INCARNATION_HEADER)?,
            seq: number(SEQ_HEADER)?,
        })
    }
}

/// Header carrying a `/user` message's destination (after `/user`).
pub(crate) const DESTINATION_HEADER: &str = "x-stompbox-destination";
/// AMQP limits routing keys (short strings) to 255 bytes.
pub(crate) const MAX_ROUTING_KEY: usize = 255;

/// The names of everything the relay declares, from the prefix and the node id.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// Topic exchange for `/topic`.
    pub(crate) topic_exchange: String,
    /// Direct exchange for `/user`, keyed by user name.
    pub(crate) user_exchange: String,
    /// This node's queue, bound to both exchanges.
    pub(crate) node_queue: String,
    /// `<prefix>.queue.`: STOMP queues' RabbitMQ queues start with it.
    pub(crate) queue_prefix: String,
    /// `<prefix>.durable.`: durable topic subscriptions' queues start with it.
    durable_prefix: String,
    /// `<prefix>.durable-def.`: where each durable subscription's destination is kept.
    definition_prefix: String,
    /// Direct exchange for `/user` messages to destinations with an inbox, keyed by
    /// [`Names::inbox_key`]; what it cannot route goes to `keep_exchange`.
    pub(crate) inbox_exchange: String,
    /// Direct exchange binding each inbox queue with its key: the inbox exchange's alternate.
    pub(crate) keep_exchange: String,
    /// `<prefix>.inbox.`: users' inbox queues start with it.
    inbox_prefix: String,
    /// The AMQP connection's `connection_name`, to find it in `rabbitmqctl list_connections`.
    pub(crate) connection_name: String,
}

impl Names {
    pub(crate) fn new(prefix: &str, node_id: &str) -> Names {
        Names {
            topic_exchange: format!("{prefix}.topic"),
            user_exchange: format!("{prefix}.user"),
            node_queue: format!("{prefix}.node.{node_id}"),
            queue_prefix: format!("{prefix}.queue."),
            durable_prefix: format!("{prefix}.durable."),
            definition_prefix: format!("{prefix}.durable-def."),
            inbox_exchange: format!("{prefix}.inbox"),
            keep_exchange: format!("{prefix}.inbox-keep"),
            inbox_prefix: format!("{prefix}.inbox."),
            connection_name: format!("stompbox-relay {prefix} {node_id}"),
        }
    }

    /// The exchange and routing key of a binding.
    pub(crate) fn binding<'a>(&'a self, interest: &'a Interest) -> (&'a str, Cow<'a, str>) {
        match interest {
            Interest::Topic(pattern) => (&self.topic_exchange, Cow::Borrowed(pattern)),
            Interest::User(user) => (&self.user_exchange, Cow::Borrowed(user)),
            Interest::Inbox { user, destination } => (
                &self.inbox_exchange,
                Cow::Owned(inbox_key(user, destination)),
            ),
        }
    }

    /// The exchange and routing key of a publish (a queue's: the default exchange, the
    /// queue's name).
    pub(crate) fn route<'a>(&'a self, target: &'a Target) -> (&'a str, Cow<'a, str>) {
        match target {
            Target::Topic(key) => (&self.topic_exchange, Cow::Borrowed(key)),
            Target::User { user, .. } => (&self.user_exchange, Cow::Borrowed(user)),
            Target::Inbox { user, destination } => (
                &self.inbox_exchange,
                Cow::Owned(inbox_key(user, destination)),
            ),
            Target::Queue(name) => ("", Cow::Owned(self.queue(name))),
        }
    }

    /// The durable RabbitMQ queue of `/queue/<name>`.
    pub(crate) fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.queue_prefix)
    }

    /// The RabbitMQ queues of `user`'s durable subscription `name`: the one that keeps its
    /// messages, and the one whose single message is the topic pattern feeding it. The user
    /// is written with `%` and `.` escaped, so no two (user, name) pairs share a queue.
    pub(crate) fn durable(&self, user: &str, name: &str) -> (String, String) {
        let user = user.replace('%', "%25").replace('.', "%2E");
        (
            format!("{}{user}.{name}", self.durable_prefix),
            format!("{}{user}.{name}", self.definition_prefix),
        )
    }

    /// The RabbitMQ queue (the longest of its names) of what `held` names, to check AMQP's
    /// limit of 255 bytes before it is declared.
    pub(crate) fn longest(&self, held: &HeldQueue) -> String {
        match held {
            HeldQueue::Queue(name) => self.queue(name),
            HeldQueue::Durable { user, name, .. } => self.durable(user, name).1,
            HeldQueue::Inbox { user, destination } => self.inbox(user, destination),
        }
    }

    /// The RabbitMQ queue of `user`'s inbox for `/user<destination>` (user escaped as for
    /// [`Names::durable`]).
    pub(crate) fn inbox(&self, user: &str, destination: &str) -> String {
        let user = user.replace('%', "%25").replace('.', "%2E");
        format!("{}{user}.{destination}", self.inbox_prefix)
    }
}

/// The routing key of `user`'s messages to `/user<destination>` in the inbox exchange: the
/// user's length first, so no two (user, destination) pairs share one.
pub(crate) fn inbox_key(user: &str, destination: &str) -> String {
    format!("{}:{user}{destination}", user.len())
}

/// The user of an inbox routing key ([`inbox_key`]).
fn inbox_user(key: &str) -> Option<&str> {
    let (len, rest) = key.split_once(':')?;
    rest.get(..len.parse().ok()?)
}

/// How the RabbitMQ queue of a STOMP queue is declared: the relay's queue type and the
/// broker's `queues.max_deliveries` and `queues.dead_letter_prefix`, so a poison message ends
/// in the same `/queue/dlq.<name>` as on a single node.
#[derive(Clone, Debug)]
pub(crate) struct QueueShape {
    pub(crate) queue_type: QueueType,
    /// 0: no limit.
    pub(crate) max_deliveries: u32,
    /// Empty: dead letters are dropped.
    pub(crate) dead_letter_prefix: String,
    /// The broker's `durable` bounds, for durable subscriptions' queues.
    pub(crate) durable: stompbox_broker::DurableConfig,
    /// The broker's `inbox` bounds, for users' inbox queues.
    pub(crate) inbox: stompbox_broker::InboxConfig,
}

impl QueueShape {
    /// The `queue.declare` arguments of `/queue/<name>`'s RabbitMQ queue, and the name of its
    /// dead-letter STOMP queue, which must be declared first (RabbitMQ drops a dead letter
    /// routed to a queue that does not exist).
    pub(crate) fn arguments(&self, names: &Names, name: &str) -> (FieldTable, Option<String>) {
        let mut arguments = FieldTable::default();
        if self.queue_type == QueueType::Classic {
            return (arguments, None);
        }
        arguments.insert("x-queue-type".into(), long("quorum"));
        if self.max_deliveries == 0 {
            return (arguments, None);
        }
        // RabbitMQ counts returns, not deliveries: a message is dropped or dead-lettered when
        // it comes back with `limit` returns behind it, i.e. after `limit` deliveries.
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongUInt(self.max_deliveries - 1),
        );
        let prefix = &self.dead_letter_prefix;
        if prefix.is_empty() || name.starts_with(prefix.as_str()) {
            // No dead-letter exchange: RabbitMQ drops it, as the node does (and no chains).
            return (arguments, None);
        }
        let dead = format!("{prefix}{name}");
        arguments.insert("x-dead-letter-exchange".into(), long(""));
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            long(&names.queue(&dead)),
        );
        (arguments, Some(dead))
    }
}

impl QueueShape {
    /// The `queue.declare` arguments of a durable subscription's queue: the broker's bounds
    /// of one (`durable.*`, see [`bounded`]), and, as a quorum queue,
    /// `queues.max_deliveries` (then dropped: a subscription has no dead letters).
    pub(crate) fn durable_arguments(&self) -> FieldTable {
        let limits = &self.durable;
        let mut arguments = bounded(limits.max_messages, limits.max_bytes, limits.max_age);
        if self.queue_type == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), long("quorum"));
            if self.max_deliveries > 0 {
                arguments.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongUInt(self.max_deliveries - 1),
                );
            }
        }
        arguments
    }

    /// The `queue.declare` arguments of a user's inbox queue: a classic queue (a quorum queue
    /// per user and destination would be a Raft group each) with the broker's bounds of one
    /// inbox (`inbox.*`, see [`bounded`]), removed by RabbitMQ once unused for `max_age` (all
    /// it could hold has expired by then).
    pub(crate) fn inbox_arguments(&self) -> FieldTable {
        let limits = &self.inbox;
        let mut arguments = bounded(limits.max_messages, limits.max_bytes, limits.max_age);
        if !limits.max_age.is_zero() {
            arguments.insert("x-expires".into(), millis(limits.max_age));
        }
        arguments
    }
}

/// Arguments bounding a queue as the broker bounds its own kept messages: at most
/// `messages` and `bytes`, the oldest dropped first, none older than `age` (0: no limit).
fn bounded(messages: usize, bytes: usize, age: std::time::Duration) -> FieldTable {
    let mut arguments = FieldTable::default();
    let number = |n: usize| AMQPValue::LongLongInt(n.min(i64::MAX as usize) as i64);
    arguments.insert("x-max-length".into(), number(messages));
    arguments.insert("x-max-length-bytes".into(), number(bytes));
    arguments.insert("x-overflow".into(), long("drop-head"));
    if !age.is_zero() {
        arguments.insert("x-message-ttl".into(), millis(age));
    }
    arguments
}

fn millis(age: std::time::Duration) -> AMQPValue {
    AMQPValue::LongLongInt(age.as_millis().min(i64::MAX as u128) as i64)
}

/// The arguments of a durable subscription's definition queue: one message, the newest.
pub(crate) fn definition_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    arguments.insert("x-overflow".into(), long("drop-head"));
    arguments
}

/// The STOMP queue a dead letter came from, from the header RabbitMQ adds when it
/// dead-letters (`x-first-death-queue`), as `x-original-destination` (the node's header).
pub(crate) fn original_destination(names: &Names, headers: &Headers) -> Option<String> {
    let queue = headers.get("x-first-death-queue")?;
    let name = queue.strip_prefix(names.queue_prefix.as_str())?;
    Some(format!("/queue/{name}"))
}

/// The AMQP properties of a relayed message: its STOMP headers, and who sent it.
pub(crate) fn properties(message: &Relayed, node_id: &str, stamp: Stamp) -> BasicProperties {
    let mut table = FieldTable::default();
    stamp.write(&mut table);
    for (name, value) in message.headers.iter() {
        table.insert(ShortString::from(name), long(value));
    }
    let inbox = matches!(message.target, Target::Inbox { .. });
    if let Target::User { destination, .. } | Target::Inbox { destination, .. } = &message.target {
        table.insert(DESTINATION_HEADER.into(), long(destination));
    }
    let properties = BasicProperties::default()
        .with_app_id(node_id.into())
        .with_headers(table);
    // STOMP `persistent:true` (ActiveMQ's and RabbitMQ Web-STOMP's header): stored on disk;
    // and whatever may be kept in an inbox, as a node with a store keeps every inbox message.
    match (message.headers.get("persistent"), inbox) {
        (Some("true"), _) | (_, true) => properties.with_delivery_mode(2),
        _ => properties,
    }
}

/// Several `/topic` messages of the same routing key as one AMQP message: its properties and
/// body. Not for queue messages (each is confirmed and stored on its own) nor `/user` ones.
pub(crate) fn batch(
    messages: &[&Relayed],
    node_id: &str,
    stamp: Stamp,
) -> (BasicProperties, Vec<u8>) {
    use stompbox_codec::{Command, Version, write_body, write_command, write_header};
    let mut body = bytes::BytesMut::new();
    for message in messages {
        write_command(Command::Send, &mut body);
        for (name, value) in message.headers.iter() {
            // Relayed headers never hold one (the frame's own were removed); the body writes it.
            if name != "content-length" {
                write_header(name, value, Command::Send, Version::V1_2, &mut body);
            }
        }
        write_body(&message.body, &mut body);
    }
    let mut table = FieldTable::default();
    stamp.write(&mut table);
    table.insert(
        BATCH_HEADER.into(),
        AMQPValue::LongUInt(messages.len() as u32),
    );
    let properties = BasicProperties::default()
        .with_app_id(node_id.into())
        .with_content_type(BATCH_CONTENT_TYPE.into())
        .with_headers(table);
    (properties, body.to_vec())
}

/// The messages of a batch (see [`batch`]) for the topic `routing_key`; `None` when the body
/// is not a batch's.
pub(crate) fn unbatch(routing_key: &str, body: Vec<u8>) -> Option<Vec<Relayed>> {
    let mut decoder = stompbox_codec::Decoder::new(stompbox_codec::Limits::UNLIMITED);
    decoder.set_version(stompbox_codec::Version::V1_2);
    let mut buffer = bytes::BytesMut::from(&body[..]);
    let mut messages = Vec::new();
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer).ok()? {
            Some(stompbox_codec::Item::Frame(mut frame)) => {
                frame.headers.remove("content-length");
                frame.detach();
                messages.push(Relayed {
                    target: Target::Topic(routing_key.to_owned()),
                    headers: frame.headers,
                    body: frame.body,
                });
            }
            Some(stompbox_codec::Item::HeartBeat) => {}
            None => return None,
        }
    }
    Some(messages)
}

/// True if `properties` are a batch's.
pub(crate) fn is_batch(properties: &BasicProperties) -> bool {
    properties.content_type().as_ref().map(ShortString::as_str) == Some(BATCH_CONTENT_TYPE)
}

/// The STOMP headers of an AMQP message, and the `/user` destination header apart.
pub(crate) fn stomp_headers(properties: &BasicProperties) -> (Headers, Option<String>) {
    let mut headers = Headers::new();
    let mut destination = None;
    if let Some(table) = properties.headers() {
        for (name, value) in table {
            if name.as_str() == DELIVERY_COUNT {
                // RabbitMQ counts a quorum queue message's returns; the broker writes it.
                if let Some(count) = count(value) {
                    headers.push(DELIVERY_COUNT, count.to_string());
                }
                continue;
            }
            let AMQPValue::LongString(value) = value else {
                continue;
            };
            let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            if name.as_str() == DESTINATION_HEADER {
                destination = Some(value.to_owned());
            } else {
                headers.push(name.as_str().to_owned(), value.to_owned());
            }
        }
    }
    (headers, destination)
}

/// The header RabbitMQ puts on a quorum queue's redelivered messages, and the broker on every
/// queue delivery: how many times it was delivered before.
pub(crate) const DELIVERY_COUNT: &str = "x-delivery-count";

/// An AMQP integer as a count.
fn count(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// A delivery from the node queue as a message for local subscribers; `None` when it is this
/// node's own echo or not something the relay published.
pub(crate) fn relayed(
    names: &Names,
    node_id: &str,
    exchange: &str,
    routing_key: &str,
    properties: &BasicProperties,
    body: Vec<u8>,
) -> Option<Relayed> {
    if properties.app_id().as_ref().map(ShortString::as_str) == Some(node_id) {
        return None;
    }
    let (headers, destination) = stomp_headers(properties);
    let target = if exchange == names.topic_exchange {
        Target::Topic(routing_key.to_owned())
    } else if exchange == names.user_exchange {
        Target::User {
            user: routing_key.to_owned(),
            destination: destination?,
        }
    } else if exchange == names.inbox_exchange {
        Target::User {
            user: inbox_user(routing_key)?.to_owned(),
            destination: destination?,
        }
    } else {
        return None;
    };
    Some(Relayed {
        target,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Stamp = Stamp {
        incarnation: 1,
        seq: 1,
    };

    fn shape(queue_type: QueueType, max_deliveries: u32, prefix: &str) -> QueueShape {
        QueueShape {
            queue_type,
            max_deliveries,
            dead_letter_prefix: prefix.into(),
            durable: stompbox_broker::DurableConfig::default(),
            inbox: stompbox_broker::InboxConfig::default(),
        }
    }

    #[test]
    fn inbox_messages_have_a_key_and_a_queue_per_user_and_destination() {
        let names = Names::new("p", "a");
        let target = Target::Inbox {
            user: "bo.b".into(),
            destination: "/queue/n".into(),
        };
        let (exchange, key) = names.route(&target);
        assert_eq!((exchange, &*key), ("p.inbox", "4:bo.b/queue/n"));
        assert_ne!(inbox_key("a/queue", "/x"), inbox_key("a", "/queue/x"));
        assert_eq!(names.inbox("bo.b", "/queue/n"), "p.inbox.bo%2Eb./queue/n");
        let interest = Interest::Inbox {
            user: "bo.b".into(),
            destination: "/queue/n".into(),
        };
        assert_eq!(names.binding(&interest), ("p.inbox", key.clone()));
        // Kept messages are persistent; another node reads it back as a user message.
        let message = Relayed {
            target: target.clone(),
            headers: Headers::new(),
            body: Bytes::from_static(b"liked"),
        };
        let props = properties(&message, "a", ONE);
        assert_eq!(props.delivery_mode(), &Some(2));
        let back = relayed(&names, "b", exchange, &key, &props, b"liked".to_vec()).unwrap();
        assert_eq!(
            back.target,
            Target::User {
                user: "bo.b".into(),
                destination: "/queue/n".into()
            }
        );
        let inbox = stompbox_broker::InboxConfig {
            max_messages: 3,
            ..Default::default()
        };
        let shape = QueueShape {
            inbox,
            ..shape(QueueType::Quorum, 5, "dlq.")
        };
        let arguments = shape.inbox_arguments();
        assert_eq!(argument(&arguments, "x-queue-type"), None, "classic");
        assert_eq!(
            argument(&arguments, "x-max-length"),
            Some(&AMQPValue::LongLongInt(3))
        );
        let week = 7 * 24 * 3600 * 1000;
        assert_eq!(
            argument(&arguments, "x-expires"),
            Some(&AMQPValue::LongLongInt(week))
        );
    }

    #[test]
    fn durable_subscriptions_have_bounded_queues_under_unambiguous_names() {
        let names = Names::new("sb", "n1");
        assert_eq!(
            names.durable("alice", "feed"),
            (
                "sb.durable.alice.feed".into(),
                "sb.durable-def.alice.feed".into()
            )
        );
        // `a.b` + `c` and `a` + `b.c` are two subscriptions.
        assert_ne!(names.durable("a.b", "c"), names.durable("a", "b.c"));
        assert_eq!(names.durable("a.b", "c").0, "sb.durable.a%2Eb.c");
        assert_eq!(names.durable("%2E", "c").0, "sb.durable.%252E.c");
        let held = HeldQueue::Durable {
            user: "u".into(),
            name: "n".into(),
            topic: "t.#".into(),
        };
        assert_eq!(names.longest(&held), "sb.durable-def.u.n");

        let mut quorum = shape(QueueType::Quorum, 3, "dlq.");
        quorum.durable.max_messages = 7;
        quorum.durable.max_bytes = 1024;
        quorum.durable.max_age = std::time::Duration::from_secs(2);
        let arguments = quorum.durable_arguments();
        let number = |key| match argument(&arguments, key) {
            Some(AMQPValue::LongLongInt(n)) => Some(*n),
            Some(AMQPValue::LongUInt(n)) => Some(i64::from(*n)),
            _ => None,
        };
        assert_eq!(number("x-max-length"), Some(7));
        assert_eq!(number("x-max-length-bytes"), Some(1024));
        assert_eq!(number("x-message-ttl"), Some(2000));
        assert_eq!(number("x-delivery-limit"), Some(2));
        assert_eq!(argument(&arguments, "x-overflow"), Some(&long("drop-head")));
        assert_eq!(argument(&arguments, "x-dead-letter-exchange"), None);
        quorum.durable.max_age = std::time::Duration::ZERO;
        let classic = QueueShape {
            queue_type: QueueType::Classic,
            ..quorum
        };
        let arguments = classic.durable_arguments();
        assert_eq!(argument(&arguments, "x-message-ttl"), None);
        assert_eq!(argument(&arguments, "x-queue-type"), None);
        assert_eq!(argument(&arguments, "x-delivery-limit"), None);
    }

    fn argument<'a>(table: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
        table.inner().get(key)
    }

    #[test]
    fn quorum_queues_carry_the_delivery_limit_and_their_dead_letter_queue() {
        let names = Names::new("p", "a");
        let (arguments, dead) = shape(QueueType::Quorum, 3, "dlq.").arguments(&names, "jobs");
        assert_eq!(dead.as_deref(), Some("dlq.jobs"));
        assert_eq!(argument(&arguments, "x-queue-type"), Some(&long("quorum")));
        assert_eq!(
            argument(&arguments, "x-delivery-limit"),
            Some(&AMQPValue::LongUInt(2))
        );
        assert_eq!(
            argument(&arguments, "x-dead-letter-exchange"),
            Some(&long(""))
        );
        assert_eq!(
            argument(&arguments, "x-dead-letter-routing-key"),
            Some(&long("p.queue.dlq.jobs"))
        );

        // A dead-letter queue never dead-letters, an empty prefix drops, 0 never limits.
        for (shape, name) in [
            (shape(QueueType::Quorum, 3, "dlq."), "dlq.jobs"),
            (shape(QueueType::Quorum, 3, ""), "jobs"),
        ] {
            let (arguments, dead) = shape.arguments(&names, name);
            assert_eq!(dead, None);
            assert!(argument(&arguments, "x-delivery-limit").is_some());
            assert_eq!(argument(&arguments, "x-dead-letter-exchange"), None);
        }
        let (arguments, dead) = shape(QueueType::Quorum, 0, "dlq.").arguments(&names, "jobs");
        assert_eq!(
            (argument(&arguments, "x-delivery-limit"), dead),
            (None, None)
        );

        let (arguments, dead) = shape(QueueType::Classic, 3, "dlq.").arguments(&names, "jobs");
        assert_eq!((arguments.inner().len(), dead), (0, None));
    }

    #[test]
    fn a_dead_letter_names_its_original_destination() {
        let names = Names::new("p", "a");
        let mut headers = Headers::new();
        assert_eq!(original_destination(&names, &headers), None);
        headers.push("x-first-death-queue", "p.queue.jobs");
        assert_eq!(
            original_destination(&names, &headers).as_deref(),
            Some("/queue/jobs")
        );
    }

    #[test]
    fn a_message_round_trips_and_its_echo_is_dropped() {
        let names = Names::new("p", "a");
        let mut headers = Headers::new();
        headers.push("content-type", "text/plain");
        headers.push("x-k", "v");
        let message = Relayed {
            target: Target::User {
                user: "alice".into(),
                destination: "/queue/n".into(),
            },
            headers,
            body: Bytes::from_static(b"hi"),
        };
        let (exchange, key) = names.route(&message.target);
        assert_eq!((exchange, &*key), ("p.user", "alice"));
        let key = &*key;
        let props = properties(&message, "a", ONE);
        assert!(relayed(&names, "a", exchange, key, &props, b"hi".to_vec()).is_none());
        let back = relayed(&names, "b", exchange, key, &props, b"hi".to_vec()).unwrap();
        assert_eq!(back.target, message.target);
        assert_eq!(back.headers.get("x-k"), Some("v"));
        assert_eq!(back.headers.get("content-type"), Some("text/plain"));
        assert_eq!(back.headers.get(DESTINATION_HEADER), None);
        assert_eq!(&back.body[..], b"hi");
    }

    #[test]
    fn persistent_true_is_delivery_mode_2() {
        let mut headers = Headers::new();
        headers.push("persistent", "true");
        let mut message = Relayed {
            target: Target::Queue("jobs".into()),
            headers,
            body: Bytes::new(),
        };
        assert_eq!(*properties(&message, "a", ONE).delivery_mode(), Some(2));
        message.headers = Headers::new();
        assert_eq!(*properties(&message, "a", ONE).delivery_mode(), None);
    }

    #[test]
    fn topics_map_to_routing_keys_and_patterns_to_bindings() {
        let names = Names::new("p", "a");
        let topic = Target::Topic("a.b".into());
        assert_eq!(names.route(&topic), ("p.topic", "a.b".into()));
        let queue = Target::Queue("jobs".into());
        assert_eq!(names.route(&queue), ("", "p.queue.jobs".into()));
        let pattern = Interest::Topic("a.#".into());
        assert_eq!(names.binding(&pattern), ("p.topic", "a.#".into()));
        assert_eq!(names.node_queue, "p.node.a");
    }

    #[test]
    fn a_batch_carries_its_messages_as_they_were() {
        let message = |headers: &[(&str, &str)], body: &[u8]| {
            let mut h = Headers::new();
            for (n, v) in headers {
                h.push(n.to_string(), v.to_string());
            }
            Relayed {
                target: Target::Topic("scores.live".into()),
                headers: h,
                body: Bytes::copy_from_slice(body),
            }
        };
        let messages = [
            message(
                &[("content-type", "text/plain"), ("x-colon", "a:b\nc")],
                b"one",
            ),
            message(&[], b"with a \0 NUL"),
            message(&[("priority", "9")], b""),
        ];
        let refs: Vec<&Relayed> = messages.iter().collect();
        let stamp = Stamp {
            incarnation: 7,
            seq: 40,
        };
        let (properties, body) = batch(&refs, "node-a", stamp);
        assert_eq!(Stamp::read(&properties), Some(stamp));
        assert!(is_batch(&properties));
        assert_eq!(
            properties.app_id().as_ref().map(ShortString::as_str),
            Some("node-a")
        );
        let back = unbatch("scores.live", body).expect("a batch");
        assert_eq!(back.len(), 3);
        for (sent, got) in messages.iter().zip(&back) {
            assert_eq!(got.target, sent.target);
            assert_eq!(got.body, sent.body);
            let headers = |m: &Relayed| -> Vec<(String, String)> {
                m.headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            };
            assert_eq!(headers(got), headers(sent));
        }
        assert!(
            unbatch("k", b"SEND\nbroken".to_vec()).is_none(),
            "a cut batch"
        );
    }
}
