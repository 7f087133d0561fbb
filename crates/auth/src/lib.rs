//! Stompbox's built-in authenticators, each an [`Authenticator`] for
//! [`BrokerBuilder::authenticator`](stompbox_broker::BrokerBuilder::authenticator):
//!
//! - [`UsersFile`]: logins with argon2id password hashes and roles, from a TOML file,
//!   reloadable; [`hash_password`] makes the hashes (`stompbox hash-password`).
//! - [`JwtAuthenticator`]: bearer tokens (JWT) signed with a shared secret (HS256), a PEM public
//!   key (RS256, ES256) or a JWKS file, carried in the CONNECT frame or the WebSocket upgrade;
//!   the session closes when the token expires.
//! - [`Chain`]: both at once; a request with a token goes to JWT, one with a login to the users
//!   file.
//!
//! ```no_run
//! # fn example() -> Result<(), stompbox_auth::AuthConfigError> {
//! use stompbox_auth::{Chain, JwtAuthenticator, JwtConfig, UsersFile};
//! use stompbox_broker::Broker;
//!
//! let users = UsersFile::load("users.toml")?;
//! let jwt = JwtAuthenticator::new(JwtConfig {
//!     jwks_file: Some("jwks.json".into()),
//!     issuer: Some("https://login.example.com/".into()),
//!     ..JwtConfig::default()
//! })?;
//! let chain = Chain::new(Some(users), Some(jwt));
//! let broker = Broker::builder().authenticator(chain.clone()).build().unwrap();
//! // On SIGHUP:
//! chain.users().unwrap().reload()?;
//! # Ok(()) }
//! ```
//!
//! Refusals are [`AuthError`](stompbox_broker::AuthError)s, which the client reads in an ERROR
//! frame: they are short, never say whether a login exists, and never hold a secret.
//!
//! # Layout
//! - `users.rs`: [`UsersFile`], [`hash_password`]; verification on the blocking pool, bounded.
//! - `jwt/`: [`JwtAuthenticator`] (`mod.rs`), [`JwtConfig`] (`config.rs`), token carriers
//!   (`carrier.rs`), keys (`keys.rs`), claims and refusals (`claims.rs`).
//! - `chain.rs`: [`Chain`].
//! - `error.rs`: [`AuthConfigError`], for files and keys that cannot be loaded.
//!
//! [`Authenticator`]: stompbox_broker::Authenticator

mod chain;
mod error;
mod jwt;
mod users;

pub use chain::Chain;
pub use error::AuthConfigError;
pub use jwt::{JwtAuthenticator, JwtConfig};
pub use users::{UsersFile, hash_password};
