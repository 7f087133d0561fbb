//! The seam with a durable store for persistent queue messages (the `stompbox-store` crate),
//! without the core knowing how it writes.
//!
//! A SEND with `persistent:true` to a `/queue` of this node is written to the store as it joins
//! the queue, and whatever takes it out of the queue for good (ACK, expiry, a drop at the bound,
//! a move to dead letters) removes it; a NACK rewrites it with its delivery count. None of those
//! calls waits: each returns a write sequence number, and the session that made it waits for
//! [`Store::synced`] only before its next RECEIPT, so a RECEIPT means "on disk" while a producer
//! without receipts is never slowed down by the disk. The store commits many writes per sync
//! (group commit) and in the order they were made, so waiting for the last write covers the
//! earlier ones.
//!
//! At start-up the broker reads back every stored message ([`Store::load`]) into its queue,
//! marked `redelivered` when the store was not closed cleanly (a message delivered before a
//! crash may have been seen by its consumer), before any session is served.
//!
//! Each message is one record under (queue name, message id): its delivery count, then the
//! message as a STOMP `SEND` frame (the codec's own encoding, escaping included).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use stompbox_codec::{ByteString, Command, Decoder, Frame, Headers, Item, Limits, Version};

use crate::message::Message;

/// A store failed to write or sync: what was written since its last sync may be lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("message store failed: {reason}")]
pub struct StoreError {
    /// What the storage engine said.
    pub reason: String,
}

/// A stored message as read back at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The queue's name (after `/queue/`).
    pub queue: String,
    /// The message id (unique per node, kept across restarts).
    pub id: u64,
    /// What [`Store::put`] was given.
    pub record: Bytes,
}

/// Resolves once a write and every write before it are durable.
pub type Synced = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A durable store, set with [`crate::BrokerBuilder::store`]. Every method but
/// [`Store::load`] and [`Store::synced`]'s future is called on sessions' tasks, sometimes under
/// a queue's lock: it must not wait (hand the write to a writer thread).
pub trait Store: Send + Sync + 'static {
    /// Writes (or overwrites) the record of message `id` in `queue`; returns the write's
    /// sequence number.
    fn put(&self, queue: &str, id: u64, record: Bytes) -> u64;
    /// Removes the record of message `id` in `queue`; returns the write's sequence number.
    fn remove(&self, queue: &str, id: u64) -> u64;
    /// Resolves once write `seq` (and so every earlier one) is durable, or the store failed.
    fn synced(&self, seq: u64) -> Synced;
    /// Every stored record, grouped by queue and in id order within a queue. Called once,
    /// before any write.
    fn load(&self) -> Result<Vec<StoredRecord>, StoreError>;
    /// True when the store was closed by [`Store::close`] last time (or is new): then the
    /// delivery counts it holds are exact.
    fn closed_cleanly(&self) -> bool;
    /// Syncs every write and marks the store closed cleanly; called once every session of
    /// the node has ended. Writes after it are not expected.
    fn close(&self);
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// The header that makes a SEND to a `/queue` durable (ActiveMQ's and RabbitMQ's).
pub(crate) const PERSISTENT: &str = "persistent";

/// True when the message asks to be kept on disk.
pub(crate) fn is_persistent(headers: &Headers) -> bool {
    headers
        .get(PERSISTENT)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The record of `message` delivered `deliveries` times: the count (u32, big-endian), then the
/// message as a SEND frame.
pub(crate) fn encode_record(message: &Message, deliveries: u32) -> Bytes {
    let mut frame = Frame::new(Command::Send);
    frame.headers = message.headers().clone();
    frame
        .headers
        .set("destination", message.destination().clone());
    frame.body = message.body().clone();
    let mut buf = BytesMut::with_capacity(4 + stompbox_codec::encoded_len_hint(&frame));
    buf.put_u32(deliveries);
    stompbox_codec::encode(&frame, Version::V1_2, &mut buf);
    buf.freeze()
}

/// A record read back: its message (with its original id) and delivery count.
pub(crate) struct Decoded {
    pub(crate) message: Message,
    pub(crate) deliveries: u32,
}

/// Decodes what [`encode_record`] wrote; `None` for a record this version cannot read.
pub(crate) fn decode_record(id: u64, record: &Bytes) -> Option<Decoded> {
    if record.len() < 4 {
        return None;
    }
    let mut record = record.clone();
    let deliveries = record.get_u32();
    let mut decoder = Decoder::new(Limits::UNLIMITED);
    decoder.set_version(Version::V1_2);
    let mut buf = BytesMut::from(&record[..]);
    let Ok(Some(Item::Frame(frame))) = decoder.decode(&mut buf) else {
        return None;
    };
    let mut headers = frame.headers;
    let destination: ByteString = headers.remove("destination")?;
    Some(Decoded {
        message: Message::new(id, destination, headers, frame.body),
        deliveries,
    })
}

/// The store of a node, as the queues use it: where writes go and the highest sequence number
/// an operation wrote, for the session to wait on before its RECEIPT.
#[derive(Clone, Copy)]
pub(crate) struct Writes<'a> {
    store: &'a dyn Store,
    last: &'a std::cell::Cell<Option<u64>>,
}

impl<'a> Writes<'a> {
    pub(crate) fn new(store: &'a dyn Store, last: &'a std::cell::Cell<Option<u64>>) -> Self {
        Writes { store, last }
    }

    fn note(&self, seq: u64) {
        self.last
            .set(Some(self.last.get().map_or(seq, |l| l.max(seq))));
    }

    /// Stores `message` in `queue` with its delivery count.
    pub(crate) fn put(&self, queue: &str, message: &Message, deliveries: u32) {
        let record = encode_record(message, deliveries);
        self.note(self.store.put(queue, message.id(), record));
    }

    /// Removes `message` from `queue`.
    pub(crate) fn remove(&self, queue: &str, message: &Message) {
        self.note(self.store.remove(queue, message.id()));
    }
}

/// A shared store handle.
pub(crate) type SharedStore = Arc<dyn Store>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_escapes_binary_bodies_and_counts() {
        let headers: Headers = [
            ("persistent", "true"),
            ("x-odd", "a:b\nc\\d"),
            ("expires", "1700000000000"),
        ]
        .into_iter()
        .collect();
        let body = Bytes::from_static(b"\0binary\xff\n");
        let message = Message::new(42, "/queue/jobs".into(), headers.clone(), body.clone());
        let record = encode_record(&message, 3);
        let decoded = decode_record(42, &record).expect("decodes");
        assert_eq!(decoded.deliveries, 3);
        let m = decoded.message;
        assert_eq!((m.id(), &**m.destination()), (42, "/queue/jobs"));
        assert_eq!(m.body(), &body);
        assert_eq!(m.headers().get("x-odd"), Some("a:b\nc\\d"));
        assert_eq!(m.expires(), Some(1_700_000_000_000));
        assert!(is_persistent(m.headers()));
        assert!(decode_record(1, &Bytes::from_static(b"\0\0")).is_none());
        assert!(decode_record(1, &Bytes::from_static(b"\0\0\0\0junk")).is_none());
    }
}
