//! The binary is `kill -9`ed while producers stream persistent SENDs with receipts and
//! consumers ACK with receipts, then restarted on the same data directory. A RECEIPT is a
//! promise: every message whose SEND got one is delivered (before the crash, or after it), and
//! none whose ACK got one comes back. What comes back after a crash is marked `redelivered`.
//! Three rounds, each killed at a different point of the stream (printed, with the seed). The
//! queue holds 500 messages in memory, so the backlog's tail is on disk (paged) throughout.

#![cfg(unix)]

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use stompbox_codec::{Command, Frame, Item, Limits, StompCodec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command as Process};
use tokio_util::codec::Framed;

const BIN: &str = env!("CARGO_BIN_EXE_stompbox");
const PRODUCERS: usize = 4;
const PER_PRODUCER: usize = 5_000;
const CONSUMERS: usize = 2;
const QUEUE: &str = "/queue/crash";
/// Every wait of the test is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// Starts the binary on `data_dir`; returns it and its TCP address.
async fn start(data_dir: &Path) -> (Child, SocketAddr) {
    let mut command = Process::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("STOMPBOX_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--ws-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        // Small memory bounds: most of the backlog is the queue's tail on disk, read back a
        // page at a time, before and after the crash.
        .args(["--set", "broker.queues.max_messages=500"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let tcp = loop {
        let line = within("the listening line", lines.next_line())
            .await
            .unwrap()
            .expect("the binary exited before listening");
        if let Some(at) = line.find("tcp=") {
            let addr = line[at + 4..].split_whitespace().next().unwrap();
            break addr.trim_matches('"').parse().unwrap();
        }
    };
    // Keep draining the log so the binary never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, tcp)
}

type Conn = Framed<TcpStream, StompCodec>;

async fn connect(addr: SocketAddr) -> Conn {
    let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    let mut conn = Framed::new(stream, StompCodec::new(Limits::UNLIMITED));
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "localhost");
    conn.send(&connect).await.unwrap();
    match within("CONNECTED", next_frame(&mut conn)).await {
        Some(f) if f.command == Command::Connected => conn,
        other => panic!("expected CONNECTED, got {other:?}"),
    }
}

/// The next frame; `None` when the connection ends (the broker was killed).
async fn next_frame(conn: &mut Conn) -> Option<Frame> {
    loop {
        match conn.next().await? {
            Ok(Item::Frame(f)) => return Some(f),
            Ok(Item::HeartBeat) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends its messages in windows of 100, each with a receipt; returns the bodies whose
/// RECEIPT arrived. Ends quietly when the broker dies.
async fn produce(addr: SocketAddr, p: usize, receipted: Arc<AtomicUsize>) -> Vec<String> {
    let mut conn = connect(addr).await;
    let mut confirmed = Vec::new();
    for window in (0..PER_PRODUCER).collect::<Vec<_>>().chunks(100) {
        for &i in window {
            let send = Frame::new(Command::Send)
                .with_header("destination", QUEUE)
                .with_header("persistent", "true")
                .with_header("receipt", format!("p{p}-{i}"))
                .with_body(format!("p{p}-{i}"));
            if conn.feed(&send).await.is_err() {
                return confirmed;
            }
        }
        if conn.flush().await.is_err() {
            return confirmed;
        }
        for _ in window {
            match within("a RECEIPT", next_frame(&mut conn)).await {
                Some(f) if f.command == Command::Receipt => {
                    confirmed.push(f.header("receipt-id").unwrap().to_owned());
                    receipted.fetch_add(1, Relaxed);
                }
                Some(f) => panic!("producer {p}: unexpected {f:?}"),
                None => return confirmed,
            }
        }
    }
    confirmed
}

/// What a consumer saw: every body delivered, with its `redelivered` flag, and the bodies
/// whose ACK got a RECEIPT.
#[derive(Default)]
struct Consumed {
    delivered: Vec<(String, bool)>,
    /// ACKs whose RECEIPT arrived.
    acked: Vec<String>,
    /// ACKs written to the socket (their RECEIPT may not have come).
    sent_ack: Vec<String>,
}

/// Consumes with client-individual acks, each ACK with a receipt, until the broker dies or
/// `until` messages were consumed in all (shared), or nothing came for `idle`.
async fn consume(
    addr: SocketAddr,
    total: Arc<AtomicUsize>,
    until: usize,
    idle: Duration,
) -> Consumed {
    let mut conn = connect(addr).await;
    let subscribe = Frame::new(Command::Subscribe)
        .with_header("id", "s")
        .with_header("destination", QUEUE)
        .with_header("ack", "client-individual")
        .with_header("prefetch-count", "50");
    conn.send(&subscribe).await.unwrap();
    let mut seen = Consumed::default();
    while total.load(Relaxed) < until {
        let frame = match tokio::time::timeout(idle, next_frame(&mut conn)).await {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        match frame.command {
            Command::Message => {
                let body = String::from_utf8(frame.body.to_vec()).unwrap();
                let redelivered = frame.header("redelivered") == Some("true");
                seen.delivered.push((body.clone(), redelivered));
                total.fetch_add(1, Relaxed);
                let ack = Frame::new(Command::Ack)
                    .with_header("id", frame.header("ack").unwrap())
                    .with_header("receipt", body.clone());
                if conn.send(&ack).await.is_err() {
                    break;
                }
                seen.sent_ack.push(body);
            }
            Command::Receipt => seen
                .acked
                .push(frame.header("receipt-id").unwrap().to_owned()),
            _ => panic!("consumer: unexpected {frame:?}"),
        }
    }
    seen
}

fn kill_9(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// One round: stream, kill after `kill_after` producer receipts, restart, drain, check.
async fn round(kill_after: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, addr) = start(dir.path()).await;
    let receipted = Arc::new(AtomicUsize::new(0));
    let consumed = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(addr, p, receipted.clone())))
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let consumed = consumed.clone();
            tokio::spawn(consume(addr, consumed, usize::MAX, WAIT))
        })
        .collect();
    within("the kill point", async {
        while receipted.load(Relaxed) < kill_after {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    kill_9(&first);
    within("the killed binary to exit", first.wait())
        .await
        .unwrap();

    let mut confirmed = BTreeSet::new();
    for p in producers {
        confirmed.extend(within("a producer", p).await.unwrap());
    }
    let (mut before, mut acked, mut sent_ack) = (Vec::new(), HashSet::new(), HashSet::new());
    for c in consumers {
        let seen = within("a consumer", c).await.unwrap();
        before.extend(seen.delivered);
        acked.extend(seen.acked);
        sent_ack.extend(seen.sent_ack);
    }
    assert!(
        confirmed.len() >= kill_after,
        "receipts counted before the kill"
    );

    // Restart on the same directory and drain what comes back.
    let (_second, addr) = start(dir.path()).await;
    let total = Arc::new(AtomicUsize::new(0));
    let after = consume(addr, total, usize::MAX, Duration::from_millis(1500)).await;

    let delivered_before: HashSet<&str> = before.iter().map(|(b, _)| b.as_str()).collect();
    let mut after_bodies = HashSet::new();
    for (body, redelivered) in &after.delivered {
        assert!(
            !acked.contains(body),
            "{body} came back although its ACK got a RECEIPT"
        );
        assert!(
            *redelivered,
            "{body} came back after a crash without redelivered:true"
        );
        assert!(
            after_bodies.insert(body.as_str()),
            "{body} delivered twice after the restart"
        );
    }
    // Delivered before the crash and ACKed without the ACK's RECEIPT arriving, a message may
    // or may not come back (its removal may have reached the disk): either is right. Never
    // delivered at all is what a RECEIPT rules out.
    for body in &confirmed {
        assert!(
            delivered_before.contains(body.as_str()) || after_bodies.contains(body.as_str()),
            "{body}: its SEND got a RECEIPT, but it was delivered neither before the crash nor \
             after it"
        );
        assert!(
            !delivered_before.contains(body.as_str())
                || acked.contains(body)
                || after_bodies.contains(body.as_str())
                || sent_ack.contains(body),
            "{body}: delivered before the crash, never ACKed, and not delivered after it"
        );
    }
    // Unacknowledged deliveries before the crash come back (those that were stored).
    let unacked_before = (before.iter())
        .filter(|(b, _)| confirmed.contains(b) && !acked.contains(b))
        .count();
    println!(
        "killed after {kill_after} receipts: {} SENDs confirmed, {} delivered before ({} ACKs \
         confirmed), {} after the restart (of which {unacked_before} delivered unacked before)",
        confirmed.len(),
        before.len(),
        acked.len(),
        after.delivered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_receipted_message_and_brings_back_no_acknowledged_one() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut x = seed | 1;
    for _ in 0..3 {
        // xorshift: a kill point between 10 % and 90 % of the stream.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let total = PRODUCERS * PER_PRODUCER;
        let kill_after = total / 10 + (x as usize) % (total * 8 / 10);
        round(kill_after).await;
    }
}

/// Sends `bodies` to `destination` (persistent or not), each with a receipt; waits for them.
async fn publish(conn: &mut Conn, destination: &str, bodies: &[String], persistent: bool) {
    for body in bodies {
        let mut send = Frame::new(Command::Send)
            .with_header("destination", destination)
            .with_header("receipt", body.as_str())
            .with_body(body.clone());
        if persistent {
            send = send.with_header("persistent", "true");
        }
        conn.feed(&send).await.unwrap();
    }
    conn.flush().await.unwrap();
    for body in bodies {
        let f = within("a RECEIPT", next_frame(conn)).await.unwrap();
        assert_eq!(f.header("receipt-id"), Some(body.as_str()), "{f:?}");
    }
}

/// Client acks: a message written to a session that is going away is not lost to it.
fn durable_subscribe() -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", "feed")
        .with_header("destination", "/topic/scores")
        .with_header("durable", "true")
        .with_header("ack", "client-individual")
        .with_header("prefetch-count", "500")
}

/// Takes (and ACKs) `n` messages' bodies, then checks that nothing else comes for a moment.
async fn take_all(conn: &mut Conn, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let f = within("a MESSAGE", next_frame(conn)).await.unwrap();
        assert_eq!(f.command, Command::Message, "{f:?}");
        got.push(String::from_utf8(f.body.to_vec()).unwrap());
        let ack = Frame::new(Command::Ack).with_header("id", f.header("ack").unwrap());
        conn.send(&ack).await.unwrap();
    }
    let more = tokio::time::timeout(Duration::from_millis(300), next_frame(conn)).await;
    assert!(more.is_err(), "more than {n} messages: {more:?}");
    got
}

/// A durable topic subscription made on the real binary keeps the `persistent:true` messages
/// published while its subscriber is away through `kill -9` and a restart, in order, and
/// keeps being fed by its topic after the restart before its subscriber is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_and_its_persistent_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (first, addr) = start(dir.path()).await;
    let mut sub = connect(addr).await;
    sub.send(&durable_subscribe().with_header("receipt", "subscribed"))
        .await
        .unwrap();
    let f = within("the SUBSCRIBE's RECEIPT", next_frame(&mut sub)).await;
    assert_eq!(f.unwrap().header("receipt-id"), Some("subscribed"));
    let bye = Frame::new(Command::Disconnect).with_header("receipt", "bye");
    sub.send(&bye).await.unwrap();
    let f = within("the DISCONNECT's RECEIPT", next_frame(&mut sub)).await;
    assert_eq!(f.unwrap().header("receipt-id"), Some("bye"));
    drop(sub);

    let names = |from: usize, to: usize| (from..to).map(|i| format!("m{i}")).collect::<Vec<_>>();
    let mut publisher = connect(addr).await;
    publish(&mut publisher, "/topic/scores", &names(0, 1500), true).await;
    let transient = vec!["transient".to_owned()];
    publish(&mut publisher, "/topic/scores", &transient, false).await;
    kill_9(&first);
    drop(first);

    let (_second, addr) = start(dir.path()).await;
    let mut publisher = connect(addr).await;
    publish(&mut publisher, "/topic/scores", &names(1500, 2000), true).await;
    let mut sub = connect(addr).await;
    sub.send(&durable_subscribe()).await.unwrap();
    assert_eq!(take_all(&mut sub, 2000).await, names(0, 2000));
}
