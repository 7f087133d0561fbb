//! `[sse]` and `[publish]`: the HTTP endpoints on the WebSocket listener for clients without a
//! STOMP library: notification pages on `EventSource` (`sse/`) and backends that publish with
//! one HTTP request (`publish.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, config::check_path};

/// `GET /sse?destination=...`: Server-Sent Events, one event per message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// Serve the endpoint (on the WebSocket listener). Default `true`.
    pub enabled: bool,
    /// Its path. Default `/sse`.
    pub path: String,
    /// The `event` field of every message's event (what `addEventListener` listens to).
    /// Default `message`, which `EventSource.onmessage` receives.
    pub event: String,
    /// The reconnection delay the stream asks of the client (its `retry` field). Default 3 s,
    /// browsers' usual default.
    #[serde(with = "humantime_serde")]
    pub retry: Duration,
    /// Interval of the comment line sent on an idle stream, so that proxies do not close it.
    /// Default 15 s.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a stream whose connection dropped stays subscribed, collecting what its
    /// client misses, for the client's reconnect (with `Last-Event-ID`) to resume it. Default
    /// 60 s.
    #[serde(with = "humantime_serde")]
    pub resume_window: Duration,
    /// Events a stream keeps for a reconnect: up to this many already written (the last ones
    /// may not have reached the client), and up to this many waiting while its client is away
    /// (beyond, its session's outbox fills under `[broker.outbox]`'s policy). Default 256:
    /// the written ones stay in memory for the stream's life, so a busy stream holds up to
    /// this many of its last events (256 events of 200 bytes: about 60 KiB).
    pub replay_buffer: usize,
    /// Most `destination` parameters in one request. Default 16.
    pub max_destinations: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            enabled: true,
            path: "/sse".to_owned(),
            event: "message".to_owned(),
            retry: Duration::from_secs(3),
            keepalive_interval: Duration::from_secs(15),
            resume_window: Duration::from_secs(60),
            replay_buffer: 256,
            max_destinations: 16,
        }
    }
}

/// `POST /publish`: a message sent with one HTTP request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Serve the endpoint (on the WebSocket listener). Default `true`: requests are
    /// authenticated and checked against the permissions as a STOMP client's SEND.
    pub enabled: bool,
    /// Its path. Default `/publish`.
    pub path: String,
    /// Largest request body, bytes (413 beyond). Default 4 MiB, the largest STOMP body
    /// (`broker.max_body_size`'s default).
    pub max_body_size: usize,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            enabled: true,
            path: "/publish".to_owned(),
            max_body_size: 4 * 1024 * 1024,
        }
    }
}

impl SseConfig {
    pub(crate) fn validate(&self, taken: &mut Vec<String>) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        check_path("sse.path", &self.path, taken)?;
        let bad = |key: &str, reason: &str| {
            Err(Error::InvalidConfig {
                key: format!("sse.{key}"),
                reason: reason.to_owned(),
            })
        };
        let token = |c: char| c.is_ascii_graphic();
        if self.event.is_empty() || !self.event.chars().all(token) {
            return bad(
                "event",
                "must be a non-empty name of visible ASCII characters",
            );
        }
        if self.keepalive_interval.is_zero() || self.resume_window.is_zero() {
            return bad(
                "keepalive_interval",
                "keepalive_interval and resume_window must be greater than zero",
            );
        }
        if self.replay_buffer == 0 || self.max_destinations == 0 {
            return bad(
                "replay_buffer",
                "replay_buffer and max_destinations must be greater than zero",
            );
        }
        Ok(())
    }
}

impl PublishConfig {
    pub(crate) fn validate(&self, taken: &mut Vec<String>) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        check_path("publish.path", &self.path, taken)?;
        if self.max_body_size == 0 {
            return Err(Error::InvalidConfig {
                key: "publish.max_body_size".to_owned(),
                reason: "must be greater than zero".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_name_must_be_one_token() {
        let config = SseConfig {
            event: "two words".to_owned(),
            ..SseConfig::default()
        };
        let error = config.validate(&mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("sse.event"), "{error}");
    }
}
