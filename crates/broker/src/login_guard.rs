//! Failed logins, counted per source address: once an address has failed `login.max_failures`
//! times within `login.failure_window`, its CONNECTs are refused at once, without asking the
//! authenticator, until the window is over. So a password-guessing client neither learns
//! anything more nor spends the node's CPU (an argon2 check costs tens of milliseconds), and
//! other addresses' logins are not slowed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::LoginConfig;

/// Addresses tracked at most; beyond it, windows that are over are forgotten first, then the
/// oldest (a flood from many addresses must not grow this without bound).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub(crate) struct LoginGuard {
    config: LoginConfig,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

impl LoginGuard {
    pub(crate) fn new(config: LoginConfig) -> Self {
        LoginGuard {
            config,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when `address` must not try again for `wait`.
    pub(crate) fn throttled(&self, address: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let address = address?;
        if self.config.max_failures == 0 {
            return None;
        }
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let f = failures.get(&address)?;
        let end = f.since + self.config.failure_window;
        (f.count >= self.config.max_failures && now < end).then(|| end - now)
    }

    /// A login from `address` was refused.
    pub(crate) fn failed(&self, address: Option<IpAddr>, now: Instant) {
        let (Some(address), true) = (address, self.config.max_failures > 0) else {
            return;
        };
        let window = self.config.failure_window;
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&address) {
            failures.retain(|_, f| now < f.since + window);
            if failures.len() >= MAX_TRACKED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a);
                failures.remove(&oldest.expect("the map is full"));
            }
        }
        let f = failures.entry(address).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= f.since + window {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count = f.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_off_after_its_failures_until_the_window_ends() {
        let guard = LoginGuard::new(LoginConfig {
            max_failures: 3,
            failure_window: Duration::from_secs(60),
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.7".parse().unwrap(), "::1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..2 {
            guard.failed(Some(a), t0);
        }
        assert_eq!(guard.throttled(Some(a), t0), None);
        guard.failed(Some(a), t0);
        assert_eq!(
            guard.throttled(Some(a), t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(
            guard.throttled(Some(b), t0),
            None,
            "other addresses are not"
        );
        assert_eq!(
            guard.throttled(None, t0),
            None,
            "in-memory sessions are not"
        );
        let later = t0 + Duration::from_secs(60);
        assert_eq!(guard.throttled(Some(a), later), None);
        guard.failed(Some(a), later);
        assert_eq!(guard.throttled(Some(a), later), None, "a new window");
    }
}
