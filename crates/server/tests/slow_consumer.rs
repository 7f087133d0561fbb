//! A slow consumer over real sockets: one WebSocket subscriber stops reading while another keeps
//! receiving everything, and the broker's memory stays bounded by the outbox limits.

mod common;

use common::*;
use stompbox_codec::Command;
use tokio::net::TcpSocket;

const OUTBOX_BYTES: usize = 64 * 1024;
const BODY: usize = 8 * 1024;
/// Messages per round trip: 32 KiB, half an outbox, so a subscriber that keeps reading never
/// trips the policy however the scheduler interleaves.
const BATCH: usize = 4;
/// Upper bound on what the test publishes before the slow subscriber must have been cut off:
/// 64 MiB, far more than the kernel buffers between server and the stalled client can absorb
/// (its receive buffer is pinned small below; the server's send buffer autotunes to 4 MiB).
const MAX_MESSAGES: usize = 64 * 1024 * 1024 / BODY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_cut_off_while_others_get_everything() {
    let server = TestServer::start(|c| {
        c.broker.outbox.max_bytes = OUTBOX_BYTES;
        c.broker.outbox.max_frames = 64;
    })
    .await;

    // The slow subscriber: a small, fixed receive buffer (which also turns off autotuning), and
    // after its SUBSCRIBE it never reads again.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = within("slow connect", socket.connect(server.ws_addr))
        .await
        .unwrap();
    let mut slow = WsClient::open_on(stream, &server.ws_url).await;
    slow.send_frame(&frames::connect()).await;
    slow.expect_frame(Command::Connected).await;
    slow.subscribe("slow", "/topic/firehose").await;

    let mut fast = WsClient::connect(&server.ws_url).await;
    fast.subscribe("fast", "/topic/firehose").await;
    let mut publisher = TcpClient::connect(server.tcp_addr).await;

    let body = vec![b'z'; BODY - 8];
    let mut sent = 0usize;
    let mut peak_queued = 0usize;
    let mut cut_off_at = None;
    while sent < MAX_MESSAGES {
        for _ in 0..BATCH {
            let mut payload = format!("{sent:08}").into_bytes();
            payload.extend_from_slice(&body);
            publisher
                .send_frame(&frames::send("/topic/firehose", payload))
                .await;
            sent += 1;
        }
        // The fast subscriber gets the whole batch, in order, before the next one is sent.
        for n in sent - BATCH..sent {
            let message = fast.expect_frame(Command::Message).await;
            assert_eq!(&message.body[..8], format!("{n:08}").as_bytes());
        }
        let stats = server.broker.stats();
        peak_queued = peak_queued.max(stats.queued_bytes);
        if stats.slow_consumers > 0 && cut_off_at.is_none() {
            cut_off_at = Some(sent);
        }
        // Keep going for a while after the cut-off: the fast subscriber is unaffected.
        if cut_off_at.is_some_and(|at| sent >= at + 40 * BATCH) {
            break;
        }
    }
    let cut_off_at = cut_off_at.unwrap_or_else(|| {
        panic!("the stalled subscriber was never cut off after {sent} messages")
    });

    let stats = server.broker.stats();
    assert_eq!(stats.slow_consumers, 1, "{stats:?}");
    // Memory bound: whatever the stalled client does, each of the three sessions holds at most
    // one outbox worth of queued bytes.
    assert!(
        peak_queued <= 3 * OUTBOX_BYTES,
        "queued {peak_queued} bytes, bound {}",
        3 * OUTBOX_BYTES
    );

    // The stalled client, reading at last, finds fewer messages than were sent, then the
    // ERROR (which the session was still trying to write into the full socket), then the end.
    let mut received = 0usize;
    let mut error = None;
    while let Some(frame) = slow.try_recv().await {
        match frame.command {
            Command::Message => received += 1,
            Command::Error => error = Some(frame),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(received < sent, "received {received} of {sent}");
    assert!(
        received <= cut_off_at,
        "nothing is delivered after the cut-off"
    );
    let error = error.expect("an ERROR before the close");
    assert!(
        error
            .header("message")
            .unwrap_or_default()
            .contains("slow consumer"),
        "{error:?}"
    );
    // The edge closes the socket only after the session has ended.
    let stats = server.broker.stats();
    assert_eq!(
        stats.connections, 2,
        "the stalled session is gone: {stats:?}"
    );
}

/// Under `drop-newest` the stalled subscriber loses messages but keeps its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_keeps_the_stalled_session() {
    let server = TestServer::start(|c| {
        c.broker.outbox.max_bytes = OUTBOX_BYTES;
        c.broker.outbox.max_frames = 64;
        c.broker.outbox.slow_consumer = stompbox_broker::SlowConsumerPolicy::DropNewest;
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = within("slow connect", socket.connect(server.ws_addr))
        .await
        .unwrap();
    let mut slow = WsClient::open_on(stream, &server.ws_url).await;
    slow.send_frame(&frames::connect()).await;
    slow.expect_frame(Command::Connected).await;
    slow.subscribe("slow", "/topic/lossy").await;
    let mut fast = WsClient::connect(&server.ws_url).await;
    fast.subscribe("fast", "/topic/lossy").await;
    let mut publisher = TcpClient::connect(server.tcp_addr).await;

    let mut sent = 0usize;
    let mut peak_queued = 0usize;
    let mut extra = None;
    while sent < MAX_MESSAGES {
        for _ in 0..BATCH {
            let mut payload = format!("{sent:08}").into_bytes();
            payload.resize(BODY, b'q');
            publisher
                .send_frame(&frames::send("/topic/lossy", payload))
                .await;
            sent += 1;
        }
        for n in sent - BATCH..sent {
            let message = fast.expect_frame(Command::Message).await;
            assert_eq!(&message.body[..8], format!("{n:08}").as_bytes());
        }
        let stats = server.broker.stats();
        peak_queued = peak_queued.max(stats.queued_bytes);
        if stats.dropped_deliveries > 0 {
            let left = extra.get_or_insert(40);
            if *left == 0 {
                break;
            }
            *left -= 1;
        }
    }
    let stats = server.broker.stats();
    assert!(
        stats.dropped_deliveries > 0,
        "nothing dropped after {sent} messages: {stats:?}"
    );
    assert_eq!(
        stats.connections, 3,
        "every session is still open: {stats:?}"
    );
    assert!(
        peak_queued <= 3 * OUTBOX_BYTES,
        "queued {peak_queued} bytes"
    );

    // The stalled client reads again: it gets a gap-y prefix, and its session still works.
    slow.send_frame(&frames::send("/topic/other", "barrier").with_header("receipt", "barrier"))
        .await;
    let mut received = 0usize;
    let mut last = None;
    loop {
        let frame = slow.recv().await;
        match frame.command {
            Command::Message => {
                let n: usize = std::str::from_utf8(&frame.body[..8])
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(last.is_none_or(|l| n > l), "in order");
                last = Some(n);
                received += 1;
            }
            Command::Receipt => break,
            other => panic!("unexpected {other:?}: {frame:?}"),
        }
    }
    assert!(
        received < sent,
        "received {received} of {sent}: some were dropped"
    );
    assert!(received > 0);
}
