//! The admin listener's live dashboard: a page at `/` and its assets under `/dashboard/`
//! (`assets/dashboard/`, embedded in the binary), and the node's recent history it charts
//! (`GET /api/history`, sampled here every [`INTERVAL`] for the last [`KEPT`] samples).
//!
//! The page and its assets hold no data and are served without the token; the page asks the
//! operator for it and calls the API with it, like any other client of the admin API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use stompbox_broker::Broker;
use utoipa::ToSchema;

/// How often the history is sampled.
pub(crate) const INTERVAL: Duration = Duration::from_secs(2);
/// How many samples are kept: ten minutes.
pub(crate) const KEPT: usize = 300;

/// The page and its assets, outside the token check.
pub(crate) fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, body, content_type)| {
            router.route(path, get(move || asset(body, content_type)))
        })
}

/// (path, body, content type), embedded from `assets/dashboard/`.
const ASSETS: [(&str, &str, &str); 5] = [
    ("/", include_str!("../assets/dashboard/index.html"), HTML),
    (
        "/dashboard/dashboard.js",
        include_str!("../assets/dashboard/dashboard.js"),
        JS,
    ),
    (
        "/dashboard/dashboard.css",
        include_str!("../assets/dashboard/dashboard.css"),
        CSS,
    ),
    (
        "/dashboard/uPlot.iife.min.js",
        include_str!("../assets/dashboard/uPlot.iife.min.js"),
        JS,
    ),
    (
        "/dashboard/uPlot.min.css",
        include_str!("../assets/dashboard/uPlot.min.css"),
        CSS,
    ),
];
const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Scripts and styles from this listener only, never framed: the page handles a token.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The node's recent history, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct History {
    /// Seconds between samples.
    interval_seconds: u64,
    /// At most the last ten minutes.
    samples: Vec<Sample>,
}

/// The node at one moment, and its rates since the sample before.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub(crate) struct Sample {
    /// When, in milliseconds since the UNIX epoch.
    at_ms: u64,
    /// Sessions being served.
    sessions: usize,
    /// Messages waiting in the node's queues.
    queued: usize,
    /// Messages accepted per second since the sample before (0 for the first).
    received_per_second: f64,
    /// MESSAGE frames queued to subscribers per second since the sample before.
    delivered_per_second: f64,
}

/// What the sampler keeps.
#[derive(Default)]
pub(crate) struct Samples {
    kept: VecDeque<Sample>,
    /// The counters at the last sample, for the next one's rates.
    last: Option<(Instant, u64, u64)>,
}

impl Samples {
    /// Adds a sample of `broker`, taken now.
    fn take(&mut self, broker: &Broker) {
        let stats = broker.stats();
        let now = Instant::now();
        let per_second = |now_count: u64, then_count: u64, then: Instant| {
            let seconds = now.duration_since(then).as_secs_f64();
            match seconds > 0.0 {
                true => now_count.saturating_sub(then_count) as f64 / seconds,
                false => 0.0,
            }
        };
        let (received_per_second, delivered_per_second) = match self.last {
            Some((then, received, delivered)) => (
                per_second(stats.messages_received, received, then),
                per_second(stats.messages_delivered, delivered, then),
            ),
            None => (0.0, 0.0),
        };
        self.last = Some((now, stats.messages_received, stats.messages_delivered));
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Sample {
            at_ms,
            sessions: stats.sessions.iter().map(|(_, n)| n).sum(),
            queued: broker.queues().iter().map(|(_, q)| q.depth).sum(),
            received_per_second,
            delivered_per_second,
        });
    }

    pub(crate) fn history(&self) -> History {
        History {
            interval_seconds: INTERVAL.as_secs(),
            samples: self.kept.iter().cloned().collect(),
        }
    }
}

/// Starts sampling `broker` into a history that lasts as long as the returned handle: the
/// sampling task ends once the admin router holding it is dropped.
pub(crate) fn start_sampling(broker: Broker) -> Arc<Mutex<Samples>> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    tokio::spawn(sample(broker, Arc::downgrade(&samples)));
    samples
}

async fn sample(broker: Broker, samples: Weak<Mutex<Samples>>) {
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let Some(samples) = samples.upgrade() else {
            return;
        };
        samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(&broker);
    }
}
