//! Heart-beat negotiation (STOMP 1.2 "Heart-beating"), as a pure function.
//!
//! The client's `heart-beat: cx,cy` says it can send every `cx` ms and wants to receive every
//! `cy` ms. The server's preferences are `config.heartbeat.send` / `.receive`; a client request is
//! first raised to `config.heartbeat.min`. Each direction is then the larger of the two sides'
//! values, or off if either side says zero. CONNECTED carries the negotiated pair, so the client's
//! own computation (max of its value and ours) lands on the same numbers.

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
    let floor = |ms: u64| Duration::from_millis(ms).max(config.min);
    let (cx, cy) = client;
    let send = if cy == 0 || config.send.is_zero() {
        Duration::ZERO
    } else {
        floor(cy).max(config.send)
    };
    let receive = if cx == 0 || config.receive.is_zero() {
        Duration::ZERO
    } else {
        floor(cx).max(config.receive)
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
            grace: 2.0,
        }
    }

    #[test]
    fn negotiation_table() {
        // (client cx,cy), (server send, receive, min) → (send, receive) ms
        let table = [
            ((0, 0), (10_000, 10_000, 1_000), (0, 0)),
            ((5_000, 5_000), (10_000, 10_000, 1_000), (10_000, 10_000)),
            ((20_000, 30_000), (10_000, 10_000, 1_000), (30_000, 20_000)),
            ((1, 1), (0, 0, 1_000), (0, 0)),
            ((1, 1), (500, 500, 1_000), (1_000, 1_000)),
            ((0, 4_000), (1_000, 1_000, 1_000), (4_000, 0)),
            ((4_000, 0), (1_000, 1_000, 1_000), (0, 4_000)),
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
        assert_eq!(hb.send, Duration::from_millis(u64::MAX));
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
