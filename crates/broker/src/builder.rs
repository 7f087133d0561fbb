//! [`BrokerBuilder`]: configuration, hooks and application handlers, validated into a
//! [`Broker`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{self, AppRoutes, Handler, HandlerErrorPolicy};
use crate::broker::Shared;
use crate::message::{InboxHook, Kept};
use crate::router::{Router, Rules};
use crate::{
    Authenticator, Backplane, Broker, Config, ConfigError, Interceptor, LoopbackOnly, Permissions,
    Store, events,
};

/// Builds a [`Broker`]: configuration, hooks and application handlers.
pub struct BrokerBuilder {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
    app: AppRoutes,
    rules: Rules,
    app_prefixes: Option<Vec<String>>,
    interceptors: Vec<Box<dyn Interceptor>>,
    backplane: Option<Arc<dyn Backplane>>,
    store: Option<Arc<dyn Store>>,
    inbox_hook: Option<InboxHook>,
}

impl Broker {
    /// Starts building a broker.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config::default(),
            authenticator: Arc::new(LoopbackOnly),
            app: AppRoutes::default(),
            rules: Rules::default(),
            app_prefixes: None,
            interceptors: Vec::new(),
            backplane: None,
            store: None,
            inbox_hook: None,
        }
    }
}

impl BrokerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the hook consulted on CONNECT (default [`LoopbackOnly`]: clients on this machine
    /// only, any login).
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Arc::new(authenticator);
        self
    }

    /// Application destination prefixes (default [`crate::DEFAULT_APP_PREFIX`], `/app`),
    /// replacing the default. A SEND or SUBSCRIBE under one of them goes to the handlers, never
    /// to subscribers. `/topic`, `/queue` and `/user` cannot be application prefixes.
    pub fn app_prefixes<P: Into<String>>(mut self, prefixes: impl IntoIterator<Item = P>) -> Self {
        self.app_prefixes = Some(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// Routes a SEND to `<prefix><pattern>` (e.g. `/chat.{room}` for `/app/chat.general`) to
    /// `handler` (Spring's `@MessageMapping`). A pattern without variables wins over one with
    /// them; otherwise the first registered match wins.
    ///
    /// # Panics
    /// If the pattern is ambiguous: it must start with `/`, and a `{variable}` must end at a
    /// `/`, a `.` or the end.
    pub fn on_send<H: Handler<T>, T: 'static>(mut self, pattern: &str, handler: H) -> Self {
        self.app.on_send(pattern, app::boxed(handler));
        self
    }

    /// Runs `handler` when a client subscribes to `<prefix><pattern>`; its reply goes to that
    /// subscription only (Spring's `@SubscribeMapping`). The subscription receives nothing else.
    ///
    /// # Panics
    /// As [`BrokerBuilder::on_send`].
    pub fn on_subscribe<H: Handler<T>, T: 'static>(mut self, pattern: &str, handler: H) -> Self {
        self.app.on_subscribe(pattern, app::boxed(handler));
        self
    }

    /// Registers shared state for the [`State`](crate::State) extractor (one value per type;
    /// cloned per call, so wrap large state in an `Arc`).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, state: T) -> Self {
        self.app.state.insert(state);
        self
    }

    /// What handler errors and rejections do (default [`HandlerErrorPolicy::ReplyToSender`]).
    pub fn handler_errors(mut self, policy: HandlerErrorPolicy) -> Self {
        self.app.errors = policy;
        self
    }

    /// The permission rules clients are held to on SEND and SUBSCRIBE (see [`Permissions`]).
    /// Default: none, which allows everything except a SEND to `/user/{name}/...` (any client
    /// could otherwise write into anyone's private queues); server code (handlers,
    /// [`Broker::send_to_user`]) may always send anywhere. Replace them later with
    /// [`Broker::set_permissions`].
    pub fn permissions(self, permissions: Permissions) -> Self {
        self.rules.set_permissions(permissions);
        self
    }

    /// Adds an interceptor on inbound frames; they run in the order added.
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Box::new(interceptor));
        self
    }

    /// Joins other nodes through `backplane` (the RabbitMQ relay of `stompbox-relay`): local
    /// interest is reported to it, `/topic` publishes and `/user` sends are forwarded to it,
    /// and it delivers what other nodes published with [`Broker::inject`].
    pub fn backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// Keeps `/queue` messages sent with `persistent:true` in `store` (the `stompbox-store`
    /// crate), and puts back what it holds when the broker is built. A RECEIPT for such a SEND
    /// (or for the ACK that removes one) is sent once the store has synced it. Without a store,
    /// or when the backplane holds the queues, `persistent` has no effect.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Calls `hook` with every message kept in a user's offline inbox (`inbox.destinations`),
    /// on the sender's task: it must not wait (hand the message on, e.g. to a push webhook's
    /// bounded queue).
    pub fn on_inbox(mut self, hook: impl Fn(Kept) + Send + Sync + 'static) -> Self {
        self.inbox_hook = Some(InboxHook(Arc::new(hook)));
        self
    }

    /// Validates the configuration and creates the broker.
    ///
    /// # Errors
    /// An invalid configuration, or a store that cannot be read back (field `store`).
    pub fn build(mut self) -> Result<Broker, ConfigError> {
        self.config.validate()?;
        if let Some(prefixes) = self.app_prefixes.take() {
            self.rules.set_app_prefixes(prefixes)?;
        }
        let mut router = Router::new(&self.config, self.rules, self.backplane.take());
        router.set_inbox_hook(self.inbox_hook.take());
        if let Some(store) = self.store.take() {
            (router.set_store(store)).map_err(|e| ConfigError {
                field: "store",
                reason: format!("cannot read back the stored messages: {e}"),
            })?;
        }
        Ok(Broker {
            shared: Arc::new(Shared {
                logins: crate::login_guard::LoginGuard::new(self.config.login.clone()),
                admission: crate::admission::Admission::new(self.config.admission.clone()),
                config: self.config,
                authenticator: self.authenticator,
                router: Arc::new(router),
                app: self.app,
                interceptors: self.interceptors.into_boxed_slice(),
                events: events::Events::default(),
                next_session_id: AtomicU64::new(0),
                shutdown: CancellationToken::new(),
                hard_stop: CancellationToken::new(),
                tracker: TaskTracker::new(),
                sessions: Default::default(),
            }),
        })
    }
}
