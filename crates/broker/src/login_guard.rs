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
    /// Logins from the address being checked now: they count against the limit until they
    /// succeed, so a burst of simultaneous guesses cannot get past it either.
    pending: u32,
    since: Instant,
}

/// One login being checked; dropped without [`Attempt::succeeded`], it counts as failed (a
/// refusal, or a CONNECT that timed out or was cut off while being checked).
pub(crate) struct Attempt<'g> {
    guard: &'g LoginGuard,
    address: Option<IpAddr>,
    succeeded: bool,
}

impl Attempt<'_> {
    pub(crate) fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.guard
            .finish(self.address, self.succeeded, Instant::now());
    }
}

impl LoginGuard {
    pub(crate) fn new(config: LoginConfig) -> Self {
        LoginGuard {
            config,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A login from `address` may be checked; `Err(wait)` when the address must not try again
    /// for `wait`: its failures and the logins it has being checked reach `max_failures`.
    pub(crate) fn begin(
        &self,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let attempt = Attempt {
            guard: self,
            address: None,
            succeeded: false,
        };
        let (Some(ip), max @ 1..) = (address, self.config.max_failures) else {
            return Ok(attempt);
        };
        let window = self.config.failure_window;
        let mut failures = self.lock();
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, f| f.pending > 0 || now < f.since + window);
            if failures.len() >= MAX_TRACKED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a);
                failures.remove(&oldest.expect("the map is full"));
            }
        }
        let f = failures.entry(ip).or_insert(Failures {
            count: 0,
            pending: 0,
            since: now,
        });
        if now >= f.since + window {
            (f.count, f.since) = (0, now);
        }
        if f.count.saturating_add(f.pending) >= max {
            return Err((f.since + window)
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)));
        }
        f.pending += 1;
        Ok(Attempt {
            address: Some(ip),
            ..attempt
        })
    }

    fn finish(&self, address: Option<IpAddr>, succeeded: bool, now: Instant) {
        let Some(ip) = address else { return };
        let mut failures = self.lock();
        let Some(f) = failures.get_mut(&ip) else {
            return;
        };
        f.pending = f.pending.saturating_sub(1);
        if !succeeded {
            if now >= f.since + self.config.failure_window {
                (f.count, f.since) = (0, now);
            }
            f.count = f.count.saturating_add(1);
        } else if f.count == 0 && f.pending == 0 {
            failures.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginGuard {
        LoginGuard::new(LoginConfig {
            max_failures: 3,
            failure_window: Duration::from_secs(60),
        })
    }

    #[test]
    fn an_address_is_held_off_after_its_failures_until_the_window_ends() {
        let guard = guard();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.7".parse().unwrap(), "::1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(guard.begin(Some(a), t0).unwrap());
        }
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(
            guard.begin(Some(a), t10).err(),
            Some(Duration::from_secs(50))
        );
        assert!(guard.begin(Some(b), t0).is_ok(), "other addresses are not");
        assert!(guard.begin(None, t0).is_ok(), "in-memory sessions are not");
        let later = t0 + Duration::from_secs(60);
        assert!(guard.begin(Some(a), later).is_ok(), "a new window");
    }

    #[test]
    fn logins_being_checked_count_until_they_succeed() {
        let guard = guard();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        let in_flight: Vec<_> = (0..3).map(|_| guard.begin(Some(a), now).unwrap()).collect();
        assert!(guard.begin(Some(a), now).is_err(), "a burst is bounded too");
        for attempt in in_flight {
            attempt.succeeded();
        }
        assert!(guard.lock().is_empty(), "forgotten once nothing counts");
        // Dropped without succeeding: a failure.
        drop(guard.begin(Some(a), now).unwrap());
        assert_eq!(guard.lock()[&a].count, 1);
    }
}
