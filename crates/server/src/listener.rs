//! The listening sockets of both edges: bound with a chosen backlog, and accepted from without
//! stopping or spinning when accepting fails.
//!
//! Accepting fails for two kinds of reasons. A connection that the peer reset before it was
//! taken (`ECONNABORTED`) is gone, and the next one is taken at once. Running out of
//! descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) lasts until connections
//! close: the loop backs off (doubling from 10 ms to 1 s) instead of spinning, and logs once per
//! [`LOG_INTERVAL`] with the count of failures, instead of once per try.

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Least time between two log lines about failing accepts.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// First and longest wait after running out of descriptors.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Binds `addr` with a listen queue of `backlog` connections (the kernel caps it at
/// `net.core.somaxconn`), with `SO_REUSEADDR` as `TcpListener::bind` sets it.
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts from one listener; see the module documentation.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    /// `websocket` or `tcp`, for the log.
    name: &'static str,
    backoff: Duration,
    /// Failures since the last log line, and when that was.
    failures: u64,
    logged: Option<Instant>,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            name,
            backoff: BACKOFF.0,
            failures: 0,
            logged: None,
        }
    }

    /// The next connection and its peer address.
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let error = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = BACKOFF.0;
                    return accepted;
                }
                Err(e) => e,
            };
            if !is_resource_exhaustion(&error) {
                // The peer went away before we took the connection: take the next one.
                tracing::debug!(listener = self.name, %error, "accept failed");
                continue;
            }
            self.failures += 1;
            let now = Instant::now();
            if self
                .logged
                .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
            {
                tracing::warn!(
                    listener = self.name,
                    %error,
                    failures = self.failures,
                    "cannot accept connections (raise the open-files limit, or lower broker.max_connections); backing off",
                );
                (self.logged, self.failures) = (Some(now), 0);
            }
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(BACKOFF.1);
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE / ENFILE / ENOBUFS / ENOMEM have no ErrorKind of their own.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_with_a_backlog_and_accepts() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut acceptor = Acceptor::new(listener, "test");
        let client = TcpStream::connect(addr);
        let ((_, peer), client) = tokio::join!(acceptor.accept(), client);
        assert_eq!(peer, client.unwrap().local_addr().unwrap());
    }
}
