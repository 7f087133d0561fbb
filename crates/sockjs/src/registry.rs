//! The sessions of the HTTP transports, by session id. A WebSocket session lives on its
//! connection's task and is not registered (two WebSockets with the same id are two sessions,
//! as in sockjs-node).
//!
//! Each registered session has a driver task: it runs the [`Handler`], closes the session when
//! the handler returns (`c[3000,"Go away!"]`) or when no receiver came for
//! `disconnect_delay` (then the handler sees its [`Incoming`](crate::Incoming) end), and
//! removes it once it has been closed and unattended for `disconnect_delay`, so that late
//! requests still get its close frame.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use crate::frame;
use crate::session::{Shared, Transport};
use crate::{Config, Handler};

/// A registered session: its state and the ticket its handler gave it.
pub(crate) struct Entry<T> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ticket: Arc<T>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            shared: self.shared.clone(),
            ticket: self.ticket.clone(),
        }
    }
}

/// See the module documentation.
pub(crate) struct Registry<T> {
    sessions: Mutex<HashMap<String, Entry<T>>>,
}

impl<T: Send + Sync + 'static> Registry<T> {
    pub(crate) fn new() -> Self {
        Registry {
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Entry<T>> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a new session `id` with `ticket` and starts its driver, unless a concurrent
    /// request registered one first (that one is returned, and `ticket` dropped).
    pub(crate) fn create<H>(
        self: &Arc<Self>,
        id: &str,
        transport: Transport,
        ticket: T,
        handler: &Arc<H>,
        config: &Config,
    ) -> Entry<T>
    where
        H: Handler<Ticket = T>,
    {
        let (shared, session) = Shared::new(id.to_owned(), transport, config);
        let entry = Entry {
            shared: shared.clone(),
            ticket: Arc::new(ticket),
        };
        {
            let mut sessions = self.lock();
            if let Some(existing) = sessions.get(id) {
                return existing.clone();
            }
            sessions.insert(id.to_owned(), entry.clone());
        }
        let serve = handler.serve(entry.ticket.clone(), session);
        let registry = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::pin!(serve);
            let served = tokio::select! {
                _ = &mut serve => true,
                _ = shared.idle_expired() => false,
            };
            if served {
                let (code, reason) = frame::GO_AWAY;
                shared.close(code, reason);
                shared.idle_expired().await;
                registry.remove(&id, &shared);
            } else {
                tracing::debug!(session = %id, "SockJS session timed out");
                let (code, reason) = frame::INTERRUPTED;
                shared.close(code, reason);
                registry.remove(&id, &shared);
                serve.await;
            }
        });
        entry
    }

    fn remove(&self, id: &str, shared: &Arc<Shared>) {
        let mut sessions = self.lock();
        if sessions
            .get(id)
            .is_some_and(|e| Arc::ptr_eq(&e.shared, shared))
        {
            sessions.remove(id);
        }
    }
}
