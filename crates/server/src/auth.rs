//! The authenticator and permission rules that `[auth]` and `[[permissions]]` ask for, and
//! their reload on SIGHUP ([`Reloader`]).

use stompbox_auth::{Chain, JwtAuthenticator, UsersFile};
use stompbox_broker::{AllowAnonymous, Broker, BrokerBuilder, LoopbackOnly};

use crate::{AnonymousAccess, Error, ServerConfig};

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
    Ok(match (users.is_some() || jwt.is_some(), auth.anonymous) {
        (true, _) => {
            let chain = Chain::new(users, jwt);
            (builder.authenticator(chain.clone()), Some(chain))
        }
        (false, AnonymousAccess::Local) => (builder.authenticator(LoopbackOnly), None),
        (false, AnonymousAccess::Anywhere) => {
            tracing::warn!(
                "auth.anonymous = \"anywhere\": any client from anywhere may claim any login"
            );
            (builder.authenticator(AllowAnonymous), None)
        }
    })
}

/// Reloads what can change without a restart: the users file, the JWT key files and the
/// permission rules. Live sessions keep running (their next SEND or SUBSCRIBE is checked
/// against the new rules); a reload that fails changes nothing and says why.
#[derive(Clone, Debug)]
pub struct Reloader {
    broker: Broker,
    chain: Option<Chain>,
    /// False when the broker was built by the embedder, whose permissions are theirs.
    permissions: bool,
}

impl Reloader {
    pub(crate) fn new(broker: Broker, chain: Option<Chain>, permissions: bool) -> Self {
        Reloader {
            broker,
            chain,
            permissions,
        }
    }

    /// Applies `config` (freshly loaded from the same sources). Keys other than the users
    /// file's and key files' contents and `permissions` need a restart.
    pub fn reload(&self, config: &ServerConfig) -> Result<(), Error> {
        let permissions = config.compiled_permissions()?;
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
        Ok(())
    }
}
