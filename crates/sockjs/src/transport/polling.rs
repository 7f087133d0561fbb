//! `xhr` and `jsonp`: one frame per request. A request for a session with nothing to send
//! waits (a long poll) until there is something, or sends `h` after the heartbeat interval.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    response::Response,
};

use crate::Handler;
use crate::frame::{self, Frame, Framing};
use crate::reply::{self, Reply};
use crate::router::SockJs;
use crate::session::{Attach, Transport};
use crate::transport::{callback, open_or_resume};

pub(crate) async fn poll<H: Handler>(
    sockjs: &SockJs<H>,
    request: Request,
    id: &str,
    transport: Transport,
) -> Response {
    let (parts, _) = request.into_parts();
    let framing = match transport {
        Transport::XhrPolling => {
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
            Framing::Line
        }
        _ => {
            if parts.method != Method::GET {
                return reply::method_not_allowed("GET");
            }
            match callback(&parts) {
                Ok(callback) => Framing::Jsonp(callback),
                Err(response) => return response,
            }
        }
    };
    let entry = match open_or_resume(sockjs, &parts, id, transport) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let frame = match entry.shared.attach() {
        Attach::Busy => Frame::close(frame::ANOTHER_CONNECTION),
        Attach::Closed(frame) => frame,
        Attach::Attached(mut receiver) => {
            let frame = receiver.next().await;
            receiver.finish();
            frame
        }
    };
    Reply::new(
        &parts.headers,
        StatusCode::OK,
        Body::from(framing.wrap(&frame)),
    )
    .content_type(reply::JAVASCRIPT)
    .cors()
    .no_cache()
    .cookie(sockjs.inner.config.cookie_needed)
    .finish()
}
