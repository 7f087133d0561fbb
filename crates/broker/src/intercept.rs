//! Interceptors on inbound frames: inspect, modify, or reject with an ERROR (Spring's
//! `ChannelInterceptor.preSend`).
//!
//! They run on the session's task for every frame the client sends (CONNECT included, before
//! authentication; the principal is known from the first frame after it), in registration
//! order, before the broker looks at the frame. They are synchronous and must be quick: slow
//! work belongs in an `/app` handler.

use stompbox_codec::Frame;

use crate::SessionInfo;

/// Refuses a frame: the client gets ERROR with this message and detail, and is disconnected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {detail}")]
pub struct FrameRejected {
    /// The ERROR's `message` header.
    pub message: String,
    /// The ERROR's body.
    pub detail: String,
}

impl FrameRejected {
    /// A refusal.
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> Self {
        FrameRejected {
            message: message.into(),
            detail: detail.into(),
        }
    }
}

/// Sees every inbound frame; implemented for `Fn(&mut Frame, &SessionInfo) -> Result<(), FrameRejected>`.
pub trait Interceptor: Send + Sync + 'static {
    /// Inspects or changes `frame`; `Err` rejects it.
    fn inbound(&self, frame: &mut Frame, session: &SessionInfo) -> Result<(), FrameRejected>;
}

impl<F> Interceptor for F
where
    F: Fn(&mut Frame, &SessionInfo) -> Result<(), FrameRejected> + Send + Sync + 'static,
{
    fn inbound(&self, frame: &mut Frame, session: &SessionInfo) -> Result<(), FrameRejected> {
        self(frame, session)
    }
}
