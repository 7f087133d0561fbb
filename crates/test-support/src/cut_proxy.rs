//! [`CutProxy`]: a TCP proxy on `127.0.0.1:0` in front of a real service (RabbitMQ for the relay
//! tests) that a test can cut: an outage without touching the service other tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// While blocked, its connections are closed and new ones dropped at once.
pub struct CutProxy {
    /// The port to connect to instead of the target's.
    pub port: u16,
    blocked: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl CutProxy {
    /// Forwards every connection to `target` until [`CutProxy::block`].
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (blocked, cut) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
        let (b, c) = (blocked.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if b.load(SeqCst) {
                    continue; // dropped: refused while blocked
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = c.notified() => {}
                    }
                });
            }
        });
        CutProxy { port, blocked, cut }
    }

    /// Closes every connection through it and refuses new ones.
    pub fn block(&self) {
        self.blocked.store(true, SeqCst);
        self.cut.notify_waiters();
    }

    /// Forwards new connections again.
    pub fn unblock(&self) {
        self.blocked.store(false, SeqCst);
    }
}
