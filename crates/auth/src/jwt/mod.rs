//! [`JwtAuthenticator`]: bearer tokens (JWT) signed by an identity provider or a shared secret.
//!
//! - `config.rs`: [`JwtConfig`].
//! - `carrier.rs`: where a token is looked for, in order.
//! - `keys.rs`: loading the secret, the PEM key and the JWKS; the choice of a key per token.
//! - `claims.rs`: claims to [`Principal`]; verification errors to refusals.

mod carrier;
mod claims;
mod config;
mod keys;

use std::{borrow::Cow, fmt, sync::Arc};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::{Map, Value};
use stompbox_broker::{AuthError, Authenticator, ConnectRequest, Principal};

pub(crate) use carrier::looks_like_jwt;
pub use config::JwtConfig;
use keys::Keys;

use crate::AuthConfigError;

/// The refusal when no carrier has a token.
const NEEDS_TOKEN: &str = "this server needs a token";

/// Admits a CONNECT that carries a valid JWT: signed by a configured key, not expired (`exp` is
/// required), from the configured issuer and for the configured audience. The principal is the token's
/// `principal_claim` (`sub`), its roles the `roles_claim`, and with `close_on_expiry` the
/// session ends when the token does.
///
/// The token is looked for, first found wins, in: the CONNECT `passcode` header (the RabbitMQ
/// OAuth 2 convention; any `login`), a CONNECT `Authorization: Bearer` header, the WebSocket
/// upgrade's `Authorization: Bearer` header, the upgrade URI's `query_parameter`, the upgrade's
/// `cookie`. A passcode that does not look like a JWT is taken for a password and skipped.
///
/// Refusals: `token expired`; `invalid token: <reason>` (`bad signature`, `wrong issuer`,
/// `wrong audience`, `no sub claim`, `malformed`, `algorithm not accepted`, ...); `this server
/// needs a token`.
///
/// Verifying a signature costs well under a millisecond (RS256, ES256), so it runs on the
/// session's task.
/// A cheap `Clone` handle: keep one to [`reload`](JwtAuthenticator::reload) the key files.
#[derive(Clone)]
pub struct JwtAuthenticator {
    shared: Arc<Shared>,
}

struct Shared {
    config: JwtConfig,
    /// Swapped whole on reload.
    keys: ArcSwap<Keys>,
    /// The checks every token gets; `algorithms` is set per token, to its key's one.
    validation: Validation,
}

impl JwtAuthenticator {
    /// Checks `config` and reads its key files. Errors name the key and the file: no key at all,
    /// a file that cannot be read, a PEM that is not a public key, a JWKS with no usable key.
    pub fn new(config: JwtConfig) -> Result<Self, AuthConfigError> {
        let keys = Keys::load(&config)?;
        let validation = validation(&config);
        Ok(JwtAuthenticator {
            shared: Arc::new(Shared {
                config,
                keys: ArcSwap::from_pointee(keys),
                validation,
            }),
        })
    }

    /// Reads the key files again (an identity provider rotated its keys) and, if they are
    /// valid, swaps them in at once; returns how many keys there are. On error the old keys
    /// stay. Sessions already connected are not touched.
    pub fn reload(&self) -> Result<usize, AuthConfigError> {
        let keys = Keys::load(&self.shared.config)?;
        let count = keys.len();
        self.shared.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &JwtConfig {
        &self.shared.config
    }

    /// The token `request` carries, from the first carrier that has one (see
    /// [`JwtAuthenticator`]), not yet verified.
    pub fn token<'a>(&self, request: &ConnectRequest<'a>) -> Option<Cow<'a, str>> {
        let config = &self.shared.config;
        carrier::find(
            request,
            config.query_parameter.as_deref(),
            config.cookie.as_deref(),
        )
    }

    /// Verifies `token` and returns the principal it names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|e| claims::header_refusal(&e))?;
        let keys = self.shared.keys.load();
        let (key, alg) = keys
            .select(&header)
            .map_err(|reason| AuthError::new(format!("invalid token: {reason}")))?;
        let mut validation = self.shared.validation.clone();
        validation.algorithms = vec![alg];
        let data = decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| claims::refusal(&e))?;
        claims::principal(&data.claims, &self.shared.config)
    }
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("config", &self.shared.config)
            .field("keys", &self.shared.keys.load().len())
            .finish()
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let result = match self.token(&request) {
            Some(token) => self.verify(&token).map(Some),
            None => Err(AuthError::new(NEEDS_TOKEN)),
        };
        Box::pin(async move { result })
    }
}

/// The checks of `config`: `exp` always (and `nbf` when present), with the leeway; `iss` and
/// `aud` required and compared when configured. `jsonwebtoken` only compares `iss` and `aud`
/// when the token has them, hence the required claims.
fn validation(config: &JwtConfig) -> Validation {
    let mut validation = Validation {
        leeway: config.leeway,
        validate_exp: true,
        validate_nbf: true,
        ..Validation::default()
    };
    let mut required = vec!["exp"];
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}
