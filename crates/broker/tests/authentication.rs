//! What the broker does with an authenticator's verdict beyond CONNECTED: a principal whose
//! credential expires is closed with ERROR `token expired`; refusals are counted.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use stompbox_broker::{AuthError, Authenticator, Broker, ConnectRequest, Principal};
use stompbox_test_support::{TestClient, frames};

/// Login `short` gets a credential that expires in 200 ms, `refuse` is refused, others never
/// expire.
struct Expiring;

impl Authenticator for Expiring {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let verdict = match request.login {
            Some("refuse") => Err(AuthError::new("bad credentials")),
            Some("short") => Ok(Some(
                Principal::new("short").expiring_at(SystemTime::now() + Duration::from_millis(200)),
            )),
            other => Ok(other.map(Principal::new)),
        };
        Box::pin(async move { verdict })
    }
}

#[tokio::test]
async fn a_session_ends_when_its_credential_expires() {
    let broker = Broker::builder().authenticator(Expiring).build().unwrap();
    let login = |name| frames::connect().with_header("login", name);
    let (mut short, _) = TestClient::connect_with(&broker, login("short")).await;
    let (mut long, _) = TestClient::connect_with(&broker, login("long")).await;
    short.subscribe("s", "/topic/t").await;
    long.subscribe("s", "/topic/t").await;
    let e = short.expect_error("token expired").await;
    assert!(
        std::str::from_utf8(&e.body)
            .unwrap()
            .contains("connect again"),
        "{e:?}"
    );
    assert!(short.next_item().await.is_none(), "closed after the ERROR");
    assert_eq!(broker.send("/topic/t", "x").unwrap(), 1);
    long.expect_message().await;
}

#[tokio::test]
async fn refused_logins_are_counted() {
    let broker = Broker::builder().authenticator(Expiring).build().unwrap();
    let mut c = TestClient::start(&broker);
    c.send_frame(frames::connect().with_header("login", "refuse"))
        .await;
    c.expect_error("bad credentials").await;
    assert_eq!(broker.stats().failed_logins, 1);
}
