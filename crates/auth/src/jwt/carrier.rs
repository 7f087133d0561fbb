//! Where a token travels, in the order they are searched: the CONNECT `passcode` header (the
//! RabbitMQ OAuth 2 convention), a CONNECT `Authorization: Bearer` header, the WebSocket
//! upgrade's `Authorization: Bearer` header, a query parameter of the upgrade URI, a cookie of
//! the upgrade. The first one found wins.

use std::borrow::Cow;

use http::{HeaderMap, header};
use stompbox_broker::ConnectRequest;

/// The token in `request`, if any carrier has one. The `passcode` counts only when it
/// [looks like a JWT](looks_like_jwt), since it is also where passwords go; the other carriers
/// are there for tokens only, so whatever they hold is returned (and refused if malformed).
pub(crate) fn find<'a>(
    request: &ConnectRequest<'a>,
    query_parameter: Option<&str>,
    cookie_name: Option<&str>,
) -> Option<Cow<'a, str>> {
    if let Some(passcode) = request.passcode.filter(|p| looks_like_jwt(p)) {
        return Some(Cow::Borrowed(passcode));
    }
    let stomp_header = request
        .headers
        .get("Authorization")
        .or_else(|| request.headers.get("authorization"));
    if let Some(token) = stomp_header.and_then(bearer) {
        return Some(Cow::Borrowed(token));
    }
    let handshake = request.connection.handshake.as_ref()?;
    if let Some(token) = handshake
        .headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .find_map(|v| v.to_str().ok().and_then(bearer))
    {
        return Some(Cow::Borrowed(token));
    }
    if let Some(name) = query_parameter.filter(|n| !n.is_empty())
        && let Some(token) = handshake.uri.query().and_then(|q| query_value(q, name))
    {
        return Some(token);
    }
    cookie_name
        .filter(|n| !n.is_empty())
        .and_then(|name| cookie(&handshake.headers, name))
        .map(Cow::Borrowed)
}

/// True if `s` has the shape of a signed JWT in compact form: three dot-separated base64url
/// parts, the header starting with `eyJ` (base64 of `{"`). Strict enough that a password is
/// practically never taken for a token.
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    let is_b64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = s.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => {
            header.starts_with("eyJ")
                && !payload.is_empty()
                && is_b64url(header)
                && is_b64url(payload)
                && is_b64url(signature)
        }
        _ => false,
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive,
/// RFC 7235); `None` for another scheme or an empty token.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The first value of parameter `name` in a URI query, percent-decoded.
fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| percent_decode(v))
        .filter(|v| !v.is_empty())
}

/// `%XX` escapes decoded; `None` if an escape is broken or the result is not UTF-8. A JWT needs
/// no escaping, so the usual case borrows.
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// The value of cookie `name` among the request's `Cookie` headers (RFC 6265: `a=1; b=2`,
/// values optionally in double quotes).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        // `alg: none` has an empty signature: still a token (and refused as one).
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
        assert!(!looks_like_jwt("guest"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("eyJ.b.c.d"));
        assert!(!looks_like_jwt("eyJhbGci.ey Jz.c2ln"));
        assert!(!looks_like_jwt("eyJhbGci..c2ln"));
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn query_values() {
        let q = "a=1&access_token=tok%2Eend&b";
        assert_eq!(query_value(q, "access_token").as_deref(), Some("tok.end"));
        assert_eq!(query_value(q, "a").as_deref(), Some("1"));
        assert_eq!(query_value(q, "b"), None);
        assert_eq!(query_value("x=%zz", "x"), None);
        assert_eq!(query_value("x=%2", "x"), None);
    }

    #[test]
    fn cookie_values() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; jwt=\"tok\"".parse().unwrap());
        headers.append(header::COOKIE, "other=2".parse().unwrap());
        assert_eq!(cookie(&headers, "jwt"), Some("tok"));
        assert_eq!(cookie(&headers, "other"), Some("2"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
