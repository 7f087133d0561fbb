//! [`JwtConfig`]: which keys verify tokens, which claims are checked and read, where tokens
//! travel. `Default` is the single source of truth for every default.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

/// How [`JwtAuthenticator`](crate::JwtAuthenticator) verifies bearer tokens. Deserializes from
/// TOML with missing fields taking their defaults; unknown keys are errors.
///
/// The accepted algorithms follow from the keys: HS256 only with `secret`; RS256 with an RSA
/// key, ES256 with an EC P-256 key (ES384 with P-384, EdDSA with Ed25519), and for a JWKS key
/// the `alg` it declares. `none` is never accepted, and a public key is never used as an HMAC
/// secret (the algorithm-confusion attack).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// The HS256 shared secret (its UTF-8 bytes). Default none. Use at least 32 random bytes
    /// (RFC 7518 §3.2).
    pub secret: Option<String>,
    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY`, or a certificate):
    /// RSA verifies RS256, EC P-256 ES256. Default none.
    pub public_key_file: Option<PathBuf>,
    /// A JWKS file (`{"keys": [...]}`, as an identity provider publishes): a token's key is the
    /// one whose `kid` is in the token's header, or the only key if there is just one. Default
    /// none. Symmetric (`oct`) keys are refused (put the secret in `secret`); encryption keys
    /// and key types that cannot verify a signature are skipped.
    pub jwks_file: Option<PathBuf>,
    /// When set, a token's `iss` must be present and equal to it. Default none.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must be present and be, or contain, it. Default none: `aud`
    /// is not checked.
    pub audience: Option<String>,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds. Default 30: enough for
    /// clocks kept by NTP, short enough that an expired token is not honoured for long.
    pub leeway: u64,
    /// The claim that names the principal. Default `sub`. A name with dots that is not itself a
    /// claim is a path into nested objects (`user.name`).
    pub principal_claim: String,
    /// The claim that lists the principal's roles: a JSON array of strings, or a string of
    /// space-separated roles as OAuth's `scope` is. Default `roles`. A missing claim means no
    /// roles; dots as for `principal_claim` (Keycloak's `realm_access.roles`).
    pub roles_claim: String,
    /// The query parameter of the WebSocket upgrade URI that may carry the token (browsers
    /// cannot set headers on a WebSocket). Default `access_token` (RFC 6750 §2.3); none or an
    /// empty string turns it off. URLs end up in proxy and access logs: where the client can,
    /// the passcode is the better carrier.
    pub query_parameter: Option<String>,
    /// The cookie of the WebSocket upgrade that may carry the token. Default none.
    pub cookie: Option<String>,
    /// Close the session when the token expires (at `exp` plus `leeway`), with ERROR
    /// `token expired`. Default `true`: a session must not outlive the credential it was
    /// admitted with.
    pub close_on_expiry: bool,
}

/// Clock skew allowed on `exp` and `nbf`: see [`JwtConfig::leeway`].
const DEFAULT_LEEWAY_SECS: u64 = 30;

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: None,
            public_key_file: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY_SECS,
            principal_claim: "sub".into(),
            roles_claim: "roles".into(),
            query_parameter: Some("access_token".into()),
            cookie: None,
            close_on_expiry: true,
        }
    }
}

impl fmt::Debug for JwtConfig {
    // By hand so that the secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("public_key_file", &self.public_key_file)
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("principal_claim", &self.principal_claim)
            .field("roles_claim", &self.roles_claim)
            .field("query_parameter", &self.query_parameter)
            .field("cookie", &self.cookie)
            .field("close_on_expiry", &self.close_on_expiry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_an_empty_table_and_unknown_keys_refused() {
        let config: JwtConfig = toml::from_str("").unwrap();
        assert_eq!(config, JwtConfig::default());
        assert!(toml::from_str::<JwtConfig>("secrett = \"x\"").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = JwtConfig {
            secret: Some("hunter2".into()),
            ..JwtConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
