//! Hostile clients against the spawned `stompbox` binary (issue 12): each case does what an
//! attacker would, then checks that the broker answered it (ERROR, HTTP status, close), that its
//! memory stayed within the caps plus a stated overhead, that a control session still
//! subscribes, sends and receives, and (last) that SIGTERM ends the process within its grace.
//!
//! Memory is the process's resident set from `/proc`, so these tests are Linux-only. Every wait
//! is bounded ([`within`]); nothing is timed.

#![cfg(target_os = "linux")]

mod common;

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{TcpClient, WsClient, encode, frames, within};
use stompbox_test_support::ws::raw_upgrade_socket;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_stompbox");

/// A running binary and its listeners.
struct Spawned {
    child: Child,
    ws: SocketAddr,
    ws_url: String,
    tcp: SocketAddr,
    /// Every log line so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Spawned {
    /// Starts the binary on 127.0.0.1:0 with `env` (`STOMPBOX_*` settings) and waits for its
    /// `listening` line.
    async fn start(env: &[(&str, &str)]) -> Spawned {
        Spawned::start_in(Command::new(BIN), env).await
    }

    /// [`Spawned::start`] with at most `files` open files (soft and hard limit, `prlimit`).
    async fn start_with_open_files(files: u32, env: &[(&str, &str)]) -> Spawned {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={files}:{files}")).arg(BIN);
        Spawned::start_in(command, env).await
    }

    async fn start_in(mut command: Command, env: &[(&str, &str)]) -> Spawned {
        command.args(["--ws-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"]);
        for (name, _) in std::env::vars() {
            if name.starts_with("STOMPBOX_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            // Parallel tests must not share (or create) ./stompbox-data.
            .env("STOMPBOX_STORE__ENABLED", "false")
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("HOSTILE_RUST_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ws_url, tcp) = loop {
            let line = within("the listening line", lines.next_line())
                .await
                .unwrap()
                .expect("stderr closed before the listening line");
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening websocket=").nth(1) {
                let (ws, tcp) = rest.split_once(" tcp=").unwrap();
                let tcp = tcp.split(' ').next().unwrap().parse().unwrap();
                break (ws.to_owned(), tcp);
            }
        };
        // Keep reading the log so the child never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("HOSTILE_LOG").is_some() {
                    eprintln!("{line}");
                }
                kept.lock().unwrap().push(line);
            }
        });
        let ws = ws_url
            .trim_start_matches("ws://")
            .trim_end_matches("/ws")
            .parse()
            .unwrap();
        Spawned {
            child,
            ws,
            ws_url,
            tcp,
            log,
        }
    }

    /// Log lines so far that contain `text`.
    fn logged(&self, text: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|line| line.contains(text)).count()
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Asserts the resident memory grew by less than `max_kib` since `before` (and prints by how
    /// much, for the record).
    fn assert_rss_grew_less_than(&self, before: u64, max_kib: u64) {
        let grown = self.rss_kib().saturating_sub(before);
        eprintln!("RSS grew by {grown} KiB");
        assert!(grown < max_kib, "RSS grew by {grown} KiB");
    }

    /// A control session round trip: subscribe, send, receive its own message.
    async fn control(&self) {
        let mut client = WsClient::connect(&self.ws_url).await;
        client.subscribe("c", "/topic/control").await;
        client
            .send_frame(frames::send("/topic/control", "still here"))
            .await;
        let message = client.expect_message().await;
        assert_eq!(&message.body[..], b"still here");
    }

    /// SIGTERM, then the process must exit (by itself, within the shutdown grace).
    async fn terminate(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(killed.unwrap().success());
        let status = within("exit after SIGTERM", self.child.wait())
            .await
            .unwrap();
        assert!(status.success(), "exit status {status:?}");
    }
}

/// Sends a WebSocket upgrade for `/ws` offering `v12.stomp`; returns the socket (after the
/// response head) and the status.
async fn upgrade(addr: SocketAddr) -> (TcpStream, u16) {
    let (stream, response) = raw_upgrade_socket(addr, "/ws", &["v12.stomp"]).await;
    (stream, response.status)
}

/// A masked client frame header: FIN + `opcode`, `len` bytes of payload to follow, mask 0.
fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut head = vec![0x80 | opcode];
    match len {
        0..=125 => head.push(0x80 | len as u8),
        126..=65535 => {
            head.push(0x80 | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(0x80 | 127);
            head.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    head.extend_from_slice(&[0, 0, 0, 0]);
    head
}

/// Everything the server sends until it closes the connection (bounded).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match within("the server's close", stream.read(&mut buf)).await {
            Ok(0) => return seen,
            Err(e) => {
                if std::env::var("HOSTILE_LOG").is_ok() {
                    eprintln!("read error after {} bytes: {e}", seen.len());
                }
                return seen;
            }
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Case 1: pings written without ever reading the pongs, after CONNECT and before it. The
/// first 600 a minute are answered; the next gets ERROR `too many pings` and a 1008 close (before
/// CONNECT, the pre-CONNECT byte cap may come first), and the pongs never pile up in the server.
#[tokio::test]
async fn a_ping_flood_is_refused_and_closed() {
    let broker = Spawned::start(&[]).await;
    let before = broker.rss_kib();
    let mut floods = Vec::new();
    for i in 0..6 {
        let (mut stream, status) = upgrade(broker.ws).await;
        assert_eq!(status, 101);
        let connected = i % 2 == 0;
        if connected {
            let connect = b"CONNECT\naccept-version:1.2\nhost:x\n\n\0";
            let mut frame = frame_header(0x1, connect.len());
            frame.extend_from_slice(connect);
            stream.write_all(&frame).await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !contains(&seen, "CONNECTED") {
                let n = within("CONNECTED", stream.read(&mut buf)).await.unwrap();
                assert!(n > 0, "closed before CONNECTED");
                seen.extend_from_slice(&buf[..n]);
            }
        }
        floods.push(tokio::spawn(async move {
            let mut ping = frame_header(0x9, 125);
            ping.extend_from_slice(&[b'p'; 125]);
            // 2,000 pings (over three times the limit), never reading in between.
            let burst = ping.repeat(1000);
            for _ in 0..2 {
                if stream.write_all(&burst).await.is_err() {
                    break;
                }
            }
            (connected, read_to_close(&mut stream).await)
        }));
    }
    for flood in floods {
        // The server closed it (`read_to_close` returned).
        let (connected, seen) = within("a flood's end", flood).await.unwrap();
        if !connected {
            continue;
        }
        assert!(
            contains(&seen, "message:too many pings"),
            "no ERROR in the reply"
        );
        // The close frame: opcode 8, status 1008.
        assert!(
            seen.windows(4)
                .any(|w| w[0] == 0x88 && w[2..4] == 1008u16.to_be_bytes()),
            "no 1008 close"
        );
    }
    broker.control().await;
    // Six connections, each at most 600 queued pongs (75 KiB) and its buffers.
    broker.assert_rss_grew_less_than(before, 8 * 1024);
    broker.terminate().await;
}

/// Case 2: a small message read in the same buffer as a large one must not keep the large one
/// alive. Each round writes, in one go, a 4 MiB SEND to a topic nobody reads and a 1-byte SEND
/// to a queue (or into an open transaction) that keeps it: the broker counts 1 byte, and must
/// hold about that, not the 4 MiB read buffer it arrived in.
#[tokio::test]
async fn small_kept_messages_do_not_pin_large_read_buffers() {
    let broker = Spawned::start(&[]).await;
    let mut client = TcpClient::connect(broker.tcp).await;
    client.send_frame(frames::begin("t")).await;
    let before = broker.rss_kib();
    let big = vec![b'x'; 4 * 1024 * 1024];
    for round in 0..40 {
        let mut burst = encode(&frames::send("/topic/void", big.clone()));
        let mut small = frames::send("/queue/pin", "1");
        if round % 2 == 1 {
            small = small.with_header("transaction", "t");
        }
        burst.extend(encode(&small.with_header("receipt", "r")));
        client.send(&burst).await;
        client.expect_receipt("r").await;
    }
    // Without detaching, 40 × 4 MiB = 160 MiB stay pinned.
    broker.assert_rss_grew_less_than(before, 48 * 1024);
    client.send_frame(frames::commit("t")).await;
    broker.control().await;
    broker.terminate().await;
}

/// Case 3: sockets that never finish their HTTP request count against `max_connections` from
/// the accept (the next upgrade gets 503 while they are open) and are closed at
/// `connect_timeout`; then the node serves again.
#[tokio::test]
async fn unfinished_http_requests_count_and_time_out() {
    let broker = Spawned::start(&[
        ("STOMPBOX_BROKER__MAX_CONNECTIONS", "40"),
        ("STOMPBOX_BROKER__CONNECT_TIMEOUT", "2s"),
    ])
    .await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(broker.ws).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    // Give the accept loop the 40 (a health check waits for its turn behind them).
    let (mut probe, status) = upgrade(broker.ws).await;
    assert_eq!(status, 503, "a 41st connection is over max_connections");
    let body = read_to_close(&mut probe).await;
    assert!(contains(&body, "at most 40 connections"), "{body:?}");
    for mut stream in idle {
        let mut buf = [0u8; 1024];
        // Closed by the server at the deadline (EOF, or a reset).
        let read = within("the idle socket's close", stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    broker.control().await;
    broker.terminate().await;
}

/// Case 3, continued: more connections than the process may open. Accepting backs off and
/// logs once per interval (not once per try), and serves again once descriptors are free.
#[tokio::test]
async fn running_out_of_descriptors_backs_off_and_logs_once() {
    let broker = Spawned::start_with_open_files(64, &[]).await;
    assert_eq!(broker.logged("open-files limit soft=64 hard=64"), 1);
    assert_eq!(broker.logged("below broker.max_connections"), 1);
    let mut held = Vec::new();
    for _ in 0..100 {
        // The kernel completes these from the listen queue, accepted or not.
        held.push(TcpStream::connect(broker.ws).await.unwrap());
    }
    let warning = "cannot accept connections";
    within("the descriptor warning", async {
        while broker.logged(warning) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Keep it out of descriptors for a while: retries back off and do not log again.
    let mut probe = TcpStream::connect(broker.ws).await.unwrap();
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_secs(2), probe.read(&mut buf)).await;
    assert!(waited.is_err(), "no descriptor, so no answer yet");
    drop(held);
    // Descriptors come back as the held connections close: the probe is answered.
    let n = within("the probe's answer", probe.read(&mut buf))
        .await
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(
        broker.logged(warning),
        1,
        "one warning per 10 s, not one per try"
    );
    broker.control().await;
    broker.terminate().await;
}

/// Case 4: SIGTERM while a client holds a partial HTTP request: the process still exits.
#[tokio::test]
async fn sigterm_finishes_with_a_partial_request_open() {
    let broker = Spawned::start(&[
        ("STOMPBOX_BROKER__SHUTDOWN_GRACE", "1s"),
        ("STOMPBOX_BROKER__CONNECT_TIMEOUT", "60s"),
    ])
    .await;
    let mut partial = TcpStream::connect(broker.ws).await.unwrap();
    partial
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // And one that finished its upgrade but sent no CONNECT.
    let (_upgraded, status) = upgrade(broker.ws).await;
    assert_eq!(status, 101);
    broker.control().await;
    broker.terminate().await;
    drop(partial);
}

/// Case 5: costly wildcard patterns. The issue's 4 KB `#.a.a…a.b` patterns are refused at
/// SUBSCRIBE (longer than `broker.max_destination_length`); 1,000 of the costliest patterns the
/// limits allow (32 words, all different) and a publish to a 32-word key leave the node serving
/// and its memory within a stated bound.
#[tokio::test]
async fn costly_wildcard_patterns_are_bounded() {
    let broker = Spawned::start(&[]).await;
    let mut refused = TcpClient::connect(broker.tcp).await;
    let long = format!("/topic/#.{}b", "a.".repeat(2000));
    refused.send_frame(frames::subscribe("0", &long)).await;
    refused
        .expect_error("destination too long (max 1024 bytes)")
        .await;

    let before = broker.rss_kib();
    let mut subscribers = Vec::new();
    for s in 0..4 {
        let mut client = TcpClient::connect(broker.tcp).await;
        for i in 0..250 {
            // 32 words: `#`, one distinct word, 29 × `a`, `b`.
            let pattern = format!("/topic/#.w{s}x{i}.{}b", "a.".repeat(29));
            client.subscribe(&format!("{i}"), &pattern).await;
        }
        subscribers.push(client);
    }
    let mut publisher = TcpClient::connect(broker.tcp).await;
    let key = format!("/topic/{}c", "a.".repeat(31));
    publisher
        .send_with_receipt(frames::send(&key, "nobody matches"), "sent")
        .await;
    broker.control().await;
    // 1,000 patterns of about 5 KiB of trie each, and five sessions.
    broker.assert_rss_grew_less_than(before, 32 * 1024);
    broker.terminate().await;
}

/// Case 7 (the codec's part): a NUL in a header would mis-frame every subscriber's stream
/// (`x:a\0MESSAGE`): refused with ERROR and a close; the subscriber gets nothing of it.
#[tokio::test]
async fn a_nul_in_a_header_is_refused_not_forwarded() {
    let broker = Spawned::start(&[]).await;
    let mut subscriber = TcpClient::connect(broker.tcp).await;
    subscriber.subscribe("0", "/topic/nul").await;
    let mut sender = TcpClient::connect(broker.tcp).await;
    sender
        .send(b"SEND\ndestination:/topic/nul\nx:a\0MESSAGE\n\nbody\0")
        .await;
    sender.expect_error("NUL byte in header \"x\"").await;
    // Anything of the refused SEND would have reached the subscriber before this one.
    let mut clean = TcpClient::connect(broker.tcp).await;
    clean.send_frame(frames::send("/topic/nul", "clean")).await;
    let message = subscriber.expect_message().await;
    assert_eq!(&message.body[..], b"clean");
    broker.control().await;
    broker.terminate().await;
}

/// Case 6: a WebSocket message far over the pre-CONNECT cap, without CONNECT: ERROR `too much
/// before CONNECT` and a close once the cap is passed, not once the megabytes are in.
#[tokio::test]
async fn a_large_message_before_connect_is_cut_off_at_the_cap() {
    let broker = Spawned::start(&[]).await;
    let before = broker.rss_kib();
    let mut senders = Vec::new();
    for _ in 0..20 {
        let (mut stream, status) = upgrade(broker.ws).await;
        assert_eq!(status, 101);
        senders.push(tokio::spawn(async move {
            // One 4 MiB binary message, announced and sent 64 KiB at a time.
            let size = 4 * 1024 * 1024;
            let _ = stream.write_all(&frame_header(0x2, size)).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size && stream.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            (sent, read_to_close(&mut stream).await)
        }));
    }
    for sender in senders {
        let (sent, seen) = within("a sender's end", sender).await.unwrap();
        assert!(sent < 4 * 1024 * 1024, "the server read all {sent} bytes");
        assert!(
            contains(&seen, "message:too much before CONNECT"),
            "no ERROR"
        );
    }
    broker.control().await;
    // Twenty connections cut off at 96 KiB each (and their socket buffers), not 80 MiB.
    broker.assert_rss_grew_less_than(before, 16 * 1024);
    broker.terminate().await;
}

/// A request head over `websocket.max_request_head_size` gets 431, not a growing buffer.
#[tokio::test]
async fn an_oversize_request_head_gets_431() {
    let broker = Spawned::start(&[]).await;
    let mut stream = TcpStream::connect(broker.ws).await.unwrap();
    let mut request = b"GET /ws HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        request.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let _ = stream.write_all(&request).await;
    let reply = read_to_close(&mut stream).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    broker.control().await;
    broker.terminate().await;
}
