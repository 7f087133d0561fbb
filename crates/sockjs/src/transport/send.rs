//! `xhr_send` and `jsonp_send`: messages from the client to an open session.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::Response,
};

use crate::Handler;
use crate::frame::{self, PayloadError};
use crate::reply::{self, Reply};
use crate::router::SockJs;

pub(crate) async fn send<H: Handler>(
    sockjs: &SockJs<H>,
    request: Request,
    id: &str,
    jsonp: bool,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let allowed = match jsonp {
        false => reply::check_method(
            headers,
            &parts.method,
            &Method::POST,
            Some("OPTIONS, POST"),
            "OPTIONS, POST",
        ),
        true => reply::check_method(headers, &parts.method, &Method::POST, None, "POST"),
    };
    if let Err(response) = allowed {
        return response;
    }
    let inner = &sockjs.inner;
    let Some(entry) = inner.sessions.get(id) else {
        return reply::not_found();
    };
    inner.handler.resume(&entry.ticket, &parts);
    let max = inner.config.max_send_size;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max as u64) {
        return too_large(headers, max);
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        return too_large(headers, max);
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let decoded = match (jsonp && form, std::str::from_utf8(&bytes)) {
        (true, Ok(text)) => match reply::param(text, "d", true) {
            Some(d) => frame::decode_messages(d.as_bytes()),
            None => Err(PayloadError::Empty),
        },
        (true, Err(_)) => Err(PayloadError::BrokenJson),
        (false, _) => frame::decode_messages(&bytes),
    };
    let messages = match decoded {
        Ok(messages) => messages,
        Err(e) => return reply::error(headers, StatusCode::INTERNAL_SERVER_ERROR, e.text()),
    };
    if let Some(inbound) = entry.shared.inbound() {
        for message in messages {
            if inbound.send(message).await.is_err() {
                break;
            }
        }
    }
    let (status, body) = match jsonp {
        false => (StatusCode::NO_CONTENT, Body::empty()),
        true => (StatusCode::OK, Body::from("ok")),
    };
    Reply::new(headers, status, body)
        .content_type(reply::PLAIN)
        .cors()
        .no_cache()
        .cookie(inner.config.cookie_needed)
        .finish()
}

fn too_large(headers: &axum::http::HeaderMap, max: usize) -> Response {
    let text = format!("Payload larger than {max} bytes.");
    let mut response = reply::error(headers, StatusCode::PAYLOAD_TOO_LARGE, "");
    *response.body_mut() = Body::from(text);
    response
}
