//! The push webhook (`[push]`): every message kept in a user's offline inbox is POSTed, as a
//! JSON document, to a URL the operator sets, so that an application can forward it to the
//! user's phone (FCM, APNs) while the app is in the background.
//!
//! The broker hands each kept message over without waiting ([`stompbox_broker::BrokerBuilder::on_inbox`]):
//! it joins a bounded queue in memory (`push.max_pending`; beyond, it is not pushed, counted),
//! and one sender thread POSTs them in order, one at a time, trying again after a connection
//! error, a timeout, 408, 429 or 5xx with a doubling wait, up to `push.max_attempts`. The
//! message stays in the inbox whatever the webhook does: pushing is a notice, not a delivery.
//!
//! The document:
//!
//! ```json
//! {"user": "bob", "destination": "/user/queue/notifications", "message_id": "42",
//!  "headers": {"content-type": "text/plain"}, "body": "someone liked your post"}
//! ```
//!
//! A body that is not UTF-8 is sent as `body_base64` instead of `body`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use base64::Engine;
use stompbox_broker::Kept;

use crate::config_push::PushConfig;

/// What the webhook did, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PushStats {
    /// POSTs answered 2xx.
    pub(crate) sent: AtomicU64,
    /// Messages given up (a refusal, or `max_attempts` failed tries).
    pub(crate) failed: AtomicU64,
    /// Tries after a failed one.
    pub(crate) retries: AtomicU64,
    /// Messages not pushed because `max_pending` were waiting.
    pub(crate) dropped: AtomicU64,
    /// Messages waiting (a gauge).
    pub(crate) pending: AtomicU64,
}

/// The broker's side of the webhook: hands kept messages to the sender thread.
#[derive(Clone, Debug)]
pub(crate) struct Push {
    tx: SyncSender<Kept>,
    stats: Arc<PushStats>,
}

impl Push {
    /// Starts the sender thread for `config` (which must be enabled).
    pub(crate) fn start(config: &PushConfig) -> std::io::Result<Push> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.max_pending);
        let stats = Arc::new(PushStats::default());
        let sender = Sender {
            config: config.clone(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(config.timeout))
                .http_status_as_error(false)
                .user_agent(concat!("stompbox/", env!("CARGO_PKG_VERSION")))
                .build()
                .into(),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("stompbox-push".into())
            .spawn(move || sender.run(rx))?;
        Ok(Push { tx, stats })
    }

    /// Queues `kept` for the webhook; never waits.
    pub(crate) fn offer(&self, kept: Kept) {
        self.stats.pending.fetch_add(1, Relaxed);
        if let Err(e) = self.tx.try_send(kept) {
            self.stats.pending.fetch_sub(1, Relaxed);
            self.stats.dropped.fetch_add(1, Relaxed);
            if let TrySendError::Full(kept) = e {
                tracing::debug!(user = %kept.user, "push webhook backlog full: not pushed");
            }
        }
    }

    pub(crate) fn stats(&self) -> &Arc<PushStats> {
        &self.stats
    }
}

struct Sender {
    config: PushConfig,
    agent: ureq::Agent,
    stats: Arc<PushStats>,
}

/// What one POST came to.
enum Outcome {
    Sent,
    /// Worth another try.
    Retry(String),
    /// Refused for good.
    Refused(String),
}

impl Sender {
    /// Ends when the broker (every [`Push`]) is gone.
    fn run(self, rx: Receiver<Kept>) {
        while let Ok(kept) = rx.recv() {
            let document = document(&kept);
            self.deliver(&kept, &document);
            self.stats.pending.fetch_sub(1, Relaxed);
        }
    }

    fn deliver(&self, kept: &Kept, document: &[u8]) {
        let mut wait = self.config.retry_backoff;
        for attempt in 1..=self.config.max_attempts {
            let reason = match self.post(document) {
                Outcome::Sent => {
                    self.stats.sent.fetch_add(1, Relaxed);
                    return;
                }
                Outcome::Refused(reason) => {
                    self.stats.failed.fetch_add(1, Relaxed);
                    tracing::warn!(user = %kept.user, message_id = kept.message_id, %reason, "push webhook refused a message; not tried again");
                    return;
                }
                Outcome::Retry(reason) => reason,
            };
            if attempt == self.config.max_attempts {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(user = %kept.user, message_id = kept.message_id, %reason, attempts = attempt, "push webhook failed; message given up");
                return;
            }
            tracing::debug!(%reason, attempt, "push webhook failed; trying again");
            self.stats.retries.fetch_add(1, Relaxed);
            std::thread::sleep(wait);
            wait = (wait * 2).min(self.config.max_retry_backoff);
        }
    }

    fn post(&self, document: &[u8]) -> Outcome {
        let mut request =
            (self.agent.post(&self.config.url)).header("content-type", "application/json");
        if !self.config.authorization.is_empty() {
            request = request.header("authorization", &self.config.authorization);
        }
        match request.send(document) {
            Ok(response) => match response.status().as_u16() {
                200..=299 => Outcome::Sent,
                status @ (408 | 429 | 500..=599) => Outcome::Retry(format!("HTTP {status}")),
                status => Outcome::Refused(format!("HTTP {status}")),
            },
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

/// The JSON document POSTed for `kept`.
fn document(kept: &Kept) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &kept.headers {
        // The first value of a repeated header is the one STOMP readers use.
        headers.entry(name.clone()).or_insert(value.clone().into());
    }
    let mut doc = serde_json::json!({
        "user": kept.user,
        "destination": kept.destination,
        "message_id": kept.message_id.to_string(),
        "headers": headers,
    });
    match std::str::from_utf8(&kept.body) {
        Ok(text) => doc["body"] = text.into(),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&kept.body);
            doc["body_base64"] = encoded.into();
        }
    }
    serde_json::to_vec(&doc).expect("a JSON value serializes")
}
