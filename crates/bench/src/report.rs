//! The one JSON object a run prints.

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// The result of a fan-out, topics or queue run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// `fanout`, `topics` or `queue`.
    pub scenario: &'static str,
    /// `--label`.
    pub label: Option<String>,
    /// The target.
    pub url: String,
    /// The destination (prefix, for topics).
    pub destination: String,
    /// Whether the target was the floor.
    pub raw: bool,
    /// Publishers (producers).
    pub publishers: usize,
    /// Subscribers (topics: topics; queue: consumers).
    pub subscribers: usize,
    /// Body bytes.
    pub body: usize,
    /// Offered rate, messages/s; `None` when unthrottled.
    pub rate: Option<f64>,
    /// Flow-control window.
    pub window: u64,
    /// Messages published.
    pub sent: u64,
    /// Deliveries owed: `sent` × subscribers for fan-out, `sent` for topics and queue.
    pub expected: u64,
    /// First-time deliveries (duplicates not counted).
    pub delivered: u64,
    /// Deliveries owed and never made.
    pub lost: u64,
    /// Deliveries of a message already delivered (to that subscriber; for queue, anywhere).
    pub duplicates: u64,
    /// Deliveries that came after a later message from the same publisher.
    pub out_of_order: u64,
    /// Delivered exactly what was owed, in order, and nothing failed.
    pub ok: bool,
    /// What failed, when something did.
    pub error: Option<String>,
    /// From the first publish to the last delivery, seconds.
    pub elapsed_s: f64,
    /// `delivered / elapsed_s`.
    pub deliveries_per_s: f64,
    /// `sent / elapsed_s`.
    pub messages_per_s: f64,
    /// Publish-to-delivery latency, measured from the scheduled send time.
    pub latency_us: Option<Latency>,
    /// Latency measured from when the message was actually written (differs from
    /// `latency_us` only when a paced publisher fell behind its schedule).
    pub latency_from_send_us: Option<Latency>,
    /// Broker CPU seconds (user + system) during the window; needs `--pid`.
    pub broker_cpu_s: Option<f64>,
    /// `broker_cpu_s / elapsed_s`: cores busy.
    pub broker_cpu_per_s: Option<f64>,
    /// Broker RSS at the end, KiB.
    pub broker_rss_kib: Option<u64>,
    /// Bytes the subscribers' WebSocket connections read during the window: what the broker
    /// put on the wire to them, WebSocket framing and compression included (0 over other
    /// transports).
    pub wire_bytes_read: u64,
    /// `wire_bytes_read / delivered`.
    pub wire_bytes_per_delivery: Option<f64>,
}

/// The result of a connection-scale run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnectionsReport {
    /// `connections`.
    pub scenario: &'static str,
    /// `--label`.
    pub label: Option<String>,
    /// The target.
    pub url: String,
    /// Whether the target was the floor (WebSocket handshake only).
    pub raw: bool,
    /// Connections asked for.
    pub count: usize,
    /// Connections that completed CONNECT and SUBSCRIBE.
    pub connected: usize,
    /// Source addresses used.
    pub sources: u8,
    /// All connected.
    pub ok: bool,
    /// The first failure, when something failed.
    pub error: Option<String>,
    /// Time to connect (and subscribe) them all, seconds.
    pub connect_s: f64,
    /// `connected / connect_s`.
    pub connects_per_s: f64,
    /// Broker RSS before connecting, KiB; needs `--pid`.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS with all connected, after the settle, KiB.
    pub rss_after_kib: Option<u64>,
    /// `(rss_after - rss_before) / connected`, KiB.
    pub rss_per_conn_kib: Option<f64>,
}

/// What [`crate::run`] returns: one of the two shapes.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// Fan-out, topics, queue.
    Load(Box<LoadReport>),
    /// Connection scale.
    Connections(ConnectionsReport),
}

impl Report {
    /// Whether the run passed its own checks.
    pub fn ok(&self) -> bool {
        match self {
            Report::Load(r) => r.ok,
            Report::Connections(r) => r.ok,
        }
    }

    /// The single-line JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}
