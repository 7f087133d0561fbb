//! [`WebSocket`]: tokio-tungstenite's stream over [`Inflating`], compressing what it sends.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{
            Role, WebSocketConfig,
            frame::{
                Frame,
                coding::{Data, OpCode},
            },
        },
    },
};

use crate::codec::compress;
use crate::inflating::Inflating;
use crate::negotiate::{Deflate, DeflateConfig, client_accept, client_offer};

/// A WebSocket connection: messages in (decompressed), messages out (compressed when the
/// connection negotiated permessage-deflate and the message is at least
/// [`Deflate::min_size`] bytes and shrinks).
#[derive(Debug)]
pub struct WebSocket<S> {
    inner: WebSocketStream<Inflating<S>>,
    deflate: Option<Deflate>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// A connection whose handshake is done, on `io`; `deflate` is what the handshake agreed.
    pub async fn from_raw_socket(
        io: S,
        role: Role,
        config: WebSocketConfig,
        deflate: Option<Deflate>,
    ) -> Self {
        let mut io = Inflating::new(io);
        if let Some(deflate) = &deflate {
            io.enable(deflate, role, config.max_message_size.unwrap_or(usize::MAX));
        }
        let inner = WebSocketStream::from_raw_socket(io, role, Some(config)).await;
        WebSocket { inner, deflate }
    }

    /// The client's side of a handshake on `io` (for tests and load generators): offers
    /// permessage-deflate when `deflate` is given, and uses it if the server agrees.
    pub async fn client(
        io: S,
        mut request: http::Request<()>,
        config: WebSocketConfig,
        deflate: Option<&DeflateConfig>,
    ) -> Result<(Self, http::Response<Option<Vec<u8>>>), tungstenite::Error> {
        if deflate.is_some() {
            let extensions = http::header::SEC_WEBSOCKET_EXTENSIONS;
            request.headers_mut().insert(extensions, client_offer());
        }
        let (mut inner, response) =
            tokio_tungstenite::client_async_with_config(request, Inflating::new(io), Some(config))
                .await?;
        let agreed = match deflate {
            Some(deflate) => client_accept(response.headers(), deflate).map_err(|e| {
                tungstenite::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })?,
            None => None,
        };
        if let Some(agreed) = &agreed {
            let max = config.max_message_size.unwrap_or(usize::MAX);
            inner.get_mut().enable(agreed, Role::Client, max);
        }
        Ok((
            WebSocket {
                inner,
                deflate: agreed,
            },
            response,
        ))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The underlying byte stream.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().get_ref()
    }
}

impl<S> WebSocket<S> {
    /// What permessage-deflate agreed on, if it was negotiated.
    pub fn deflate(&self) -> Option<&Deflate> {
        self.deflate.as_ref()
    }

    /// `message` as sent: a text or binary message compressed into one frame with RSV1 set
    /// (RFC 7692 §6), or as it is.
    fn outgoing(&self, message: Message) -> Message {
        let Some(deflate) = &self.deflate else {
            return message;
        };
        let (data, payload) = match &message {
            Message::Text(text) => (Data::Text, text.as_bytes()),
            Message::Binary(bytes) => (Data::Binary, &bytes[..]),
            _ => return message,
        };
        if payload.len() < deflate.min_size {
            return message;
        }
        match compress(deflate, payload) {
            Some(compressed) => {
                let mut frame = Frame::message(compressed, OpCode::Data(data), true);
                frame.header_mut().rsv1 = true;
                Message::Frame(frame)
            }
            None => message,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let item = self.outgoing(item);
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
