//! `xhr_streaming`, `eventsource` and `htmlfile`: one long response per receiver, a prelude
//! first (so that browsers start delivering), then frames as they come, until the close frame
//! or `streaming_bytes_limit` bytes of frames; the client then opens the next one.

use std::convert::Infallible;

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    response::Response,
};
use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::Handler;
use crate::frame::{self, Frame, Framing};
use crate::reply::{self, Reply};
use crate::router::SockJs;
use crate::session::{Attach, Receiver, Transport};
use crate::transport::{callback, open_or_resume};

/// The `htmlfile` page up to its script; the callback goes where `{callback}` is.
const HTMLFILE_HEAD: &str = r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"#;

/// Old browsers start running an HTML document's scripts only after its first KiB.
const HTMLFILE_PADDING: usize = 1024;
/// Old browsers deliver an XHR's progress only after its first 2 KiB.
const XHR_PRELUDE: usize = 2048;

pub(crate) async fn stream<H: Handler>(
    sockjs: &SockJs<H>,
    request: Request,
    id: &str,
    transport: Transport,
) -> Response {
    let (parts, _) = request.into_parts();
    let (framing, content_type, prelude) = match transport {
        Transport::XhrStreaming => {
            let allowed = reply::check_method(
                &parts.headers,
                &parts.method,
                &Method::POST,
                Some("OPTIONS, POST"),
                "OPTIONS, POST",
            );
            if let Err(response) = allowed {
                return response;
            }
            let mut prelude = vec![b'h'; XHR_PRELUDE];
            prelude.push(b'\n');
            (Framing::Line, reply::JAVASCRIPT, Bytes::from(prelude))
        }
        Transport::EventSource => {
            if parts.method != Method::GET {
                return reply::method_not_allowed("GET");
            }
            (
                Framing::EventSource,
                reply::EVENT_STREAM,
                Bytes::from_static(b"\r\n"),
            )
        }
        _ => {
            if parts.method != Method::GET {
                return reply::method_not_allowed("GET");
            }
            let callback = match callback(&parts) {
                Ok(callback) => callback,
                Err(response) => return response,
            };
            let mut page = HTMLFILE_HEAD.replace("{callback}", &callback);
            let padding = HTMLFILE_PADDING.saturating_sub(page.len());
            page.extend(std::iter::repeat_n(' ', padding));
            page.push_str("\r\n\r\n");
            (Framing::HtmlFile, reply::HTML, Bytes::from(page))
        }
    };
    let entry = match open_or_resume(sockjs, &parts, id, transport) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let body = match entry.shared.attach() {
        Attach::Busy => once(
            prelude,
            framing.wrap(&Frame::close(frame::ANOTHER_CONNECTION)),
        ),
        Attach::Closed(frame) => once(prelude, framing.wrap(&frame)),
        Attach::Attached(receiver) => {
            let limit = sockjs.inner.config.streaming_bytes_limit;
            frames(prelude, receiver, framing, limit)
        }
    };
    Reply::new(&parts.headers, StatusCode::OK, body)
        .content_type(content_type)
        .cors()
        .no_cache()
        .cookie(sockjs.inner.config.cookie_needed)
        .finish()
}

/// The prelude and one frame, each its own chunk.
fn once(prelude: Bytes, frame: Bytes) -> Body {
    Body::from_stream(stream::iter([Ok::<_, Infallible>(prelude), Ok(frame)]))
}

enum Step {
    Prelude(Receiver),
    Frames(Receiver, usize),
    Done,
}

/// The prelude, then the receiver's frames until the close frame or `limit` bytes.
fn frames(prelude: Bytes, receiver: Receiver, framing: Framing, limit: usize) -> Body {
    let chunks = stream::unfold(Step::Prelude(receiver), move |step| {
        let prelude = prelude.clone();
        let framing = framing.clone();
        async move {
            match step {
                Step::Prelude(receiver) => Some((prelude, Step::Frames(receiver, 0))),
                Step::Frames(mut receiver, sent) => {
                    let frame = receiver.next().await;
                    let bytes = framing.wrap(&frame);
                    let sent = sent + bytes.len();
                    if matches!(frame, Frame::Close(..)) || sent >= limit {
                        receiver.finish();
                        return Some((bytes, Step::Done));
                    }
                    Some((bytes, Step::Frames(receiver, sent)))
                }
                Step::Done => None,
            }
        }
    });
    Body::from_stream(chunks.map(Ok::<_, Infallible>))
}
