//! Chat rooms as in the classic Spring STOMP tutorial, on Stompbox: join and message handlers
//! under `/app`, one topic per room, a subscribe handler listing who is in a room, a LEAVE
//! message when a session disconnects (from the lifecycle event stream), and a static page
//! using stomp.js.
//!
//! Run it with `cargo run -p example-chat` and open <http://127.0.0.1:8080/> in two browser
//! windows (set `ADDR` to listen elsewhere).
//!
//! | Client frame | Handler | Reply |
//! |---|---|---|
//! | SEND `/app/chat.{room}.join` `{"sender":"ann"}` | [`join`] | JOIN on `/topic/chat.{room}` |
//! | SEND `/app/chat.{room}.send` `{"content":"hi"}` | [`send`] | CHAT on `/topic/chat.{room}` |
//! | SUBSCRIBE `/app/chat.{room}.participants` | [`participants`] | the names, to that subscription |
//! | (disconnect) | [`announce_leaves`] | LEAVE on `/topic/chat.{room}` |
//!
//! Errors (sending before joining, malformed JSON) arrive on `/user/queue/errors`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::{Router, http::header, response::Html, routing::get};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use stompbox_broker::{Broker, Event, HandlerError, Json, Path, SendTo, SessionInfo, State};
use stompbox_server::{SockJsConfig, sockjs_router, websocket_route};

/// The page.
const INDEX_HTML: &str = include_str!("../static/index.html");
/// @stomp/stompjs's UMD bundle, vendored (see `static/README.md`).
const STOMP_JS: &str = include_str!("../static/stomp.umd.min.js");
/// sockjs-client's browser bundle, vendored, for the page's SockJS mode.
const SOCKJS_JS: &str = include_str!("../static/sockjs.min.js");

/// What goes out on a room topic (the Spring tutorial's `ChatMessage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `CHAT`, `JOIN` or `LEAVE`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Who.
    pub sender: String,
    /// The text (empty for JOIN and LEAVE).
    pub content: String,
}

/// The kind of a [`ChatMessage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    /// A message.
    Chat,
    /// Someone joined.
    Join,
    /// Someone left.
    Leave,
}

/// The body of a join.
#[derive(Debug, Deserialize)]
pub struct Join {
    /// The name to chat under.
    pub sender: String,
}

/// The body of a message.
#[derive(Debug, Deserialize)]
pub struct Post {
    /// The text.
    pub content: String,
}

/// Who is in which room, by session id.
#[derive(Clone, Default)]
pub struct Rooms(Arc<Mutex<HashMap<String, (String, String)>>>);

impl Rooms {
    fn member(&self, session: &str) -> Option<(String, String)> {
        self.0.lock().unwrap().get(session).cloned()
    }
}

fn topic(room: &str) -> String {
    format!("/topic/chat.{room}")
}

/// SEND `/app/chat.{room}.join`: remembers the session's name and room, announces it.
pub async fn join(
    Path(room): Path<String>,
    session: SessionInfo,
    State(rooms): State<Rooms>,
    Json(join): Json<Join>,
) -> SendTo<Json<ChatMessage>> {
    let sender = join.sender;
    let entry = (sender.clone(), room.clone());
    rooms.0.lock().unwrap().insert(session.id, entry);
    let message = ChatMessage {
        kind: Kind::Join,
        sender,
        content: String::new(),
    };
    SendTo::new(topic(&room), Json(message))
}

/// SEND `/app/chat.{room}.send`: a message from a session that joined that room.
pub async fn send(
    Path(room): Path<String>,
    session: SessionInfo,
    State(rooms): State<Rooms>,
    Json(post): Json<Post>,
) -> Result<SendTo<Json<ChatMessage>>, HandlerError> {
    let (sender, _) = rooms
        .member(&session.id)
        .filter(|(_, joined)| *joined == room)
        .ok_or_else(|| HandlerError::msg(format!("join {room} before sending to it")))?;
    let message = ChatMessage {
        kind: Kind::Chat,
        sender,
        content: post.content,
    };
    Ok(SendTo::new(topic(&room), Json(message)))
}

/// SUBSCRIBE `/app/chat.{room}.participants`: the names in the room, sorted.
pub async fn participants(
    Path(room): Path<String>,
    State(rooms): State<Rooms>,
) -> Json<Vec<String>> {
    let mut names: Vec<String> = rooms
        .0
        .lock()
        .unwrap()
        .values()
        .filter(|(_, r)| *r == room)
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    Json(names)
}

/// Sends LEAVE to a room when a session that joined it disconnects (Spring's
/// `SessionDisconnectEvent` listener). `events` comes from [`Broker::events`], taken before
/// any session can end. Runs until the stream ends.
pub async fn announce_leaves(
    broker: Broker,
    rooms: Rooms,
    mut events: impl futures::Stream<Item = Event> + Unpin,
) {
    while let Some(event) = events.next().await {
        if let Event::Disconnected { session, .. } = event {
            let left = rooms.0.lock().unwrap().remove(&session.id);
            if let Some((sender, room)) = left {
                let message = ChatMessage {
                    kind: Kind::Leave,
                    sender,
                    content: String::new(),
                };
                let _ = broker.send(&topic(&room), Json(message));
            }
        }
    }
}

/// The broker with the chat handlers, and the shared rooms.
pub fn broker() -> (Broker, Rooms) {
    let rooms = Rooms::default();
    let broker = Broker::builder()
        .state(rooms.clone())
        .on_send("/chat.{room}.join", join)
        .on_send("/chat.{room}.send", send)
        .on_subscribe("/chat.{room}.participants", participants)
        .build()
        .expect("the default configuration is valid");
    (broker, rooms)
}

/// The HTTP side: the page, stomp.js and sockjs-client, and the STOMP endpoint at `/ws` and
/// over SockJS at `/sockjs` (`/?transport=sockjs`).
pub fn app(broker: Broker) -> Router {
    let script = |js: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], js) })
    };
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/stomp.umd.min.js", script(STOMP_JS))
        .route("/sockjs.min.js", script(SOCKJS_JS))
        .route("/ws", websocket_route(broker.clone()))
        .merge(sockjs_router(broker, "/sockjs", &SockJsConfig::default()))
}

/// Serves the chat on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (broker, rooms) = broker();
    let events = broker.events();
    let leaves = tokio::spawn(announce_leaves(broker.clone(), rooms, events));
    let result = axum::serve(listener, app(broker.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            broker.shutdown().await;
        })
        .await;
    leaves.abort();
    result
}
