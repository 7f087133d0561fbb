//! Protocol versions and how each escapes header text.

use std::fmt;
use std::str::FromStr;

/// A STOMP protocol version.
///
/// Ordered, so `max` over the versions both sides support picks the negotiated one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no heart-beats, no NACK.
    V1_0,
    /// STOMP 1.1: escapes `\n`, `\c` (colon) and `\\`.
    V1_1,
    /// STOMP 1.2: 1.1 plus `\r`, CRLF line endings, the `ack` header on MESSAGE.
    #[default]
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not `1.0`, `1.1` or `1.2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown STOMP version {0:?}")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1.0" => Ok(Version::V1_0),
            "1.1" => Ok(Version::V1_1),
            "1.2" => Ok(Version::V1_2),
            other => Err(UnknownVersion(other.to_owned())),
        }
    }
}
