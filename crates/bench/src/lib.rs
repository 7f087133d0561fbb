//! `stompbox-bench`: a load generator for STOMP brokers over WebSocket (`v12.stomp`) and TCP,
//! and the "floor" it is compared against.
//!
//! Scenarios ([`Scenario`]), each run by [`run`] into one [`Report`] (one JSON object):
//! - **fanout**: P publishers, S subscribers on one topic; every message to every subscriber.
//! - **topics**: S subscribers each on its own topic (`DEST.0`, `DEST.1`, …); publishers spray
//!   round-robin across them.
//! - **queue**: P producers, C competing consumers on one queue; every message exactly once.
//! - **connections**: K idle connections, each CONNECTed and SUBSCRIBEd; time to connect them
//!   all and the broker's RSS per connection.
//!
//! Every delivery is verified while measuring (per publisher: no loss, no duplicate, in order;
//! queue: exactly once across consumers); a run that fails verification has `ok: false` and an
//! `error`, never just a number.
//!
//! Publishers keep a bounded window (paced or not): a publisher is at most `window` messages
//! ahead of the deliveries of its messages (for fan-out, of the slowest subscriber's), counted
//! with shared atomics in this process. That keeps a healthy subscriber's broker outbox far
//! below a slow-consumer limit and a buffering broker's memory bounded. With `rate`, message `i` of
//! publisher `p` is scheduled at `start + (i·P + p)/rate` and latency is measured from that
//! scheduled time (no coordinated omission: a publisher that falls behind, e.g. held by its
//! window or tokio's ~1 ms timer, makes latency worse, not the offered load smaller).
//!
//! # Layout
//! - `opts.rs`: [`Scenario`], [`Common`], [`Load`], [`Connections`]: what to run.
//! - `load.rs`: the coordinator of fanout, topics and queue; `publisher.rs`, `subscriber.rs`:
//!   the two kinds of connection task; `flow.rs`: what they share (window counters, stop, first
//!   failure, latency histograms).
//! - `body.rs`: the stamp at the front of every body (publisher, sequence, timestamps).
//! - `verify.rs`: [`SeqTrack`](verify::SeqTrack) and [`SeenSet`](verify::SeenSet).
//! - `connections.rs`: connection scale. `procfs.rs`: the broker's CPU and RSS.
//! - `transport.rs`: one connection (WebSocket or TCP) as a frame sender and receiver.
//! - `floor.rs`: [`Floor`], the raw WebSocket forwarder.
//! - `report.rs`: [`Report`] and its two shapes.
//! - `main.rs`: the `stompbox-bench` binary (flags in `README.md`).

pub mod body;
mod chunked;
mod connections;
mod floor;
mod flow;
mod load;
mod opts;
mod procfs;
mod publisher;
mod report;
mod sse;
mod subscriber;
mod transport;
pub mod verify;
mod xhr;

pub use floor::Floor;
pub use opts::{Amount, Common, Connections, DEFAULT_WINDOW_TOTAL, Load, Scenario, default_window};
pub use report::{ConnectionsReport, Latency, LoadReport, Report};

use load::Shape;

/// Runs one scenario to its end (bounded by `Common::timeout`) and reports.
pub async fn run(scenario: Scenario) -> Report {
    match scenario {
        Scenario::Fanout(common, load) => {
            Report::Load(Box::new(load::run(Shape::Fanout, common, load).await))
        }
        Scenario::Topics(common, load) => {
            Report::Load(Box::new(load::run(Shape::Topics, common, load).await))
        }
        Scenario::Queue(common, load) => {
            Report::Load(Box::new(load::run(Shape::Queue, common, load).await))
        }
        Scenario::Connections(common, sizes) => {
            Report::Connections(connections::run(common, sizes).await)
        }
    }
}
