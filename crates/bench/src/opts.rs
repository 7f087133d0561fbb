//! What a run is asked to do: the scenario and its sizes. The CLI flags map onto these one to
//! one; tests build them directly.

use std::time::Duration;

use crate::body::Padding;

/// Options every scenario takes.
#[derive(Clone, Debug)]
pub struct Common {
    /// `ws://HOST:PORT/PATH`, `wss://HOST:PORT/PATH` or `tcp://HOST:PORT`.
    pub url: String,
    /// Where subscribers connect instead of `url`: `sse://HOST:PORT/PATH` for Server-Sent
    /// Events, `sockjs+ws://HOST:PORT/PREFIX` for SockJS's WebSocket transport. `None`: `url`.
    pub sub_url: Option<String>,
    /// PEM CA certificates a `wss://` server's certificate must chain to.
    pub ca_file: Option<std::path::PathBuf>,
    /// CONNECT `login`.
    pub login: String,
    /// CONNECT `passcode`.
    pub passcode: String,
    /// CONNECT `host` (RabbitMQ's virtual host).
    pub host: String,
    /// The broker's process id: CPU seconds and RSS are read from `/proc/PID`.
    pub pid: Option<u32>,
    /// The target is the floor: no CONNECT/SUBSCRIBE, whole SEND frames forwarded verbatim.
    pub raw: bool,
    /// Destination (or prefix, for `topics`); `None` for the scenario's default.
    pub destination: Option<String>,
    /// Copied into the report.
    pub label: Option<String>,
    /// Hard bound on the whole run.
    pub timeout: Duration,
    /// Offer permessage-deflate on WebSocket connections (as browsers do), and use it when
    /// the server agrees.
    pub deflate: bool,
}

impl Common {
    /// Where subscribers connect.
    pub(crate) fn sub_url(&self) -> &str {
        self.sub_url.as_deref().unwrap_or(&self.url)
    }

    /// Defaults for `url`: guest/guest, host `/`, two minutes.
    pub fn new(url: impl Into<String>) -> Common {
        Common {
            url: url.into(),
            sub_url: None,
            ca_file: None,
            login: "guest".into(),
            passcode: "guest".into(),
            host: "/".into(),
            pid: None,
            raw: false,
            destination: None,
            label: None,
            timeout: Duration::from_secs(120),
            deflate: false,
        }
    }
}

/// How much each publisher sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// This many messages per publisher.
    Messages(u64),
    /// As many as fit in this long.
    Duration(Duration),
}

/// Sizes of a message-moving run (fan-out, topics, queue).
#[derive(Clone, Debug)]
pub struct Load {
    /// Connections that send.
    pub publishers: usize,
    /// Connections that receive: subscribers of the one topic (fan-out), one per topic
    /// (topics), competing consumers (queue).
    pub subscribers: usize,
    /// Body size in bytes (at least [`crate::body::MIN_BODY`]).
    pub body: usize,
    /// How much to send.
    pub amount: Amount,
    /// Total offered rate, messages/s across all publishers; `None` = unthrottled.
    pub rate: Option<f64>,
    /// Flow-control window: how far a publisher may run ahead of the deliveries of its
    /// messages (the slowest subscriber's, for fan-out).
    pub window: u64,
    /// How long deliveries may stall after the last publish before the run ends as lossy.
    pub drain: Duration,
    /// Every SEND carries `persistent:true` and asks for a RECEIPT (which a durable broker
    /// sends once the message is on disk), and a publisher also stays within `window`
    /// messages of its receipts: a producer that waits for its messages to be stored.
    pub persistent: bool,
    /// What fills each body after its stamp.
    pub padding: Padding,
}

impl Load {
    /// `publishers` × `subscribers`, 64-byte bodies, 1,000 messages each, unthrottled.
    pub fn new(publishers: usize, subscribers: usize) -> Load {
        Load {
            publishers,
            subscribers,
            body: 64,
            amount: Amount::Messages(1000),
            rate: None,
            window: default_window(publishers),
            drain: Duration::from_secs(5),
            persistent: false,
            padding: Padding::Dots,
        }
    }
}

/// Most messages all publishers together may be ahead of a subscriber by default: half of
/// Stompbox's 4,096-frame outbox (whose overflow disconnects the subscriber as slow), so an
/// unthrottled run never gets a healthy subscriber disconnected.
pub const DEFAULT_WINDOW_TOTAL: u64 = 2000;

/// Default `--window` per publisher: [`DEFAULT_WINDOW_TOTAL`] shared by the publishers, at most
/// 1,000 and at least 16.
pub fn default_window(publishers: usize) -> u64 {
    (DEFAULT_WINDOW_TOTAL / publishers.max(1) as u64).clamp(16, 1000)
}

/// Sizes of a connection-scale run.
#[derive(Clone, Debug)]
pub struct Connections {
    /// Idle connections to open.
    pub count: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread them over (ports run out past ~28k
    /// per source address).
    pub sources: u8,
    /// Connection attempts in flight at once.
    pub concurrency: usize,
    /// Pause after the last connection before RSS is read, so the broker's allocations settle.
    pub settle: Duration,
}

impl Connections {
    /// `count` connections over 20 source addresses, 128 in flight, 1 s settle.
    pub fn new(count: usize) -> Connections {
        Connections {
            count,
            sources: 20,
            concurrency: 128,
            settle: Duration::from_secs(1),
        }
    }
}

/// One run.
#[derive(Clone, Debug)]
pub enum Scenario {
    /// P publishers, S subscribers on one topic: every message to every subscriber.
    Fanout(Common, Load),
    /// S subscribers each on its own topic; publishers spray round-robin across them.
    Topics(Common, Load),
    /// P producers, C competing consumers on one queue: every message exactly once.
    Queue(Common, Load),
    /// K idle connections, each CONNECTed with one SUBSCRIBE.
    Connections(Common, Connections),
}
