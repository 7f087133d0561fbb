//! [`RelayError`]: why the relay could not start or lost RabbitMQ.

/// Why the relay could not start, or why its link to RabbitMQ broke (then it reconnects).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A configuration value is invalid.
    #[error("invalid relay configuration `{key}`: {reason}")]
    InvalidConfig {
        /// The key, inside `[relay]`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An AMQP operation failed (connection refused or closed, channel error).
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to RabbitMQ timed out")]
    ConnectTimeout,
    /// RabbitMQ did not confirm a publish (basic.nack): it will be published again.
    #[error("a publish was not confirmed by RabbitMQ")]
    NotConfirmed,
    /// The consumer of this node's queue ended (connection or channel closed).
    #[error("the consumer of the node queue ended")]
    ConsumerEnded,
}
