//! `[push]`: the webhook told of every message kept in a user's offline inbox (`push.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The push webhook: each message kept in an offline inbox (`broker.inbox.destinations`) is
/// POSTed as a JSON document to `url`, so that an application can forward it to the user's
/// phone (FCM, APNs). Off unless `url` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Where to POST (`http://` or `https://`). Default empty: no webhook.
    pub url: String,
    /// The `Authorization` header sent with each POST (`Bearer <token>`), if not empty.
    pub authorization: String,
    /// Messages waiting to be POSTed, in memory; beyond, new ones are not pushed (counted as
    /// `stompbox_push_dropped_total`; they stay in the inbox). Default 10,000.
    pub max_pending: usize,
    /// How long one POST may take, connecting included. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Tries per message before it is given up (counted as failed): a connection error, a
    /// timeout, 408, 429 and 5xx are tried again; other answers but 2xx give up at once.
    /// Default 8.
    pub max_attempts: u32,
    /// The wait before the first retry, doubled after each failed one. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// The longest wait between retries. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub max_retry_backoff: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            url: String::new(),
            authorization: String::new(),
            max_pending: 10_000,
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(60),
        }
    }
}

impl PushConfig {
    /// Whether the webhook is on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.enabled() {
            return Ok(());
        }
        let bad = |key: &str, reason: &str| Error::InvalidConfig {
            key: format!("push.{key}"),
            reason: reason.to_owned(),
        };
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(bad("url", "must start with http:// or https://"));
        }
        if self.max_pending == 0 || self.max_attempts == 0 {
            return Err(bad(
                "max_pending",
                "max_pending and max_attempts must be greater than zero",
            ));
        }
        if self.timeout.is_zero() || self.max_retry_backoff < self.retry_backoff {
            return Err(bad(
                "timeout",
                "timeout must be positive and max_retry_backoff at least retry_backoff",
            ));
        }
        Ok(())
    }
}
