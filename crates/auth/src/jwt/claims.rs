//! From verified claims to a [`Principal`], and from a verification error to the refusal the
//! client reads.

use std::time::{Duration, SystemTime};

use jsonwebtoken::errors::{Error, ErrorKind};
use serde_json::{Map, Value};
use stompbox_broker::{AuthError, Principal};

use super::JwtConfig;

/// The refusal for a token past its `exp` (and the leeway).
pub(crate) const EXPIRED: &str = "token expired";

/// The principal that verified `claims` name: `principal_claim`, `roles_claim`, and the expiry
/// when `close_on_expiry`.
pub(crate) fn principal(
    claims: &Map<String, Value>,
    config: &JwtConfig,
) -> Result<Principal, AuthError> {
    let name = claim(claims, &config.principal_claim)
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            AuthError::new(format!(
                "invalid token: no {} claim",
                config.principal_claim
            ))
        })?;
    let roles = match claim(claims, &config.roles_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => roles(value).ok_or_else(|| {
            AuthError::new(format!(
                "invalid token: {} claim is not a list of strings",
                config.roles_claim
            ))
        })?,
    };
    let mut principal = Principal::new(name).with_roles(roles);
    if config.close_on_expiry {
        // `exp` is required and was checked to be a number; allow the same leeway as the check
        // did, or a token admitted within its leeway would be closed at once.
        if let Some(at) = claims
            .get("exp")
            .and_then(seconds)
            .and_then(|exp| exp.checked_add(config.leeway))
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        {
            principal = principal.expiring_at(at);
        }
    }
    Ok(principal)
}

/// Claim `name`: the top-level claim of that name, else, for a dotted name, the path through
/// nested objects (`realm_access.roles`). Namespaced claims such as
/// `https://example.com/roles` are found by the first rule.
fn claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let (first, rest) = name.split_once('.')?;
    rest.split('.')
        .try_fold(claims.get(first)?, |value, part| value.get(part))
}

/// Roles from a JSON array of strings, or a string of space-separated roles (OAuth `scope`).
fn roles(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// A NumericDate (RFC 7519 §2) as whole seconds.
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// The refusal for a token `jsonwebtoken` did not accept: short, and free of key material and
/// of the token itself.
pub(crate) fn refusal(error: &Error) -> AuthError {
    let reason = match error.kind() {
        ErrorKind::ExpiredSignature => return AuthError::new(EXPIRED),
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => "bad signature".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "wrong audience".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("bad {claim} claim"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => "algorithm not accepted".into(),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "malformed".into(),
        ErrorKind::Json(_) => "malformed".into(),
        _ => "refused".into(),
    };
    AuthError::new(format!("invalid token: {reason}"))
}

/// The refusal for a token whose header `jsonwebtoken` cannot read: an `alg` it does not know
/// (`none`) reads as malformed JSON.
pub(crate) fn header_refusal(error: &Error) -> AuthError {
    match error.kind() {
        ErrorKind::Json(_) => {
            AuthError::new("invalid token: algorithm not accepted, or a malformed header")
        }
        _ => refusal(error),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn nested_and_namespaced_claims() {
        let c = claims(json!({
            "realm_access": {"roles": ["a", "b"]},
            "https://example.com/roles": "x y",
        }));
        assert_eq!(claim(&c, "realm_access.roles"), Some(&json!(["a", "b"])));
        assert_eq!(claim(&c, "https://example.com/roles"), Some(&json!("x y")));
        assert_eq!(claim(&c, "realm_access.missing"), None);
        assert_eq!(claim(&c, "missing"), None);
    }

    #[test]
    fn roles_from_arrays_and_scopes() {
        assert_eq!(
            roles(&json!(["a", "b"])),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(roles(&json!(" a  b ")), Some(vec!["a".into(), "b".into()]));
        assert_eq!(roles(&json!(["a", 1])), None);
        assert_eq!(roles(&json!(7)), None);
    }

    #[test]
    fn a_huge_exp_does_not_overflow() {
        let c = claims(json!({"sub": "a", "exp": u64::MAX}));
        let p = principal(&c, &JwtConfig::default()).unwrap();
        assert_eq!(p.expires, None);
    }
}
