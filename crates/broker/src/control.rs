//! A session's control channel: signals from outside its task that are not deliveries. Its
//! `/app` handler task uses it to end the session with an ERROR (`HandlerErrorPolicy::ErrorAndClose`)
//! and to wake it when the handler queue has room again, so the outbox stays a data path.
//!
//! Made with the handler task, on the session's first `/app` frame: a session that never uses
//! `/app` has none and pays nothing for it.

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::error::ProtocolError;

/// One session's control channel; shared (`Arc`) by the session and its handler task.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// The first failure asked for; later ones are dropped (the session is already ending).
    failure: Mutex<Option<ProtocolError>>,
    notify: Notify,
}

impl Control {
    /// Asks the session to end with `error`: it sends what is already queued, then the ERROR.
    /// The first failure wins.
    pub(crate) fn fail(&self, error: ProtocolError) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(error);
            drop(failure);
            self.notify.notify_one();
        }
    }

    /// Wakes the session to look again (its handler queue has room).
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// The failure asked for by [`Control::fail`], once.
    pub(crate) fn take_failure(&self) -> Option<ProtocolError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Waits for a signal (cancel-safe; one sent while nobody waited is kept for the next call).
    pub(crate) async fn signalled(&self) {
        self.notify.notified().await;
    }
}
