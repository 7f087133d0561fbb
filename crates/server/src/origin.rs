//! The WebSocket Origin allow-list (`websocket.allowed_origins`): which web pages may open a
//! WebSocket to the broker. Browsers send the page's origin with every upgrade and let any page
//! connect anywhere, with the user's cookies; the allow-list is what stops another site's page
//! from using a logged-in user's session (cross-site WebSocket hijacking). Clients that are not
//! browsers send no `Origin`, and are not checked.

use axum::http::{self as http, HeaderMap};

/// One allowed origin: `scheme://host[:port]`, the host possibly `*.` + a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OriginPattern {
    scheme: String,
    /// `Some("example.com")` for `*.example.com`: any subdomain, not the domain itself.
    wildcard: Option<String>,
    /// The exact host and port (lowercase), when not a wildcard.
    host: String,
}

impl OriginPattern {
    /// `None` when `text` is not `scheme://host[:port]` (no path, no trailing `/`).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.to_ascii_lowercase();
        let (scheme, host) = text.split_once("://")?;
        let valid = |s: &str| !s.is_empty() && !s.contains(['/', '*', '?', '#', '@', ' ']);
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return None;
        }
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(domain) if valid(domain) => (Some(domain.to_owned()), String::new()),
            Some(_) => return None,
            None if valid(host) => (None, host.to_owned()),
            None => return None,
        };
        Some(OriginPattern {
            scheme: scheme.to_owned(),
            wildcard,
            host,
        })
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        let Some((scheme, host)) = origin.split_once("://") else {
            return false;
        };
        if scheme != self.scheme {
            return false;
        }
        match &self.wildcard {
            None => host == self.host,
            Some(domain) => host
                .strip_suffix(domain.as_str())
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty() && !sub.contains(['/', '@', ':'])),
        }
    }
}

/// The allow-list; empty allows every origin.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedOrigins(Vec<OriginPattern>);

impl AllowedOrigins {
    /// From `websocket.allowed_origins`, already validated.
    pub(crate) fn new(origins: &[String]) -> Self {
        AllowedOrigins(
            origins
                .iter()
                .filter_map(|o| OriginPattern::parse(o))
                .collect(),
        )
    }

    /// `Err(origin)` when the request comes from a page whose origin is not allowed.
    pub(crate) fn check<'h>(&self, headers: &'h HeaderMap) -> Result<(), &'h [u8]> {
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return Ok(());
        };
        if self.0.is_empty() {
            return Ok(());
        }
        let allowed = origin
            .to_str()
            .is_ok_and(|o| self.0.iter().any(|p| p.matches(o)));
        if allowed {
            Ok(())
        } else {
            Err(origin.as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], origin: &str) -> bool {
        let list: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ORIGIN, origin.parse().unwrap());
        AllowedOrigins::new(&list).check(&headers).is_ok()
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let list = [
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:3000",
        ];
        assert!(allowed(&list, "https://app.example.com"));
        assert!(allowed(&list, "HTTPS://App.Example.com"));
        assert!(!allowed(&list, "http://app.example.com"));
        assert!(!allowed(&list, "https://app.example.com.evil.net"));
        assert!(!allowed(&list, "https://evilapp.example.com"));
        assert!(allowed(&list, "https://a.b.example.org"));
        assert!(!allowed(&list, "https://example.org"));
        assert!(!allowed(&list, "https://evilexample.org"));
        assert!(allowed(&list, "http://localhost:3000"));
        assert!(!allowed(&list, "http://localhost:3001"));
        assert!(!allowed(&list, "null"));
        assert!(allowed(&[], "https://anything.example"));
        assert!(
            AllowedOrigins::new(&["https://a".into()])
                .check(&HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://a.com/",
            "https://*",
            "https://a.*.com",
            "*://a.com",
        ] {
            assert_eq!(OriginPattern::parse(bad), None, "{bad}");
        }
    }
}
