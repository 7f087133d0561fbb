//! JWT: the three kinds of key, the checks, the refusals, the carriers, roles and expiry.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{Connect, b64url, claims, ec_key_pair, ed_key_pair, hs256, now, signed};
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{Jwk, JwkSet},
};
use serde_json::json;
use stompbox_auth::{AuthConfigError, JwtAuthenticator, JwtConfig};

const SECRET: &str = "a shared secret of at least 32 bytes";

fn with_secret() -> JwtAuthenticator {
    JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        ..JwtConfig::default()
    })
    .unwrap()
}

fn token_in_passcode(token: &str) -> Connect {
    Connect::credentials("", token)
}

#[tokio::test]
async fn hs256_valid() {
    let jwt = with_secret();
    let token = hs256(&claims("alice"), SECRET);
    let alice = token_in_passcode(&token).admit(&jwt).await;
    assert_eq!(alice.name, "alice");
    assert!(alice.roles.is_empty());
    // Any login goes with a token in the passcode (RabbitMQ's convention).
    let alice = Connect::credentials("whatever", &token).admit(&jwt).await;
    assert_eq!(alice.name, "alice");
}

#[tokio::test]
async fn expired_tokens_are_refused_past_the_leeway() {
    let jwt = with_secret();
    let long_ago = json!({"sub": "a", "exp": now() - 120});
    let message = token_in_passcode(&hs256(&long_ago, SECRET))
        .refuse(&jwt)
        .await;
    assert_eq!(message, "token expired");
    // Within the 30 s leeway: admitted, and closed when the leeway runs out too.
    let exp = now() - 5;
    let just_now = json!({"sub": "a", "exp": exp});
    let principal = token_in_passcode(&hs256(&just_now, SECRET))
        .admit(&jwt)
        .await;
    assert_eq!(
        principal.expires,
        Some(UNIX_EPOCH + Duration::from_secs(exp + 30))
    );

    let no_exp = json!({"sub": "a"});
    let message = token_in_passcode(&hs256(&no_exp, SECRET))
        .refuse(&jwt)
        .await;
    assert_eq!(message, "invalid token: no exp claim");
    let not_yet = json!({"sub": "a", "exp": now() + 3600, "nbf": now() + 600});
    let message = token_in_passcode(&hs256(&not_yet, SECRET))
        .refuse(&jwt)
        .await;
    assert_eq!(message, "invalid token: not valid yet (nbf)");
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_set() {
    let jwt = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        issuer: Some("https://idp.example".into()),
        audience: Some("stompbox".into()),
        ..JwtConfig::default()
    })
    .unwrap();
    let exp = now() + 60;
    let token = |claims: serde_json::Value| token_in_passcode(&hs256(&claims, SECRET));

    let good = json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": "stompbox"});
    assert_eq!(token(good).admit(&jwt).await.name, "a");
    let several_audiences =
        json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": ["x", "stompbox"]});
    assert_eq!(token(several_audiences).admit(&jwt).await.name, "a");

    let wrong_iss =
        json!({"sub": "a", "exp": exp, "iss": "https://evil.example", "aud": "stompbox"});
    assert_eq!(
        token(wrong_iss).refuse(&jwt).await,
        "invalid token: wrong issuer"
    );
    let wrong_aud = json!({"sub": "a", "exp": exp, "iss": "https://idp.example", "aud": "other"});
    assert_eq!(
        token(wrong_aud).refuse(&jwt).await,
        "invalid token: wrong audience"
    );
    // Configured claims must be there: jsonwebtoken alone would skip a missing one.
    let no_iss = json!({"sub": "a", "exp": exp, "aud": "stompbox"});
    assert_eq!(
        token(no_iss).refuse(&jwt).await,
        "invalid token: no iss claim"
    );
    let no_aud = json!({"sub": "a", "exp": exp, "iss": "https://idp.example"});
    assert_eq!(
        token(no_aud).refuse(&jwt).await,
        "invalid token: no aud claim"
    );

    // Not configured: not checked.
    let audience_not_set = with_secret();
    let any_aud = json!({"sub": "a", "exp": exp, "iss": "anyone", "aud": "anything"});
    assert_eq!(token(any_aud).admit(&audience_not_set).await.name, "a");
}

#[tokio::test]
async fn bad_signatures_and_malformed_tokens_are_refused() {
    let jwt = with_secret();
    let other_secret = hs256(&claims("a"), "another secret, also long enough");
    assert_eq!(
        token_in_passcode(&other_secret).refuse(&jwt).await,
        "invalid token: bad signature"
    );
    // A payload swapped under a valid signature.
    let genuine = hs256(&claims("alice"), SECRET);
    let forged_payload = b64url(
        json!({"sub": "admin", "exp": now() + 60})
            .to_string()
            .as_bytes(),
    );
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        token_in_passcode(&forged).refuse(&jwt).await,
        "invalid token: bad signature"
    );

    let garbage = Connect::new().header("Authorization", "Bearer not-a-token");
    assert_eq!(garbage.refuse(&jwt).await, "invalid token: malformed");
    let not_json = format!("{}.{}.c2ln", b64url(br#"{"alg":"HS256"}"#), b64url(b"[1]"));
    assert_eq!(
        token_in_passcode(&not_json).refuse(&jwt).await,
        "invalid token: bad signature"
    );
    let no_token = Connect::credentials("guest", "guest");
    assert_eq!(no_token.refuse(&jwt).await, "this server needs a token");
    assert_eq!(
        Connect::new().refuse(&jwt).await,
        "this server needs a token"
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let jwt = with_secret();
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims("admin").to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.c2ln"),
    ] {
        let message = token_in_passcode(&token).refuse(&jwt).await;
        assert_eq!(
            message,
            "invalid token: algorithm not accepted, or a malformed header"
        );
    }
}

#[tokio::test]
async fn rs256_with_a_public_key_file_and_no_hs256_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = common::rsa_key_pair(dir.path());
    let public_key_file = dir.path().join("public.pem");
    std::fs::write(&public_key_file, &rsa.public_pem).unwrap();
    let jwt = JwtAuthenticator::new(JwtConfig {
        public_key_file: Some(public_key_file),
        ..JwtConfig::default()
    })
    .unwrap();

    let key = EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap();
    let token = signed(Algorithm::RS256, &key, None, &claims("rs"));
    assert_eq!(token_in_passcode(&token).admit(&jwt).await.name, "rs");

    // Another RSA key: bad signature.
    let other_dir = tempfile::tempdir().unwrap();
    let other = common::rsa_key_pair(other_dir.path());
    let other_key = EncodingKey::from_rsa_pem(other.private_pem.as_bytes()).unwrap();
    let token = signed(Algorithm::RS256, &other_key, None, &claims("rs"));
    assert_eq!(
        token_in_passcode(&token).refuse(&jwt).await,
        "invalid token: bad signature"
    );

    // Algorithm confusion: HS256 "signed" with the public key's bytes, which anyone has.
    let confused = hs256(&claims("admin"), &rsa.public_pem);
    let message = token_in_passcode(&confused).refuse(&jwt).await;
    assert_eq!(message, "invalid token: algorithm not accepted");
    // And HS256 with any secret, when no secret is configured.
    let hs = hs256(&claims("admin"), SECRET);
    let message = token_in_passcode(&hs).refuse(&jwt).await;
    assert_eq!(message, "invalid token: algorithm not accepted");
    // The key's algorithm only: RS512 and PS256 are not accepted for an RSA PEM.
    let rs512 = signed(Algorithm::RS512, &key, None, &claims("rs"));
    let message = token_in_passcode(&rs512).refuse(&jwt).await;
    assert_eq!(message, "invalid token: algorithm not accepted");
}

#[tokio::test]
async fn es256_and_eddsa_with_public_key_files() {
    let dir = tempfile::tempdir().unwrap();
    for (pair, alg) in [
        (ec_key_pair(), Algorithm::ES256),
        (ed_key_pair(), Algorithm::EdDSA),
    ] {
        let path = dir.path().join(format!("{alg:?}.pem"));
        std::fs::write(&path, &pair.public_pem).unwrap();
        let jwt = JwtAuthenticator::new(JwtConfig {
            public_key_file: Some(path),
            ..JwtConfig::default()
        })
        .unwrap();
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pair.private_pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(pair.private_pem.as_bytes()),
        }
        .unwrap();
        let token = signed(alg, &key, None, &claims("ec"));
        assert_eq!(
            token_in_passcode(&token).admit(&jwt).await.name,
            "ec",
            "{alg:?}"
        );

        let stranger = ec_key_pair();
        let stranger = EncodingKey::from_ec_pem(stranger.private_pem.as_bytes()).unwrap();
        let token = signed(Algorithm::ES256, &stranger, None, &claims("ec"));
        let message = token_in_passcode(&token).refuse(&jwt).await;
        let expected = match alg {
            Algorithm::ES256 => "invalid token: bad signature",
            _ => "invalid token: algorithm not accepted",
        };
        assert_eq!(message, expected, "{alg:?}");
    }
}

/// A JWKS file with an RSA key `rsa-1` and an EC key `ec-1`, and their signing keys.
fn jwks(dir: &std::path::Path) -> (std::path::PathBuf, EncodingKey, EncodingKey) {
    let rsa = common::rsa_key_pair(dir);
    let ec = ec_key_pair();
    let rsa_key = EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap();
    let ec_key = EncodingKey::from_ec_pem(ec.private_pem.as_bytes()).unwrap();
    let set = JwkSet {
        keys: vec![
            jwk(&rsa_key, Algorithm::RS256, "rsa-1"),
            jwk(&ec_key, Algorithm::ES256, "ec-1"),
        ],
    };
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&set).unwrap()).unwrap();
    (path, rsa_key, ec_key)
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

#[tokio::test]
async fn jwks_keys_are_picked_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let (path, rsa_key, ec_key) = jwks(dir.path());
    let jwt = JwtAuthenticator::new(JwtConfig {
        jwks_file: Some(path),
        ..JwtConfig::default()
    })
    .unwrap();

    let rs = signed(Algorithm::RS256, &rsa_key, Some("rsa-1"), &claims("by-rsa"));
    assert_eq!(token_in_passcode(&rs).admit(&jwt).await.name, "by-rsa");
    let es = signed(Algorithm::ES256, &ec_key, Some("ec-1"), &claims("by-ec"));
    assert_eq!(token_in_passcode(&es).admit(&jwt).await.name, "by-ec");

    let unknown = signed(Algorithm::ES256, &ec_key, Some("ec-2"), &claims("x"));
    assert_eq!(
        token_in_passcode(&unknown).refuse(&jwt).await,
        "invalid token: unknown key id"
    );
    // The kid names the RSA key, the token is ES256: refused, whichever key signed it.
    let mislabelled = signed(Algorithm::ES256, &ec_key, Some("rsa-1"), &claims("x"));
    let message = token_in_passcode(&mislabelled).refuse(&jwt).await;
    assert_eq!(message, "invalid token: algorithm not accepted");
    // Two keys and no kid: no guessing.
    let no_kid = signed(Algorithm::ES256, &ec_key, None, &claims("x"));
    let message = token_in_passcode(&no_kid).refuse(&jwt).await;
    assert_eq!(message, "invalid token: algorithm not accepted");
}

#[tokio::test]
async fn the_only_jwks_key_needs_no_kid_and_reload_rotates_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let first = EncodingKey::from_ec_pem(ec_key_pair().private_pem.as_bytes()).unwrap();
    let mut only = Jwk::from_encoding_key(&first, Algorithm::ES256).unwrap();
    only.common.key_algorithm = None; // implied by the curve
    std::fs::write(
        &path,
        serde_json::to_string(&JwkSet { keys: vec![only] }).unwrap(),
    )
    .unwrap();
    let jwt = JwtAuthenticator::new(JwtConfig {
        jwks_file: Some(path.clone()),
        ..JwtConfig::default()
    })
    .unwrap();
    let in_broker = jwt.clone();
    let by_first = signed(Algorithm::ES256, &first, None, &claims("first"));
    assert_eq!(
        token_in_passcode(&by_first).admit(&in_broker).await.name,
        "first"
    );
    let with_kid = signed(Algorithm::ES256, &first, Some("any"), &claims("first"));
    assert_eq!(
        token_in_passcode(&with_kid).admit(&in_broker).await.name,
        "first"
    );

    // The provider rotates its key.
    let second = EncodingKey::from_ec_pem(ec_key_pair().private_pem.as_bytes()).unwrap();
    let set = JwkSet {
        keys: vec![jwk(&second, Algorithm::ES256, "k2")],
    };
    std::fs::write(&path, serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(jwt.reload().unwrap(), 1);
    let by_second = signed(Algorithm::ES256, &second, Some("k2"), &claims("second"));
    assert_eq!(
        token_in_passcode(&by_second).admit(&in_broker).await.name,
        "second"
    );
    let message = token_in_passcode(&by_first).refuse(&in_broker).await;
    assert_eq!(message, "invalid token: bad signature");

    // A broken file: the error names it, the keys stay.
    std::fs::write(&path, "{\"keys\": ").unwrap();
    let error = jwt.reload().unwrap_err().to_string();
    assert!(
        error.contains("jwks_file") && error.contains(path.to_str().unwrap()),
        "{error}"
    );
    assert_eq!(
        token_in_passcode(&by_second).admit(&in_broker).await.name,
        "second"
    );
}

#[test]
fn configuration_errors_name_the_key_and_the_file() {
    let none = JwtAuthenticator::new(JwtConfig::default())
        .unwrap_err()
        .to_string();
    assert!(none.contains("no key to verify tokens with"), "{none}");
    let empty = JwtConfig {
        secret: Some(String::new()),
        ..JwtConfig::default()
    };
    assert!(matches!(
        JwtAuthenticator::new(empty),
        Err(AuthConfigError::JwtConfig { key: "secret", .. })
    ));

    let missing = JwtConfig {
        public_key_file: Some("/nonexistent/key.pem".into()),
        ..JwtConfig::default()
    };
    let missing = JwtAuthenticator::new(missing).unwrap_err().to_string();
    assert!(
        missing.contains("public_key_file /nonexistent/key.pem"),
        "{missing}"
    );

    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private.pem");
    std::fs::write(&private, ec_key_pair().private_pem).unwrap();
    let private = JwtConfig {
        public_key_file: Some(private),
        ..JwtConfig::default()
    };
    let private = JwtAuthenticator::new(private).unwrap_err().to_string();
    assert!(private.contains("holds a private key"), "{private}");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = JwtConfig {
        public_key_file: Some(not_pem),
        ..JwtConfig::default()
    };
    let not_pem = JwtAuthenticator::new(not_pem).unwrap_err().to_string();
    assert!(not_pem.contains("not an RSA, EC"), "{not_pem}");

    let oct = dir.path().join("oct.json");
    std::fs::write(
        &oct,
        r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#,
    )
    .unwrap();
    let oct = JwtConfig {
        jwks_file: Some(oct),
        ..JwtConfig::default()
    };
    let oct = JwtAuthenticator::new(oct).unwrap_err().to_string();
    assert!(
        oct.contains("key `s`") && oct.contains("symmetric"),
        "{oct}"
    );

    let empty_set = dir.path().join("empty.json");
    std::fs::write(&empty_set, r#"{"keys": [{"kty": "weird"}]}"#).unwrap();
    let empty_set = JwtConfig {
        jwks_file: Some(empty_set),
        ..JwtConfig::default()
    };
    let empty_set = JwtAuthenticator::new(empty_set).unwrap_err().to_string();
    assert!(
        empty_set.contains("no key that verifies signatures"),
        "{empty_set}"
    );
}

#[tokio::test]
async fn every_carrier() {
    let jwt = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        cookie: Some("jwt".into()),
        ..JwtConfig::default()
    })
    .unwrap();
    let token = hs256(&claims("carried"), SECRET);
    let bearer = format!("Bearer {token}");
    let carriers = [
        ("passcode", token_in_passcode(&token)),
        (
            "STOMP Authorization",
            Connect::new().header("Authorization", &bearer),
        ),
        (
            "STOMP authorization",
            Connect::new().header("authorization", &bearer),
        ),
        (
            "handshake Authorization",
            Connect::new().websocket("/ws", &[("authorization", &bearer)]),
        ),
        (
            "query parameter",
            Connect::new().websocket(&format!("/ws?x=1&access_token={token}"), &[]),
        ),
        (
            "cookie",
            Connect::new().websocket("/ws", &[("cookie", &format!("a=b; jwt={token}"))]),
        ),
    ];
    for (carrier, connect) in carriers {
        let request = connect.request();
        assert_eq!(
            jwt.token(&request).as_deref(),
            Some(token.as_str()),
            "{carrier}"
        );
        assert_eq!(connect.admit(&jwt).await.name, "carried", "{carrier}");
    }

    // First found wins: the passcode before a header.
    let other = hs256(&claims("other"), SECRET);
    let both = token_in_passcode(&token).header("Authorization", &format!("Bearer {other}"));
    assert_eq!(both.admit(&jwt).await.name, "carried");
    // A password in the passcode is not a token: the header's token is used.
    let password = Connect::credentials("guest", "guest").header("Authorization", &bearer);
    assert_eq!(password.admit(&jwt).await.name, "carried");

    // Carriers that are off find nothing.
    let defaults = with_secret();
    let cookie = Connect::new().websocket("/ws", &[("cookie", &format!("jwt={token}"))]);
    assert_eq!(defaults.token(&cookie.request()), None);
    let no_query = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        query_parameter: None,
        ..JwtConfig::default()
    })
    .unwrap();
    let query = Connect::new().websocket(&format!("/ws?access_token={token}"), &[]);
    assert_eq!(no_query.token(&query.request()), None);
}

#[tokio::test]
async fn roles_from_an_array_or_a_space_separated_string() {
    let exp = now() + 60;
    let jwt = with_secret();
    let array = json!({"sub": "a", "exp": exp, "roles": ["user", "admin"]});
    let principal = token_in_passcode(&hs256(&array, SECRET)).admit(&jwt).await;
    assert_eq!(principal.roles, ["user", "admin"]);
    let not_strings = json!({"sub": "a", "exp": exp, "roles": [1, 2]});
    let message = token_in_passcode(&hs256(&not_strings, SECRET))
        .refuse(&jwt)
        .await;
    assert_eq!(
        message,
        "invalid token: roles claim is not a list of strings"
    );

    let scope = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        roles_claim: "scope".into(),
        principal_claim: "preferred_username".into(),
        ..JwtConfig::default()
    })
    .unwrap();
    let oauth =
        json!({"sub": "uuid", "preferred_username": "bob", "exp": exp, "scope": "read write"});
    let bob = token_in_passcode(&hs256(&oauth, SECRET))
        .admit(&scope)
        .await;
    assert_eq!(bob.name, "bob");
    assert_eq!(bob.roles, ["read", "write"]);

    let nested = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        roles_claim: "realm_access.roles".into(),
        ..JwtConfig::default()
    })
    .unwrap();
    let keycloak = json!({"sub": "k", "exp": exp, "realm_access": {"roles": ["ops"]}});
    let k = token_in_passcode(&hs256(&keycloak, SECRET))
        .admit(&nested)
        .await;
    assert_eq!(k.roles, ["ops"]);
}

#[tokio::test]
async fn the_principal_claim_must_be_a_string() {
    let jwt = with_secret();
    let exp = now() + 60;
    for claims in [
        json!({"exp": exp}),
        json!({"sub": 42, "exp": exp}),
        json!({"sub": "", "exp": exp}),
    ] {
        let message = token_in_passcode(&hs256(&claims, SECRET))
            .refuse(&jwt)
            .await;
        assert_eq!(message, "invalid token: no sub claim");
    }
}

#[tokio::test]
async fn close_on_expiry_sets_the_principal_expiry() {
    let exp = now() + 600;
    let token = hs256(&json!({"sub": "a", "exp": exp}), SECRET);
    let principal = token_in_passcode(&token).admit(&with_secret()).await;
    assert_eq!(
        principal.expires,
        Some(UNIX_EPOCH + Duration::from_secs(exp + 30))
    );

    let exact = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        leeway: 0,
        ..JwtConfig::default()
    })
    .unwrap();
    let principal = token_in_passcode(&token).admit(&exact).await;
    assert_eq!(
        principal.expires,
        Some(UNIX_EPOCH + Duration::from_secs(exp))
    );

    let open = JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        close_on_expiry: false,
        ..JwtConfig::default()
    })
    .unwrap();
    assert_eq!(token_in_passcode(&token).admit(&open).await.expires, None);
}

#[test]
fn keys_are_never_printed() {
    let jwt = with_secret();
    let debug = format!("{jwt:?}");
    assert!(!debug.contains(SECRET), "{debug}");
}
