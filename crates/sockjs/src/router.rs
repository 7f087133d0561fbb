//! [`SockJs`]: one endpoint, its URL and method dispatch, and the static answers (`/info`, the
//! iframe page, the greeting).

use std::{
    hash::{BuildHasher, Hasher},
    sync::Arc,
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
    routing::any,
};

use crate::registry::Registry;
use crate::reply::{self, Reply};
use crate::session::Transport;
use crate::transport;
use crate::{Config, Handler};

/// One SockJS endpoint: a [`Handler`], its [`Config`] and its sessions. Cheap to clone; mount
/// it with [`SockJs::router`].
pub struct SockJs<H: Handler> {
    pub(crate) inner: Arc<Inner<H>>,
}

impl<H: Handler> Clone for SockJs<H> {
    fn clone(&self) -> Self {
        SockJs {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<H: Handler> {
    pub(crate) config: Config,
    pub(crate) handler: Arc<H>,
    pub(crate) sessions: Arc<Registry<H::Ticket>>,
    iframe: Iframe,
}

impl<H: Handler> SockJs<H> {
    /// An endpoint running `handler` with `config`.
    pub fn new(config: Config, handler: H) -> Self {
        let iframe = Iframe::new(&config.client_url);
        SockJs {
            inner: Arc::new(Inner {
                config,
                handler: Arc::new(handler),
                sessions: Arc::new(Registry::new()),
                iframe,
            }),
        }
    }

    /// The endpoint's routes under `prefix` (`/sockjs`: no trailing `/`), to
    /// [`merge`](Router::merge) into the application's router. Several endpoints, each under
    /// its own prefix, can share one router.
    ///
    /// # Panics
    /// If `prefix` does not start with `/` or ends with one (axum's own rule for routes).
    pub fn router<S>(&self, prefix: &str) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        assert!(
            prefix.starts_with('/') && !prefix.ends_with('/'),
            "a SockJS prefix starts with `/` and does not end with one: {prefix:?}"
        );
        let handle = |this: SockJs<H>, prefix: Arc<str>| {
            any(move |request: Request| {
                let this = this.clone();
                let prefix = prefix.clone();
                async move { this.dispatch(&prefix, request).await }
            })
        };
        let prefix_arc: Arc<str> = Arc::from(prefix);
        Router::new()
            .route(prefix, handle(self.clone(), prefix_arc.clone()))
            .route(
                &format!("{prefix}/"),
                handle(self.clone(), prefix_arc.clone()),
            )
            .route(
                &format!("{prefix}/{{*rest}}"),
                handle(self.clone(), prefix_arc),
            )
    }

    /// Sessions of the HTTP transports open now (or closed and still answering with their close
    /// frame).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    async fn dispatch(&self, prefix: &str, request: Request) -> Response {
        let path = request.uri().path();
        let suffix = path.strip_prefix(prefix).unwrap_or("").to_owned();
        let headers = request.headers();
        let method = request.method();
        match suffix.as_str() {
            "" | "/" => match *method {
                Method::GET | Method::HEAD => {
                    Reply::new(headers, StatusCode::OK, Body::from("Welcome to SockJS!\n"))
                        .content_type(reply::PLAIN)
                        .finish()
                }
                _ => reply::method_not_allowed("GET"),
            },
            "/info" => match *method {
                Method::GET => self.info(headers),
                Method::OPTIONS => reply::preflight(headers, "OPTIONS, GET"),
                _ => reply::method_not_allowed("OPTIONS, GET"),
            },
            "/websocket" => {
                transport::websocket::upgrade(self, request, Transport::RawWebSocket, String::new())
                    .await
            }
            s if is_iframe(s) => match *method {
                Method::GET | Method::HEAD => self.inner.iframe.response(headers),
                _ => reply::method_not_allowed("GET"),
            },
            s => match session_path(s) {
                Some((session, name)) => {
                    let session = session.to_owned();
                    let name = name.to_owned();
                    transport::handle(self, request, &session, &name).await
                }
                None => reply::not_found(),
            },
        }
    }

    fn info(&self, headers: &HeaderMap) -> Response {
        let config = &self.inner.config;
        let body = format!(
            r#"{{"websocket":{},"cookie_needed":{},"origins":["*:*"],"entropy":{}}}"#,
            config.websocket,
            config.cookie_needed,
            entropy()
        );
        Reply::new(headers, StatusCode::OK, Body::from(body))
            .content_type(reply::JSON)
            .cors()
            .no_cache()
            .finish()
    }
}

/// A random 32-bit number for `/info`'s `entropy` (the client seeds nothing important with it;
/// std's per-instance hasher keys are random enough and need no dependency).
fn entropy() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish() as u32
}

/// `/iframe.html`, `/iframe-<version>.html`: `iframe` + `[0-9a-z._-]*` + `.html`.
fn is_iframe(suffix: &str) -> bool {
    suffix
        .strip_prefix("/iframe")
        .and_then(|rest| rest.strip_suffix(".html"))
        .is_some_and(|middle| {
            middle
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"._-".contains(&b))
        })
}

/// `/<server>/<session>/<transport>`: the session id and transport name, when the server and
/// session parts are non-empty and have no `.`.
fn session_path(suffix: &str) -> Option<(&str, &str)> {
    let mut parts = suffix.strip_prefix('/')?.split('/');
    let (server, session, transport) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| !s.is_empty() && !s.contains('.');
    (parts.next().is_none() && valid(server) && valid(session)).then_some((session, transport))
}

/// The iframe page: its body and ETag, computed once.
struct Iframe {
    body: bytes::Bytes,
    etag: HeaderValue,
}

impl Iframe {
    fn new(client_url: &str) -> Self {
        let body = format!(
            r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#,
            html_attribute(client_url)
        );
        // FNV-1a: stable across restarts and builds, so caches keep their copy.
        let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let etag = HeaderValue::from_str(&format!("\"{hash:016x}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Iframe {
            body: body.into(),
            etag,
        }
    }

    fn response(&self, headers: &HeaderMap) -> Response {
        if headers.get(header::IF_NONE_MATCH) == Some(&self.etag) {
            return reply::status(StatusCode::NOT_MODIFIED);
        }
        let mut response = Reply::new(headers, StatusCode::OK, Body::from(self.body.clone()))
            .content_type(reply::HTML)
            .cache_a_year()
            .finish();
        response
            .headers_mut()
            .insert(header::ETAG, self.etag.clone());
        response
    }
}

fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_paths() {
        for ok in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe(ok), "{ok}");
        }
        for bad in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/iframe.HTML",
            "/iframe-/.html",
        ] {
            assert!(!is_iframe(bad), "{bad}");
        }
    }

    #[test]
    fn session_paths() {
        assert_eq!(session_path("/a/b/xhr"), Some(("b", "xhr")));
        assert_eq!(session_path("/a/b%20c/xhr"), Some(("b%20c", "xhr")));
        for bad in [
            "//xhr",
            "/a./a/xhr",
            "/a/a./xhr",
            "/./././xhr",
            "/xhr",
            "///xhr",
            "/a/b/c/d",
        ] {
            assert_eq!(session_path(bad), None, "{bad}");
        }
    }
}
