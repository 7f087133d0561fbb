//! The HTTP details every SockJS response shares: CORS, caching, the `JSESSIONID` cookie,
//! content types, the protocol's error responses, and query and form decoding.

use std::time::{Duration, SystemTime};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};

/// One year, the protocol's cache lifetime for preflights and the iframe page.
const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
pub(crate) const PLAIN: &str = "text/plain; charset=UTF-8";
pub(crate) const HTML: &str = "text/html; charset=UTF-8";
pub(crate) const JSON: &str = "application/json; charset=UTF-8";
pub(crate) const EVENT_STREAM: &str = "text/event-stream";

/// A response builder over the request's headers: applies what the protocol asks of each kind
/// of response.
pub(crate) struct Reply<'a> {
    request: &'a HeaderMap,
    response: Response,
}

impl<'a> Reply<'a> {
    pub(crate) fn new(request: &'a HeaderMap, status: StatusCode, body: Body) -> Self {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        Reply { request, response }
    }

    fn header(&mut self, name: header::HeaderName, value: HeaderValue) {
        self.response.headers_mut().insert(name, value);
    }

    pub(crate) fn content_type(mut self, value: &'static str) -> Self {
        self.header(header::CONTENT_TYPE, HeaderValue::from_static(value));
        self
    }

    /// CORS as the protocol wants it: the request's `Origin` echoed with credentials allowed,
    /// or `*` without them.
    pub(crate) fn cors(mut self) -> Self {
        match self.request.get(header::ORIGIN) {
            Some(origin) if !origin.is_empty() => {
                let origin = origin.clone();
                self.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                self.header(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            _ => self.header(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        }
        self.header(header::VARY, HeaderValue::from_static("Origin"));
        self
    }

    /// Never cached (every session response and `/info`).
    pub(crate) fn no_cache(mut self) -> Self {
        self.header(
            header::CACHE_CONTROL,
            HeaderValue::from_static(
                "no-store, no-cache, no-transform, must-revalidate, max-age=0",
            ),
        );
        self
    }

    /// Cached for a year (preflights, the iframe page).
    pub(crate) fn cache_a_year(mut self) -> Self {
        self.header(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000"),
        );
        let expires = httpdate::fmt_http_date(SystemTime::now() + ONE_YEAR);
        if let Ok(value) = HeaderValue::from_str(&expires) {
            self.header(header::EXPIRES, value);
        }
        self
    }

    /// `JSESSIONID` for sticky load balancers, when the endpoint needs the cookie: the
    /// client's own value, else `dummy`.
    pub(crate) fn cookie(mut self, needed: bool) -> Self {
        if !needed {
            return self;
        }
        let value = jsessionid(self.request).unwrap_or("dummy");
        if let Ok(value) = HeaderValue::from_str(&format!("JSESSIONID={value}; path=/")) {
            self.header(header::SET_COOKIE, value);
        }
        self
    }

    pub(crate) fn finish(self) -> Response {
        self.response
    }
}

fn jsessionid(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "JSESSIONID")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The answer to a CORS preflight (`OPTIONS`) for `methods`.
pub(crate) fn preflight(request: &HeaderMap, methods: &'static str) -> Response {
    let mut response = Reply::new(request, StatusCode::NO_CONTENT, Body::empty())
        .cors()
        .cache_a_year()
        .finish();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("31536000"),
    );
    if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        && !asked.is_empty()
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    response
}

/// 404 with no body.
pub(crate) fn not_found() -> Response {
    status(StatusCode::NOT_FOUND)
}

/// 405 with the methods allowed and no body.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub(crate) fn status(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// An error with a plain-text body (the protocol's `500 Payload expected.` and the like).
pub(crate) fn error(request: &HeaderMap, status: StatusCode, text: &'static str) -> Response {
    Reply::new(request, status, Body::from(text))
        .content_type(PLAIN)
        .cors()
        .no_cache()
        .finish()
}

/// Whether `method` is one of the allowed ones, or the answer when it is not: a preflight for
/// `OPTIONS` when the transport takes cross-origin requests, else 405.
pub(crate) fn check_method(
    request: &HeaderMap,
    method: &Method,
    allowed: &Method,
    preflight_methods: Option<&'static str>,
    allow: &'static str,
) -> Result<(), Response> {
    if method == allowed {
        return Ok(());
    }
    match preflight_methods {
        Some(methods) if method == Method::OPTIONS => Err(preflight(request, methods)),
        _ => Err(method_not_allowed(allow)),
    }
}

/// Percent-decodes `text` (and `+` as a space when `form`); `None` when the result is not UTF-8.
pub(crate) fn percent_decode(text: &str, form: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if form => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in a query string or form body, decoded.
pub(crate) fn param(pairs: &str, name: &str, form: bool) -> Option<String> {
    pairs
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| percent_decode(key, form).as_deref() == Some(name))
        .and_then(|(_, value)| percent_decode(value, form))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%63allback", false).unwrap(), "callback");
        assert_eq!(percent_decode("a%2", false).unwrap(), "a%2");
        assert_eq!(percent_decode("a%zz", false).unwrap(), "a%zz");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%ff", false), None);
        assert_eq!(param("t=1&c=%63b", "c", false).unwrap(), "cb");
        assert_eq!(param("d=", "d", true).unwrap(), "");
        assert_eq!(param("p=p", "d", true), None);
    }
}
