//! The authentication hook consulted on CONNECT.

use std::time::SystemTime;

use futures::future::BoxFuture;
use stompbox_codec::Headers;

use crate::ConnectionInfo;

/// What a CONNECT (or STOMP) frame asked for, with the connection it came on.
#[derive(Debug)]
pub struct ConnectRequest<'a> {
    /// The `login` header.
    pub login: Option<&'a str>,
    /// The `passcode` header.
    pub passcode: Option<&'a str>,
    /// The `host` header (the virtual host).
    pub host: Option<&'a str>,
    /// Every CONNECT header, for custom token headers.
    pub headers: &'a Headers,
    /// Peer address, transport, WebSocket handshake (cookies, query).
    pub connection: &'a ConnectionInfo,
}

/// The authenticated identity of a session: the user that `/user/...` destinations resolve to,
/// the roles that permission rules name, and when the credential it was proven by expires.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The user name.
    pub name: String,
    /// Roles, for permission rules (`roles = ["admin"]`); empty when the authenticator has none.
    pub roles: Vec<String>,
    /// When set, the session is closed at this time with ERROR `token expired` (a JWT's `exp`).
    pub expires: Option<SystemTime>,
}

impl Principal {
    /// A principal called `name`, with no roles and no expiry.
    pub fn new(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            roles: Vec::new(),
            expires: None,
        }
    }

    /// The same principal with these roles.
    pub fn with_roles<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The same principal, whose session ends at `at`.
    pub fn expiring_at(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// Whether it has role `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Authentication refused; the session gets ERROR with this message and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// Shown to the client in the ERROR frame's `message` header; keep it short and free of
    /// secrets.
    pub message: String,
}

impl AuthError {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        AuthError {
            message: message.into(),
        }
    }
}

/// Decides who a connecting client is. `Ok(None)` admits the session anonymously.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks a CONNECT request.
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>>;
}

/// Everyone is admitted; a `login` header, if present, becomes the principal (with no check:
/// anyone can claim any name). Only for trusted networks and tests; the default is
/// [`LoopbackOnly`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAnonymous;

impl Authenticator for AllowAnonymous {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let principal = request.login.filter(|l| !l.is_empty()).map(Principal::new);
        Box::pin(async move { Ok(principal) })
    }
}

/// The default hook, safe when nothing is configured (as RabbitMQ's `guest` user): clients on
/// this machine (a loopback peer address, or an in-process connection) are admitted as
/// [`AllowAnonymous`] admits them; every other connection is refused with a message saying how
/// to configure authentication. Configure an authenticator (users file, JWT, your own) to serve
/// other machines, or [`AllowAnonymous`] to admit everyone knowingly.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopbackOnly;

/// Why [`LoopbackOnly`] refused a connection.
pub const LOOPBACK_ONLY_MESSAGE: &str = "this server admits only local clients until \
     authentication is configured (auth.users_file or auth.jwt; see docs/security.md)";

impl Authenticator for LoopbackOnly {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let local = request
            .connection
            .peer
            .is_none_or(|p| p.ip().to_canonical().is_loopback());
        if local {
            AllowAnonymous.authenticate(request)
        } else {
            Box::pin(async { Err(AuthError::new(LOOPBACK_ONLY_MESSAGE)) })
        }
    }
}
