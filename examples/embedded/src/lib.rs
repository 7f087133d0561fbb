//! The smallest embedding of Stompbox in an axum application: the STOMP-over-WebSocket endpoint
//! at `/stomp` next to an ordinary HTTP route that publishes to a topic.
//!
//! Run it with `cargo run -p example-embedded` (listens on 127.0.0.1:8080, or `$ADDR`), then
//! subscribe a STOMP client to `/topic/announcements` on `ws://127.0.0.1:8080/stomp` and
//! `curl -d 'hello' http://127.0.0.1:8080/announce`.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use stompbox_broker::Broker;
use stompbox_server::websocket_route;

/// The application: `/stomp` (WebSocket) and `POST /announce` (publishes its body).
pub fn app(broker: Broker) -> Router {
    Router::new()
        .route("/stomp", websocket_route(broker.clone()))
        .route("/announce", post(announce))
        .with_state(broker)
}

/// Publishes the request body to `/topic/announcements`; answers how many received it.
async fn announce(State(broker): State<Broker>, body: String) -> (StatusCode, String) {
    match broker.send("/topic/announcements", body) {
        Ok(n) => (
            StatusCode::ACCEPTED,
            format!("delivered to {n} subscribers\n"),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Serves [`app`] on `listener` until `shutdown` completes, then shuts the broker down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let broker = Broker::new();
    let app = app(broker.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            broker.shutdown().await;
        })
        .await
}
