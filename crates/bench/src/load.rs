//! Fan-out, topics and queue: one coordinator for the three message-moving scenarios.
//!
//! Connect and subscribe everyone (excluded from the window) → read the broker's CPU → start
//! every publisher at once → wait for the publishers → wait for every owed delivery (or a
//! stall of `drain`, or the timeout) → stop everyone → tally.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use futures::{StreamExt, future::join_all, stream};
use hdrhistogram::Histogram;
use tokio::time::timeout_at;

use crate::{
    body::{MIN_BODY, now_ns},
    flow::Flow,
    opts::{Common, Load},
    procfs,
    publisher::{self, Plan},
    report::{Latency, LoadReport},
    subscriber::{Check, Findings, Subscriber},
    transport::{self, FrameRx, FrameTx, Target},
};

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 64;
/// Pause after the floor's handshakes before publishing: the floor has no receipts. (Our floor
/// registers a connection before answering its handshake, so this only covers other floors.)
const RAW_SETTLE: Duration = Duration::from_millis(50);

/// Which of the three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Fanout,
    Topics,
    Queue,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Fanout => "fanout",
            Shape::Topics => "topics",
            Shape::Queue => "queue",
        }
    }

    fn default_destination(self) -> &'static str {
        match self {
            Shape::Fanout | Shape::Topics => "/topic/bench",
            Shape::Queue => "/queue/bench",
        }
    }
}

pub(crate) async fn run(shape: Shape, common: Common, load: Load) -> LoadReport {
    let destination = common
        .destination
        .clone()
        .unwrap_or_else(|| shape.default_destination().to_owned());
    let mut report = LoadReport {
        scenario: shape.name(),
        label: common.label.clone(),
        url: common.url.clone(),
        destination: destination.clone(),
        raw: common.raw,
        publishers: load.publishers,
        subscribers: load.subscribers,
        body: load.body.max(MIN_BODY),
        rate: load.rate,
        window: load.window,
        ..LoadReport::default()
    };
    let groups = if shape == Shape::Fanout {
        load.subscribers
    } else {
        1
    };
    let flow = Arc::new(Flow::new(load.publishers, groups));
    let deadline = tokio::time::Instant::now() + common.timeout;
    let measured = measure(shape, &common, &load, destination, &flow, &mut report);
    match timeout_at(deadline, measured).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.error = Some(format!("{e:#}")),
        Err(_) => {
            // Ends every task still running; their connections close as they drop.
            flow.stop();
            report.error = Some(format!(
                "timed out after {} s",
                common.timeout.as_secs_f64()
            ))
        }
    }
    report.ok = report.error.is_none()
        && report.sent > 0
        && report.delivered == report.expected
        && report.lost == 0
        && report.duplicates == 0
        && report.out_of_order == 0;
    if !report.ok && report.error.is_none() {
        report.error = Some(if report.sent == 0 {
            "nothing was sent".to_owned()
        } else {
            format!(
                "verification failed: {} lost, {} duplicates, {} out of order",
                report.lost, report.duplicates, report.out_of_order
            )
        });
    }
    report
}

fn validate(shape: Shape, common: &Common, load: &Load) -> Result<()> {
    if load.publishers == 0 || load.subscribers == 0 {
        bail!("publishers and subscribers must be at least 1");
    }
    if load.body < MIN_BODY {
        bail!("--body must be at least {MIN_BODY} bytes (the stamp)");
    }
    if load.window == 0 {
        bail!("--window must be at least 1");
    }
    if load.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number");
    }
    if common.raw && !common.url.starts_with("ws://") {
        bail!("--raw needs a ws:// URL: the floor is a WebSocket server");
    }
    if common.raw && common.sub_url.is_some() {
        bail!("--raw has no --sub-url: the floor is one WebSocket server");
    }
    if common.raw && shape == Shape::Queue {
        bail!("--raw has no queue: the floor gives every message to every connection");
    }
    Ok(())
}

async fn measure(
    shape: Shape,
    common: &Common,
    load: &Load,
    destination: String,
    flow: &Arc<Flow>,
    report: &mut LoadReport,
) -> Result<()> {
    validate(shape, common, load)?;
    let target = Target::parse(&common.url, common.ca_file.as_deref(), common.deflate)?;
    let (publishers, subscribers) = (load.publishers, load.subscribers);
    let sub_destinations: Vec<String> = match shape {
        Shape::Topics => (0..subscribers)
            .map(|t| format!("{destination}.{t}"))
            .collect(),
        Shape::Fanout | Shape::Queue => vec![destination.clone(); subscribers],
    };
    let pub_destinations = Arc::new(match shape {
        Shape::Topics => sub_destinations.clone(),
        Shape::Fanout | Shape::Queue => vec![destination.clone()],
    });

    // Set up: subscribers first (each with a RECEIPT for its SUBSCRIBE), then publishers.
    let sub_target = Target::parse(common.sub_url(), common.ca_file.as_deref(), common.deflate)?;
    let subs = connect_all(
        &sub_target,
        common,
        sub_destinations.iter().map(Some).collect(),
    )
    .await?;
    let pubs = connect_all(&target, common, vec![None; publishers]).await?;
    if common.raw {
        tokio::time::sleep(RAW_SETTLE).await;
    }

    let check = if shape == Shape::Queue {
        Check::Share
    } else {
        Check::Sequence
    };
    let cpu_before = common.pid.and_then(procfs::cpu_seconds);
    let wire_before = sub_target.wire_bytes_read();
    let start_ns = now_ns();

    let mut sub_txs = Vec::with_capacity(subscribers);
    let mut sub_tasks = Vec::with_capacity(subscribers);
    for (index, ((tx, rx), destination)) in subs.into_iter().zip(sub_destinations).enumerate() {
        sub_txs.push(tx);
        let subscriber = Subscriber {
            index,
            destination,
            group: if shape == Shape::Fanout { index } else { 0 },
            publishers,
            raw: common.raw,
            check,
        };
        sub_tasks.push(tokio::spawn(subscriber.run(rx, flow.clone())));
    }
    let mut pub_tasks = Vec::with_capacity(publishers);
    let mut drains = Vec::with_capacity(publishers);
    for (index, (tx, rx)) in pubs.into_iter().enumerate() {
        let receipts = load.persistent.then(Arc::default);
        drains.push(tokio::spawn(publisher::drain(
            index,
            rx,
            common.raw,
            receipts.clone(),
            flow.clone(),
        )));
        let plan = Plan {
            index,
            destinations: pub_destinations.clone(),
            load: load.clone(),
            start_ns,
            receipts,
        };
        pub_tasks.push(tokio::spawn(publisher::publish(plan, tx, flow.clone())));
    }

    let mut sent_by = Vec::with_capacity(publishers);
    let mut pub_txs = Vec::with_capacity(publishers);
    for task in join_all(pub_tasks).await {
        let (sent, tx) = task?;
        sent_by.push(sent);
        pub_txs.push(tx);
    }
    let sent: u64 = sent_by.iter().sum();
    let expected = match shape {
        Shape::Fanout => sent * subscribers as u64,
        Shape::Topics | Shape::Queue => sent,
    };
    flow.set_target(expected);
    wait_for_deliveries(flow, expected, load.drain).await;
    flow.stop();

    let mut findings = Vec::with_capacity(subscribers);
    for task in join_all(sub_tasks).await {
        findings.push(task?);
    }
    join_all(drains).await;
    let cpu_after = common.pid.and_then(procfs::cpu_seconds);
    let wire_after = sub_target.wire_bytes_read();

    let last_ns = findings.iter().map(|f| f.last_ns).max().unwrap_or(0);
    let elapsed_s = last_ns.saturating_sub(start_ns) as f64 / 1e9;
    tally(shape, &sent_by, &findings, report);
    report.sent = sent;
    report.expected = expected;
    report.error = flow.failure();
    report.elapsed_s = elapsed_s;
    if elapsed_s > 0.0 {
        report.deliveries_per_s = report.delivered as f64 / elapsed_s;
        report.messages_per_s = sent as f64 / elapsed_s;
    }
    let (from_scheduled, from_sent) = flow.latencies();
    report.latency_us = percentiles(&from_scheduled);
    report.latency_from_send_us = percentiles(&from_sent);
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        report.broker_cpu_s = Some(after - before);
        if elapsed_s > 0.0 {
            report.broker_cpu_per_s = Some((after - before) / elapsed_s);
        }
    }
    report.broker_rss_kib = common.pid.and_then(procfs::rss_kib);
    report.wire_bytes_read = wire_after - wire_before;
    if report.delivered > 0 {
        report.wire_bytes_per_delivery =
            Some(report.wire_bytes_read as f64 / report.delivered as f64);
    }

    close_all(sub_txs.into_iter().chain(pub_txs)).await;
    Ok(())
}

/// Waits until `expected` first-time deliveries were made, or none was made for `drain`.
async fn wait_for_deliveries(flow: &Flow, expected: u64, drain: Duration) {
    let mut stop = flow.stop_signal();
    let mut last = flow.delivered();
    let mut last_progress = Instant::now();
    while flow.delivered() < expected && !*stop.borrow_and_update() {
        let woken = flow.complete.notified();
        if flow.delivered() >= expected {
            break;
        }
        tokio::select! {
            _ = woken => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now = flow.delivered();
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= drain {
            break;
        }
    }
}

/// Adds up every subscriber's findings against what each publisher sent.
fn tally(shape: Shape, sent_by: &[u64], findings: &[Findings], report: &mut LoadReport) {
    let topics = findings.len() as u64;
    match shape {
        Shape::Fanout | Shape::Topics => {
            for (s, found) in findings.iter().enumerate() {
                for (p, track) in found.tracks.iter().enumerate() {
                    let owed = match shape {
                        Shape::Topics => owed_on_topic(sent_by[p], p as u64, s as u64, topics),
                        _ => sent_by[p],
                    };
                    report.delivered += track.unique;
                    report.duplicates += track.duplicates;
                    report.out_of_order += track.out_of_order;
                    report.lost += track.lost(owed);
                }
            }
        }
        Shape::Queue => {
            for (p, &sent) in sent_by.iter().enumerate() {
                let mut all = crate::verify::SeenSet::default();
                for found in findings {
                    all.merge(&found.seen[p]);
                }
                report.delivered += all.unique;
                report.duplicates += all.duplicates;
                report.lost += all.lost(sent);
            }
            report.out_of_order = findings.iter().map(|f| f.share_out_of_order).sum();
        }
    }
}

/// How many of publisher `p`'s `sent` messages went to topic `t` of `topics`: message `i` goes
/// to `(p + i) % topics`.
fn owed_on_topic(sent: u64, p: u64, t: u64, topics: u64) -> u64 {
    let first = (t + topics - p % topics) % topics;
    if first < sent {
        (sent - 1 - first) / topics + 1
    } else {
        0
    }
}

fn percentiles(histogram: &Histogram<u64>) -> Option<Latency> {
    if histogram.is_empty() {
        return None;
    }
    let us = |ns: u64| (ns as f64 / 1e3 * 10.0).round() / 10.0;
    Some(Latency {
        p50: us(histogram.value_at_quantile(0.50)),
        p99: us(histogram.value_at_quantile(0.99)),
        p999: us(histogram.value_at_quantile(0.999)),
        max: us(histogram.max()),
    })
}

/// Connects one connection per entry, `CONNECT_CONCURRENCY` at a time, subscribing those with a
/// destination. In order.
async fn connect_all(
    target: &Target,
    common: &Common,
    destinations: Vec<Option<&String>>,
) -> Result<Vec<(FrameTx, FrameRx)>> {
    let source: Option<IpAddr> = None;
    let results: Vec<Result<(FrameTx, FrameRx)>> = stream::iter(destinations)
        .map(|destination| async move {
            let (mut tx, mut rx) = transport::connect(target, common, source).await?;
            if let Some(destination) = destination {
                transport::subscribe(&mut tx, &mut rx, destination, common.raw).await?;
            }
            Ok((tx, rx))
        })
        .buffered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Closes every connection, each bounded by a second.
async fn close_all(txs: impl Iterator<Item = FrameTx>) {
    join_all(txs.map(|mut tx| async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
    }))
    .await;
}

#[cfg(test)]
mod tests {
    use super::owed_on_topic;

    #[test]
    fn spray_owes_each_topic_its_share() {
        for topics in 1..6u64 {
            for p in 0..4u64 {
                for sent in 0..20u64 {
                    let total: u64 = (0..topics).map(|t| owed_on_topic(sent, p, t, topics)).sum();
                    assert_eq!(total, sent);
                    for t in 0..topics {
                        let direct = (0..sent).filter(|i| (p + i) % topics == t).count() as u64;
                        assert_eq!(owed_on_topic(sent, p, t, topics), direct);
                    }
                }
            }
        }
    }
}
