//! `[admin]`: the admin HTTP API on a listener of its own (`admin.rs`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The admin API: overview, queues, purge, dead-letter redrive and publish, as JSON over HTTP,
/// described by an OpenAPI document at `/api/openapi.json`; `stompbox ctl` is its client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve it. Default `false`: an operator turns it on with a token.
    pub enabled: bool,
    /// Its own listener, off the public port. Default `127.0.0.1:15670` (this machine only).
    pub listen: SocketAddr,
    /// The bearer token every request must carry (`Authorization: Bearer <token>`); at least
    /// 16 characters. Required when enabled.
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 15670)),
            token: String::new(),
        }
    }
}

impl AdminConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.enabled && self.token.chars().count() < 16 {
            return Err(Error::InvalidConfig {
                key: "admin.token".into(),
                reason: "the admin API needs a token of at least 16 characters".into(),
            });
        }
        Ok(())
    }
}
