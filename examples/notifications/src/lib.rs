//! The live-notification service of a climbing app: the app's backend reports what happened
//! (`POST /notify/{user}`), each user receives their notifications on
//! `/user/queue/notifications` in every open tab, unread ones arrive when a client subscribes to
//! `/app/notifications.unread`, and a client marks one as read with a SEND to
//! `/app/notifications.{id}.read` (every tab of that user hears about it). Players tell their
//! opponent they are ready with a SEND to `/app/matches.{id}.ready`.
//!
//! Run it with `cargo run -p example-notifications` (127.0.0.1:8080, or `$ADDR`). Connect a STOMP
//! client to `ws://127.0.0.1:8080/stomp` with `login: alice`, `passcode: climb`, subscribe to
//! `/user/queue/notifications`, then:
//!
//! ```text
//! curl -H 'content-type: application/json' -d '{"type":"post_liked","post_id":7,"by":"bob"}' \
//!      http://127.0.0.1:8080/notify/alice
//! ```
//!
//! Pages without a STOMP library listen with `EventSource` on `GET /events` and send with
//! `POST /publish` (the standalone server's `/sse` and `/publish`, mounted here with
//! [`sse_route`] and [`publish_route`]); the page at <http://127.0.0.1:8080/> does.
//!
//! Authentication is a demo: any `login` with the passcode [`DEMO_PASSCODE`], in CONNECT, HTTP
//! Basic, or (for `EventSource`, which cannot set headers) the `user` and `passcode` query
//! parameters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::{
    Router, extract,
    http::StatusCode,
    response::Html,
    routing::{get, post},
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use stompbox_broker::{
    AuthError, Authenticator, Broker, ConnectRequest, HandlerError, Json, Path, Principal,
    SendToUser, State,
};
use stompbox_server::{PublishConfig, SseConfig, publish_route, sse_route, websocket_route};

/// The page: notifications over `EventSource`.
const INDEX_HTML: &str = include_str!("../static/index.html");

/// The passcode every demo user connects with.
pub const DEMO_PASSCODE: &str = "climb";

/// Where notifications are delivered (subscribe to `/user/queue/notifications`).
pub const NOTIFICATIONS: &str = "/queue/notifications";

/// What happened, as the backend reports it and the client receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// Someone wants to climb against you.
    MatchRequestReceived {
        /// Who asked.
        from: String,
    },
    /// A match was made.
    MatchMade {
        /// The match.
        match_id: String,
        /// Against whom.
        opponent: String,
    },
    /// Your opponent is ready to start.
    OpponentReady {
        /// The match.
        match_id: String,
        /// Who is ready.
        opponent: String,
    },
    /// A match was cancelled.
    MatchCancelled {
        /// The match.
        match_id: String,
        /// By whom.
        by: String,
    },
    /// Someone liked your post.
    PostLiked {
        /// The post.
        post_id: u64,
        /// Who.
        by: String,
    },
    /// A climber you follow completed a new route.
    RouteCompleted {
        /// Who.
        climber: String,
        /// The route.
        route: String,
        /// Its grade.
        grade: String,
    },
    /// You beat your personal record.
    PersonalRecord {
        /// The new best grade.
        grade: String,
    },
    /// Your ranking changed.
    RankingChanged {
        /// Before.
        from: u32,
        /// Now.
        to: u32,
    },
}

/// One notification, as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per service.
    pub id: u64,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
    /// Whether the user marked it as read.
    pub read: bool,
}

/// Tells every tab of a user that a notification was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedRead {
    /// Always `"read"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The notification.
    pub id: u64,
}

/// Every user's notifications (an in-memory stand-in for the app's database).
#[derive(Clone, Default)]
pub struct Store {
    by_user: Arc<Mutex<HashMap<String, Vec<Notification>>>>,
    next_id: Arc<AtomicU64>,
}

impl Store {
    /// Stores a notification for `user` and delivers it to the user's open sessions.
    pub fn notify(&self, broker: &Broker, user: &str, what: What) -> Notification {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let notification = Notification {
            id,
            what,
            read: false,
        };
        let mut by_user = self.by_user.lock().unwrap();
        by_user
            .entry(user.to_owned())
            .or_default()
            .push(notification.clone());
        drop(by_user);
        // Offline users get it on their next subscription to the unread list.
        let _ = broker.send_to_user(user, NOTIFICATIONS, Json(&notification));
        notification
    }

    /// The user's unread notifications, oldest first.
    pub fn unread(&self, user: &str) -> Vec<Notification> {
        let by_user = self.by_user.lock().unwrap();
        let all = by_user.get(user).map(Vec::as_slice).unwrap_or_default();
        all.iter().filter(|n| !n.read).cloned().collect()
    }

    fn mark_read(&self, user: &str, id: u64) -> bool {
        let mut by_user = self.by_user.lock().unwrap();
        let found = by_user
            .get_mut(user)
            .and_then(|all| all.iter_mut().find(|n| n.id == id));
        found.map(|n| n.read = true).is_some()
    }
}

/// SUBSCRIBE `/app/notifications.unread`: the unread notifications, to that subscription.
async fn unread(user: Principal, State(store): State<Store>) -> Json<Vec<Notification>> {
    Json(store.unread(&user.name))
}

/// SEND `/app/notifications.{id}.read`: marks it read; all the user's tabs are told.
async fn mark_read(
    Path(id): Path<u64>,
    user: Principal,
    State(store): State<Store>,
) -> Result<SendToUser<Json<MarkedRead>>, HandlerError> {
    if !store.mark_read(&user.name, id) {
        return Err(HandlerError::msg(format!("no notification {id}")));
    }
    let kind = "read".to_owned();
    Ok(SendToUser::new(
        NOTIFICATIONS,
        Json(MarkedRead { kind, id }),
    ))
}

/// The body of `/app/matches.{id}.ready`.
#[derive(Debug, Deserialize)]
struct Ready {
    opponent: String,
}

/// SEND `/app/matches.{id}.ready`: the opponent is notified.
async fn ready(
    Path(match_id): Path<String>,
    user: Principal,
    broker: Broker,
    State(store): State<Store>,
    Json(ready): Json<Ready>,
) {
    let what = What::OpponentReady {
        match_id,
        opponent: user.name,
    };
    store.notify(&broker, &ready.opponent, what);
}

/// The demo authenticator: `login` is the user, `passcode` must be [`DEMO_PASSCODE`]; without
/// a `login`, the request's `user` and `passcode` query parameters (an `EventSource` URL).
struct DemoLogin;

/// Query parameter `name` of the HTTP request that opened the connection (not decoded: demo
/// names are letters, digits, `_` and `-`).
fn query_parameter<'a>(request: &ConnectRequest<'a>, name: &str) -> Option<&'a str> {
    let query = request.connection.handshake.as_ref()?.uri.query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

impl Authenticator for DemoLogin {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let (login, passcode) = match request.login {
            Some(_) => (request.login, request.passcode),
            None => (
                query_parameter(&request, "user"),
                query_parameter(&request, "passcode"),
            ),
        };
        let verdict = match (login, passcode) {
            (Some(user), Some(DEMO_PASSCODE)) if !user.is_empty() => Ok(Some(Principal::new(user))),
            _ => Err(AuthError::new("invalid login or passcode")),
        };
        Box::pin(async move { verdict })
    }
}

/// The broker with the notification handlers, and the store.
pub fn broker() -> (Broker, Store) {
    let store = Store::default();
    let broker = Broker::builder()
        .authenticator(DemoLogin)
        .state(store.clone())
        .on_subscribe("/notifications.unread", unread)
        .on_send("/notifications.{id}.read", mark_read)
        .on_send("/matches.{id}.ready", ready)
        .build()
        .expect("the default configuration is valid");
    (broker, store)
}

/// `POST /notify/{user}` with a [`What`] as JSON: what the app's other services call.
async fn notify(
    extract::State((broker, store)): extract::State<(Broker, Store)>,
    extract::Path(user): extract::Path<String>,
    extract::Json(what): extract::Json<What>,
) -> (StatusCode, axum::Json<Notification>) {
    let notification = store.notify(&broker, &user, what);
    (StatusCode::CREATED, axum::Json(notification))
}

/// The HTTP side: the page, `/stomp`, `/events` (SSE), `POST /publish` and
/// `POST /notify/{user}`.
pub fn app(broker: Broker, store: Store) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/stomp", websocket_route(broker.clone()))
        .route("/events", sse_route(broker.clone(), SseConfig::default()))
        .route(
            "/publish",
            publish_route(broker.clone(), PublishConfig::default()),
        )
        .route("/notify/{user}", post(notify))
        .with_state((broker, store))
}

/// Serves the service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (broker, store) = broker();
    axum::serve(listener, app(broker.clone(), store))
        .with_graceful_shutdown(async move {
            shutdown.await;
            broker.shutdown().await;
        })
        .await
}
