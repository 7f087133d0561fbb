//! The session future stays small: a later target is 19,000 idle sessions under 10 KiB each.

use stompbox_broker::{Broker, ConnectionInfo};
use stompbox_test_support::memory;

#[test]
fn session_future_size() {
    let broker = Broker::new();
    let (_client, inbound, outbound) = memory::pair(1);
    let future = broker.serve(ConnectionInfo::memory(), inbound, outbound);
    let size = std::mem::size_of_val(&future);
    eprintln!("serve future: {size} bytes");
    // About 3.2 KiB in a debug build today (with the /app, /user and event hooks); heap per idle session adds the outbox and the
    // channel ends, but no buffers (they are released when idle).
    assert!(size < 4 * 1024, "serve future is {size} bytes");
}
