//! What one publish to a `/topic` costs as the node holds more distinct wildcard patterns.
//!
//! Run: `cargo bench -p stompbox-broker --bench topics` (results: `docs/benchmarks.md`,
//! "Topic matching").
//!
//! Each cell subscribes N distinct patterns (`*` and `#` in every position, spread over sessions
//! of at most 1,000 subscriptions) and then times [`Broker::send`] of a 64-byte body to one
//! routing key that none of them matches, so what is timed is the route and the matching, not
//! deliveries. `exact` adds one subscriber on another key: the exact-lookup hot path with no
//! pattern at all. The publish never waits and nothing drains: every cell is one synchronous
//! call per iteration.
//!
//! `hostile` is issue 12's attack scaled to the default limits: 1,000 subscriptions to
//! `#.a.a…a.b` (32 words, the most `max_topic_words` allows) and a publish to a 32-word key of
//! `a`s, the key that makes `#` try every split. (The 4 KB patterns and 8 KB key are
//! refused by `max_destination_length` now.)

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stompbox_broker::Broker;
use stompbox_test_support::TestClient;

/// Subscriptions per session: under the default `max_subscriptions_per_session` (1,024).
const PER_SESSION: usize = 1000;
/// The key every cell publishes to: four words, matched by no pattern.
const KEY: &str = "/topic/prices.eur.nyse.close";

/// The `i`th distinct pattern: one of four shapes, so the wildcards sit at the start, in the
/// middle and at the end, and literal words fan out under them.
fn pattern(i: usize) -> String {
    match i % 4 {
        0 => format!("/topic/prices.p{i}.*"),
        1 => format!("/topic/*.p{i}.nyse.close"),
        2 => format!("/topic/p{i}.#"),
        _ => format!("/topic/#.p{i}"),
    }
}

/// The most words a topic may have by default (`max_topic_words`).
const WORDS: usize = 32;

/// A broker whose sessions hold `patterns` wildcard subscriptions, the `i`th to `pattern(i)`
/// (and one exact subscription on another key); the clients are returned so the sessions stay
/// open.
async fn subscribed(patterns: usize, pattern: fn(usize) -> String) -> (Broker, Vec<TestClient>) {
    let broker = Broker::new();
    let mut clients = Vec::new();
    let mut client = TestClient::connect(&broker).await;
    client.subscribe("exact", "/topic/elsewhere").await;
    for i in 0..patterns {
        if i > 0 && i % PER_SESSION == 0 {
            clients.push(std::mem::replace(
                &mut client,
                TestClient::connect(&broker).await,
            ));
        }
        client.subscribe(&i.to_string(), &pattern(i)).await;
    }
    clients.push(client);
    (broker, clients)
}

/// Issue 12's pattern at the default limits: `#`, 30 `a`s and a `b`.
fn hostile(_: usize) -> String {
    format!("/topic/#.{}b", "a.".repeat(WORDS - 2))
}

fn publish(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let body = Bytes::from(vec![b'x'; 64]);
    let mut group = c.benchmark_group("topic_publish");
    group.measurement_time(Duration::from_secs(5));
    let hostile_key = format!("/topic/{}", vec!["a"; WORDS].join("."));
    let cells = [
        (
            BenchmarkId::new("patterns", 0),
            0,
            pattern as fn(usize) -> String,
            KEY,
        ),
        (BenchmarkId::new("patterns", 10), 10, pattern, KEY),
        (BenchmarkId::new("patterns", 10_000), 10_000, pattern, KEY),
        (
            BenchmarkId::new("hostile", 1_000),
            1_000,
            hostile,
            &hostile_key,
        ),
    ];
    for (id, patterns, shape, key) in cells {
        let (broker, clients) = runtime.block_on(subscribed(patterns, shape));
        group.bench_with_input(id, &broker, |b, broker| {
            b.iter(|| {
                let delivered = broker.send(key, black_box(body.clone())).expect("sent");
                assert_eq!(delivered, 0);
            });
        });
        runtime.block_on(async {
            drop(clients);
            broker.shutdown().await;
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
