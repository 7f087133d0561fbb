//! What a session has to write, batched: consecutive frames that share the text/binary flag go
//! out as one [`Outbound`], up to [`MAX_BATCH_BYTES`].

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use stompbox_codec::{ByteString, Frame, Version, encode};

use crate::Outbound;
use crate::message::{Delivery, encode_prefix};
use crate::stats::{HEARTBEAT, Traffic, frame_index};

/// Largest batch built from several frames: big enough to amortise a write per busy tick, small
/// enough that one WebSocket message stays cheap for browsers to parse. A single larger frame is
/// sent whole.
pub(crate) const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Encoded frames waiting for the sink. Empty and allocation-free when idle.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    chunks: VecDeque<(BytesMut, bool)>,
    len: usize,
    /// End every frame with an EOL after its NUL (`Config::frame_trailing_eol`).
    trailing_eol: bool,
    /// The subscription of the last delivery and its encoded [`encode_prefix`], reused while
    /// deliveries of one subscription follow one another (the usual case): the id is escaped
    /// once per run, not once per delivery. The session's version never changes.
    prefix: Option<(ByteString, BytesMut)>,
    /// The session's frames and bytes, for the node's counters.
    traffic: Arc<Traffic>,
}

impl Writer {
    /// An empty writer; `trailing_eol` ends every frame with `NUL EOL` instead of `NUL`.
    pub(crate) fn new(trailing_eol: bool) -> Self {
        Writer {
            trailing_eol,
            ..Writer::default()
        }
    }

    /// The frame just appended ends here: its trailing EOL, when configured. In the same
    /// batch, so no reader sees it as a separate heart-beat message.
    fn end_frame(&mut self) {
        if self.trailing_eol
            && let Some((buf, _)) = self.chunks.back_mut()
        {
            buf.extend_from_slice(b"\n");
        }
    }

    /// The batch to append to; a new one has room for `expected` bytes (up to
    /// [`MAX_BATCH_BYTES`]), so a batch of many deliveries is allocated once instead of growing
    /// by doubling.
    fn buf_for(&mut self, binary: bool, expected: usize) -> &mut BytesMut {
        let reuse = matches!(self.chunks.back(), Some((buf, b)) if *b == binary && buf.len() < MAX_BATCH_BYTES);
        if !reuse {
            let capacity = expected.min(MAX_BATCH_BYTES);
            self.chunks
                .push_back((BytesMut::with_capacity(capacity), binary));
        }
        &mut self.chunks.back_mut().expect("just ensured").0
    }

    fn appended(&mut self, before: usize) {
        let after = self.chunks.back().map_or(0, |(b, _)| b.len());
        self.len += after - before;
    }

    fn current_len(&self, binary: bool) -> usize {
        match self.chunks.back() {
            Some((buf, b)) if *b == binary && buf.len() < MAX_BATCH_BYTES => buf.len(),
            _ => 0,
        }
    }

    /// Appends a frame built by the session (CONNECTED, RECEIPT, ERROR).
    pub(crate) fn push_frame(&mut self, frame: &Frame, version: Version) {
        let binary = std::str::from_utf8(&frame.body).is_err();
        let before = self.current_len(binary);
        encode(frame, version, self.buf_for(binary, 0));
        self.end_frame();
        self.appended(before);
        self.traffic.frame_out(frame_index(frame.command));
    }

    /// Appends a MESSAGE; about `expected` bytes (an upper bound), this one included, are
    /// still to come in this batch.
    pub(crate) fn push_delivery(&mut self, delivery: &Delivery, version: Version, expected: usize) {
        let binary = delivery.message.is_binary();
        let before = self.current_len(binary);
        let (id, prefix) = match self.prefix.take() {
            Some((id, prefix)) if id == delivery.subscription => (id, prefix),
            other => {
                let mut prefix = other.map(|(_, p)| p).unwrap_or_default();
                prefix.clear();
                encode_prefix(&delivery.subscription, version, &mut prefix);
                (delivery.subscription.clone(), prefix)
            }
        };
        delivery.encode_after(&prefix, version, self.buf_for(binary, expected));
        self.end_frame();
        self.prefix = Some((id, prefix));
        self.appended(before);
        (self.traffic).frame_out(frame_index(stompbox_codec::Command::Message));
    }

    /// Appends a heart-beat.
    pub(crate) fn push_eol(&mut self) {
        let before = self.current_len(false);
        self.buf_for(false, 1).extend_from_slice(b"\n");
        self.appended(before);
        self.traffic.frame_out(HEARTBEAT);
    }

    /// The next batch to write.
    pub(crate) fn take(&mut self) -> Option<Outbound> {
        let (bytes, binary) = self.chunks.pop_front()?;
        self.len -= bytes.len();
        self.traffic.bytes_out(bytes.len());
        if self.chunks.is_empty() && self.chunks.capacity() > 4 {
            self.chunks = VecDeque::new();
        }
        Some(Outbound {
            bytes: bytes.freeze(),
            binary,
        })
    }

    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Forgets everything waiting (a slow consumer's backlog); what was counted stays.
    pub(crate) fn clear(&mut self) {
        let traffic = std::mem::take(&mut self.traffic);
        *self = Writer::new(self.trailing_eol);
        self.traffic = traffic;
    }

    /// The session's frames and bytes: those it appends and hands out, and those the session
    /// reads (counted here too, so that one cell set holds both).
    pub(crate) fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }
}

#[cfg(test)]
mod tests {
    use stompbox_codec::Command;

    use super::*;

    #[test]
    fn deliveries_of_alternating_subscriptions_name_their_own() {
        use std::sync::Arc;

        use stompbox_codec::Headers;

        use crate::message::Message;

        let message = Arc::new(Message::new(
            1,
            "/topic/a".into(),
            Headers::new(),
            bytes::Bytes::from_static(b"x"),
        ));
        let mut w = Writer::default();
        for id in ["a:1", "a:1", "b", "a:1"] {
            w.push_delivery(&Delivery::new(message.clone(), id.into()), Version::V1_2, 0);
        }
        let batch = w.take().unwrap();
        let subscriptions: Vec<&[u8]> = batch
            .bytes
            .split(|&b| b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| f.split(|&b| b == b'\n').nth(1).unwrap())
            .collect();
        assert_eq!(
            subscriptions,
            [
                &b"subscription:a\\c1"[..],
                b"subscription:a\\c1",
                b"subscription:b",
                b"subscription:a\\c1"
            ]
        );
    }

    #[test]
    fn a_trailing_eol_ends_every_frame_in_its_own_batch() {
        let mut w = Writer::new(true);
        let text = Frame::new(Command::Receipt).with_header("receipt-id", "1");
        let bin = Frame::new(Command::Error).with_body(&b"\xff"[..]);
        w.push_frame(&text, Version::V1_2);
        w.push_frame(&bin, Version::V1_2);
        w.push_eol();
        assert_eq!(w.len(), 24 + 27 + 1);
        let a = w.take().unwrap();
        assert_eq!(&a.bytes[..], b"RECEIPT\nreceipt-id:1\n\n\0\n");
        let b = w.take().unwrap();
        assert!(b.binary && b.bytes.ends_with(b"\xff\0\n"), "{b:?}");
        assert_eq!(
            &w.take().unwrap().bytes[..],
            b"\n",
            "a heart-beat is not a frame"
        );
        // A frame that fills a batch keeps its EOL.
        let big = Frame::new(Command::Receipt).with_body(vec![b'x'; MAX_BATCH_BYTES]);
        w.push_frame(&big, Version::V1_2);
        w.push_frame(&text, Version::V1_2);
        assert!(w.take().unwrap().bytes.ends_with(b"\0\n"));
        assert_eq!(
            &w.take().unwrap().bytes[..],
            b"RECEIPT\nreceipt-id:1\n\n\0\n"
        );
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn batches_by_flag_in_order() {
        let mut w = Writer::default();
        let text = Frame::new(Command::Receipt).with_header("receipt-id", "1");
        let bin = Frame::new(Command::Error).with_body(&b"\xff"[..]);
        w.push_frame(&text, Version::V1_2);
        w.push_eol();
        w.push_frame(&bin, Version::V1_2);
        w.push_frame(&text, Version::V1_2);
        assert_eq!(w.len(), 23 + 1 + 26 + 23);
        let a = w.take().unwrap();
        assert_eq!(
            (&a.bytes[..], a.binary),
            (&b"RECEIPT\nreceipt-id:1\n\n\0\n"[..], false)
        );
        assert!(w.take().unwrap().binary);
        assert!(!w.take().unwrap().binary);
        assert!(w.take().is_none());
        assert_eq!(w.len(), 0);
    }
}
