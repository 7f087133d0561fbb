//! What handlers return: [`IntoReply`] turns a return value into zero or more [`Reply`] parts.
//!
//! | Return value | Goes to |
//! |---|---|
//! | `()` | nowhere |
//! | a payload (`Json<T>`, `String`, `&'static str`, `Bytes`, [`Payload`]) | a SEND handler: `/topic` + the path after the app prefix (`/app/chat.x` → `/topic/chat.x`), as Spring's `@MessageMapping` does; a subscribe handler: that subscription only (`@SubscribeMapping`) |
//! | [`SendTo`] | the named destination (`@SendTo`) |
//! | [`SendToUser`] | the sending user's sessions subscribed to `/user<destination>`, or only the sending session (`@SendToUser`, `broadcast = false`) |
//! | [`HandlerError`] / `Err(_)` | by default the sending session's `/user/queue/errors`; see [`HandlerErrorPolicy`](crate::HandlerErrorPolicy) |
//! | `Option<R>`, `Vec<R>`, `(R1, R2)`, `(R1, R2, R3)` | each part |

use bytes::Bytes;
use serde::Serialize;

use super::extract::Json;
use crate::message::Payload;

/// Something that can be a message body.
pub trait IntoPayload {
    /// Converts; fails only when a value cannot be serialized.
    fn into_payload(self) -> Result<Payload, HandlerError>;
}

impl IntoPayload for Payload {
    fn into_payload(self) -> Result<Payload, HandlerError> {
        Ok(self)
    }
}

impl IntoPayload for String {
    fn into_payload(self) -> Result<Payload, HandlerError> {
        Ok(Payload::text(self))
    }
}

impl IntoPayload for &'static str {
    fn into_payload(self) -> Result<Payload, HandlerError> {
        Ok(Payload::text(self))
    }
}

impl IntoPayload for Bytes {
    fn into_payload(self) -> Result<Payload, HandlerError> {
        Ok(Payload::bytes(self))
    }
}

impl<T: Serialize> IntoPayload for Json<T> {
    fn into_payload(self) -> Result<Payload, HandlerError> {
        Payload::json(&self.0).map_err(|e| HandlerError::new("reply serialization failed", e))
    }
}

/// An error a handler returns (or a rejection); by default the sending session receives it on
/// `/user/queue/errors` and stays connected.
///
/// Any `std::error::Error` converts into it, so handlers can use `?`. It deliberately does not
/// implement `std::error::Error` itself (that blanket conversion would then conflict), like
/// `anyhow::Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    /// Short, the `message` header of the error MESSAGE (or ERROR frame).
    pub message: String,
    /// The detail, the body.
    pub detail: String,
}

impl HandlerError {
    /// An error with a short message and a detail.
    pub fn new(message: impl Into<String>, detail: impl std::fmt::Display) -> HandlerError {
        HandlerError {
            message: message.into(),
            detail: detail.to_string(),
        }
    }

    /// An error whose message is also its detail.
    pub fn msg(message: impl Into<String>) -> HandlerError {
        let message = message.into();
        HandlerError {
            detail: message.clone(),
            message,
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.message, self.detail)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::new("handler failed", e)
    }
}

/// Reply with a message to `destination` (Spring's `@SendTo`).
#[derive(Clone, Debug)]
pub struct SendTo<T> {
    /// Where to: `/topic/...`, or `/user/{name}/...` for one user.
    pub destination: String,
    /// What.
    pub payload: T,
}

impl<T> SendTo<T> {
    /// A message for `destination`.
    pub fn new(destination: impl Into<String>, payload: T) -> Self {
        SendTo {
            destination: destination.into(),
            payload,
        }
    }
}

/// Reply to the sender (Spring's `@SendToUser`): `destination` is the user destination without
/// the `/user` prefix, e.g. `/queue/reply`, received by subscribers of `/user/queue/reply`.
#[derive(Clone, Debug)]
pub struct SendToUser<T> {
    /// The user destination, e.g. `/queue/reply`.
    pub destination: String,
    /// What.
    pub payload: T,
    /// Every session of the sending user (`true`, the default) or only the sending session.
    pub broadcast: bool,
}

impl<T> SendToUser<T> {
    /// A reply to every session of the sending user (the sending session only when anonymous).
    pub fn new(destination: impl Into<String>, payload: T) -> Self {
        SendToUser {
            destination: destination.into(),
            payload,
            broadcast: true,
        }
    }

    /// Only the session that sent the frame, not the user's other sessions.
    pub fn session_only(mut self) -> Self {
        self.broadcast = false;
        self
    }
}

/// One part of what a handler produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Reply {
    /// A bare payload: see the table in this module.
    Payload(Payload),
    /// To a destination.
    SendTo {
        /// The destination.
        destination: String,
        /// The message.
        payload: Payload,
    },
    /// To the sending user.
    ToUser {
        /// The user destination (`/queue/x`).
        destination: String,
        /// The message.
        payload: Payload,
        /// All the user's sessions, or only the sending one.
        broadcast: bool,
    },
    /// An error (handler error or rejection).
    Error(HandlerError),
}

/// Turns a handler's return value into replies (after axum's `IntoResponse`).
pub trait IntoReply {
    /// Appends the replies, in order.
    fn into_reply(self, out: &mut Vec<Reply>);
}

fn payload_or_error(
    payload: Result<Payload, HandlerError>,
    ok: impl FnOnce(Payload) -> Reply,
) -> Reply {
    match payload {
        Ok(p) => ok(p),
        Err(e) => Reply::Error(e),
    }
}

impl IntoReply for () {
    fn into_reply(self, _: &mut Vec<Reply>) {}
}

impl IntoReply for Reply {
    fn into_reply(self, out: &mut Vec<Reply>) {
        out.push(self);
    }
}

impl IntoReply for HandlerError {
    fn into_reply(self, out: &mut Vec<Reply>) {
        out.push(Reply::Error(self));
    }
}

macro_rules! bare_payload {
    ($($ty:ty),*) => {$(
        impl IntoReply for $ty {
            fn into_reply(self, out: &mut Vec<Reply>) {
                out.push(payload_or_error(self.into_payload(), Reply::Payload));
            }
        }
    )*};
}

bare_payload!(Payload, String, &'static str, Bytes);

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        out.push(payload_or_error(self.into_payload(), Reply::Payload));
    }
}

impl<T: IntoPayload> IntoReply for SendTo<T> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        let destination = self.destination;
        out.push(payload_or_error(self.payload.into_payload(), |payload| {
            Reply::SendTo {
                destination,
                payload,
            }
        }));
    }
}

impl<T: IntoPayload> IntoReply for SendToUser<T> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        let (destination, broadcast) = (self.destination, self.broadcast);
        out.push(payload_or_error(self.payload.into_payload(), |payload| {
            Reply::ToUser {
                destination,
                payload,
                broadcast,
            }
        }));
    }
}

impl<T: IntoReply, E: IntoReply> IntoReply for Result<T, E> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        match self {
            Ok(t) => t.into_reply(out),
            Err(e) => e.into_reply(out),
        }
    }
}

impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        if let Some(t) = self {
            t.into_reply(out);
        }
    }
}

impl<T: IntoReply> IntoReply for Vec<T> {
    fn into_reply(self, out: &mut Vec<Reply>) {
        for t in self {
            t.into_reply(out);
        }
    }
}

macro_rules! tuple_reply {
    ($($t:ident),*) => {
        impl<$($t: IntoReply),*> IntoReply for ($($t,)*) {
            #[allow(non_snake_case)]
            fn into_reply(self, out: &mut Vec<Reply>) {
                let ($($t,)*) = self;
                $($t.into_reply(out);)*
            }
        }
    };
}

tuple_reply!(A, B);
tuple_reply!(A, B, C);
tuple_reply!(A, B, C, D);
