//! [`Chain`]: a users file and JWT side by side, each deciding the requests that are its own.

use futures::future::BoxFuture;
use stompbox_broker::{AuthError, Authenticator, ConnectRequest, Principal};

use crate::{JwtAuthenticator, UsersFile, jwt::looks_like_jwt, users::NEEDS_LOGIN};

/// A users file, JWT, or both. One of them decides each CONNECT, never both:
/// 1. JWT, if configured and the token it would verify
///    ([`JwtAuthenticator::token`], the first carrier that has one, the `passcode` included)
///    looks like a JWT: three dot-separated base64url parts;
/// 2. else the users file, if configured and the request has a `login`;
/// 3. else the only one configured, if there is one (its own refusal);
/// 4. else a refusal that says what this server accepts: `this server needs a login and
///    passcode (or a token)`.
///
/// With neither configured every CONNECT is refused (`this server accepts no credentials`).
/// A cheap `Clone` handle, like the two it holds.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    users: Option<UsersFile>,
    jwt: Option<JwtAuthenticator>,
}

impl Chain {
    /// A chain of the authenticators given.
    pub fn new(users: Option<UsersFile>, jwt: Option<JwtAuthenticator>) -> Self {
        Chain { users, jwt }
    }

    /// The users file, to reload it.
    pub fn users(&self) -> Option<&UsersFile> {
        self.users.as_ref()
    }

    /// The JWT authenticator, to reload its keys.
    pub fn jwt(&self) -> Option<&JwtAuthenticator> {
        self.jwt.as_ref()
    }
}

impl Authenticator for Chain {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        if let Some(jwt) = &self.jwt
            && jwt.token(&request).is_some_and(|t| looks_like_jwt(&t))
        {
            return jwt.authenticate(request);
        }
        if let Some(users) = &self.users
            && request.login.is_some_and(|l| !l.is_empty())
        {
            return users.authenticate(request);
        }
        let refusal = match (&self.users, &self.jwt) {
            (Some(users), None) => return users.authenticate(request),
            (None, Some(jwt)) => return jwt.authenticate(request),
            (Some(_), Some(_)) => NEEDS_LOGIN,
            (None, None) => "this server accepts no credentials",
        };
        Box::pin(async move { Err(AuthError::new(refusal)) })
    }
}
