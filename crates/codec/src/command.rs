//! The fifteen STOMP commands.

use std::fmt;

/// A STOMP command: the first line of every frame.
///
/// Client commands are sent by clients to the broker, server commands by the broker to clients.
/// Commands are case-sensitive on the wire (`SEND`, never `send`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Client: open a session (all versions).
    Connect,
    /// Client: open a session (1.1+ alias of `CONNECT` that brokers must accept).
    Stomp,
    /// Client: send a message to a destination.
    Send,
    /// Client: register a subscription.
    Subscribe,
    /// Client: remove a subscription.
    Unsubscribe,
    /// Client: acknowledge a message.
    Ack,
    /// Client: refuse a message (1.1+).
    Nack,
    /// Client: start a transaction.
    Begin,
    /// Client: commit a transaction.
    Commit,
    /// Client: roll back a transaction.
    Abort,
    /// Client: end the session gracefully.
    Disconnect,
    /// Server: the session is open.
    Connected,
    /// Server: a message delivered to a subscription.
    Message,
    /// Server: a frame carrying `receipt` was processed.
    Receipt,
    /// Server: something went wrong; the connection closes after it.
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL). Exact, case-sensitive match.
    pub fn from_bytes(bytes: &[u8]) -> Option<Command> {
        Some(match bytes {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"CONNECTED" => Command::Connected,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// True for the commands a client sends.
    pub const fn is_client(self) -> bool {
        !self.is_server()
    }

    /// True for the commands the broker sends.
    pub const fn is_server(self) -> bool {
        matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// `CONNECT`, `STOMP` and `CONNECTED` never escape their headers: they are exchanged before a
    /// version is agreed (spec 1.2, "Value Encoding").
    pub const fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_command() {
        for c in Command::ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
        }
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b""), None);
    }
}
