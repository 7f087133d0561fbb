//! What operators see: `GET /metrics` (Prometheus text format), `GET /healthz` and
//! `GET /readyz` (Kubernetes probes) on the WebSocket listener.
//!
//! The metrics are read when scraped, from the counters the broker keeps anyway
//! ([`Broker::stats`], [`Broker::queues`]), the relay's state and `/proc/self`: serving them
//! adds nothing to the data path. `prometheus-client` writes the format.

use std::{fmt, net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, gauge::ConstGauge},
    registry::Registry,
};
use stompbox_broker::{Broker, Latencies, QueueStats};

use crate::{
    MetricsConfig,
    forwarded::{Networks, TrustedProxies},
    http_session::plain,
};

/// What the probes and the metrics read besides the broker.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeState {
    /// The relay, when `relay.enabled`.
    #[cfg(feature = "relay")]
    pub(crate) relay: Option<stompbox_relay::Relay>,
    /// `store.enabled`, and the data directory could not be opened: the node runs without it.
    pub(crate) store_missing: bool,
    /// The push webhook's counters, when `push.url` is set.
    pub(crate) push: Option<Arc<crate::push::PushStats>>,
}

/// `GET /metrics`.
#[derive(Clone, Debug)]
pub(crate) struct MetricsEndpoint {
    registry: Arc<Registry>,
    allowed: Arc<Networks>,
    proxies: Arc<TrustedProxies>,
}

impl MetricsEndpoint {
    pub(crate) fn new(
        broker: Broker,
        node: NodeState,
        config: &MetricsConfig,
        proxies: TrustedProxies,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Node {
            broker,
            node,
            max_queues: config.max_queues,
        }));
        MetricsEndpoint {
            registry: Arc::new(registry),
            allowed: Arc::new(
                Networks::parse(&config.allowed_networks).expect("validated by ServerConfig"),
            ),
            proxies: Arc::new(proxies),
        }
    }

    pub(crate) async fn scrape(self, request: Request) -> Response {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
        let client = peer.map(|c| self.proxies.client(c.0, request.headers()));
        if !client.is_some_and(|c| self.allowed.contains(c.ip())) {
            let client = client.map_or("unknown".to_owned(), |c| c.ip().to_string());
            let text = format!("metrics are not served to {client} (metrics.allowed_networks)");
            return plain(StatusCode::FORBIDDEN, text);
        }
        let mut text = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}"));
        }
        let content_type =
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
        ([(header::CONTENT_TYPE, content_type)], text).into_response()
    }
}

/// `GET /readyz`: 200 when the node takes traffic, else 503 with what is wrong, one per line.
pub(crate) fn readiness(broker: &Broker, node: &NodeState) -> Response {
    let mut problems = Vec::new();
    if broker.is_shutting_down() {
        problems.push("shutting down".to_owned());
    }
    #[cfg(feature = "relay")]
    if let Some(relay) = &node.relay {
        let state = relay.state();
        if state != stompbox_relay::RelayState::Connected {
            problems.push(format!("relay not connected: {state:?}"));
        }
    }
    if node.store_missing {
        problems.push(
            "store enabled but not open: persistent messages are kept in memory only".to_owned(),
        );
    }
    match problems.is_empty() {
        true => plain(StatusCode::OK, "ready"),
        false => plain(StatusCode::SERVICE_UNAVAILABLE, problems.join("\n")),
    }
}

/// A per-queue metric: its name, help, and how to read it.
type QueueMetric = (&'static str, &'static str, fn(&QueueStats) -> u64);

/// The node's metrics, read at each scrape.
#[derive(Debug)]
struct Node {
    broker: Broker,
    node: NodeState,
    max_queues: usize,
}

impl Collector for Node {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = self.broker.stats();
        let mut out = Out(&mut encoder);
        out.gauge(
            "stompbox_connections",
            "Connections counted against broker.max_connections, sessions and pre-CONNECT HTTP \
             connections alike",
            stats.connections as i64,
        )?;
        out.gauges(
            "stompbox_sessions",
            "Sessions being served, by transport",
            "transport",
            stats.sessions.iter().map(|(l, n)| (*l, *n as i64)),
        )?;
        out.counters(
            "stompbox_sessions_closed",
            "Sessions ended, by reason (refusals at admission included)",
            "reason",
            stats.closed.iter().copied(),
        )?;
        self.sessions(&mut out)?;
        out.counters(
            "stompbox_messages_received",
            "SEND frames accepted (and messages sent by the application), by destination kind",
            "kind",
            stats.received.iter().copied(),
        )?;
        out.counters(
            "stompbox_messages_delivered",
            "MESSAGE frames queued to subscribers, by the kind of the message's destination",
            "kind",
            stats.delivered.iter().copied(),
        )?;
        out.counters(
            "stompbox_frames_received",
            "Frames read from clients, by command (heartbeat: an EOL)",
            "command",
            stats.frames_in.iter().copied(),
        )?;
        out.counters(
            "stompbox_frames_sent",
            "Frames queued for writing to clients, by command (heartbeat: an EOL)",
            "command",
            stats.frames_out.iter().copied(),
        )?;
        out.counter(
            "stompbox_received_bytes",
            "STOMP bytes read from clients",
            stats.bytes_in,
        )?;
        out.counter(
            "stompbox_sent_bytes",
            "STOMP bytes handed to transports for writing",
            stats.bytes_out,
        )?;
        out.histogram(
            "stompbox_publish_to_write_seconds",
            "From routing a message to encoding it into each subscriber's write batch, for \
             one message in 64",
            &stats.publish_to_write,
        )?;
        out.gauge(
            "stompbox_outbox_bytes",
            "Encoded bytes waiting in all session outboxes",
            stats.queued_bytes as i64,
        )?;
        out.gauge(
            "stompbox_outbox_frames",
            "Deliveries waiting in all session outboxes",
            stats.queued_frames as i64,
        )?;
        out.counter(
            "stompbox_slow_consumers",
            "Subscribers that could not keep up (closed, or an episode of dropping)",
            stats.slow_consumers,
        )?;
        out.counter(
            "stompbox_dropped_deliveries",
            "Deliveries dropped under the drop-newest outbox policy",
            stats.dropped_deliveries,
        )?;
        out.counter(
            "stompbox_refused_connections",
            "Connections refused at broker.max_connections, by admission or during shutdown",
            stats.refused_connections,
        )?;
        out.counter(
            "stompbox_failed_logins",
            "CONNECTs the authenticator refused",
            stats.failed_logins,
        )?;
        out.counter(
            "stompbox_throttled_logins",
            "CONNECTs refused unasked because their address failed too often",
            stats.throttled_logins,
        )?;
        self.queues(&mut out)?;
        #[cfg(feature = "relay")]
        if let Some(relay) = &self.node.relay {
            let up = relay.state() == stompbox_relay::RelayState::Connected;
            out.gauge(
                "stompbox_relay_connected",
                "1 while the relay is connected to RabbitMQ",
                i64::from(up),
            )?;
            out.gauge(
                "stompbox_relay_buffered",
                "Messages waiting in the relay's buffer for the publisher (relay.buffer_messages)",
                relay.buffered() as i64,
            )?;
            out.counter(
                "stompbox_relay_refused",
                "Messages the relay refused: its buffer stayed full past relay.unavailable_after, \
                 or it was stopped",
                relay.refused(),
            )?;
            out.histogram(
                "stompbox_relay_confirm_seconds",
                "From handing a publish (one message or a batch) to RabbitMQ to its confirm",
                &relay.confirm_latency(),
            )?;
        }
        out.gauge(
            "stompbox_store_missing",
            "1 when store.enabled but the data directory could not be opened",
            i64::from(self.node.store_missing),
        )?;
        if let Some(push) = &self.node.push {
            use std::sync::atomic::Ordering::Relaxed;
            let counters = [
                (
                    "stompbox_push_sent",
                    "inbox messages POSTed to the push webhook (2xx)",
                    &push.sent,
                ),
                (
                    "stompbox_push_failed",
                    "inbox messages the push webhook refused or kept failing on (given up)",
                    &push.failed,
                ),
                (
                    "stompbox_push_retries",
                    "push webhook POSTs tried again after a failure",
                    &push.retries,
                ),
                (
                    "stompbox_push_dropped",
                    "inbox messages not pushed because push.max_pending were waiting",
                    &push.dropped,
                ),
            ];
            for (name, help, value) in counters {
                out.counter(name, help, value.load(Relaxed))?;
            }
            let pending = push.pending.load(Relaxed);
            out.gauge(
                "stompbox_push_pending",
                "inbox messages waiting for the push webhook",
                i64::try_from(pending).unwrap_or(i64::MAX),
            )?;
        }
        process(&mut out)
    }
}

/// Upper bounds of `stompbox_outbox_depth_sessions`, in deliveries.
const OUTBOX_DEPTHS: [usize; 6] = [0, 1, 10, 100, 1_000, 10_000];

impl Node {
    /// Connected sessions by STOMP version, and how full their outboxes are now; read from the
    /// broker's session table at each scrape.
    fn sessions(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let sessions = self.broker.sessions();
        let mut versions: Vec<(&str, i64)> = ["1.0", "1.1", "1.2"].map(|v| (v, 0)).to_vec();
        let mut depths = [0i64; OUTBOX_DEPTHS.len()];
        for session in &sessions {
            if let Some(entry) = versions.iter_mut().find(|(v, _)| *v == session.version) {
                entry.1 += 1;
            }
            for (bound, n) in OUTBOX_DEPTHS.iter().zip(&mut depths) {
                if session.outbox_frames <= *bound {
                    *n += 1;
                }
            }
        }
        out.gauges(
            "stompbox_sessions_by_version",
            "Connected sessions (after CONNECTED), by the STOMP version negotiated",
            "version",
            versions.into_iter(),
        )?;
        let bounds = OUTBOX_DEPTHS.map(|b| b.to_string());
        let cumulative = (bounds.iter().map(String::as_str).zip(depths))
            .chain(std::iter::once(("+Inf", sessions.len() as i64)));
        out.gauges(
            "stompbox_outbox_depth_sessions",
            "Connected sessions whose outbox holds at most `le` deliveries now (a distribution \
             of current depths)",
            "le",
            cumulative,
        )
    }

    /// The deepest `max_queues` queues, one series each, and how many there are.
    fn queues(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let mut queues = self.broker.queues();
        out.gauge(
            "stompbox_queues",
            "Queues on this node (the deepest metrics.max_queues are reported one by one)",
            queues.len() as i64,
        )?;
        queues.sort_by(|a, b| b.1.depth.cmp(&a.1.depth).then_with(|| a.0.cmp(&b.0)));
        queues.truncate(self.max_queues);
        let each = |get: fn(&QueueStats) -> u64| {
            let queues = &queues;
            move || queues.iter().map(move |(name, q)| (name.as_str(), get(q)))
        };
        let gauges: [QueueMetric; 4] = [
            (
                "stompbox_queue_depth",
                "Messages waiting for a consumer, in memory and on disk",
                |q| q.depth as u64,
            ),
            (
                "stompbox_queue_on_disk",
                "Of the waiting messages, those kept in the store only",
                |q| q.on_disk as u64,
            ),
            (
                "stompbox_queue_in_flight",
                "Messages delivered and not yet acknowledged",
                |q| q.in_flight as u64,
            ),
            ("stompbox_queue_consumers", "Subscriptions", |q| {
                q.consumers as u64
            }),
        ];
        for (name, help, get) in gauges {
            out.gauges(name, help, "queue", each(get)().map(|(l, n)| (l, n as i64)))?;
        }
        let counters: [QueueMetric; 7] = [
            (
                "stompbox_queue_enqueued",
                "Messages accepted (and dead letters moved in)",
                |q| q.enqueued,
            ),
            (
                "stompbox_queue_delivered",
                "Deliveries, first and repeated",
                |q| q.delivered,
            ),
            (
                "stompbox_queue_redelivered",
                "Deliveries of a message delivered before",
                |q| q.redelivered,
            ),
            (
                "stompbox_queue_acked",
                "Messages acknowledged (or written, in auto mode)",
                |q| q.acked,
            ),
            (
                "stompbox_queue_dead_lettered",
                "Messages moved to the dead-letter queue",
                |q| q.dead_lettered,
            ),
            (
                "stompbox_queue_expired",
                "Messages dropped as expired",
                |q| q.expired,
            ),
            (
                "stompbox_queue_dropped",
                "Messages dropped at the bound (drop-oldest)",
                |q| q.dropped,
            ),
        ];
        for (name, help, get) in counters {
            out.counters(name, help, "queue", each(get)())?;
        }
        Ok(())
    }
}

/// The process's own figures, from `/proc/self` (Linux; nothing elsewhere).
fn process(out: &mut Out<'_, '_>) -> fmt::Result {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<i64>().ok())
    };
    if let Some(rss) = kib("VmRSS:") {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            rss * 1024,
        )?;
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.gauge(
            "process_open_fds",
            "Open file descriptors",
            fds.count() as i64,
        )?;
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // After the command name (which may hold spaces) in parentheses: fields 14 and 15 are
        // utime and stime, in clock ticks (100 per second on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        if let (Some(user), Some(system)) = (fields.get(11), fields.get(12))
            && let (Ok(user), Ok(system)) = (user.parse::<u64>(), system.parse::<u64>())
        {
            let seconds = (user + system) as f64 / 100.0;
            let mut metric = out.0.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, seconds",
                None,
                MetricType::Counter,
            )?;
            metric.encode_counter::<NoLabelSet, _, u64>(&seconds, None)?;
        }
    }
    Ok(())
}

/// Writes metric families.
struct Out<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Out<'_, '_> {
    fn histogram(&mut self, name: &str, help: &str, latencies: &Latencies) -> fmt::Result {
        // prometheus-client wants each bucket's own count; ours are cumulative.
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = (latencies.buckets.iter())
            .map(|(bound, cumulative)| {
                let own = cumulative - below;
                below = *cumulative;
                (bound.as_secs_f64(), own)
            })
            .collect();
        buckets.push((f64::INFINITY, latencies.count.saturating_sub(below)));
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        metric.encode_histogram::<NoLabelSet>(
            latencies.sum.as_secs_f64(),
            latencies.count,
            &buckets,
            None,
        )
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) -> fmt::Result {
        let gauge = ConstGauge::new(value);
        let metric = self
            .0
            .encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    fn gauges<'l>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (&'l str, i64)>,
    ) -> fmt::Result {
        let mut family = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (value_label, value) in values {
            let labels = [(label, value_label)];
            family.encode_family(&labels)?.encode_gauge(&value)?;
        }
        Ok(())
    }

    fn counters<'l>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (&'l str, u64)>,
    ) -> fmt::Result {
        let mut family = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value_label, value) in values {
            let labels = [(label, value_label)];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        Ok(())
    }
}
