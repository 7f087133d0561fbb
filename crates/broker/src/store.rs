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
//! A queue longer than its memory bounds (`queues.max_messages`, `max_bytes`, the node's
//! `max_total_bytes`) keeps its tail in the store only ("paged"): a persistent message that does
//! not fit in memory goes to disk instead of being refused, every message after it joins the
//! tail on disk too (a transient one as a record that a restart discards), and the queue reads
//! the tail back ([`Store::read`]) a page at a time as its consumers drain the part in memory.
//!
//! At start-up the broker walks the store once ([`Store::scan`]) to learn each queue's stored
//! messages, before any session is served, and reads them back a page at a time as above; those
//! from a store that was not closed cleanly go out `redelivered` (a message delivered before a
//! crash may have been seen by its consumer).
//!
//! Each message is one record under (queue name, position in the queue): flags (transient), its
//! delivery count, its message id, then the message as a STOMP `SEND` frame (the codec's own
//! encoding, escaping included).

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

/// A stored record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its position in its queue (increasing in the order messages joined it).
    pub position: u64,
    /// What [`Store::put`] was given.
    pub record: Bytes,
}

/// Resolves once a write and every write before it are durable.
pub type Synced = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A durable store, set with [`crate::BrokerBuilder::store`]. [`Store::put`] and
/// [`Store::remove`] are called on sessions' tasks under a queue's lock: they must not wait
/// (hand the write to a writer thread). [`Store::read`] is called there too, when a queue's
/// tail on disk is read back: a page of records, from the engine's cache or one read.
pub trait Store: Send + Sync + 'static {
    /// Writes (or overwrites) the record at `position` in `queue`; returns the write's
    /// sequence number.
    fn put(&self, queue: &str, position: u64, record: Bytes) -> u64;
    /// Removes the record at `position` in `queue`; returns the write's sequence number.
    fn remove(&self, queue: &str, position: u64) -> u64;
    /// Resolves once write `seq` (and so every earlier one) is durable, or the store failed.
    fn synced(&self, seq: u64) -> Synced;
    /// Calls `visit(queue, position, record)` for every record, grouped by queue and in
    /// position order within one. Called once, at start-up, before any write.
    fn scan(&self, visit: &mut dyn FnMut(&str, u64, &[u8])) -> Result<(), StoreError>;
    /// Up to `limit` records of `queue` after `position`, in order. Every durable write is
    /// seen; a write not yet synced may not be.
    fn read(&self, queue: &str, after: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError>;
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

/// The record flag of a transient message: kept on disk only because it is in a queue's tail
/// there, discarded at start-up.
const TRANSIENT: u8 = 1;
/// flags (1) + delivery count (4) + message id (8).
const RECORD_HEAD: usize = 13;

/// The record of `message` delivered `deliveries` times: flags, the count and the message id
/// (big-endian), then the message as a SEND frame.
pub(crate) fn encode_record(message: &Message, deliveries: u32, transient: bool) -> Bytes {
    let mut frame = Frame::new(Command::Send);
    frame.headers = message.headers().clone();
    frame
        .headers
        .set("destination", message.destination().clone());
    frame.body = message.body().clone();
    let mut buf = BytesMut::with_capacity(RECORD_HEAD + stompbox_codec::encoded_len_hint(&frame));
    buf.put_u8(if transient { TRANSIENT } else { 0 });
    buf.put_u32(deliveries);
    buf.put_u64(message.id());
    stompbox_codec::encode(&frame, Version::V1_2, &mut buf);
    buf.freeze()
}

/// What the start-up walk needs of a record without decoding its message: (transient, message
/// id); `None` for a record this version cannot read.
pub(crate) fn record_head(record: &[u8]) -> Option<(bool, u64)> {
    let mut head = record.get(..RECORD_HEAD)?;
    let flags = head.get_u8();
    let _deliveries = head.get_u32();
    Some((flags & TRANSIENT != 0, head.get_u64()))
}

/// A record read back: its message (with its original id), delivery count and flag.
pub(crate) struct Decoded {
    pub(crate) message: Message,
    pub(crate) deliveries: u32,
    pub(crate) transient: bool,
}

/// Decodes what [`encode_record`] wrote; `None` for a record this version cannot read.
pub(crate) fn decode_record(record: &Bytes) -> Option<Decoded> {
    if record.len() < RECORD_HEAD {
        return None;
    }
    let mut record = record.clone();
    let flags = record.get_u8();
    let deliveries = record.get_u32();
    let id = record.get_u64();
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
        transient: flags & TRANSIENT != 0,
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

    fn note(&self, seq: u64) -> u64 {
        self.last
            .set(Some(self.last.get().map_or(seq, |l| l.max(seq))));
        seq
    }

    /// Stores `message` at `position` in `queue` with its delivery count; returns the write.
    pub(crate) fn put(
        &self,
        queue: &str,
        position: u64,
        message: &Message,
        deliveries: u32,
        transient: bool,
    ) -> u64 {
        let record = encode_record(message, deliveries, transient);
        self.note(self.store.put(queue, position, record))
    }

    /// Removes the record at `position` in `queue`.
    pub(crate) fn remove(&self, queue: &str, position: u64) {
        self.note(self.store.remove(queue, position));
    }

    /// The store itself, to read a queue's tail back.
    pub(crate) fn store(&self) -> &'a dyn Store {
        self.store
    }
}

/// A shared store handle.
pub(crate) type SharedStore = Arc<dyn Store>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_escapes_binary_bodies_counts_and_flags() {
        let headers: Headers = [
            ("persistent", "true"),
            ("x-odd", "a:b\nc\\d"),
            ("expires", "1700000000000"),
        ]
        .into_iter()
        .collect();
        let body = Bytes::from_static(b"\0binary\xff\n");
        let message = Message::new(42, "/queue/jobs".into(), headers.clone(), body.clone());
        for transient in [false, true] {
            let record = encode_record(&message, 3, transient);
            assert_eq!(record_head(&record), Some((transient, 42)));
            let decoded = decode_record(&record).expect("decodes");
            assert_eq!((decoded.deliveries, decoded.transient), (3, transient));
            let m = decoded.message;
            assert_eq!((m.id(), &**m.destination()), (42, "/queue/jobs"));
            assert_eq!(m.body(), &body);
            assert_eq!(m.headers().get("x-odd"), Some("a:b\nc\\d"));
            assert_eq!(m.expires(), Some(1_700_000_000_000));
            assert!(is_persistent(m.headers()));
        }
        assert!(decode_record(&Bytes::from_static(b"\0\0")).is_none());
        assert!(record_head(b"\0\0").is_none());
        assert!(decode_record(&Bytes::from_static(b"\0\0\0\0\0\0\0\0\0\0\0\0\0junk")).is_none());
    }
}
