//! The authenticator and permission rules that `[auth]` and `[[permissions]]` ask for, and
//! their reload on SIGHUP ([`Reloader`]), with the listeners' TLS certificates.

use futures::future::BoxFuture;
use stompbox_auth::{Chain, JwtAuthenticator, UsersFile};
use stompbox_broker::{
    AllowAnonymous, AuthError, Authenticator, Broker, BrokerBuilder, ConnectRequest, LoopbackOnly,
    Principal,
};

use crate::{AnonymousAccess, Error, ServerConfig, tls::TlsEdge};

fn invalid(key: &str, reason: impl ToString) -> Error {
    Error::InvalidConfig {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// Gives `builder` the configured authenticator and permissions; returns the mechanisms that
/// SIGHUP reloads.
pub(crate) fn configure(
    builder: BrokerBuilder,
    config: &ServerConfig,
) -> Result<(BrokerBuilder, Option<Chain>), Error> {
    let builder = builder.permissions(config.compiled_permissions()?);
    let auth = &config.auth;
    let users = match &auth.users_file {
        Some(path) => Some(UsersFile::load(path).map_err(|e| invalid("auth.users_file", e))?),
        None => None,
    };
    let jwt = match &auth.jwt {
        Some(jwt) => Some(JwtAuthenticator::new(jwt.clone()).map_err(|e| invalid("auth.jwt", e))?),
        None => None,
    };
    let cert_login = auth.tls_client_cert_login;
    Ok(match (users.is_some() || jwt.is_some(), auth.anonymous) {
        (true, _) => {
            let chain = Chain::new(users, jwt);
            let builder = with_cert_login(builder, chain.clone(), cert_login);
            (builder, Some(chain))
        }
        (false, AnonymousAccess::Local) => {
            (with_cert_login(builder, LoopbackOnly, cert_login), None)
        }
        (false, AnonymousAccess::Anywhere) => {
            tracing::warn!(
                "auth.anonymous = \"anywhere\": any client from anywhere may claim any login"
            );
            (builder.authenticator(AllowAnonymous), None)
        }
    })
}

fn with_cert_login(
    builder: BrokerBuilder,
    authenticator: impl Authenticator,
    cert_login: bool,
) -> BrokerBuilder {
    match cert_login {
        true => builder.authenticator(ClientCertLogin(authenticator)),
        false => builder.authenticator(authenticator),
    }
}

/// `auth.tls_client_cert_login`: a connection whose TLS edge verified a client certificate is
/// the certificate's subject CN (no roles, no expiry); any other goes to the wrapped
/// authenticator. The edges fill [`stompbox_broker::TlsInfo`] only with chains they verified
/// against `client_ca_file`, so the CN is as trustworthy as that CA.
struct ClientCertLogin<A>(A);

impl<A: Authenticator> Authenticator for ClientCertLogin<A> {
    fn authenticate<'a>(
        &'a self,
        request: ConnectRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        let tls = request.connection.tls.as_ref();
        match tls.filter(|t| t.peer_certificate().is_some()) {
            Some(tls) => {
                let cn = tls.common_name().map(Principal::new);
                Box::pin(async move {
                    cn.map(Some)
                        .ok_or_else(|| AuthError::new("the client certificate has no subject CN"))
                })
            }
            None => self.0.authenticate(request),
        }
    }
}

/// Reloads what can change without a restart: the users file, the JWT key files, the
/// permission rules and the listeners' TLS certificates, keys and client CAs. Live sessions
/// keep running (their next SEND or SUBSCRIBE is checked against the new rules; a TLS
/// connection keeps the certificate it was opened with); a reload that fails says why, and
/// what failed keeps its previous state.
#[derive(Clone, Debug)]
pub struct Reloader {
    broker: Broker,
    chain: Option<Chain>,
    /// False when the broker was built by the embedder, whose permissions are theirs.
    permissions: bool,
    /// The listeners serving TLS.
    tls: Vec<TlsEdge>,
}

impl Reloader {
    pub(crate) fn new(
        broker: Broker,
        chain: Option<Chain>,
        permissions: bool,
        tls: Vec<TlsEdge>,
    ) -> Self {
        Reloader {
            broker,
            chain,
            permissions,
            tls,
        }
    }

    /// Applies `config` (freshly loaded from the same sources). Keys other than the users
    /// file's and key files' contents, `permissions` and the `[*.tls]` files (and their paths)
    /// need a restart. Every TLS file is read and checked before any listener's certificate
    /// changes: a bad one keeps every listener's current certificate, and the error names
    /// the key.
    pub fn reload(&self, config: &ServerConfig) -> Result<(), Error> {
        let permissions = config.compiled_permissions()?;
        let tls = (self.tls.iter())
            .map(|edge| edge.prepare(config).map(|built| (edge, built)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(chain) = &self.chain {
            if let Some(users) = chain.users() {
                let n = users.reload().map_err(|e| invalid("auth.users_file", e))?;
                tracing::info!(users = n, "users file reloaded");
            }
            if let Some(jwt) = chain.jwt() {
                let n = jwt.reload().map_err(|e| invalid("auth.jwt", e))?;
                tracing::info!(keys = n, "JWT keys reloaded");
            }
        }
        if self.permissions {
            let rules = config.permissions.len();
            self.broker.set_permissions(permissions);
            tracing::info!(rules, "permissions reloaded");
        }
        for (edge, built) in tls {
            edge.install(built);
        }
        Ok(())
    }
}
