//! A receiving connection: decodes every delivery, checks it against what its publisher sent,
//! records latency and counts it for the publishers' flow control.

use std::sync::Arc;

use stompbox_codec::{Command, Frame};

use crate::{
    body::{Stamp, now_ns},
    flow::Flow,
    transport::{FrameRx, describe},
    verify::{SeenSet, SeqTrack},
};

/// How a subscriber checks what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every message of every publisher, each publisher's in order (fan-out, topics).
    Sequence,
    /// Competing consumers: per producer, numbers must rise at this consumer; exactly-once is
    /// checked across consumers at the end.
    Share,
}

/// One subscriber's findings, per publisher.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) tracks: Vec<SeqTrack>,
    pub(crate) seen: Vec<SeenSet>,
    pub(crate) share_out_of_order: u64,
    /// When the last delivery arrived, ns since the epoch (0 if none).
    pub(crate) last_ns: u64,
}

pub(crate) struct Subscriber {
    pub(crate) index: usize,
    pub(crate) destination: String,
    pub(crate) group: usize,
    pub(crate) publishers: usize,
    pub(crate) raw: bool,
    pub(crate) check: Check,
}

impl Subscriber {
    /// Receives until the run stops.
    pub(crate) async fn run(self, mut rx: FrameRx, flow: Arc<Flow>) -> Findings {
        let mut findings = Findings {
            tracks: vec![SeqTrack::default(); self.publishers],
            seen: match self.check {
                Check::Share => vec![SeenSet::default(); self.publishers],
                Check::Sequence => Vec::new(),
            },
            ..Findings::default()
        };
        let mut last_seq: Vec<Option<u64>> = vec![None; self.publishers];
        let mut latencies = Vec::with_capacity(64);
        let mut stop = flow.stop_signal();
        loop {
            tokio::select! {
                read = rx.read_chunk() => match read {
                    Ok(true) => {}
                    Ok(false) => {
                        if !*stop.borrow() {
                            flow.fail(format!("subscriber {}: connection closed by the server", self.index));
                        }
                        break;
                    }
                    Err(e) => {
                        if !*stop.borrow() {
                            flow.fail(format!("subscriber {}: {e:#}", self.index));
                        }
                        break;
                    }
                },
                _ = stop.changed() => break,
            }
            let now = now_ns();
            let mut fresh = 0;
            loop {
                let frame = match rx.try_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        flow.fail(format!("subscriber {}: {e:#}", self.index));
                        return findings;
                    }
                };
                let stamp = match self.accept(&frame) {
                    Ok(Some(stamp)) => stamp,
                    Ok(None) => continue,
                    Err(e) => {
                        flow.fail(format!("subscriber {}: {e}", self.index));
                        return findings;
                    }
                };
                let p = stamp.publisher as usize;
                let new = match self.check {
                    Check::Sequence => {
                        let track = &mut findings.tracks[p];
                        let before = track.unique;
                        track.record(stamp.seq);
                        track.unique > before
                    }
                    Check::Share => {
                        if last_seq[p].is_some_and(|last| stamp.seq < last) {
                            findings.share_out_of_order += 1;
                        }
                        last_seq[p] = Some(stamp.seq);
                        findings.seen[p].insert(stamp.seq)
                    }
                };
                if new {
                    fresh += 1;
                    flow.delivered_one(self.group, p);
                }
                latencies.push((
                    now.saturating_sub(stamp.scheduled_ns),
                    now.saturating_sub(stamp.sent_ns),
                ));
                findings.last_ns = now;
            }
            flow.record_latencies(&latencies);
            latencies.clear();
            flow.add_delivered(fresh);
        }
        findings
    }

    /// The stamp of a delivery for us; `None` for a frame to skip (over the floor: another
    /// destination's); an error for anything else.
    fn accept(&self, frame: &Frame) -> Result<Option<Stamp>, String> {
        let expected = if self.raw {
            Command::Send
        } else {
            Command::Message
        };
        if frame.command != expected {
            return Err(format!("received {}", describe(frame)));
        }
        if self.raw && frame.header("destination") != Some(self.destination.as_str()) {
            return Ok(None);
        }
        match Stamp::read(&frame.body) {
            Some(stamp) if (stamp.publisher as usize) < self.publishers => Ok(Some(stamp)),
            _ => Err(format!("unrecognised body of {} bytes", frame.body.len())),
        }
    }
}
