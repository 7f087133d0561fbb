//! One SSE stream's events, between the task that reads its broker session (the pump) and
//! the HTTP response that writes them (the reader), which may come and go: when a client's
//! connection drops, the stream outlives it for `sse.resume_window`, still subscribed, and the
//! client's reconnect (with `Last-Event-ID`) picks it up where it left off.
//!
//! The stream keeps up to `sse.replay_buffer` events already written (the client may not have
//! received the last of them when its connection died) and up to as many waiting for a reader.
//! Beyond that the pump stops reading the session, whose outbox then fills under the broker's
//! slow-consumer policy, as for any slow client.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

/// Most bytes a reader takes at once (it takes one entry at least, whatever its size).
pub(crate) const WRITE_SIZE: usize = 64 * 1024;

use super::event::Event;

/// What the stream holds, by sequence number: `first` is the oldest entry kept, `cursor` the
/// next one for the reader; entries before `cursor` have been written.
#[derive(Debug, Default)]
pub(crate) struct State {
    entries: VecDeque<Entry>,
    first: u64,
    cursor: u64,
    /// The reader that may take entries (a generation number); `None` while the client is
    /// away.
    reader: Option<u64>,
    readers: u64,
    /// The session ended: nothing more will come.
    closed: bool,
    /// The stream was given up (its client did not come back in time, or the server stops):
    /// the pump ends the session.
    cancelled: bool,
}

/// What the pump adds.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A message's event.
    Event(Event),
    /// A comment (nothing to resume from).
    Comment(Bytes),
}

impl Entry {
    fn bytes(&self) -> &Bytes {
        match self {
            Entry::Event(event) => &event.text,
            Entry::Comment(text) => text,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Entry::Event(event) => Some(&event.id),
            Entry::Comment(_) => None,
        }
    }
}

/// One stream; shared by its pump, its current reader and the parked streams.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The stream's own event id, sent first so that a client that has seen no event yet can
    /// resume too.
    pub(crate) id: Box<str>,
    capacity: usize,
    state: watch::Sender<State>,
}

/// What the reader gets next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Bytes to write.
    Bytes(Bytes),
    /// The stream is over (the session ended and everything was written, or another reader
    /// took over).
    End,
}

impl Stream {
    /// A stream keeping `capacity` events each way, attached to its first reader (generation
    /// 0).
    pub(crate) fn new(id: impl Into<Box<str>>, capacity: usize) -> Stream {
        let state = State {
            reader: Some(0),
            readers: 1,
            ..State::default()
        };
        Stream {
            id: id.into(),
            capacity: capacity.max(1),
            state: watch::Sender::new(state),
        }
    }

    /// Adds an event, waiting while `capacity` are waiting for a reader. False when the
    /// stream was cancelled: the pump stops.
    #[cfg(test)]
    pub(crate) async fn push_event(&self, event: Event) -> bool {
        self.push(vec![Entry::Event(event)]).await
    }

    /// Adds a comment, as [`Stream::push_event`].
    #[cfg(test)]
    pub(crate) async fn push_comment(&self, text: Bytes) -> bool {
        self.push(vec![Entry::Comment(text)]).await
    }

    /// Adds `entries` together (what the session had ready), waiting while `capacity` are
    /// waiting for a reader; a batch may overshoot `capacity` by its own length.
    pub(crate) async fn push(&self, entries: Vec<Entry>) -> bool {
        let mut watch = self.state.subscribe();
        let capacity = self.capacity as u64;
        let ready = watch
            .wait_for(|s| s.cancelled || s.first + s.entries.len() as u64 - s.cursor < capacity)
            .await;
        match ready {
            Ok(state) if !state.cancelled => drop(state),
            _ => return false,
        }
        self.state.send_modify(|s| {
            s.entries.extend(entries);
            s.trim(capacity);
        });
        true
    }

    /// The session ended: the reader ends once it has written what is left.
    pub(crate) fn close(&self) {
        self.state.send_modify(|s| s.closed = true);
    }

    /// Gives the stream up: the pump ends its session.
    pub(crate) fn cancel(&self) {
        self.state.send_modify(|s| s.cancelled = true);
    }

    /// Waits until the stream is given up.
    pub(crate) async fn cancelled(&self) {
        let mut watch = self.state.subscribe();
        let _ = watch.wait_for(|s| s.cancelled).await;
    }

    /// True once the pump will add nothing more.
    pub(crate) fn is_over(&self) -> bool {
        let state = self.state.borrow();
        state.closed || state.cancelled
    }

    /// The next bytes for reader `generation`, waiting for them: every entry there is, up to
    /// [`WRITE_SIZE`] bytes, so that a burst becomes one write.
    pub(crate) async fn next(&self, generation: u64) -> Next {
        let mut watch = self.state.subscribe();
        let ready = watch
            .wait_for(|s| {
                s.reader != Some(generation) || s.cursor < s.end() || s.closed || s.cancelled
            })
            .await;
        drop(ready);
        let mut next = Next::End;
        let capacity = self.capacity as u64;
        self.state.send_if_modified(|s| {
            if s.reader != Some(generation) || s.cursor == s.end() {
                return false;
            }
            let at = (s.cursor - s.first) as usize;
            let first = s.entries[at].bytes().clone();
            let mut taken = 1;
            let mut size = first.len();
            while at + taken < s.entries.len() && size < WRITE_SIZE {
                size += s.entries[at + taken].bytes().len();
                taken += 1;
            }
            next = Next::Bytes(match taken {
                1 => first,
                _ => {
                    let mut batch = BytesMut::with_capacity(size);
                    for entry in s.entries.range(at..at + taken) {
                        batch.extend_from_slice(entry.bytes());
                    }
                    batch.freeze()
                }
            });
            s.cursor += taken as u64;
            s.trim(capacity);
            true
        });
        next
    }

    /// The reader `generation` went away (its client's connection closed). True if it was
    /// the current one and the stream is worth keeping for a reconnect.
    pub(crate) fn detach(&self, generation: u64) -> bool {
        let mut keep = false;
        self.state.send_if_modified(|s| {
            if s.reader != Some(generation) {
                return false;
            }
            s.reader = None;
            keep = !(s.closed || s.cancelled);
            true
        });
        keep
    }

    /// How many readers the stream has had.
    pub(crate) fn readers(&self) -> u64 {
        self.state.borrow().readers
    }

    /// True if no reader is attached.
    pub(crate) fn is_detached(&self) -> bool {
        self.state.borrow().reader.is_none()
    }

    /// True if a client whose last event id is `last` can resume here: `last` is the stream's
    /// own id or one of the events written to it.
    pub(crate) fn can_resume(&self, last: &str) -> bool {
        let state = self.state.borrow();
        last == &*self.id || state.written().any(|entry| entry.id() == Some(last))
    }

    /// Attaches a new reader that resumes after event `last` (everything written after it is
    /// written again); returns its generation.
    pub(crate) fn resume(&self, last: &str) -> u64 {
        let mut generation = 0;
        self.state.send_modify(|s| {
            let found = s
                .written()
                .rposition(|entry| entry.id() == Some(last))
                .map(|at| s.first + at as u64 + 1);
            // Not found: `last` is the stream's own id, the client has seen none of the
            // events, and gets all of those kept.
            s.cursor = found.unwrap_or(s.first);
            generation = s.readers;
            s.readers += 1;
            s.reader = Some(generation);
        });
        generation
    }
}

impl State {
    /// The sequence number after the last entry.
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Entries already written, oldest first.
    fn written(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.range(..(self.cursor - self.first) as usize)
    }

    /// Keeps at most `capacity` written entries.
    fn trim(&mut self, capacity: u64) {
        while self.cursor - self.first > capacity {
            self.entries.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            text: Bytes::from(format!("id: {id}\n\n")),
        }
    }

    async fn take(stream: &Stream, generation: u64) -> String {
        match stream.next(generation).await {
            Next::Bytes(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            Next::End => "end".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_resumed_reader_gets_what_followed_its_last_event() {
        let stream = Stream::new("s-1", 8);
        for id in ["a", "b"] {
            assert!(stream.push_event(event(id)).await);
            assert_eq!(take(&stream, 0).await, format!("id: {id}\n\n"));
        }
        assert!(stream.push_event(event("c")).await);
        // The connection dies; "b" was written but never arrived.
        assert!(stream.detach(0));
        assert!(stream.push_event(event("d")).await);
        assert!(stream.can_resume("a") && stream.can_resume("s-1"));
        assert!(!stream.can_resume("c"), "c was never written");
        let generation = stream.resume("a");
        assert_eq!(generation, 1);
        // What is ready is taken in one write.
        let resumed = take(&stream, generation).await;
        assert_eq!(resumed, "id: b\n\nid: c\n\nid: d\n\n");
        // The old reader is done.
        assert_eq!(stream.next(0).await, Next::End);
    }

    #[tokio::test]
    async fn resuming_from_the_stream_id_replays_everything_kept() {
        let stream = Stream::new("s-1", 2);
        for id in ["a", "b", "c"] {
            assert!(stream.push_event(event(id)).await);
            take(&stream, 0).await;
        }
        assert!(stream.detach(0));
        // Only two written events are kept.
        let generation = stream.resume("s-1");
        assert_eq!(take(&stream, generation).await, "id: b\n\nid: c\n\n");
    }

    #[tokio::test]
    async fn the_pump_waits_for_room_and_stops_when_cancelled() {
        let stream = Arc::new(Stream::new("s-1", 2));
        assert!(stream.push_event(event("a")).await);
        assert!(stream.push_event(event("b")).await);
        let pushing = tokio::spawn({
            let stream = stream.clone();
            async move { stream.push_event(event("c")).await }
        });
        tokio::task::yield_now().await;
        assert!(!pushing.is_finished(), "two events wait already");
        assert_eq!(take(&stream, 0).await, "id: a\n\nid: b\n\n");
        assert!(pushing.await.unwrap());
        let blocked = tokio::spawn({
            let stream = stream.clone();
            async move { stream.push_event(event("d")).await }
        });
        stream.cancel();
        assert!(!blocked.await.unwrap());
    }

    #[tokio::test]
    async fn a_closed_stream_ends_after_its_last_entry() {
        let stream = Stream::new("s-1", 4);
        assert!(stream.push_comment(Bytes::from_static(b": bye\n\n")).await);
        stream.close();
        assert_eq!(take(&stream, 0).await, ": bye\n\n");
        assert_eq!(stream.next(0).await, Next::End);
        assert!(!stream.detach(0), "nothing to resume");
    }
}
