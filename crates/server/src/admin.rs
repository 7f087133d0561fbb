//! The admin HTTP API (`[admin]`), on a listener of its own (default `127.0.0.1:15670`): what
//! an operator asks of a node and what `stompbox ctl` calls. Every request carries
//! `Authorization: Bearer <admin.token>`; the OpenAPI document at `/api/openapi.json` is
//! generated from the handlers and types below (utoipa), so it is what the code does. The
//! live dashboard (`dashboard.rs`) is served at `/` beside it.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/overview` | version, uptime, the node's counters |
//! | `GET /api/history` | the last ten minutes, sampled every two seconds (the dashboard's charts) |
//! | `GET /api/queues` | every queue of the node with its counters |
//! | `GET /api/queues/{name}` | one (`name` after `/queue/`, URL-encoded) |
//! | `DELETE /api/queues/{name}` | delete a queue without consumers, with what waits |
//! | `DELETE /api/queues/{name}/messages` | purge: drop what waits |
//! | `POST /api/queues/{name}/redrive` | move what waits in the dead-letter queue back |
//! | `POST /api/publish` | send a message to any destination |
//! | `GET /api/connections` | every connected session |
//! | `DELETE /api/connections/{id}` | end one, with ERROR `closed by an operator` |
//! | `GET /api/subscriptions` | every subscription of every connected session |
//! | `GET /api/destinations` | the destinations subscribed to, with their subscriptions |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use stompbox_broker::{Broker, Payload, QueueStats, SendError};
use utoipa::{OpenApi, ToSchema};

use crate::config_admin::AdminConfig;

/// What the handlers share.
#[derive(Clone)]
struct Admin {
    broker: Broker,
    started: Instant,
    /// `Bearer <token>`, as the header must read.
    expected: Arc<str>,
    /// The dead-letter prefix of this node's queues (`broker.queues.dead_letter_prefix`).
    dead_letter_prefix: Arc<str>,
    /// The node's recent history, for the dashboard.
    samples: Arc<std::sync::Mutex<crate::dashboard::Samples>>,
}

/// The admin API's router, every route behind the token check.
pub(crate) fn router(broker: Broker, config: &AdminConfig) -> Router {
    let state = Admin {
        dead_letter_prefix: broker.config().queues.dead_letter_prefix.as_str().into(),
        samples: crate::dashboard::start_sampling(broker.clone()),
        broker,
        started: Instant::now(),
        expected: format!("Bearer {}", config.token).into(),
    };
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/overview", get(overview))
        .route("/api/history", get(history))
        .route("/api/queues", get(queues))
        .route("/api/queues/{name}", get(queue).delete(delete_queue))
        .route("/api/queues/{name}/messages", delete(purge))
        .route("/api/queues/{name}/redrive", post(redrive))
        .route("/api/publish", post(publish))
        .route("/api/connections", get(connections))
        .route("/api/subscriptions", get(subscriptions))
        .route("/api/destinations", get(destinations))
        .route("/api/connections/{id}", delete(close_connection))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .merge(crate::dashboard::assets())
        .with_state(state)
}

/// Serves the admin API on `listener` until `stop`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// Refuses (401) a request without the token; compares in constant time.
async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let given = (request.headers().get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let expected = admin.expected.as_bytes();
    let same = given.len() == expected.len()
        && (given.bytes().zip(expected)).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        let mut response = problem(
            StatusCode::UNAUTHORIZED,
            "the admin API needs Authorization: Bearer <admin.token>",
        );
        let challenge = header::HeaderValue::from_static("Bearer realm=\"stompbox admin\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        return response;
    }
    next.run(request).await
}

/// An error answer: `{"error": "..."}` with its status.
#[derive(Serialize, ToSchema)]
struct Problem {
    /// What went wrong, for a person.
    error: String,
}

fn problem(status: StatusCode, error: impl Into<String>) -> Response {
    let error = error.into();
    json(status, &Problem { error })
}

/// `value` as a JSON answer.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).expect("our answers serialize");
    let content_type = header::HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A JSON request body, or why not (for a 400).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("the body is not the JSON document expected: {e}"))
}

/// The node at a glance.
#[derive(Serialize, ToSchema)]
struct Overview {
    /// The broker's version.
    version: String,
    /// Seconds since the admin API started (with the node).
    uptime_seconds: u64,
    /// Sessions being served.
    sessions: usize,
    /// Messages accepted (SEND frames and server code's sends).
    messages_received: u64,
    /// MESSAGE frames queued to subscribers.
    messages_delivered: u64,
    /// Queues on this node.
    queues: usize,
    /// Whether the node is draining.
    shutting_down: bool,
}

#[utoipa::path(get, path = "/api/overview", tag = "node",
    responses((status = 200, body = Overview), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn overview(State(admin): State<Admin>) -> Response {
    let stats = admin.broker.stats();
    let overview = Overview {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: admin.started.elapsed().as_secs(),
        sessions: stats.sessions.iter().map(|(_, n)| n).sum(),
        messages_received: stats.messages_received,
        messages_delivered: stats.messages_delivered,
        queues: admin.broker.queues().len(),
        shutting_down: admin.broker.is_shutting_down(),
    };
    json(StatusCode::OK, &overview)
}

#[utoipa::path(get, path = "/api/history", tag = "node",
    responses((status = 200, body = crate::dashboard::History), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn history(State(admin): State<Admin>) -> Response {
    let samples = admin.samples.lock().unwrap_or_else(|e| e.into_inner());
    json(StatusCode::OK, &samples.history())
}

/// One queue and its counters.
#[derive(Serialize, ToSchema)]
struct Queue {
    /// `/queue/<name>`, or `durable:<user>:<name>` / `inbox:<user>:<destination>` for the
    /// node's own queues.
    destination: String,
    /// Messages waiting, in memory and on disk.
    depth: usize,
    /// Bytes of the waiting messages held in memory.
    bytes: usize,
    /// Of `depth`, those kept in the store only.
    on_disk: usize,
    /// Delivered and not yet acknowledged.
    in_flight: usize,
    /// Subscriptions consuming it.
    consumers: usize,
    /// Messages that joined it.
    enqueued: u64,
    /// Deliveries, redeliveries included.
    delivered: u64,
    /// Deliveries of a message delivered before.
    redelivered: u64,
    /// Messages acknowledged.
    acked: u64,
    /// Messages moved to its dead-letter queue.
    dead_lettered: u64,
    /// Messages dropped at their `expires`.
    expired: u64,
    /// Messages dropped at its bound.
    dropped: u64,
}

impl Queue {
    fn new(destination: String, s: QueueStats) -> Self {
        Queue {
            destination,
            depth: s.depth,
            bytes: s.bytes,
            on_disk: s.on_disk,
            in_flight: s.in_flight,
            consumers: s.consumers,
            enqueued: s.enqueued,
            delivered: s.delivered,
            redelivered: s.redelivered,
            acked: s.acked,
            dead_lettered: s.dead_lettered,
            expired: s.expired,
            dropped: s.dropped,
        }
    }
}

#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, body = [Queue]), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn queues(State(admin): State<Admin>) -> Response {
    let all = admin.broker.queues().into_iter();
    let all: Vec<Queue> = all.map(|(d, s)| Queue::new(d, s)).collect();
    json(StatusCode::OK, &all)
}

#[utoipa::path(get, path = "/api/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "the queue's name, after /queue/")),
    responses((status = 200, body = Queue), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn queue(State(admin): State<Admin>, name: Result<Path<String>, PathRejection>) -> Response {
    let name = match path_name(name) {
        Ok(name) => name,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let destination = format!("/queue/{name}");
    match admin.broker.queue_stats(&destination) {
        Some(stats) => json(StatusCode::OK, &Queue::new(destination, stats)),
        None => no_queue(&destination),
    }
}

/// The `{name}` of a queue's path, or why it cannot be read (a 400 in JSON, as every error).
fn path_name(name: Result<Path<String>, PathRejection>) -> Result<String, String> {
    name.map(|Path(name)| name).map_err(|e| e.body_text())
}

fn no_queue(destination: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no queue {destination} on this node"),
    )
}

/// How many messages an operation moved or dropped.
#[derive(Serialize, ToSchema)]
struct Count {
    /// Messages.
    messages: usize,
}

#[utoipa::path(delete, path = "/api/queues/{name}/messages", tag = "queues",
    params(("name" = String, Path, description = "the queue's name, after /queue/")),
    responses((status = 200, description = "dropped what waited", body = Count),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn purge(State(admin): State<Admin>, name: Result<Path<String>, PathRejection>) -> Response {
    let name = match path_name(name) {
        Ok(name) => name,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let destination = format!("/queue/{name}");
    match admin.broker.purge(&destination) {
        Some(messages) => {
            tracing::info!(queue = %destination, messages, "purged by the admin API");
            json(StatusCode::OK, &Count { messages })
        }
        None => no_queue(&destination),
    }
}

#[utoipa::path(delete, path = "/api/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "the queue's name, after /queue/")),
    responses((status = 200, description = "deleted, with what waited in it", body = Count),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "it has consumers, or was in use at that instant",
            body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn delete_queue(
    State(admin): State<Admin>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let name = match path_name(name) {
        Ok(name) => name,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let destination = format!("/queue/{name}");
    match admin.broker.delete_queue(&destination) {
        Ok(messages) => {
            tracing::info!(queue = %destination, messages, "deleted by the admin API");
            json(StatusCode::OK, &Count { messages })
        }
        Err(stompbox_broker::DeleteQueueError::NotFound) => no_queue(&destination),
        Err(why) => problem(StatusCode::CONFLICT, format!("{destination}: {why}")),
    }
}

/// Where a redrive takes the messages from, when not the queue's dead-letter queue.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct Redrive {
    /// The queue to take from (`/queue/...`). Default: the queue's dead-letter queue
    /// (`/queue/<broker.queues.dead_letter_prefix><name>`).
    #[schema(pattern = "^/queue/.+$")]
    from: Option<String>,
}

#[utoipa::path(post, path = "/api/queues/{name}/redrive", tag = "queues",
    params(("name" = String, Path, description = "the queue to move the messages back to")),
    request_body(content = Option<Redrive>, content_type = "application/json"),
    responses((status = 200, description = "moved what waited", body = Count),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn redrive(
    State(admin): State<Admin>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let name = match path_name(name) {
        Ok(name) => name,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let to = format!("/queue/{name}");
    let asked: Redrive = match body.is_empty() {
        true => Redrive::default(),
        false => match parse(&body) {
            Ok(asked) => asked,
            Err(why) => return problem(StatusCode::BAD_REQUEST, why),
        },
    };
    let from = match asked.from {
        Some(from) => from,
        None if admin.dead_letter_prefix.is_empty() => {
            return problem(
                StatusCode::BAD_REQUEST,
                "dead letters are dropped on this node (empty dead_letter_prefix): say `from`",
            );
        }
        None => format!("/queue/{}{name}", admin.dead_letter_prefix),
    };
    if !from.starts_with("/queue/") || from == to {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`from` must be another /queue destination, not {from:?}"),
        );
    }
    match admin.broker.redrive(&from, &to) {
        Some(messages) => {
            tracing::info!(%from, %to, messages, "redriven by the admin API");
            json(StatusCode::OK, &Count { messages })
        }
        None => no_queue(&from),
    }
}

/// A message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// Any destination server code may send to: `/topic/...`, `/queue/...`,
    /// `/user/{name}/...`.
    #[schema(pattern = "^/(topic|queue|user)/[^/\\s]+(/[^/\\s]+)*$")]
    destination: String,
    /// Headers of the MESSAGE.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// The body, as text.
    #[serde(default)]
    body: String,
}

/// What a publish did.
#[derive(Serialize, ToSchema)]
struct Published {
    /// Deliveries queued on this node now (a queue delivers later).
    deliveries: usize,
}

#[utoipa::path(post, path = "/api/publish", tag = "messages",
    request_body(content = Publish, content_type = "application/json"),
    responses((status = 202, description = "routed", body = Published),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
async fn publish(State(admin): State<Admin>, body: Bytes) -> Response {
    let message: Publish = match parse(&body) {
        Ok(message) => message,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let mut payload = Payload::text(message.body);
    for (name, value) in &message.headers {
        payload = payload.header(name, value);
    }
    match admin.broker.send(&message.destination, payload) {
        Ok(deliveries) => json(StatusCode::ACCEPTED, &Published { deliveries }),
        Err(e @ (SendError::RelayUnavailable(_) | SendError::QueueFull { .. })) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// One connected session.
#[derive(Serialize, ToSchema)]
struct Connection {
    /// The session id (CONNECTED's `session`).
    id: u64,
    /// The authenticated user; absent for an anonymous session.
    user: Option<String>,
    /// The client's address.
    address: Option<String>,
    /// `websocket`, `tcp`, `sockjs`, `sse`, `http` or `memory`.
    transport: String,
    /// The STOMP version negotiated.
    version: String,
    /// When it connected, in milliseconds since the UNIX epoch.
    connected_at_ms: u64,
    /// Heart-beats the server sends, every this many ms (0: none).
    heartbeat_send_ms: u64,
    /// Heart-beats the server expects, within this many ms (0: none).
    heartbeat_receive_ms: u64,
    /// Its subscriptions.
    subscriptions: usize,
    /// Deliveries waiting in its outbox.
    outbox_frames: usize,
    /// Their bytes.
    outbox_bytes: usize,
}

#[utoipa::path(get, path = "/api/connections", tag = "connections",
    responses((status = 200, body = [Connection]), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn connections(State(admin): State<Admin>) -> Response {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let all: Vec<Connection> = (admin.broker.sessions().into_iter())
        .map(|s| Connection {
            id: s.id,
            user: s.user,
            address: s.peer.map(|p| p.to_string()),
            transport: s.transport.label().to_owned(),
            version: s.version.to_owned(),
            connected_at_ms: (s.connected_at.duration_since(std::time::UNIX_EPOCH)).map_or(0, ms),
            heartbeat_send_ms: ms(s.heartbeat_send),
            heartbeat_receive_ms: ms(s.heartbeat_receive),
            subscriptions: s.subscriptions,
            outbox_frames: s.outbox_frames,
            outbox_bytes: s.outbox_bytes,
        })
        .collect();
    json(StatusCode::OK, &all)
}

#[utoipa::path(delete, path = "/api/connections/{id}", tag = "connections",
    params(("id" = u64, Path, description = "the session id"),
        ("reason" = Option<String>, Query, description = "told to the client in the ERROR")),
    responses((status = 202, description = "the session is ending"),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn close_connection(
    State(admin): State<Admin>,
    id: Result<Path<u64>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let reason = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "reason")
        .map_or_else(
            || "closed by the admin API".to_owned(),
            |(_, v)| v.into_owned(),
        );
    if admin.broker.close_session(id, &reason) {
        tracing::info!(session = id, %reason, "closed by the admin API");
        StatusCode::ACCEPTED.into_response()
    } else {
        problem(StatusCode::NOT_FOUND, format!("no connected session {id}"))
    }
}

/// One subscription of a connected session.
#[derive(Serialize, ToSchema)]
struct Subscription {
    /// The session's id.
    session: u64,
    /// The session's user; absent for an anonymous session.
    user: Option<String>,
    /// The subscription's `id` header.
    id: String,
    /// What it subscribed to, as the client wrote it (patterns and `/user/...` included).
    destination: String,
    /// `auto`, `client` or `client-individual`.
    ack: String,
    /// A durable topic subscription (kept while its session is away).
    durable: bool,
}

#[utoipa::path(get, path = "/api/subscriptions", tag = "connections",
    responses((status = 200, body = [Subscription]), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn subscriptions(State(admin): State<Admin>) -> Response {
    let all: Vec<Subscription> = (admin.broker.subscriptions().into_iter())
        .map(|s| Subscription {
            session: s.session,
            user: s.user,
            id: s.id,
            destination: s.destination,
            ack: s.ack.to_owned(),
            durable: s.durable,
        })
        .collect();
    json(StatusCode::OK, &all)
}

/// A destination that connected sessions subscribe to.
#[derive(Serialize, ToSchema)]
struct DestinationUse {
    /// As subscribed (a pattern such as `/topic/chat.*` is one destination).
    destination: String,
    /// Subscriptions to it.
    subscriptions: usize,
    /// Distinct sessions among them.
    sessions: usize,
}

#[utoipa::path(get, path = "/api/destinations", tag = "connections",
    responses((status = 200, body = [DestinationUse]), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn destinations(State(admin): State<Admin>) -> Response {
    // The broker lists subscriptions by destination, then session: one pass groups them.
    let mut all: Vec<DestinationUse> = Vec::new();
    let mut last_session = None;
    for s in admin.broker.subscriptions() {
        match all.last_mut() {
            Some(d) if d.destination == s.destination => {
                d.subscriptions += 1;
                if last_session != Some(s.session) {
                    d.sessions += 1;
                }
            }
            _ => all.push(DestinationUse {
                destination: s.destination,
                subscriptions: 1,
                sessions: 1,
            }),
        }
        last_session = Some(s.session);
    }
    json(StatusCode::OK, &all)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Stompbox admin API", description = "One node's overview, queues and publish."),
    paths(overview, history, queues, queue, delete_queue, purge, redrive, publish, connections, close_connection,
        subscriptions, destinations),
    components(schemas(Overview, crate::dashboard::History, crate::dashboard::Sample, Queue, Count, Redrive, Publish, Published, Problem, Connection, Subscription, DestinationUse)),
    modifiers(&BearerAuth),
    tags((name = "node"), (name = "queues"), (name = "messages"), (name = "connections"))
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the paths name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

async fn openapi() -> Response {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    json(StatusCode::OK, &doc)
}
