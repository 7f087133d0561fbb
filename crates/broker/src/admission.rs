//! Who may open a session, beyond the node's `max_connections`: live connections per source
//! address and per user, and new connections per second per address (`[broker.admission]`).
//! Each is off at 0. A refusal is an ERROR and a close, counted in `refused_connections`.
//!
//! The address is the peer's (or, behind a trusted proxy, the client's as the proxy reports it).
//! In-memory connections have none and are not limited by address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::config::AdmissionConfig;
use crate::error::ProtocolError;

/// Addresses tracked at most; beyond it, entries with no live connection are forgotten.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    addresses: Mutex<HashMap<IpAddr, Address>>,
    users: Mutex<HashMap<Box<str>, u32>>,
}

#[derive(Clone, Copy, Debug)]
struct Address {
    live: u32,
    /// Token bucket for new connections: `tokens` at `last`.
    tokens: f64,
    last: Instant,
}

/// A live session of a user; released on drop.
#[derive(Debug)]
pub(crate) struct UserSlot<'a> {
    admission: &'a Admission,
    user: Box<str>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Self {
        Admission {
            config,
            addresses: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        }
    }

    fn by_address(&self) -> bool {
        self.config.max_per_address > 0 || self.config.rate_per_address > 0.0
    }

    /// Connections one address may open at once before the rate applies.
    fn burst(&self) -> f64 {
        f64::from(self.config.rate_burst.max(1))
    }

    /// `ip`'s entry, created with a full bucket; beyond [`MAX_TRACKED`] addresses, those with
    /// no live connection are forgotten first.
    fn entry<'m>(
        &self,
        addresses: &'m mut HashMap<IpAddr, Address>,
        ip: IpAddr,
        now: Instant,
    ) -> &'m mut Address {
        if addresses.len() >= MAX_TRACKED && !addresses.contains_key(&ip) {
            addresses.retain(|_, a| a.live > 0);
        }
        addresses.entry(ip).or_insert(Address {
            live: 0,
            tokens: self.burst(),
            last: now,
        })
    }

    /// Refills `a`'s bucket up to `now`; an error when it holds less than one connection.
    fn refill(&self, a: &mut Address, now: Instant) -> Result<(), ProtocolError> {
        let rate = self.config.rate_per_address;
        let elapsed = now.saturating_duration_since(a.last).as_secs_f64();
        a.tokens = (a.tokens + elapsed * rate).min(self.burst());
        a.last = now;
        if a.tokens < 1.0 {
            return Err(ProtocolError::ConnectionRate { rate });
        }
        Ok(())
    }

    /// A new connection from `ip`: counted against `rate_per_address`, and against
    /// `max_per_address` while it lives. True when it holds a place of `ip`'s, to give back
    /// with [`Admission::release_address`].
    pub(crate) fn admit_address(&self, ip: IpAddr, now: Instant) -> Result<bool, ProtocolError> {
        if !self.by_address() {
            return Ok(false);
        }
        let c = &self.config;
        let counts_rate = c.rate_per_address > 0.0;
        let mut addresses = lock(&self.addresses);
        let a = self.entry(&mut addresses, ip, now);
        if counts_rate {
            self.refill(a, now)?;
        }
        if c.max_per_address > 0 && a.live as usize >= c.max_per_address {
            return Err(ProtocolError::TooManyFromAddress {
                max: c.max_per_address,
            });
        }
        if counts_rate {
            a.tokens -= 1.0;
        }
        a.live += 1;
        Ok(true)
    }

    /// Gives back a place [`Admission::admit_address`] took.
    pub(crate) fn release_address(&self, ip: IpAddr) {
        let mut addresses = lock(&self.addresses);
        if let Some(a) = addresses.get_mut(&ip) {
            a.live = a.live.saturating_sub(1);
            // Forget it once it holds nothing: no connection, and a bucket that would be full.
            let full = self.config.rate_per_address == 0.0 || {
                let mut refilled = *a;
                let _ = self.refill(&mut refilled, Instant::now());
                refilled.tokens >= self.burst()
            };
            if a.live == 0 && full {
                addresses.remove(&ip);
            }
        }
    }

    /// A session authenticated as `user`.
    pub(crate) fn admit_user(&self, user: &str) -> Result<Option<UserSlot<'_>>, ProtocolError> {
        let max = self.config.max_per_user;
        if max == 0 {
            return Ok(None);
        }
        let mut users = lock(&self.users);
        let live = users.entry(user.into()).or_insert(0);
        if *live as usize >= max {
            return Err(ProtocolError::TooManyForUser {
                user: user.to_owned(),
                max,
            });
        }
        *live += 1;
        Ok(Some(UserSlot {
            admission: self,
            user: user.into(),
        }))
    }
}

impl Drop for UserSlot<'_> {
    fn drop(&mut self) {
        let mut users = lock(&self.admission.users);
        if let Some(live) = users.get_mut(&self.user) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admission(max_per_address: usize, max_per_user: usize, rate: f64) -> Admission {
        Admission::new(AdmissionConfig {
            max_per_address,
            max_per_user,
            rate_per_address: rate,
            rate_burst: 2,
        })
    }

    #[test]
    fn live_connections_per_address_are_bounded_and_released() {
        let a = admission(2, 0, 0.0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(a.admit_address(ip, now), Ok(true));
        assert_eq!(a.admit_address(ip, now), Ok(true));
        assert!(matches!(
            a.admit_address(ip, now),
            Err(ProtocolError::TooManyFromAddress { max: 2 })
        ));
        assert!(a.admit_address("192.0.2.2".parse().unwrap(), now).is_ok());
        a.release_address(ip);
        assert_eq!(a.admit_address(ip, now), Ok(true));
        a.release_address(ip);
        a.release_address(ip);
        assert_eq!(
            lock(&a.addresses).len(),
            1,
            "an address holding nothing is forgotten"
        );
        assert_eq!(admission(0, 0, 0.0).admit_address(ip, now), Ok(false));
    }

    #[test]
    fn new_connections_per_address_follow_a_token_bucket() {
        let a = admission(0, 0, 1.0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        // A burst of two, then one per second.
        for _ in 0..2 {
            assert_eq!(a.admit_address(ip, now), Ok(true));
            a.release_address(ip);
        }
        assert!(matches!(
            a.admit_address(ip, now),
            Err(ProtocolError::ConnectionRate { .. })
        ));
        assert!(
            a.admit_address(ip, now + Duration::from_millis(1100))
                .is_ok()
        );
    }

    #[test]
    fn sessions_per_user_are_bounded_and_released() {
        let a = admission(0, 1, 0.0);
        let alice = a.admit_user("alice").unwrap();
        assert!(matches!(
            a.admit_user("alice"),
            Err(ProtocolError::TooManyForUser { max: 1, .. })
        ));
        let bob = a.admit_user("bob").unwrap();
        assert!(bob.is_some());
        drop(alice);
        let again = a.admit_user("alice").unwrap();
        assert!(again.is_some());
        drop((bob, again));
        assert!(lock(&a.users).is_empty(), "released users are forgotten");
        assert!(admission(0, 0, 0.0).admit_user("x").unwrap().is_none());
    }
}
