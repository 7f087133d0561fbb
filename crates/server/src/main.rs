//! `stompbox`: a STOMP 1.2 broker over WebSocket and TCP.
//!
//! Run: `stompbox` (WebSocket on 0.0.0.0:15674/ws, TCP on 0.0.0.0:61613), or
//! `stompbox --ws-listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0` and read the `listening` line.
//! `stompbox --help` lists the flags; `docs/configuration.md` every key.

use std::{io::IsTerminal, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;

mod ctl;

/// jemalloc, with its background thread purging freed memory after 10 s: the system's malloc
/// keeps what a burst took for good (feature `jemalloc`; `docs/benchmarks.md`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use stompbox_server::{ConfigSources, Server};
use tracing_subscriber::EnvFilter;

/// A STOMP 1.2 broker over WebSocket and TCP.
///
/// Configuration layers, lowest precedence first: defaults, the --config file, STOMPBOX_*
/// environment variables (nested keys joined by `__`, e.g. STOMPBOX_BROKER__HEARTBEAT__MIN=1s),
/// then these flags. Logging follows RUST_LOG (default `info`).
#[derive(Debug, Parser)]
#[command(name = "stompbox", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit (with nothing else given: every
    /// default).
    #[arg(long)]
    print_config: bool,
    /// WebSocket (HTTP) listen address (`websocket.listen`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    ws_listen: Option<SocketAddr>,
    /// Path of the WebSocket endpoint (`websocket.path`).
    #[arg(long, value_name = "PATH")]
    ws_path: Option<String>,
    /// Disable the WebSocket listener.
    #[arg(long)]
    no_ws: bool,
    /// STOMP-over-TCP listen address (`tcp.listen`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    tcp_listen: Option<SocketAddr>,
    /// Disable the TCP listener.
    #[arg(long)]
    no_tcp: bool,
    /// Data directory for persistent queue messages (`store.data_dir`).
    #[arg(long, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// Log lines as text (the default) or as JSON objects, one per line, for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Set any configuration key, e.g. `--set broker.heartbeat.min=100ms`; repeatable.
    #[arg(long = "set", short = 's', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Read a password from the first line of standard input and print its argon2id hash, for
    /// `password_hash` in the users file (`auth.users_file`). Not an argument: arguments show in
    /// `ps` and shell history.
    HashPassword,
    /// Ask a running node's admin API (`[admin]`): `overview`, `queues`, `purge`, `redrive`,
    /// `publish`.
    Ctl(ctl::Ctl),
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
}

impl Args {
    fn sources(&self) -> ConfigSources {
        let mut overrides = Vec::new();
        if let Some(addr) = self.ws_listen {
            overrides.push(("websocket.listen".to_owned(), addr.to_string()));
        }
        if let Some(path) = &self.ws_path {
            overrides.push(("websocket.path".to_owned(), path.clone()));
        }
        if self.no_ws {
            overrides.push(("websocket.enabled".to_owned(), "false".to_owned()));
        }
        if let Some(addr) = self.tcp_listen {
            overrides.push(("tcp.listen".to_owned(), addr.to_string()));
        }
        if self.no_tcp {
            overrides.push(("tcp.enabled".to_owned(), "false".to_owned()));
        }
        if let Some(dir) = &self.data_dir {
            overrides.push(("store.data_dir".to_owned(), dir.display().to_string()));
        }
        overrides.extend(self.set.iter().cloned());
        ConfigSources {
            file: self.config.clone(),
            env: std::env::vars().collect(),
            overrides,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our errors' messages already include their causes: print the top one only.
            eprintln!("stompbox: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> anyhow::Result<()> {
    let command = args.command.take();
    if let Some(Command::Ctl(ctl)) = command {
        return ctl::run(ctl);
    }
    if let Some(Command::HashPassword) = command {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        println!("{}", stompbox_auth::hash_password(password));
        return Ok(());
    }
    let loaded = args.sources().load()?;
    if args.print_config {
        print!("{}", loaded.config.to_toml());
        return Ok(());
    }
    init_logging(args.log_format);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "stompbox starting");
    for warning in loaded.config.exposure_warnings() {
        tracing::warn!("{warning}");
    }
    if loaded.config.store.enabled {
        let dir = loaded.config.store.data_dir.display();
        tracing::info!(data_dir = %dir, "store");
    }
    for name in &loaded.ignored_env {
        tracing::warn!(variable = %name, "environment variable names no configuration key; ignored");
    }
    raise_open_files_limit(loaded.config.broker.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let server = Server::bind(loaded.config).await?;
        reload_on_hangup(server.reloader(), args.sources());
        server.run(shutdown_signal()).await?;
        Ok(())
    })
}

/// Every connection is a descriptor, and the usual soft limit (1,024) is far below what a node
/// serves: raise it to the hard limit, as nginx and RabbitMQ's scripts do, and say what it is.
fn raise_open_files_limit(max_connections: usize) {
    let before = rlimit::Resource::NOFILE.get();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            let hard = before.map(|(_, hard)| hard).unwrap_or(soft);
            tracing::info!(soft, hard, "open-files limit");
            if soft < max_connections as u64 {
                tracing::warn!(
                    soft,
                    max_connections,
                    "the open-files limit is below broker.max_connections: connections past it are refused by the kernel (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn)",
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-files limit"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The current span and its parents (session id, peer, principal) go with each event.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// On each SIGHUP, loads the configuration again from the same sources and reloads the users
/// file, the JWT keys, the permission rules and the listeners' TLS certificates and keys; a
/// part that fails to load is logged and keeps its previous state.
fn reload_on_hangup(reloader: stompbox_server::Reloader, sources: ConfigSources) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP"),
        };
        while hangup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reloading");
            let result = sources
                .load()
                .map_err(anyhow::Error::from)
                .and_then(|loaded| Ok(reloader.reload(&loaded.config)?));
            match result {
                Ok(()) => tracing::info!("reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; what failed keeps its previous state")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (reloader, sources);
}

/// Completes on Ctrl-C or SIGTERM; a second one while draining exits at once (status 130).
async fn shutdown_signal() {
    one_signal().await;
    tokio::spawn(async {
        one_signal().await;
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
}

/// The next Ctrl-C or SIGTERM.
async fn one_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "signal received"),
        _ = terminate => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}
