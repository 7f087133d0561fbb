//! [`AuthConfigError`]: why an authenticator could not be built or reloaded.
//!
//! Refusing a client is not an error of this kind: that is an
//! [`AuthError`](stompbox_broker::AuthError), whose message the client sees.

use std::{io, path::PathBuf};

/// Why a users file or the JWT keys could not be loaded. Every variant names the file or the
/// configuration key at fault, so the message alone tells an operator what to fix. A failed
/// reload leaves the authenticator as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file is for: `users file`, `public_key_file`, `jwks_file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (not found, permission denied).
        source: io::Error,
    },
    /// The users file is not valid TOML or does not describe users (unknown key, wrong type);
    /// the parser's message points at the line.
    #[error("invalid users file {}: {source}", path.display())]
    UsersToml {
        /// The file (`(inline TOML)` for [`UsersFile::from_toml_str`](crate::UsersFile)).
        path: PathBuf,
        /// The parser's report, with line and column.
        source: Box<toml::de::Error>,
    },
    /// One `[[user]]` entry is unusable: an empty login, or a `password_hash` that is not an
    /// argon2id PHC string.
    #[error("invalid users file {}: user `{login}`: {reason}", path.display())]
    BadUser {
        /// The file.
        path: PathBuf,
        /// The entry's login (empty when that is what is wrong).
        login: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two `[[user]]` entries have the same login; which one was meant is not guessed.
    #[error("invalid users file {}: login `{login}` appears more than once", path.display())]
    DuplicateLogin {
        /// The file.
        path: PathBuf,
        /// The repeated login.
        login: String,
    },
    /// [`UsersFile::reload`](crate::UsersFile::reload) on users that were not loaded from a
    /// file.
    #[error("these users were not loaded from a file: there is nothing to reload")]
    NotFromFile,
    /// The JWT configuration is inconsistent (no key at all, an empty secret).
    #[error("invalid jwt configuration `{key}`: {reason}")]
    JwtConfig {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file was read but holds no usable key.
    #[error("invalid jwt `{key}` {}: {reason}", path.display())]
    BadKey {
        /// The configuration key that names the file: `public_key_file` or `jwks_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never key material).
        reason: String,
    },
}
