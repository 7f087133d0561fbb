//! The server crate's one error type.

use std::{io, net::SocketAddr, path::PathBuf};

/// Everything that can go wrong loading the configuration or running the listeners. Errors
/// inside a connection are not here: they end that connection and are logged on its span.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configuration file is not valid TOML or does not describe a configuration (unknown
    /// key, wrong type); the message points at the line.
    #[error("invalid configuration file {}: {source}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The parser's report, with line and column.
        source: Box<toml::de::Error>,
    },
    /// An environment variable or command-line override names a key that does not exist.
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey {
        /// The dotted key.
        key: String,
        /// Where it came from, e.g. `the command line`.
        origin: String,
    },
    /// An environment variable or command-line override has a value of the wrong type.
    #[error("invalid value for `{key}` (from {origin}): {reason}")]
    InvalidValue {
        /// The dotted key.
        key: String,
        /// Where it came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The merged configuration is invalid (a value out of range, an inconsistent pair).
    #[error("invalid configuration `{key}`: {reason}")]
    InvalidConfig {
        /// The dotted key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen for {listener} on {addr}: {source}")]
    Bind {
        /// `websocket` or `tcp`.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why (address in use, permission denied).
        source: io::Error,
    },
    /// A listener failed while serving.
    #[error("{listener} listener failed: {source}")]
    Serve {
        /// `websocket` or `tcp`.
        listener: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}
