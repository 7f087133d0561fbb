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
//! | `persistent:true`          | delivery mode 2                                             |
//! | headers                    | AMQP headers (long strings); `app-id` = the sender's node id |

use std::borrow::Cow;

use bytes::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use stompbox_broker::{Interest, Relayed, Target};
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
            connection_name: format!("stompbox-relay {prefix} {node_id}"),
        }
    }

    /// The exchange and routing key of a binding.
    pub(crate) fn binding<'a>(&'a self, interest: &'a Interest) -> (&'a str, &'a str) {
        match interest {
            Interest::Topic(pattern) => (&self.topic_exchange, pattern),
            Interest::User(user) => (&self.user_exchange, user),
        }
    }

    /// The exchange and routing key of a publish (a queue's: the default exchange, the
    /// queue's name).
    pub(crate) fn route<'a>(&'a self, target: &'a Target) -> (&'a str, Cow<'a, str>) {
        match target {
            Target::Topic(key) => (&self.topic_exchange, Cow::Borrowed(key)),
            Target::User { user, .. } => (&self.user_exchange, Cow::Borrowed(user)),
            Target::Queue(name) => ("", Cow::Owned(self.queue(name))),
        }
    }

    /// The durable RabbitMQ queue of `/queue/<name>`.
    pub(crate) fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.queue_prefix)
    }
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
    if let Target::User { destination, .. } = &message.target {
        table.insert(DESTINATION_HEADER.into(), long(destination));
    }
    let properties = BasicProperties::default()
        .with_app_id(node_id.into())
        .with_headers(table);
    // STOMP `persistent:true` (ActiveMQ's and RabbitMQ Web-STOMP's header): stored on disk.
    match message.headers.get("persistent") {
        Some("true") => properties.with_delivery_mode(2),
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
        }
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
        assert_eq!(names.binding(&pattern), ("p.topic", "a.#"));
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
