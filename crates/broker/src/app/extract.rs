//! Extractors: what a handler's arguments can be, through [`FromMessage`] (after axum's
//! `FromRequest`). Any argument may come in any position: the payload is shared `Bytes`, so
//! reading it does not consume anything.

use std::future::Future;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use stompbox_codec::{ByteString, Headers};

use super::path::PathDeserializer;
use super::rejection::ExtractRejection;
use super::reply::IntoReply;
use crate::{Broker, Destination, Principal};

/// A SEND or SUBSCRIBE routed to an application handler, as extractors see it.
#[derive(Clone, Debug)]
pub struct AppMessage {
    pub(crate) destination: Destination,
    pub(crate) path: Box<str>,
    pub(crate) params: Vec<(Box<str>, Box<str>)>,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
    pub(crate) session: SessionInfo,
    pub(crate) subscription: Option<ByteString>,
    pub(crate) broker: Broker,
}

impl AppMessage {
    /// The destination as the client wrote it (`/app/chat.general`).
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The destination after the application prefix (`/chat.general`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The destination variables, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The frame's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body (empty for SUBSCRIBE).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The sending session.
    pub fn session(&self) -> &SessionInfo {
        &self.session
    }

    /// The subscription id, for a subscribe handler.
    pub fn subscription(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// The broker, to send elsewhere.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// The session a frame came from: its id (the `session` header of CONNECTED) and its
/// principal, if the authenticator returned one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// The authenticated user, `None` for anonymous sessions.
    pub principal: Option<Principal>,
}

impl SessionInfo {
    pub(crate) fn new(id: u64, principal: Option<Principal>) -> Self {
        SessionInfo {
            id: id.to_string(),
            principal,
        }
    }

    /// The principal's name, if any.
    pub fn user(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.name.as_str())
    }
}

/// Builds a handler argument from the message (after axum's `FromRequest`).
pub trait FromMessage: Sized {
    /// What a failed extraction replies; by default it reaches the sender's
    /// `/user/queue/errors`.
    type Rejection: IntoReply;

    /// Extracts.
    fn from_message(
        message: &AppMessage,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send;
}

/// Destination variables: `Path<String>` for one, a tuple in pattern order for several, or a
/// struct or map by name. Numbers and booleans are parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromMessage for Path<T> {
    type Rejection = ExtractRejection;

    async fn from_message(message: &AppMessage) -> Result<Self, ExtractRejection> {
        T::deserialize(PathDeserializer(&message.params))
            .map(Path)
            .map_err(|e| ExtractRejection::Path(e.0))
    }
}

/// The body as JSON, deserialized with serde; as a return value, a JSON reply.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send> FromMessage for Json<T> {
    type Rejection = ExtractRejection;

    async fn from_message(message: &AppMessage) -> Result<Self, ExtractRejection> {
        serde_json::from_slice(&message.body)
            .map(Json)
            .map_err(ExtractRejection::Json)
    }
}

/// Shared application state registered with `BrokerBuilder::state` (cloned per call; wrap big
/// state in an `Arc`).
#[derive(Clone, Debug)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromMessage for State<T> {
    type Rejection = ExtractRejection;

    async fn from_message(message: &AppMessage) -> Result<Self, ExtractRejection> {
        message.broker.shared.app.state.get::<T>().map(State).ok_or(
            ExtractRejection::MissingState {
                type_name: std::any::type_name::<T>(),
            },
        )
    }
}

impl FromMessage for SessionInfo {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.session.clone())
    }
}

/// The authenticated user; anonymous sessions are rejected (use `Option<Principal>` to accept
/// them).
impl FromMessage for Principal {
    type Rejection = ExtractRejection;

    async fn from_message(message: &AppMessage) -> Result<Self, ExtractRejection> {
        message
            .session
            .principal
            .clone()
            .ok_or(ExtractRejection::Unauthenticated)
    }
}

/// Every header of the frame.
impl FromMessage for Headers {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.headers.clone())
    }
}

/// The raw body.
impl FromMessage for Bytes {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.body.clone())
    }
}

/// The body as text; a body that is not UTF-8 is rejected.
impl FromMessage for String {
    type Rejection = ExtractRejection;

    async fn from_message(message: &AppMessage) -> Result<Self, ExtractRejection> {
        String::from_utf8(message.body.to_vec())
            .map_err(|e| ExtractRejection::NotUtf8(e.utf8_error()))
    }
}

/// The destination as the client wrote it.
impl FromMessage for Destination {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.destination.clone())
    }
}

/// A handle to the broker, to send to any destination or user.
impl FromMessage for Broker {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.broker.clone())
    }
}

/// The whole message.
impl FromMessage for AppMessage {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(message.clone())
    }
}

/// `None` instead of a rejection.
impl<T: FromMessage + Send> FromMessage for Option<T> {
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(T::from_message(message).await.ok())
    }
}

/// The rejection as a value, for handlers that want to answer it themselves.
impl<T: FromMessage + Send> FromMessage for Result<T, T::Rejection>
where
    T::Rejection: Send,
{
    type Rejection = std::convert::Infallible;

    async fn from_message(message: &AppMessage) -> Result<Self, Self::Rejection> {
        Ok(T::from_message(message).await)
    }
}
