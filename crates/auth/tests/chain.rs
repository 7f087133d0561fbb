//! The chain: a token goes to JWT, a login to the users file, nothing to a refusal that says
//! what the server accepts.

mod common;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use common::{Connect, claims, hs256};
use stompbox_auth::{Chain, JwtAuthenticator, JwtConfig, UsersFile};

const SECRET: &str = "a shared secret of at least 32 bytes";

fn users() -> UsersFile {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap();
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"pw")
        .unwrap();
    UsersFile::from_toml_str(&format!(
        "[[user]]\nlogin = \"alice\"\npassword_hash = \"{hash}\"\nroles = [\"user\"]\n"
    ))
    .unwrap()
}

fn jwt() -> JwtAuthenticator {
    JwtAuthenticator::new(JwtConfig {
        secret: Some(SECRET.into()),
        ..JwtConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_token_goes_to_jwt_and_a_login_to_the_users_file() {
    let chain = Chain::new(Some(users()), Some(jwt()));
    let token = hs256(&claims("token-user"), SECRET);

    // A token in the passcode, whatever the login (even a real one).
    let by_token = Connect::credentials("alice", &token).admit(&chain).await;
    assert_eq!(by_token.name, "token-user");
    let by_header = Connect::new()
        .websocket("/ws", &[("authorization", &format!("Bearer {token}"))])
        .admit(&chain)
        .await;
    assert_eq!(by_header.name, "token-user");
    // A bad token is JWT's to refuse, not the users file's.
    let expired = hs256(&serde_json::json!({"sub": "x", "exp": 1}), SECRET);
    let message = Connect::credentials("alice", &expired).refuse(&chain).await;
    assert_eq!(message, "token expired");

    let by_password = Connect::credentials("alice", "pw").admit(&chain).await;
    assert_eq!(
        (by_password.name.as_str(), by_password.roles.as_slice()),
        ("alice", &["user".to_owned()][..])
    );
    let message = Connect::credentials("alice", "nope").refuse(&chain).await;
    assert_eq!(message, "bad credentials: login or passcode refused");
    // A login and a non-JWT bearer header: the login decides.
    let both = Connect::credentials("alice", "pw").header("Authorization", "Bearer opaque");
    assert_eq!(both.admit(&chain).await.name, "alice");

    let message = Connect::new().refuse(&chain).await;
    assert_eq!(
        message,
        "this server needs a login and passcode (or a token)"
    );
}

#[tokio::test]
async fn with_one_member_it_decides_everything() {
    let only_users = Chain::new(Some(users()), None);
    let token = hs256(&claims("token-user"), SECRET);
    let message = Connect::credentials("", &token).refuse(&only_users).await;
    assert_eq!(
        message,
        "this server needs a login and passcode (or a token)"
    );
    assert_eq!(
        Connect::credentials("alice", "pw")
            .admit(&only_users)
            .await
            .name,
        "alice"
    );

    let only_jwt = Chain::new(None, Some(jwt()));
    assert_eq!(
        Connect::credentials("alice", "pw").refuse(&only_jwt).await,
        "this server needs a token"
    );
    let garbage = Connect::new().header("Authorization", "Bearer opaque");
    assert_eq!(garbage.refuse(&only_jwt).await, "invalid token: malformed");
    assert_eq!(
        Connect::credentials("", &token).admit(&only_jwt).await.name,
        "token-user"
    );

    let nothing = Chain::default();
    assert_eq!(
        Connect::credentials("alice", "pw").refuse(&nothing).await,
        "this server accepts no credentials"
    );
}
