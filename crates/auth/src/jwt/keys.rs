//! The verification keys: the HMAC secret, the public key file, the JWKS file; and the choice
//! of one for a token.

use std::path::Path;

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Header,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};

use super::JwtConfig;
use crate::AuthConfigError;

/// Every key of a [`JwtConfig`], loaded. Replaced whole on reload.
pub(crate) struct Keys {
    /// From `secret`: HS256 only.
    hmac: Option<DecodingKey>,
    /// From `public_key_file`.
    public: Option<Key>,
    /// From `jwks_file`.
    jwks: Vec<Key>,
}

/// A public key and the one algorithm it verifies.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl Keys {
    /// Reads the key files `config` names.
    pub(crate) fn load(config: &JwtConfig) -> Result<Keys, AuthConfigError> {
        let hmac = match config.secret.as_deref() {
            None => None,
            Some("") => {
                return Err(AuthConfigError::JwtConfig {
                    key: "secret",
                    reason: "is empty".into(),
                });
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes()).map_err(|e| {
                AuthConfigError::JwtConfig {
                    key: "secret",
                    reason: e.to_string(),
                }
            })?),
        };
        let public = config
            .public_key_file
            .as_deref()
            .map(load_pem)
            .transpose()?;
        let jwks = match config.jwks_file.as_deref() {
            Some(path) => load_jwks(path)?,
            None => Vec::new(),
        };
        if hmac.is_none() && public.is_none() && jwks.is_empty() {
            return Err(AuthConfigError::JwtConfig {
                key: "secret",
                reason: "no key to verify tokens with: set `secret`, `public_key_file` or \
                         `jwks_file`"
                    .into(),
            });
        }
        Ok(Keys { hmac, public, jwks })
    }

    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.hmac.is_some()) + usize::from(self.public.is_some()) + self.jwks.len()
    }

    /// The key for a token with this header, and the one algorithm it may be verified with; or
    /// why there is none, for the refusal.
    pub(crate) fn select(
        &self,
        header: &Header,
    ) -> Result<(&DecodingKey, Algorithm), &'static str> {
        const NOT_ACCEPTED: &str = "algorithm not accepted";
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            // The secret, and only the secret: never a public key's bytes as an HMAC key.
            return match &self.hmac {
                Some(key) if alg == Algorithm::HS256 => Ok((key, alg)),
                _ => Err(NOT_ACCEPTED),
            };
        }
        let kid = header.kid.as_deref();
        if let Some(kid) = kid
            && let Some(key) = self.jwks.iter().find(|k| k.kid.as_deref() == Some(kid))
        {
            return Ok((&key.key, key.alg));
        }
        if let Some(key) = self.public.as_ref().filter(|k| k.alg == alg) {
            return Ok((&key.key, key.alg));
        }
        if let [only] = self.jwks.as_slice()
            && (only.kid.is_none() || kid.is_none())
        {
            return Ok((&only.key, only.alg));
        }
        if kid.is_some() && !self.jwks.is_empty() {
            return Err("unknown key id");
        }
        Err(NOT_ACCEPTED)
    }
}

/// A PEM public key: RSA (RS256), EC P-256 (ES256) or P-384 (ES384), Ed25519 (EdDSA).
fn load_pem(path: &Path) -> Result<Key, AuthConfigError> {
    let bad = |reason: &str| AuthConfigError::BadKey {
        key: "public_key_file",
        path: path.to_owned(),
        reason: reason.into(),
    };
    let pem = std::fs::read(path).map_err(|source| AuthConfigError::Read {
        what: "public_key_file",
        path: path.to_owned(),
        source,
    })?;
    if String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
        return Err(bad(
            "holds a private key; give the public key (`openssl pkey -pubout`) and keep the \
             private one with the token issuer",
        ));
    }
    let (key, alg) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        (key, Algorithm::RS256)
    } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        // An uncompressed point: 0x04, then x and y of the curve's size.
        let alg = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => return Err(bad("an EC key on a curve other than P-256 or P-384")),
        };
        (key, alg)
    } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        (key, Algorithm::EdDSA)
    } else {
        return Err(bad(
            "not an RSA, EC (P-256, P-384) or Ed25519 public key in PEM (`-----BEGIN PUBLIC \
             KEY-----`)",
        ));
    };
    Ok(Key {
        kid: None,
        alg,
        key,
    })
}

/// The signature keys of a JWKS file. Keys that cannot verify a signature (encryption keys,
/// unknown key types or curves) are skipped; a symmetric key, a malformed key, or a file with no
/// usable key is an error.
fn load_jwks(path: &Path) -> Result<Vec<Key>, AuthConfigError> {
    let bad = |reason: String| AuthConfigError::BadKey {
        key: "jwks_file",
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read(path).map_err(|source| AuthConfigError::Read {
        what: "jwks_file",
        path: path.to_owned(),
        source,
    })?;
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("not a JWKS document `{{\"keys\": [...]}}` ({e})")))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, value) in set.keys.into_iter().enumerate() {
        // One key in a format this library does not know (a newer `alg`) must not hide the rest.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let name = match &jwk.common.key_id {
            Some(kid) => format!("key `{kid}`"),
            None => format!("key #{i}"),
        };
        if let Some(key) = jwk_key(&jwk).map_err(|reason| bad(format!("{name}: {reason}")))? {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(bad(
            "no key that verifies signatures (RSA, EC or OKP)".into()
        ));
    }
    Ok(keys)
}

/// One JWK as a signature key; `Ok(None)` for one that is not for signatures.
fn jwk_key(jwk: &Jwk) -> Result<Option<Key>, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric (`oct`) key: put a shared secret in `secret`".into());
        }
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Ok(None),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return Ok(None),
    };
    let alg = match jwk.common.key_algorithm {
        // An encryption algorithm (RSA-OAEP) has no signature counterpart: not for us.
        Some(declared) => match Algorithm::try_from(declared) {
            Ok(alg) => alg,
            Err(_) => return Ok(None),
        },
        None => implied,
    };
    if alg.family() != implied.family() {
        return Err(format!(
            "declares `alg` {alg:?}, which its key type cannot verify"
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("malformed ({e})"))?;
    Ok(Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    }))
}
