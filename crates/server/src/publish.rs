//! `POST /publish`: a message sent with one HTTP request, for backends without a STOMP client
//! (a service posting "your match is ready" to `/user/42/queue/notifications`).
//!
//! Two forms:
//! - JSON (`Content-Type: application/json`, no `destination` parameter):
//!   `{"destination": "/topic/a", "headers": {"priority": 5}, "body": ...}`; a string body is
//!   sent as `text/plain;charset=utf-8`, any other JSON value as `application/json`.
//! - Raw: `POST /publish?destination=/topic/a` with any body, sent as it is with the request's
//!   `Content-Type`; the other query parameters become the message's headers.
//!
//! Like an SSE stream, the request is a broker session (`http_session.rs`): CONNECT with its
//! credentials (before its body is read), SEND with a receipt, DISCONNECT. So it is
//! authenticated, checked against the permissions and routed as a STOMP client's SEND, and
//! `202 Accepted` means the broker routed it (and, for a persistent queue, stored it).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{MethodRouter, post},
};
use bytes::Bytes;
use serde::Deserialize;
use stompbox_broker::{Broker, TransportKind};
use stompbox_codec::{Command, Frame};

use crate::{
    PublishConfig,
    http_session::{HttpSession, answered, connection_info, place, plain},
    ws::Handshakes,
};

/// Headers the endpoint sets itself.
const RESERVED: [&str; 4] = ["destination", "receipt", "transaction", "content-length"];

/// A `POST` route for publishing with one HTTP request on your own axum router (see
/// [`sse_route`](crate::sse_route); `config.path` is not read here).
pub fn publish_route<S>(broker: Broker, config: PublishConfig) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let endpoint = PublishEndpoint::new(broker, Arc::default(), config);
    post(move |request: Request| endpoint.clone().publish(request))
}

/// The `/publish` endpoint.
#[derive(Clone, Debug)]
pub(crate) struct PublishEndpoint {
    broker: Broker,
    handshakes: Arc<Handshakes>,
    config: Arc<PublishConfig>,
}

/// What to send.
#[derive(Debug, PartialEq)]
struct Message {
    destination: String,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    body: Bytes,
}

/// The JSON form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    destination: String,
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

impl PublishEndpoint {
    pub(crate) fn new(broker: Broker, handshakes: Arc<Handshakes>, config: PublishConfig) -> Self {
        PublishEndpoint {
            broker,
            handshakes,
            config: Arc::new(config),
        }
    }

    /// Answers one request: 202 once the message is routed, or why not.
    pub(crate) async fn publish(self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        match self.send(&parts, body).await {
            Ok(()) => plain(StatusCode::ACCEPTED, "accepted"),
            Err(response) => response,
        }
    }

    async fn send(&self, parts: &Parts, body: Body) -> Result<(), Response> {
        let max = self.config.max_body_size;
        if content_length(&parts.headers).is_some_and(|length| length > max as u64) {
            return Err(too_large(max));
        }
        let accepted = place(&self.broker, parts);
        let info = connection_info(&self.handshakes, parts, Some(accepted), TransportKind::Http)
            .map_err(IntoResponse::into_response)?;
        let within = self.broker.config().connect_timeout;
        let mut session = HttpSession::start(&self.broker, info);
        // Credentials first: a client that may not connect does not get to upload.
        answered(within, session.connect(&parts.headers)).await?;
        let body = match tokio::time::timeout(within, axum::body::to_bytes(body, max)).await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                // A chunked body over the limit: its error says only "length limit exceeded".
                let text = error.to_string();
                return Err(match text.contains("length limit") {
                    true => too_large(max),
                    false => plain(StatusCode::BAD_REQUEST, format!("reading the body: {text}")),
                });
            }
            Err(_) => {
                return Err(plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body did not arrive within broker.connect_timeout",
                ));
            }
        };
        let message = message(parts, body).map_err(|text| plain(StatusCode::BAD_REQUEST, text))?;
        let mut send = Frame::new(Command::Send)
            .with_header("destination", message.destination)
            .with_header("receipt", "publish");
        if let Some(content_type) = message.content_type {
            send = send.with_header("content-type", content_type);
        }
        for (name, value) in message.headers {
            send = send.with_header(name, value);
        }
        session.send(&send.with_body(message.body));
        answered(within, session.receipt("publish", drop)).await?;
        tokio::spawn(session.disconnect());
        Ok(())
    }
}

/// The message the request asks for.
fn message(parts: &Parts, body: Bytes) -> Result<Message, String> {
    let query = parts.uri.query().unwrap_or_default();
    let mut destination = None;
    let mut headers = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "destination" if destination.is_some() => {
                return Err("one destination parameter, not several".to_owned());
            }
            "destination" => destination = Some(value.into_owned()),
            _ => headers.push((name.into_owned(), value.into_owned())),
        }
    }
    let content_type = (parts.headers.get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let message = match destination {
        Some(destination) => Message {
            destination,
            headers,
            content_type,
            body,
        },
        None => {
            let json = content_type.as_deref().is_some_and(|t| {
                let essence = t.split(';').next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/json")
            });
            if !json {
                return Err(
                    "send JSON (Content-Type: application/json) with a \"destination\", \
                            or the raw body with ?destination=..."
                        .to_owned(),
                );
            }
            if !headers.is_empty() {
                return Err(
                    "query parameters other than destination are headers of a raw \
                            body; the JSON form has a \"headers\" map"
                        .to_owned(),
                );
            }
            envelope(&body)?
        }
    };
    check(&message)?;
    Ok(message)
}

/// The JSON form, read.
fn envelope(body: &[u8]) -> Result<Message, String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("the JSON body is not valid: {e}"))?;
    let mut headers = Vec::with_capacity(envelope.headers.len());
    for (name, value) in envelope.headers {
        let value = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "header {name:?} must be a string, a number or a boolean"
                ));
            }
        };
        headers.push((name, value));
    }
    let (content_type, body) = match envelope.body {
        None | Some(serde_json::Value::Null) => (None, Bytes::new()),
        Some(serde_json::Value::String(text)) => {
            (Some("text/plain;charset=utf-8".to_owned()), text.into())
        }
        Some(value) => (
            Some("application/json".to_owned()),
            serde_json::to_vec(&value)
                .expect("a JSON value serialises")
                .into(),
        ),
    };
    // A `content-type` in the headers map overrides the body's.
    let content_type = match headers.iter().position(|(n, _)| n == "content-type") {
        Some(at) => Some(headers.remove(at).1),
        None => content_type,
    };
    Ok(Message {
        destination: envelope.destination,
        headers,
        content_type,
        body,
    })
}

/// What no message may carry, whichever the form.
fn check(message: &Message) -> Result<(), String> {
    if message.destination.is_empty() || message.destination.chars().any(char::is_control) {
        return Err(format!(
            "destination {:?} is empty or holds a control character",
            message.destination
        ));
    }
    for (name, value) in &message.headers {
        if RESERVED.contains(&name.as_str()) {
            return Err(format!("header {name:?} is set by the endpoint"));
        }
        if name.is_empty() || name.contains('\0') || value.contains('\0') {
            return Err(format!("header {name:?} is empty or holds a NUL"));
        }
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(max: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than publish.max_body_size ({max} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(uri: &str, content_type: Option<&str>) -> Parts {
        let mut request = Request::post(uri);
        if let Some(t) = content_type {
            request = request.header(header::CONTENT_TYPE, t);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_json_form_gives_headers_and_a_typed_body() {
        let json = br#"{"destination":"/user/42/queue/n","headers":{"priority":5,"x":"y"},
                        "body":{"match":"ready"}}"#;
        let sent = message(
            &parts("/publish", Some("application/json")),
            json[..].into(),
        );
        assert_eq!(
            sent.unwrap(),
            Message {
                destination: "/user/42/queue/n".to_owned(),
                headers: vec![
                    ("priority".to_owned(), "5".to_owned()),
                    ("x".to_owned(), "y".to_owned())
                ],
                content_type: Some("application/json".to_owned()),
                body: Bytes::from_static(br#"{"match":"ready"}"#),
            }
        );
        let text = br#"{"destination":"/topic/a","body":"hi"}"#;
        let json = Some("application/json; charset=utf-8");
        let sent = message(&parts("/publish", json), text[..].into()).unwrap();
        assert_eq!(
            sent.content_type.as_deref(),
            Some("text/plain;charset=utf-8")
        );
        assert_eq!(sent.body, "hi");
    }

    #[test]
    fn the_raw_form_takes_the_body_as_it_is() {
        let uri = "/publish?destination=%2Ftopic%2Fa&priority=9";
        let sent = message(&parts(uri, Some("image/png")), "\0\u{1}"[..].into()).unwrap();
        assert_eq!(sent.destination, "/topic/a");
        assert_eq!(sent.headers, [("priority".to_owned(), "9".to_owned())]);
        assert_eq!(sent.content_type.as_deref(), Some("image/png"));
        assert_eq!(sent.body, "\0\u{1}");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            ("/publish", None, "{}", "Content-Type: application/json"),
            ("/publish", Some("application/json"), "{", "not valid"),
            (
                "/publish",
                Some("application/json"),
                r#"{"destination":"/topic/a","headers":{"receipt":"x"}}"#,
                "set by the endpoint",
            ),
            (
                "/publish",
                Some("application/json"),
                r#"{"destination":"/topic/a","headers":{"a":[1]}}"#,
                "must be a string",
            ),
            ("/publish?destination=", None, "", "is empty"),
            (
                "/publish?destination=/a&destination=/b",
                None,
                "",
                "not several",
            ),
            (
                "/publish?destination=/a&transaction=t",
                None,
                "",
                "set by the endpoint",
            ),
        ];
        for (uri, content_type, body, expected) in cases {
            let error = message(&parts(uri, content_type), body.into()).unwrap_err();
            assert!(error.contains(expected), "{uri} {body}: {error}");
        }
    }
}
