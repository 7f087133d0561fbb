//! `stompbox ctl`: the admin API's client for scripts and terminals (`docs/operations.md`).
//! Tables by default, the API's JSON with `--json`.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// Talk to a node's admin API (`[admin]`).
#[derive(Debug, clap::Args)]
pub(crate) struct Ctl {
    /// The admin API's address.
    #[arg(long, default_value = "http://127.0.0.1:15670", value_name = "URL")]
    url: String,
    /// The admin token (`admin.token`); by default from STOMPBOX_ADMIN__TOKEN, the variable
    /// that also sets it for the server.
    #[arg(long, env = "STOMPBOX_ADMIN__TOKEN", hide_env_values = true)]
    token: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Version, uptime and the node's counters.
    Overview,
    /// Every queue with its counters.
    Queues,
    /// Drop every message waiting in a queue (`/queue/jobs`).
    Purge { destination: String },
    /// Delete a queue that has no consumers, with what waits in it.
    Delete { destination: String },
    /// Move what waits in a queue's dead-letter queue (or `--from`) back to it.
    Redrive {
        destination: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// Send a text message to a destination.
    Publish { destination: String, body: String },
    /// Every connected session.
    Connections,
    /// Every subscription of the connected sessions.
    Subscriptions,
    /// The destinations subscribed to, with their subscriptions and sessions.
    Destinations,
    /// End a session (ERROR `closed by an operator`, with the reason).
    Close {
        id: u64,
        #[arg(long, default_value = "closed with stompbox ctl")]
        reason: String,
    },
}

pub(crate) fn run(ctl: Ctl) -> anyhow::Result<()> {
    let queue = |d: &str| -> anyhow::Result<String> {
        let name = d
            .strip_prefix("/queue/")
            .context("a queue is /queue/<name>")?;
        Ok(form_urlencoded::byte_serialize(name.as_bytes()).collect())
    };
    let (method, path, body) = match &ctl.what {
        What::Overview => ("GET", "/api/overview".to_owned(), None),
        What::Queues => ("GET", "/api/queues".to_owned(), None),
        What::Purge { destination } => (
            "DELETE",
            format!("/api/queues/{}/messages", queue(destination)?),
            None,
        ),
        What::Delete { destination } => (
            "DELETE",
            format!("/api/queues/{}", queue(destination)?),
            None,
        ),
        What::Redrive { destination, from } => (
            "POST",
            format!("/api/queues/{}/redrive", queue(destination)?),
            Some(serde_json::json!({ "from": from })),
        ),
        What::Connections => ("GET", "/api/connections".to_owned(), None),
        What::Subscriptions => ("GET", "/api/subscriptions".to_owned(), None),
        What::Destinations => ("GET", "/api/destinations".to_owned(), None),
        What::Close { id, reason } => {
            let reason: String = form_urlencoded::byte_serialize(reason.as_bytes()).collect();
            (
                "DELETE",
                format!("/api/connections/{id}?reason={reason}"),
                None,
            )
        }
        What::Publish { destination, body } => (
            "POST",
            "/api/publish".to_owned(),
            Some(serde_json::json!({ "destination": destination, "body": body })),
        ),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", ctl.url.trim_end_matches('/'));
    let auth = format!("Bearer {}", ctl.token);
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).header("authorization", &auth).call(),
        ("DELETE", _) => agent.delete(&url).header("authorization", &auth).call(),
        (_, body) => {
            let body = serde_json::to_vec(&body.unwrap_or(Value::Null))?;
            (agent.post(&url).header("authorization", &auth))
                .header("content-type", "application/json")
                .send(&body[..])
        }
    }
    .with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = response.status();
    let text = response.into_body().read_to_string()?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let error = value["error"]
            .as_str()
            .map_or(value.to_string(), str::to_owned);
        bail!("{status}: {error}");
    }
    if ctl.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match ctl.what {
        What::Queues => print_table(
            &value,
            &[
                "destination",
                "depth",
                "in_flight",
                "consumers",
                "enqueued",
                "delivered",
                "acked",
                "dead_lettered",
                "dropped",
            ],
        ),
        What::Connections => print_table(
            &value,
            &[
                "id",
                "user",
                "address",
                "transport",
                "version",
                "subscriptions",
                "outbox_frames",
            ],
        ),
        What::Subscriptions => print_table(
            &value,
            &["destination", "session", "user", "id", "ack", "durable"],
        ),
        What::Destinations => print_table(&value, &["destination", "subscriptions", "sessions"]),
        What::Close { id, .. } => println!("session {id} is being closed"),
        What::Overview => {
            for (key, v) in value.as_object().into_iter().flatten() {
                println!("{key:<20} {}", v.to_string().trim_matches('"'));
            }
        }
        What::Purge { destination } => {
            println!("purged {} messages from {destination}", value["messages"])
        }
        What::Redrive { destination, .. } => {
            println!("moved {} messages to {destination}", value["messages"])
        }
        What::Delete { destination } => {
            println!("deleted {destination} and {} messages", value["messages"])
        }
        What::Publish { destination, .. } => println!(
            "sent to {destination}: {} deliveries queued",
            value["deliveries"]
        ),
    }
    Ok(())
}

/// An array of objects as a table of `columns`: the first left-aligned, the others
/// right-aligned, each as wide as its widest cell; `-` where a value is null.
fn print_table(value: &Value, columns: &[&str]) {
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = (value.as_array().into_iter().flatten())
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = (columns.iter().enumerate())
        .map(|(i, c)| rows.iter().map(|r| r[i].len()).fold(c.len(), usize::max))
        .collect();
    let header: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (text, width)) in row.iter().zip(&widths).enumerate() {
            match i {
                0 => line.push_str(&format!("{text:<width$}")),
                _ => line.push_str(&format!(" {text:>width$}")),
            }
        }
        println!("{}", line.trim_end());
    }
}
