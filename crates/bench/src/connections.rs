//! Connection scale: K idle connections, each CONNECTed with one SUBSCRIBE (over the floor: the
//! WebSocket handshake only), spread over source addresses 127.0.0.1..=127.0.0.N so the
//! ephemeral ports of one source address do not run out.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use anyhow::Result;
use futures::{StreamExt, future::join_all, stream};

use crate::{
    opts::{Common, Connections},
    procfs,
    report::ConnectionsReport,
    transport::{self, FrameRx, FrameTx, Target},
};

pub(crate) async fn run(common: Common, sizes: Connections) -> ConnectionsReport {
    let mut report = ConnectionsReport {
        scenario: "connections",
        label: common.label.clone(),
        url: common.url.clone(),
        raw: common.raw,
        count: sizes.count,
        sources: sizes.sources.max(1),
        ..ConnectionsReport::default()
    };
    raise_fd_limit();
    let deadline = tokio::time::Instant::now() + common.timeout;
    if let Err(e) = tokio::time::timeout_at(deadline, measure(&common, &sizes, &mut report))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "timed out after {} s",
                common.timeout.as_secs_f64()
            ))
        })
    {
        report.error.get_or_insert(format!("{e:#}"));
    }
    report.ok = report.error.is_none() && report.connected == report.count;
    report
}

async fn measure(
    common: &Common,
    sizes: &Connections,
    report: &mut ConnectionsReport,
) -> Result<()> {
    let target = Target::parse(common.sub_url(), common.ca_file.as_deref(), common.deflate)?;
    let destination = common
        .destination
        .clone()
        .unwrap_or_else(|| "/topic/bench".to_owned());
    report.rss_before_kib = common.pid.and_then(procfs::rss_kib);
    let sources = sizes.sources.max(1);
    let started = Instant::now();
    let results: Vec<Result<(FrameTx, FrameRx)>> = stream::iter(0..sizes.count)
        .map(|i| {
            let (target, destination) = (&target, &destination);
            async move {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % sources as usize) as u8));
                let (mut tx, mut rx) = transport::connect(target, common, Some(source)).await?;
                transport::subscribe(&mut tx, &mut rx, destination, common.raw).await?;
                Ok((tx, rx))
            }
        })
        .buffer_unordered(sizes.concurrency.max(1))
        .collect()
        .await;
    let connect_s = started.elapsed().as_secs_f64();
    let mut open = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(connection) => open.push(connection),
            Err(e) => {
                report.error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    report.connected = open.len();
    report.connect_s = connect_s;
    if connect_s > 0.0 {
        report.connects_per_s = open.len() as f64 / connect_s;
    }
    tokio::time::sleep(sizes.settle).await;
    report.rss_after_kib = common.pid.and_then(procfs::rss_kib);
    if let (Some(before), Some(after)) = (report.rss_before_kib, report.rss_after_kib)
        && !open.is_empty()
    {
        report.rss_per_conn_kib = Some((after as f64 - before as f64) / open.len() as f64);
    }
    join_all(open.into_iter().map(|(mut tx, _rx)| async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tx.close()).await;
    }))
    .await;
    Ok(())
}

/// Raises the soft open-files limit to the hard one: K connections need K descriptors.
fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::increase_nofile_limit(hard);
    }
}
