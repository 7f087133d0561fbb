//! Heart-beat negotiation (STOMP 1.2 "Heart-beating"), as a pure function.
//!
//! The client's `heart-beat: cx,cy` says it can send every `cx` ms and wants to receive every
//! `cy` ms. The server honours both, as RabbitMQ does: it sends every `cy` ms, bounded by
//! `config.heartbeat.min` and `.max`, and expects a beat every `cx` ms, at least `min` (it cannot
//! ask a client to beat faster than it offered). A direction is off if the client says zero or
//! the server's `send` / `receive` is zero. CONNECTED carries the negotiated pair, so the
//! client's own computation (the larger of its value and ours) lands on the same numbers, to the
//! millisecond.

use std::time::Duration;

use crate::HeartbeatConfig;

/// The negotiated heart-beats of one session. Zero means off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// The server writes an EOL after this long without writing anything.
    pub(crate) send: Duration,
    /// The client promised to write at least this often.
    pub(crate) receive: Duration,
    /// The client is declared dead after this long without any byte (`receive × grace`).
    pub(crate) timeout: Duration,
}

impl Heartbeat {
    /// The value of CONNECTED's `heart-beat` header.
    pub(crate) fn header(&self) -> String {
        format!("{},{}", self.send.as_millis(), self.receive.as_millis())
    }
}

/// Parses `cx,cy` (milliseconds). `None` if malformed.
pub(crate) fn parse(value: &str) -> Option<(u64, u64)> {
    let (cx, cy) = value.split_once(',')?;
    Some((cx.trim().parse().ok()?, cy.trim().parse().ok()?))
}

/// Negotiates from the client's `(cx, cy)` in milliseconds.
pub(crate) fn negotiate(client: (u64, u64), config: &HeartbeatConfig) -> Heartbeat {
    let (cx, cy) = client;
    let max = config.max.max(config.min);
    let send = if cy == 0 || config.send.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_millis(cy).clamp(config.min, max)
    };
    let receive = if cx == 0 || config.receive.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_millis(cx).max(config.min)
    };
    Heartbeat {
        send,
        receive,
        // Saturates: a client may announce up to u64::MAX ms.
        timeout: Duration::try_from_secs_f64(receive.as_secs_f64() * config.grace)
            .unwrap_or(Duration::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(send: u64, receive: u64, min: u64) -> HeartbeatConfig {
        HeartbeatConfig {
            send: Duration::from_millis(send),
            receive: Duration::from_millis(receive),
            min: Duration::from_millis(min),
            max: Duration::from_millis(30_000),
            grace: 2.0,
        }
    }

    #[test]
    fn negotiation_table() {
        // (client cx,cy), (server send, receive, min) → (send, receive) ms; max is 30 s.
        let table = [
            ((0, 0), (10_000, 10_000, 1_000), (0, 0)),
            // The client's intervals, not the server's 10 s.
            ((5_000, 5_000), (10_000, 10_000, 1_000), (5_000, 5_000)),
            ((1_000, 1_000), (10_000, 10_000, 1_000), (1_000, 1_000)),
            // To the millisecond.
            ((1_250, 2_750), (10_000, 10_000, 1_000), (2_750, 1_250)),
            // The server's beats at most every `max`; the client held to what it offered.
            ((20_000, 90_000), (10_000, 10_000, 1_000), (30_000, 20_000)),
            ((90_000, 20_000), (10_000, 10_000, 1_000), (20_000, 90_000)),
            // Below `min`: raised to it.
            ((1, 1), (500, 500, 1_000), (1_000, 1_000)),
            ((100, 100), (10_000, 10_000, 500), (500, 500)),
            // One direction only.
            ((0, 4_000), (1_000, 1_000, 1_000), (4_000, 0)),
            ((4_000, 0), (1_000, 1_000, 1_000), (0, 4_000)),
            // The server's zero turns a direction off.
            ((1, 1), (0, 0, 1_000), (0, 0)),
            ((2_000, 3_000), (0, 1_000, 100), (0, 2_000)),
        ];
        for (client, (s, r, min), (send, receive)) in table {
            let hb = negotiate(client, &cfg(s, r, min));
            assert_eq!(
                (hb.send.as_millis() as u64, hb.receive.as_millis() as u64),
                (send, receive),
                "client {client:?} server {s},{r} min {min}"
            );
            assert_eq!(hb.timeout, hb.receive * 2);
        }
    }

    #[test]
    fn huge_client_values_saturate_instead_of_panicking() {
        let hb = negotiate((u64::MAX, u64::MAX), &cfg(1, 1, 1));
        assert_eq!(hb.send, Duration::from_secs(30), "bounded by max");
        assert_eq!(hb.receive, Duration::from_millis(u64::MAX));
        assert!(hb.timeout > hb.receive);
        let config = HeartbeatConfig {
            grace: f64::MAX,
            ..cfg(1, 1, 1)
        };
        assert_eq!(negotiate((1, 1), &config).timeout, Duration::MAX);
    }

    #[test]
    fn parses_header() {
        assert_eq!(parse("10000,0"), Some((10_000, 0)));
        assert_eq!(parse(" 1 , 2 "), Some((1, 2)));
        assert_eq!(parse("10"), None);
        assert_eq!(parse("a,b"), None);
        assert_eq!(parse("-1,0"), None);
    }
}
