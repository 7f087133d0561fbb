//! [`UsersFile`]: logins with argon2id password hashes and roles, from a TOML file.
//!
//! ```toml
//! [[user]]
//! login = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # `stompbox hash-password`
//! roles = ["user"]
//! ```
//!
//! Hashes are parsed once, at load. A CONNECT is verified on tokio's blocking pool (argon2 costs
//! tens of milliseconds of CPU by design), at most as many at a time as there are cores.
//! An unknown login is verified against a dummy hash with the default parameters, so it takes as
//! long as a known one and the time does not tell which logins exist.

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock},
};

use arc_swap::ArcSwap;
use argon2::{ARGON2ID_IDENT, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};
use futures::future::BoxFuture;
use serde::Deserialize;
use stompbox_broker::{AuthError, Authenticator, ConnectRequest, Principal};
use tokio::sync::Semaphore;

use crate::AuthConfigError;

/// The refusal for a wrong login and for a wrong password alike: which one was wrong is not
/// said, so the reply does not tell which logins exist.
pub(crate) const BAD_CREDENTIALS: &str = "bad credentials: login or passcode refused";
/// The refusal when the CONNECT frame has no `login` or no `passcode`.
pub(crate) const NEEDS_LOGIN: &str = "this server needs a login and passcode (or a token)";

/// What an unknown login is verified against: the argon2id hash of a password thrown away
/// (it would not matter if it were guessed: an unknown login is refused whatever the result) with argon2's default parameters, those [`hash_password`] uses, so that it costs what a
/// real user's hash costs. A test checks that the parameters still are the default ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$PafLgVUoToFPp4R7R3a2HQ$BuOgd06yTsdg8w5XnBp45vmdAYf4+nR8xnahYUNYxII";

static DUMMY: LazyLock<PasswordHash> =
    LazyLock::new(|| PasswordHash::new(DUMMY_HASH).expect("DUMMY_HASH is a valid PHC string"));

/// The name [`UsersFile::from_toml_str`] gives its input in errors.
const INLINE: &str = "(inline TOML)";

/// Hashes `password` with argon2id, argon2's default parameters (OWASP's minimum: 19 MiB,
/// 2 passes, 1 lane) and a random 16-byte salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for a users file's `password_hash`.
///
/// # Panics
/// If the operating system's random generator fails, which leaves no safe salt to use.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id hashing failed: the system random generator is unavailable")
        .to_string()
}

/// How many password verifications run at once, the machine's parallelism. Each one holds
/// argon2's 19 MiB of memory and a core for tens of milliseconds; without a bound, a burst of
/// CONNECT frames would fill tokio's blocking pool (512 threads, 10 GB of argon2 memory).
/// Verifications past the bound wait their turn without holding a thread.
fn max_concurrent_verifications() -> usize {
    std::thread::available_parallelism().map_or(2, NonZeroUsize::get)
}

/// Logins with argon2id password hashes and roles, loaded from a TOML file and reloadable.
///
/// A cheap `Clone` handle: give one clone to the broker
/// ([`BrokerBuilder::authenticator`](stompbox_broker::BrokerBuilder::authenticator)) and keep
/// another to [`reload`](UsersFile::reload) (on SIGHUP, say). The login becomes the
/// [`Principal`]'s name and the entry's roles its roles.
#[derive(Clone)]
pub struct UsersFile {
    shared: Arc<Shared>,
}

struct Shared {
    /// Where the users came from; `None` for [`UsersFile::from_toml_str`].
    path: Option<PathBuf>,
    /// Swapped whole on reload; a CONNECT reads it without a lock.
    users: ArcSwap<Users>,
    /// Bounds the verifications in flight: see [`max_concurrent_verifications`].
    verifications: Semaphore,
}

type Users = HashMap<String, Arc<User>>;

/// One login's entry, parsed.
struct User {
    hash: PasswordHash,
    roles: Vec<String>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersToml {
    #[serde(default)]
    user: Vec<UserToml>,
}

/// One `[[user]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    login: String,
    password_hash: String,
    #[serde(default)]
    roles: Vec<String>,
}

impl UsersFile {
    /// Reads and checks the users file at `path`. Errors name the file and what is wrong: not
    /// readable, not valid TOML, an unknown key, a `password_hash` that is not an argon2id PHC
    /// string, a login listed twice.
    pub fn load(path: impl Into<PathBuf>) -> Result<UsersFile, AuthConfigError> {
        let path = path.into();
        let users = read(&path)?;
        Ok(UsersFile::with(Some(path), users))
    }

    /// Users from TOML text in the users file's format (tests, embedding); they cannot be
    /// reloaded.
    pub fn from_toml_str(toml: &str) -> Result<UsersFile, AuthConfigError> {
        let users = parse(toml, Path::new(INLINE))?;
        Ok(UsersFile::with(None, users))
    }

    fn with(path: Option<PathBuf>, users: Users) -> UsersFile {
        UsersFile {
            shared: Arc::new(Shared {
                path,
                users: ArcSwap::from_pointee(users),
                verifications: Semaphore::new(max_concurrent_verifications()),
            }),
        }
    }

    /// Reads the same file again and, if it is valid, swaps the new users in at once; returns
    /// how many there are. On error the old users stay. Sessions already connected are not
    /// touched: a removed login stays connected until it disconnects.
    pub fn reload(&self) -> Result<usize, AuthConfigError> {
        let path = self
            .shared
            .path
            .as_deref()
            .ok_or(AuthConfigError::NotFromFile)?;
        let users = read(path)?;
        let count = users.len();
        self.shared.users.store(Arc::new(users));
        Ok(count)
    }

    /// The file the users were loaded from (`None` for [`UsersFile::from_toml_str`]).
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// How many logins there are now.
    pub fn len(&self) -> usize {
        self.shared.users.load().len()
    }

    /// True if there are no logins (every CONNECT is refused).
    pub fn is_empty(&self) -> bool {
        self.shared.users.load().is_empty()
    }
}

impl fmt::Debug for UsersFile {
    // Hashes are left out: they are not secrets, but they are not for logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersFile")
            .field("path", &self.shared.path)
            .field("users", &self.len())
            .finish()
    }
}

impl Authenticator for UsersFile {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let login = request.login.filter(|l| !l.is_empty());
        let passcode = request.passcode.filter(|p| !p.is_empty());
        let (Some(login), Some(passcode)) = (login, passcode) else {
            return Box::pin(async { Err(AuthError::new(NEEDS_LOGIN)) });
        };
        let user = self.shared.users.load().get(login).cloned();
        let passcode = passcode.to_owned();
        Box::pin(async move {
            let _permit = self
                .shared
                .verifications
                .acquire()
                .await
                .map_err(|_| AuthError::new("authentication failed: internal error"))?;
            let (verified, user) = tokio::task::spawn_blocking(move || {
                let hash = user.as_ref().map_or(&*DUMMY, |u| &u.hash);
                let verified = Argon2::default()
                    .verify_password(passcode.as_bytes(), hash)
                    .is_ok();
                (verified, user)
            })
            .await
            .map_err(|_| AuthError::new("authentication failed: internal error"))?;
            match user {
                Some(user) if verified => Ok(Some(
                    Principal::new(login).with_roles(user.roles.iter().cloned()),
                )),
                _ => Err(AuthError::new(BAD_CREDENTIALS)),
            }
        })
    }
}

/// Reads and parses the users file at `path`.
fn read(path: &Path) -> Result<Users, AuthConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
        what: "users file",
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses users file text; `path` is only for errors.
fn parse(text: &str, path: &Path) -> Result<Users, AuthConfigError> {
    let file: UsersToml = toml::from_str(text).map_err(|e| AuthConfigError::UsersToml {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    let mut users = HashMap::with_capacity(file.user.len());
    for entry in file.user {
        let bad = |reason: String| AuthConfigError::BadUser {
            path: path.to_owned(),
            login: entry.login.clone(),
            reason,
        };
        if entry.login.is_empty() {
            return Err(bad("the login is empty".into()));
        }
        let hash = parse_hash(&entry.password_hash).map_err(bad)?;
        if users.contains_key(&entry.login) {
            return Err(AuthConfigError::DuplicateLogin {
                path: path.to_owned(),
                login: entry.login,
            });
        }
        let user = User {
            hash,
            roles: entry.roles,
        };
        users.insert(entry.login, Arc::new(user));
    }
    Ok(users)
}

/// Checks a `password_hash` now rather than at the first CONNECT: an argon2id PHC string with a
/// salt, a hash and parameters argon2 accepts.
fn parse_hash(phc: &str) -> Result<PasswordHash, String> {
    const EXPECTED: &str = "expected an argon2id PHC string `$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>` (see `stompbox hash-password`)";
    let hash =
        PasswordHash::new(phc).map_err(|e| format!("bad password_hash ({e}); {EXPECTED}"))?;
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(format!(
            "password_hash uses `{}`, not argon2id; {EXPECTED}",
            hash.algorithm
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(format!("password_hash has no salt or no hash; {EXPECTED}"));
    }
    Params::try_from(&hash).map_err(|e| format!("bad password_hash parameters ({e})"))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_what_a_new_hash_costs() {
        let params = Params::try_from(&*DUMMY).unwrap();
        let default = Params::default();
        let cost = |p: &Params| (p.m_cost(), p.t_cost(), p.p_cost());
        assert_eq!(cost(&params), cost(&default));
        let len = default.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        assert_eq!(params.output_len(), Some(len));
        assert_eq!(DUMMY.algorithm, ARGON2ID_IDENT);
    }

    #[test]
    fn hash_strings_are_checked_at_load() {
        assert!(parse_hash("plain text").is_err());
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$ouS/n/Bm5ug2gbp0QBgXmA$1wTFr8B7l1I3+6PcRY8bOrkgu7cBf5UWOkd3bvqj7Ug";
        assert!(parse_hash(argon2i).unwrap_err().contains("not argon2id"));
        assert!(parse_hash("$argon2id$v=19$m=19456,t=2,p=1").is_err());
        assert!(parse_hash(DUMMY_HASH).is_ok());
    }
}
