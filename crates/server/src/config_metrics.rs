//! `[metrics]`: the Prometheus endpoint on the WebSocket listener (`metrics.rs`).

use serde::{Deserialize, Serialize};

use crate::{Error, config::check_path};

/// `GET /metrics`: the node's counters in the Prometheus text format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve the endpoint (on the WebSocket listener). Default `true`.
    pub enabled: bool,
    /// Its path. Default `/metrics`.
    pub path: String,
    /// Networks that may scrape it (`127.0.0.0/8`, `10.1.2.3`): queue names and traffic are
    /// no business of the public. Default: loopback and the private ranges (`10.0.0.0/8`,
    /// `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`), where a Prometheus in the same cluster
    /// scrapes from. Others get 403. Behind a trusted proxy, the forwarded client address is
    /// the one checked.
    pub allowed_networks: Vec<String>,
    /// Queues reported one by one (`stompbox_queue_*{queue="..."}`), the deepest first, so that
    /// thousands of queues do not make thousands of series. Default 50; 0 reports none.
    pub max_queues: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            path: "/metrics".to_owned(),
            allowed_networks: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_queues: 50,
        }
    }
}

impl MetricsConfig {
    pub(crate) fn validate(&self, taken: &mut Vec<String>) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        check_path("metrics.path", &self.path, taken)?;
        if let Err(entry) = crate::forwarded::Networks::parse(&self.allowed_networks) {
            return Err(Error::InvalidConfig {
                key: "metrics.allowed_networks".to_owned(),
                reason: format!("{entry:?} is neither an address nor a network (`10.0.0.0/8`)"),
            });
        }
        Ok(())
    }
}
