//! The session transports: dispatch by name, and opening or resuming the session a request
//! names.

pub(crate) mod polling;
pub(crate) mod send;
pub(crate) mod streaming;
pub(crate) mod websocket;

use axum::{extract::Request, http::request::Parts, response::Response};

use crate::registry::Entry;
use crate::reply;
use crate::router::SockJs;
use crate::session::Transport;
use crate::{Handler, OpenRequest};

/// `<prefix>/<server>/<session>/<name>`.
pub(crate) async fn handle<H: Handler>(
    sockjs: &SockJs<H>,
    request: Request,
    session: &str,
    name: &str,
) -> Response {
    match name {
        "websocket" => {
            websocket::upgrade(sockjs, request, Transport::WebSocket, session.to_owned()).await
        }
        "xhr" => polling::poll(sockjs, request, session, Transport::XhrPolling).await,
        "jsonp" => polling::poll(sockjs, request, session, Transport::JsonpPolling).await,
        "xhr_streaming" => {
            streaming::stream(sockjs, request, session, Transport::XhrStreaming).await
        }
        "eventsource" => streaming::stream(sockjs, request, session, Transport::EventSource).await,
        "htmlfile" => streaming::stream(sockjs, request, session, Transport::HtmlFile).await,
        "xhr_send" => send::send(sockjs, request, session, false).await,
        "jsonp_send" => send::send(sockjs, request, session, true).await,
        _ => reply::not_found(),
    }
}

/// The session `id`: the registered one (after [`Handler::resume`]), or a new one if the
/// handler opens it.
pub(crate) fn open_or_resume<H: Handler>(
    sockjs: &SockJs<H>,
    parts: &Parts,
    id: &str,
    transport: Transport,
) -> Result<Entry<H::Ticket>, Response> {
    let inner = &sockjs.inner;
    if let Some(entry) = inner.sessions.get(id) {
        inner.handler.resume(&entry.ticket, parts);
        return Ok(entry);
    }
    let request = OpenRequest {
        parts,
        transport,
        session_id: id,
    };
    let ticket = inner.handler.open(&request)?;
    Ok(inner
        .sessions
        .create(id, transport, ticket, &inner.handler, &inner.config))
}

/// The `c` (callback) parameter of `jsonp` and `htmlfile`, or the protocol's 500.
pub(crate) fn callback(parts: &Parts) -> Result<String, Response> {
    let query = parts.uri.query().unwrap_or("");
    let found = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("c"));
    match reply::param(query, "c", false) {
        Some(c) if !c.is_empty() => {
            let valid = c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            match valid {
                true => Ok(c),
                false => Err(invalid_callback(parts)),
            }
        }
        None if found => Err(invalid_callback(parts)),
        _ => Err(reply::error(
            &parts.headers,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "\"callback\" parameter required",
        )),
    }
}

fn invalid_callback(parts: &Parts) -> Response {
    reply::error(
        &parts.headers,
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "invalid \"callback\" parameter",
    )
}
