//! Permission rules: allow/deny on send and subscribe per user and role, `{user}`
//! substitution, handler destinations covered, refusals as ERROR `access refused` then close,
//! nothing delivered, and rules replaced on a live broker.

use std::time::Duration;

use futures::future::BoxFuture;
use stompbox_broker::{
    Access, AuthError, Authenticator, Broker, ConnectRequest, Path, PermissionRule, Permissions,
    Principal, SendTo,
};
use stompbox_codec::Frame;
use stompbox_test_support::{TestClient, frames};

const QUIET: Duration = Duration::from_millis(50);

/// `admin` has role `admin`, every other login role `user`.
struct Roles;

impl Authenticator for Roles {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let principal = request.login.map(|login| {
            let role = if login == "admin" { "admin" } else { "user" };
            Principal::new(login).with_roles([role])
        });
        Box::pin(async move { Ok(principal) })
    }
}

fn chat_rules() -> Permissions {
    use Access::{Send, Subscribe};
    Permissions::new(vec![
        PermissionRule::allow(&[Send, Subscribe], ["#"]).for_roles(["admin"]),
        PermissionRule::deny(&[Send], ["/topic/chat.announcements"]),
        PermissionRule::allow(&[Send, Subscribe], ["/topic/chat.*", "/app/chat.#"])
            .for_roles(["user"]),
        PermissionRule::allow(&[Send], ["/user/{user}/#"]).for_roles(["user"]),
        PermissionRule::allow(&[Subscribe], ["/topic/public.#"]),
    ])
    .unwrap()
}

fn broker() -> Broker {
    Broker::builder()
        .authenticator(Roles)
        .permissions(chat_rules())
        .build()
        .unwrap()
}

async fn login(broker: &Broker, user: &str) -> TestClient {
    TestClient::connect_with(broker, frames::connect().with_header("login", user))
        .await
        .0
}

fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).unwrap()
}

/// The session is refused with ERROR `access refused: {destination}` naming what and who, then
/// closed.
async fn expect_refusal(client: &mut TestClient, destination: &str, detail: &str) {
    let e = client
        .expect_error(&format!("access refused: {destination}"))
        .await;
    assert!(body(&e).contains(detail), "{e:?}");
    assert!(client.next_item().await.is_none(), "closed after the ERROR");
}

#[tokio::test]
async fn roles_and_rules_in_order_decide_sends() {
    let broker = broker();
    let mut listener = login(&broker, "admin").await;
    listener.subscribe("all", "/topic/chat.*").await;

    let mut alice = login(&broker, "alice").await;
    alice
        .send_with_receipt(frames::send("/topic/chat.general", "hi"), "r1")
        .await;
    assert_eq!(body(&listener.expect_message().await), "hi");

    // The deny comes before the role's allow: the first matching rule decides.
    alice
        .send_frame(frames::send("/topic/chat.announcements", "no").with_header("receipt", "r2"))
        .await;
    expect_refusal(
        &mut alice,
        "/topic/chat.announcements",
        r#"send to "/topic/chat.announcements" is not permitted for user "alice""#,
    )
    .await;
    listener.expect_no_frame(QUIET).await;

    // The admin's rule comes first.
    listener
        .send_frame(frames::send("/topic/chat.announcements", "news"))
        .await;
    assert_eq!(body(&listener.expect_message().await), "news");
}

#[tokio::test]
async fn subscriptions_are_checked_and_nothing_is_delivered_to_a_refused_one() {
    let broker = broker();
    let mut anon = TestClient::connect(&broker).await;
    anon.subscribe("p", "/topic/public.news").await;
    anon.send_frame(frames::subscribe("c", "/topic/chat.general").with_header("receipt", "r"))
        .await;
    expect_refusal(
        &mut anon,
        "/topic/chat.general",
        "subscribe to \"/topic/chat.general\" is not permitted for an anonymous session",
    )
    .await;
    // Default deny: a pattern no rule names.
    let mut bob = login(&broker, "bob").await;
    bob.send_frame(frames::subscribe("q", "/queue/payroll"))
        .await;
    expect_refusal(&mut bob, "/queue/payroll", "user \"bob\"").await;
    assert_eq!(broker.send("/topic/chat.general", "x").unwrap(), 0);
}

#[tokio::test]
async fn user_destinations_follow_the_user_placeholder() {
    let broker = broker();
    let mut alice = login(&broker, "alice").await;
    // Own user destinations need no rule to subscribe to.
    alice.subscribe("n", "/user/queue/notes").await;
    alice
        .send_frame(frames::send("/user/alice/queue/notes", "note to self"))
        .await;
    assert_eq!(body(&alice.expect_message().await), "note to self");

    let mut mallory = login(&broker, "mallory").await;
    mallory
        .send_frame(frames::send("/user/alice/queue/notes", "spam"))
        .await;
    expect_refusal(&mut mallory, "/user/alice/queue/notes", "user \"mallory\"").await;
    alice.expect_no_frame(QUIET).await;
}

async fn relay_to_room(Path(room): Path<String>) -> SendTo<String> {
    SendTo::new(format!("/topic/chat.{room}"), "handled".to_owned())
}

#[tokio::test]
async fn handler_destinations_are_held_to_the_rules() {
    let broker = Broker::builder()
        .authenticator(Roles)
        .permissions(chat_rules())
        .on_send("/chat.{room}", relay_to_room)
        .build()
        .unwrap();
    let mut alice = login(&broker, "alice").await;
    alice.subscribe("c", "/topic/chat.general").await;
    alice
        .send_with_receipt(frames::send("/app/chat.general", "x"), "r")
        .await;
    assert_eq!(body(&alice.expect_message().await), "handled");
    let mut anon = TestClient::connect(&broker).await;
    anon.send_frame(frames::send("/app/chat.general", "x"))
        .await;
    expect_refusal(&mut anon, "/app/chat.general", "an anonymous session").await;
    alice.expect_no_frame(QUIET).await;
}

#[tokio::test]
async fn rules_can_be_replaced_while_sessions_run() {
    let broker = broker();
    let mut bob = login(&broker, "bob").await;
    bob.subscribe("c", "/topic/chat.general").await;
    broker.set_permissions(
        Permissions::new(vec![PermissionRule::allow(
            &[Access::Subscribe],
            ["/topic/chat.*"],
        )])
        .unwrap(),
    );
    // The live subscription stays; sending is no longer allowed.
    assert_eq!(broker.send("/topic/chat.general", "still here").unwrap(), 1);
    assert_eq!(body(&bob.expect_message().await), "still here");
    bob.send_frame(frames::send("/topic/chat.general", "x"))
        .await;
    expect_refusal(&mut bob, "/topic/chat.general", "user \"bob\"").await;
}
