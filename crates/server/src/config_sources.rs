//! Loading a [`ServerConfig`] from its layers, lowest precedence first:
//! defaults → TOML file → `STOMPBOX_*` environment variables → command-line overrides.
//!
//! The environment and overrides are plain `key = text` pairs. Their keys are checked against
//! the keys of `ServerConfig::default()` serialized to TOML (so `Default` stays the single source
//! of truth), and their text is read as the type of the default at that key: a string key takes
//! the text as is, an integer key must parse as an integer, and so on. Every error names the key
//! and where the value came from.
//!
//! Why not `figment`: measured in `docs/configuration.md` (it types environment values by
//! their text, so a token of digits fails, and its errors do not name the variable).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::{Error, ServerConfig};

/// Prefix of environment variables that configure the server.
pub const ENV_PREFIX: &str = "STOMPBOX_";
/// Separator of nested keys in environment variable names: `STOMPBOX_BROKER__HEARTBEAT__MIN`
/// is `broker.heartbeat.min`. Double, because key names contain single underscores.
pub const ENV_SEPARATOR: &str = "__";

/// The layers to merge. Build one and call [`ConfigSources::load`].
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// A TOML file; every key optional.
    pub file: Option<PathBuf>,
    /// Environment variables (pass `std::env::vars()`); those without [`ENV_PREFIX`] are ignored.
    pub env: Vec<(String, String)>,
    /// Dotted keys and their values from the command line (`--set broker.max_connections=10`,
    /// or a dedicated flag such as `--ws-listen`), applied in order.
    pub overrides: Vec<(String, String)>,
}

/// A loaded, validated configuration and what the caller should warn about.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The merged configuration, validated.
    pub config: ServerConfig,
    /// `STOMPBOX_*` variables that name no configuration key. They are not errors, because
    /// scripts keep other `STOMPBOX_*` variables around (the interop suite's `STOMPBOX_BIN`).
    pub ignored_env: Vec<String>,
}

impl ConfigSources {
    /// Merges the layers, deserializes and validates.
    pub fn load(&self) -> Result<Loaded, Error> {
        let defaults = Table::try_from(ServerConfig::every_key())
            .expect("the default configuration is representable in TOML");
        let mut table = match &self.file {
            Some(path) => read_file(path)?,
            None => Table::new(),
        };
        let mut ignored_env = Vec::new();
        for (name, text) in &self.env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = rest.to_ascii_lowercase().replace(ENV_SEPARATOR, ".");
            let origin = format!("environment variable {name}");
            match set(&mut table, &defaults, &key, text, &origin) {
                Err(Error::UnknownKey { .. }) => ignored_env.push(name.clone()),
                other => other?,
            }
        }
        for (key, text) in &self.overrides {
            set(&mut table, &defaults, key, text, "the command line")?;
        }
        // Every layer was checked as it was applied, so this cannot fail; keep the error path
        // anyway rather than a panic.
        let config = deserialize(&table).map_err(|reason| Error::InvalidConfig {
            key: "(merged configuration)".to_owned(),
            reason,
        })?;
        config.validate()?;
        Ok(Loaded {
            config,
            ignored_env,
        })
    }
}

/// Deserializes a merged table. Errors carry the message only: callers know the key and origin.
fn deserialize(table: &Table) -> Result<ServerConfig, String> {
    // Through text, so that errors from serde (a bad duration, a bad address) are reported by
    // the same code path as a file's.
    let text = toml::to_string(table).expect("a table is representable in TOML");
    toml::from_str(&text).map_err(|e| e.message().to_owned())
}

fn read_file(path: &Path) -> Result<Table, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    // Deserialize the file on its own first: its errors point at a line of the user's file.
    toml::from_str::<ServerConfig>(&text).map_err(|source| Error::ParseConfig {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    Ok(text
        .parse::<Table>()
        .expect("the file parsed as a ServerConfig"))
}

/// Sets dotted `key` in `table` to `text`, read as the type of the default at that key, and
/// checks that the result still deserializes (a duration or an address is a string in TOML, so
/// only serde can tell whether it is a good one); on failure the table is left unchanged.
fn set(
    table: &mut Table,
    defaults: &Table,
    key: &str,
    text: &str,
    origin: &str,
) -> Result<(), Error> {
    let mut candidate = table.clone();
    insert(&mut candidate, defaults, key, text, origin)?;
    deserialize(&candidate).map_err(|reason| Error::InvalidValue {
        key: key.to_owned(),
        origin: origin.to_owned(),
        reason: format!("{reason} (got `{text}`)"),
    })?;
    *table = candidate;
    Ok(())
}

fn insert(
    table: &mut Table,
    defaults: &Table,
    key: &str,
    text: &str,
    origin: &str,
) -> Result<Option<Value>, Error> {
    let unknown = || Error::UnknownKey {
        key: key.to_owned(),
        origin: origin.to_owned(),
    };
    let path: Vec<&str> = key.split('.').collect();
    let (leaf, parents) = path.split_last().ok_or_else(unknown)?;
    let mut default_table = defaults;
    let mut target = table;
    for part in parents {
        default_table = match default_table.get(*part) {
            Some(Value::Table(t)) => t,
            _ => return Err(unknown()),
        };
        let entry = target
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        target = match entry {
            Value::Table(t) => t,
            _ => return Err(unknown()),
        };
    }
    let default = match default_table.get(*leaf) {
        Some(Value::Table(_)) | None => return Err(unknown()),
        Some(value) => value,
    };
    let value = coerce(text, default).map_err(|reason| Error::InvalidValue {
        key: key.to_owned(),
        origin: origin.to_owned(),
        reason,
    })?;
    let previous = target.insert(leaf.to_string(), value);
    Ok(previous)
}

fn coerce(text: &str, like: &Value) -> Result<Value, String> {
    let text = text.trim();
    match like {
        Value::String(_) => Ok(Value::String(text.to_owned())),
        Value::Integer(_) => text
            .replace('_', "")
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got `{text}`")),
        Value::Float(_) => text
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("expected a number, got `{text}`")),
        Value::Boolean(_) => match text {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected `true` or `false`, got `{text}`")),
        },
        Value::Array(_) | Value::Datetime(_) | Value::Table(_) => {
            let doc = format!("v = {text}");
            doc.parse::<Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .ok_or_else(|| format!("expected a TOML value, got `{text}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_given_is_the_default() {
        let loaded = ConfigSources::default().load().unwrap();
        assert_eq!(loaded.config, ServerConfig::default());
        assert!(loaded.ignored_env.is_empty());
    }

    #[test]
    fn env_is_typed_by_the_default() {
        let loaded = ConfigSources {
            env: env(&[
                ("STOMPBOX_TCP__LISTEN", "127.0.0.1:7000"),
                ("STOMPBOX_TCP__ENABLED", "false"),
                ("STOMPBOX_BROKER__MAX_CONNECTIONS", "12_000"),
                ("STOMPBOX_BROKER__HEARTBEAT__MIN", "250ms"),
                ("STOMPBOX_BROKER__HEARTBEAT__GRACE", "3"),
                ("STOMPBOX_BROKER__SERVER_NAME", "1234"),
                // A secret of digits stays a string (figment would make it a number).
                ("STOMPBOX_ADMIN__TOKEN", "4096123409871234"),
                ("STOMPBOX_BIN", "/somewhere/stompbox"),
                ("PATH", "/usr/bin"),
            ]),
            ..Default::default()
        }
        .load()
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.tcp.listen, "127.0.0.1:7000".parse().unwrap());
        assert!(!c.tcp.enabled);
        assert_eq!(c.broker.max_connections, 12_000);
        assert_eq!(c.broker.heartbeat.min, Duration::from_millis(250));
        assert_eq!(c.broker.heartbeat.grace, 3.0);
        assert_eq!(c.broker.server_name, "1234");
        assert_eq!(c.admin.token, "4096123409871234");
        assert_eq!(loaded.ignored_env, vec!["STOMPBOX_BIN".to_owned()]);
    }

    #[test]
    fn bad_values_name_key_and_origin() {
        let err = ConfigSources {
            env: env(&[("STOMPBOX_BROKER__MAX_CONNECTIONS", "many")]),
            ..Default::default()
        }
        .load()
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broker.max_connections"), "{text}");
        assert!(text.contains("STOMPBOX_BROKER__MAX_CONNECTIONS"), "{text}");

        let err = ConfigSources {
            overrides: vec![("broker.heartbeat.min".into(), "soon".into())],
            ..Default::default()
        }
        .load()
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broker.heartbeat.min"), "{text}");
        assert!(text.contains("soon"), "{text}");
        assert!(text.contains("command line"), "{text}");

        let err = ConfigSources {
            overrides: vec![("broker.no_such_key".into(), "1".into())],
            ..Default::default()
        }
        .load()
        .unwrap_err();
        assert!(
            matches!(err, Error::UnknownKey { ref key, .. } if key == "broker.no_such_key"),
            "{err}"
        );

        let err = ConfigSources {
            overrides: vec![("websocket.listen".into(), "nowhere".into())],
            ..Default::default()
        }
        .load()
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidValue { ref key, .. } if key == "websocket.listen"),
            "{err}"
        );
        assert!(err.to_string().contains("nowhere"), "{err}");
    }
}
