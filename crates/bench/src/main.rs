//! `stompbox-bench`: the load generator's command line. Prints exactly one JSON object per run
//! on stdout (logs on stderr); exits non-zero when the run failed its checks.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use stompbox_bench::{
    Amount, Common, Connections, Floor, Load, Scenario,
    body::{MIN_BODY, Padding},
    default_window, run,
};

/// Load generator for STOMP brokers over WebSocket (v12.stomp) and TCP.
///
/// Every delivery is verified (no loss, no duplicate, per-publisher order; queue: exactly once);
/// a run that fails verification prints ok=false with an error and exits 1.
///
/// Flow control: without --rate, publishers send as fast as they can, but each stays at most
/// --window messages ahead of the deliveries of its messages (for fanout: of the slowest
/// subscriber), counted in-process; the window applies with --rate too. This keeps broker outboxes well below slow-consumer limits
/// (Stompbox disconnects a subscriber whose outbox exceeds 4,096 frames) and keeps a buffering
/// broker (RabbitMQ) from queueing without bound. With --rate R, R messages/s in total are
/// scheduled across publishers and latency is measured from each message's scheduled send time,
/// so a publisher that falls behind (held by its window, or by tokio's ~1 ms timer) shows as
/// latency, not as a lower offered load.
#[derive(Parser, Debug)]
#[command(name = "stompbox-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// P publishers, S subscribers on one topic: every message to every subscriber.
    Fanout {
        #[command(flatten)]
        common: CommonArgs,
        /// Publishing connections.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Subscribing connections, all on --destination.
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// N subscribers each on its own topic (DEST.0 … DEST.N-1); publishers spray across them.
    Topics {
        #[command(flatten)]
        common: CommonArgs,
        /// Topics, one subscriber each.
        #[arg(long, default_value_t = 100)]
        topics: usize,
        /// Publishing connections.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// P producers, C competing consumers on one queue: every message exactly once.
    Queue {
        #[command(flatten)]
        common: CommonArgs,
        /// Producing connections.
        #[arg(long, default_value_t = 1)]
        producers: usize,
        /// Consuming connections, competing on --destination.
        #[arg(long, default_value_t = 2)]
        consumers: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// K idle connections, each CONNECTed with one SUBSCRIBE; connect time and broker RSS.
    Connections {
        #[command(flatten)]
        common: CommonArgs,
        /// Connections to open.
        #[arg(long)]
        count: usize,
        /// Source addresses 127.0.0.1..=127.0.0.N (ports of one address run out near 28k).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(1..=254))]
        sources: u8,
        /// Connection attempts in flight at once.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Seconds to wait after the last connection before reading the broker's RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
    /// Runs the floor (a bare WebSocket forwarder) until killed; prints `listening ADDR`.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// ws://HOST:PORT/PATH (WebSocket, subprotocol v12.stomp), wss://HOST:PORT/PATH (with
    /// --ca-file) or tcp://HOST:PORT.
    #[arg(long)]
    url: String,
    /// Where subscribers connect instead of --url: sse://HOST:PORT/PATH receives over
    /// Server-Sent Events (`GET PATH?destination=...`, HTTP/1.1 chunked, as a browser's
    /// EventSource), each event checked as a MESSAGE; sockjs+ws://HOST:PORT/PREFIX is STOMP
    /// over SockJS's WebSocket transport (also accepted as --url).
    #[arg(long, value_name = "URL")]
    sub_url: Option<String>,
    /// PEM CA certificates that a wss:// server's certificate must chain to.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
    /// CONNECT login.
    #[arg(long, default_value = "guest")]
    login: String,
    /// CONNECT passcode.
    #[arg(long, default_value = "guest")]
    passcode: String,
    /// CONNECT host (RabbitMQ's virtual host).
    #[arg(long, default_value = "/")]
    host: String,
    /// The broker's pid: report its CPU seconds during the window and its RSS (from /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// The target is the floor: no CONNECT/SUBSCRIBE; whole SEND frames are sent as messages
    /// and received verbatim.
    #[arg(long)]
    raw: bool,
    /// Destination (default /topic/bench, or /queue/bench for queue; for topics, the prefix).
    #[arg(long)]
    destination: Option<String>,
    /// Free text copied into the JSON.
    #[arg(long)]
    label: Option<String>,
    /// Hard bound on the whole run, seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Offer permessage-deflate on ws://, wss:// and sockjs+ws:// connections, as browsers do.
    #[arg(long)]
    deflate: bool,
}

#[derive(Args, Debug)]
struct LoadArgs {
    /// Body bytes, stamp included (at least 44).
    #[arg(long, default_value_t = 64)]
    body: usize,
    /// Messages per publisher (default 10000 unless --duration).
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Publish for this many seconds instead of a fixed count.
    #[arg(long)]
    duration: Option<f64>,
    /// Total offered rate, messages/s across all publishers (default: unthrottled).
    #[arg(long)]
    rate: Option<f64>,
    /// Flow-control window: messages a publisher may be ahead of its slowest receiver
    /// (default: 2000 / publishers, between 16 and 1000, so all publishers together stay
    /// within half of Stompbox's 4,096-frame outbox).
    #[arg(long)]
    window: Option<u64>,
    /// Seconds without any delivery, after the last publish, before the run ends as lossy.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Send with `persistent:true` and a receipt on every SEND; publishers also stay within
    /// --window of their receipts (a durable broker's RECEIPT means "on disk").
    #[arg(long)]
    persistent: bool,
    /// Fill each body after its stamp with a JSON notification (a ranking) instead of dots:
    /// for what compression does to real bodies.
    #[arg(long)]
    json_body: bool,
}

impl CommonArgs {
    fn into_common(self) -> Result<Common, String> {
        Ok(Common {
            url: self.url,
            sub_url: self.sub_url,
            ca_file: self.ca_file,
            login: self.login,
            passcode: self.passcode,
            host: self.host,
            pid: self.pid,
            raw: self.raw,
            destination: self.destination,
            label: self.label,
            timeout: seconds("--timeout", self.timeout)?,
            deflate: self.deflate,
        })
    }
}

impl LoadArgs {
    fn into_load(self, publishers: usize, subscribers: usize) -> Result<Load, String> {
        if self.body < MIN_BODY {
            return Err(format!("--body must be at least {MIN_BODY}"));
        }
        let amount = match (self.messages, self.duration) {
            (_, Some(d)) => Amount::Duration(seconds("--duration", d)?),
            (Some(n), None) => Amount::Messages(n),
            (None, None) => Amount::Messages(10_000),
        };
        Ok(Load {
            publishers,
            subscribers,
            body: self.body,
            amount,
            rate: self.rate,
            window: self.window.unwrap_or_else(|| default_window(publishers)),
            drain: seconds("--drain", self.drain)?,
            persistent: self.persistent,
            padding: match self.json_body {
                true => Padding::Json,
                false => Padding::Dots,
            },
        })
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{flag} must be a non-negative number"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenario = match scenario(cli.command).await {
        Ok(Some(scenario)) => scenario,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stompbox-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let report = run(scenario).await;
    println!("{}", report.to_json());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scenario to run; `None` after running the floor (which only ends on error).
async fn scenario(command: Command) -> Result<Option<Scenario>, String> {
    Ok(Some(match command {
        Command::Fanout {
            common,
            publishers,
            subscribers,
            load,
        } => Scenario::Fanout(
            common.into_common()?,
            load.into_load(publishers, subscribers)?,
        ),
        Command::Topics {
            common,
            topics,
            publishers,
            load,
        } => Scenario::Topics(common.into_common()?, load.into_load(publishers, topics)?),
        Command::Queue {
            common,
            producers,
            consumers,
            load,
        } => Scenario::Queue(common.into_common()?, load.into_load(producers, consumers)?),
        Command::Connections {
            common,
            count,
            sources,
            concurrency,
            settle,
        } => Scenario::Connections(
            common.into_common()?,
            Connections {
                count,
                sources,
                concurrency,
                settle: seconds("--settle", settle)?,
            },
        ),
        Command::Floor { listen } => {
            let floor = Floor::bind(listen).await.map_err(|e| format!("{e:#}"))?;
            let addr = floor.local_addr().map_err(|e| format!("{e:#}"))?;
            println!("listening {addr}");
            eprintln!(
                "floor: forwarding every WebSocket message to every other connection on {addr}"
            );
            floor.run().await.map_err(|e| format!("{e:#}"))?;
            return Ok(None);
        }
    }))
}
