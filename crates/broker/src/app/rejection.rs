//! Why an extractor refused a message. Each rejection replies like a [`HandlerError`]: by default
//! a MESSAGE on the sender's `/user/queue/errors` whose `message` header is short and whose body
//! says exactly what was wrong.

use super::reply::{HandlerError, IntoReply, Reply};

/// An extractor could not build its value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractRejection {
    /// `Json<T>`: the body is not JSON of the expected shape. The detail is serde_json's, which
    /// names the field and position (``missing field `text` at line 1 column 12``).
    #[error("invalid JSON payload: {0}")]
    Json(#[source] serde_json::Error),
    /// `Path<T>`: the destination variables do not fit `T`.
    #[error("invalid destination variables: {0}")]
    Path(String),
    /// `String`: the body is not UTF-8.
    #[error("payload is not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// `State<T>`: no state of that type was registered (a programming error).
    #[error("no state of type {type_name} was registered with BrokerBuilder::state")]
    MissingState {
        /// The type asked for.
        type_name: &'static str,
    },
    /// `Principal`: the session is anonymous.
    #[error("this destination needs an authenticated user; the session is anonymous")]
    Unauthenticated,
}

impl ExtractRejection {
    /// The short `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            ExtractRejection::Json(_) => "invalid JSON payload",
            ExtractRejection::Path(_) => "invalid destination variables",
            ExtractRejection::NotUtf8(_) => "payload is not UTF-8",
            ExtractRejection::MissingState { .. } => "handler state missing",
            ExtractRejection::Unauthenticated => "authentication required",
        }
    }
}

impl IntoReply for ExtractRejection {
    fn into_reply(self, out: &mut Vec<Reply>) {
        out.push(Reply::Error(HandlerError::new(self.message(), &self)));
    }
}

impl IntoReply for std::convert::Infallible {
    fn into_reply(self, _: &mut Vec<Reply>) {
        match self {}
    }
}
