//! The users file: argon2id verification, the same refusal for a wrong login and a wrong
//! password, reload, and load errors that name the file.

mod common;

use std::time::Instant;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use common::Connect;
use stompbox_auth::{AuthConfigError, UsersFile, hash_password};

const BAD_CREDENTIALS: &str = "bad credentials: login or passcode refused";
const NEEDS_LOGIN: &str = "this server needs a login and passcode (or a token)";

/// An argon2id hash with the smallest parameters, so that tests that are not about argon2's
/// cost do not pay it (the users file accepts any argon2id parameters).
fn cheap_hash(password: &str) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

fn users_toml(users: &[(&str, &str, &[&str])]) -> String {
    users
        .iter()
        .map(|(login, hash, roles)| {
            format!("[[user]]\nlogin = {login:?}\npassword_hash = {hash:?}\nroles = {roles:?}\n\n")
        })
        .collect()
}

#[tokio::test]
async fn hash_then_verify_and_the_same_refusal_for_a_wrong_login_or_password() {
    let hash = hash_password("correct horse");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let users =
        UsersFile::from_toml_str(&users_toml(&[("alice", &hash, &["user", "admin"])])).unwrap();

    let alice = Connect::credentials("alice", "correct horse")
        .admit(&users)
        .await;
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.roles, ["user", "admin"]);
    assert_eq!(alice.expires, None);

    let started = Instant::now();
    let wrong_password = Connect::credentials("alice", "battery staple")
        .refuse(&users)
        .await;
    let known_login_time = started.elapsed();
    let started = Instant::now();
    let unknown_login = Connect::credentials("mallory", "correct horse")
        .refuse(&users)
        .await;
    let unknown_login_time = started.elapsed();
    assert_eq!(wrong_password, BAD_CREDENTIALS);
    assert_eq!(unknown_login, BAD_CREDENTIALS);
    // An unknown login is verified against a dummy hash of the same cost: no shortcut. (Loose
    // bound: the point is a real argon2 run, not a benchmark.)
    assert!(
        unknown_login_time * 4 > known_login_time,
        "unknown login {unknown_login_time:?}, known login {known_login_time:?}"
    );
}

#[tokio::test]
async fn a_missing_login_or_passcode_is_asked_for() {
    let users = UsersFile::from_toml_str(&users_toml(&[("a", &cheap_hash("p"), &[])])).unwrap();
    assert_eq!(Connect::new().refuse(&users).await, NEEDS_LOGIN);
    assert_eq!(Connect::new().login("a").refuse(&users).await, NEEDS_LOGIN);
    assert_eq!(
        Connect::new().passcode("p").refuse(&users).await,
        NEEDS_LOGIN
    );
    assert_eq!(
        Connect::credentials("", "p").refuse(&users).await,
        NEEDS_LOGIN
    );
    assert_eq!(
        Connect::credentials("a", "").refuse(&users).await,
        NEEDS_LOGIN
    );
    assert!(
        Connect::credentials("a", "p")
            .admit(&users)
            .await
            .roles
            .is_empty()
    );
}

#[tokio::test]
async fn reload_swaps_the_users_and_a_bad_reload_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let alice = cheap_hash("alice-pw");
    let bob = cheap_hash("bob-pw");
    std::fs::write(&path, users_toml(&[("alice", &alice, &["user"])])).unwrap();
    let users = UsersFile::load(&path).unwrap();
    assert_eq!(users.path(), Some(path.as_path()));
    assert_eq!(users.len(), 1);
    // The handle given to the broker and the one kept for reloading share the users.
    let in_broker = users.clone();
    assert_eq!(
        Connect::credentials("alice", "alice-pw")
            .admit(&in_broker)
            .await
            .roles,
        ["user"]
    );

    std::fs::write(
        &path,
        users_toml(&[("bob", &bob, &["admin"]), ("carol", &alice, &[])]),
    )
    .unwrap();
    assert_eq!(users.reload().unwrap(), 2);
    assert_eq!(
        Connect::credentials("alice", "alice-pw")
            .refuse(&in_broker)
            .await,
        BAD_CREDENTIALS
    );
    assert_eq!(
        Connect::credentials("bob", "bob-pw")
            .admit(&in_broker)
            .await
            .roles,
        ["admin"]
    );

    std::fs::write(&path, "[[user]]\nlogin = \"dave\"\n").unwrap();
    let error = users.reload().unwrap_err().to_string();
    assert!(error.contains(path.to_str().unwrap()), "{error}");
    assert!(error.contains("password_hash"), "{error}");
    assert_eq!(in_broker.len(), 2);
    assert_eq!(
        Connect::credentials("bob", "bob-pw")
            .admit(&in_broker)
            .await
            .name,
        "bob"
    );

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(users.reload(), Err(AuthConfigError::Read { .. })));
    assert_eq!(
        Connect::credentials("bob", "bob-pw")
            .admit(&in_broker)
            .await
            .name,
        "bob"
    );
}

#[test]
fn duplicate_logins_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let hash = cheap_hash("x");
    std::fs::write(
        &path,
        users_toml(&[
            ("alice", &hash, &[]),
            ("bob", &hash, &[]),
            ("alice", &hash, &[]),
        ]),
    )
    .unwrap();
    let error = UsersFile::load(&path).unwrap_err();
    assert!(
        matches!(&error, AuthConfigError::DuplicateLogin { login, .. } if login == "alice"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    assert!(
        message.contains("`alice` appears more than once"),
        "{message}"
    );
}

#[test]
fn bad_files_are_refused_with_what_is_wrong() {
    let bad_hash = UsersFile::from_toml_str(&users_toml(&[("alice", "hunter2", &[])]))
        .unwrap_err()
        .to_string();
    assert!(bad_hash.contains("user `alice`"), "{bad_hash}");
    assert!(bad_hash.contains("argon2id PHC string"), "{bad_hash}");

    let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    assert!(UsersFile::from_toml_str(&users_toml(&[("a", bcrypt, &[])])).is_err());

    let not_toml = UsersFile::from_toml_str("[[user]\nlogin = ").unwrap_err();
    assert!(
        matches!(not_toml, AuthConfigError::UsersToml { .. }),
        "{not_toml:?}"
    );

    let typo = format!(
        "[[user]]\nlogin = \"a\"\npassword_hash = {:?}\nrole = []\n",
        cheap_hash("x")
    );
    let typo = UsersFile::from_toml_str(&typo).unwrap_err().to_string();
    assert!(typo.contains("role"), "{typo}");

    let empty_login = UsersFile::from_toml_str(&users_toml(&[("", &cheap_hash("x"), &[])]));
    assert!(matches!(empty_login, Err(AuthConfigError::BadUser { .. })));

    let missing = UsersFile::load("/nonexistent/users.toml")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("cannot read users file /nonexistent/users.toml"),
        "{missing}"
    );

    let inline = UsersFile::from_toml_str("").unwrap();
    assert!(inline.is_empty());
    assert!(matches!(inline.reload(), Err(AuthConfigError::NotFromFile)));
}
