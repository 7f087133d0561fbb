//! The endpoint's live streams, by who they are for, so that a client's reconnect (with
//! `Last-Event-ID`) resumes its stream: found by the authenticated user, the same URL's
//! destinations and an event id the stream wrote. A stream whose client went away stays for
//! `sse.resume_window`, still subscribed; the reconnect may also come before the server has
//! noticed that the old connection died, and then takes the stream over from it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::stream::Stream;

/// Who a stream is for: resuming needs the same user and the same destinations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The authenticated user; `None` for an anonymous stream.
    pub(crate) user: Option<String>,
    /// The destinations, in the order of the URL.
    pub(crate) destinations: Vec<String>,
}

/// The resumable streams of one SSE endpoint.
#[derive(Debug)]
pub(crate) struct Resumable {
    window: Duration,
    streams: Mutex<HashMap<Key, Vec<Arc<Stream>>>>,
}

impl Resumable {
    pub(crate) fn new(window: Duration) -> Resumable {
        Resumable {
            window,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a new stream, until [`Resumable::remove`].
    pub(crate) fn add(&self, key: &Key, stream: Arc<Stream>) {
        self.lock().entry(key.clone()).or_default().push(stream);
    }

    /// Forgets `stream` (its session ended).
    pub(crate) fn remove(&self, key: &Key, stream: &Arc<Stream>) {
        let mut streams = self.lock();
        if let Some(list) = streams.get_mut(key) {
            list.retain(|s| !Arc::ptr_eq(s, stream));
            if list.is_empty() {
                streams.remove(key);
            }
        }
    }

    /// `stream`'s reader has just gone: unless a reconnect resumes it within the window, it
    /// is given up (its pump then ends its session and removes it).
    pub(crate) fn park(&self, stream: Arc<Stream>) {
        // Which parking this is: a stream resumed and parked again has a later timer.
        let readers = stream.readers();
        let window = self.window;
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            if stream.is_detached() && stream.readers() == readers {
                stream.cancel();
            }
        });
    }

    /// The stream of `key` that a client whose last event was `last` resumes.
    pub(crate) fn find(&self, key: &Key, last: &str) -> Option<Arc<Stream>> {
        let streams = self.lock();
        let list = streams.get(key)?;
        // The newest first: a client that reconnected twice resumes its latest stream.
        list.iter()
            .rev()
            .find(|s| !s.is_over() && s.can_resume(last))
            .cloned()
    }

    /// How many streams there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Arc<Stream>>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sse::event::Event;

    fn key(user: &str) -> Key {
        Key {
            user: Some(user.to_owned()),
            destinations: vec!["/topic/a".to_owned()],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_resumed_by_its_user_only_and_given_up_after_the_window() {
        let resumable = Resumable::new(Duration::from_secs(30));
        let stream = Arc::new(Stream::new("s-1", 4));
        resumable.add(&key("alice"), stream.clone());
        let event = Event {
            id: "m-1".into(),
            text: Bytes::from_static(b"id: m-1\n\n"),
        };
        assert!(stream.push_event(event).await);
        let _ = stream.next(0).await;
        // Still attached: a reconnect that comes first takes it over.
        assert!(resumable.find(&key("bob"), "m-1").is_none(), "another user");
        assert!(
            resumable.find(&key("alice"), "m-9").is_none(),
            "an unknown id"
        );
        let found = resumable.find(&key("alice"), "m-1").expect("resumable");
        assert!(Arc::ptr_eq(&found, &stream));

        // Its reader gone and no reconnect: given up when the window ends.
        let generation = stream.resume("m-1");
        assert!(stream.detach(generation));
        resumable.park(stream.clone());
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(!stream.is_over());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(stream.is_over(), "cancelled");
        assert!(resumable.find(&key("alice"), "m-1").is_none());
        resumable.remove(&key("alice"), &stream);
        assert_eq!(resumable.len(), 0);
    }
}
