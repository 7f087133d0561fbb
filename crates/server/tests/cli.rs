//! The `stompbox` binary: configuration layers and their precedence, `--print-config`, errors,
//! the `listening` line, SIGTERM.

mod common;

use std::process::{Command, Stdio};

use stompbox_server::ServerConfig;

const BIN: &str = env!("CARGO_BIN_EXE_stompbox");

/// Runs the binary with a clean `STOMPBOX_*` environment plus `env`; returns (status, stdout,
/// stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("STOMPBOX_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run stompbox");
    (
        output.status.code().expect("exited normally"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn print_config_is_the_full_default_and_round_trips() {
    let (status, stdout, stderr) = run(&["--print-config"], &[]);
    assert_eq!(status, 0, "{stderr}");
    let printed: ServerConfig = toml::from_str(&stdout).expect("printed config parses");
    assert_eq!(printed, ServerConfig::default());
    for key in [
        "[websocket]",
        "[tcp]",
        "[broker]",
        "[broker.outbox]",
        "[broker.heartbeat]",
        "shutdown_grace = \"5s\"",
    ] {
        assert!(stdout.contains(key), "missing {key} in\n{stdout}");
    }

    // Feeding the printed file back changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stompbox.toml");
    std::fs::write(&path, &stdout).unwrap();
    let (status, again, stderr) = run(&["--config", path.to_str().unwrap(), "--print-config"], &[]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(again, stdout);
}

/// defaults < file < environment < flags, key by key.
#[test]
fn precedence_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stompbox.toml");
    std::fs::write(
        &path,
        r#"
[websocket]
listen = "127.0.0.1:1001"
path = "/from-file"

[tcp]
listen = "127.0.0.1:2001"

[broker]
max_connections = 11
shutdown_grace = "11s"

[broker.heartbeat]
min = "111ms"
"#,
    )
    .unwrap();
    let (status, stdout, stderr) = run(
        &[
            "--config",
            path.to_str().unwrap(),
            "--tcp-listen",
            "127.0.0.1:2003",
            "--set",
            "broker.shutdown_grace=33s",
            "--print-config",
        ],
        &[
            ("STOMPBOX_TCP__LISTEN", "127.0.0.1:2002"),
            ("STOMPBOX_BROKER__MAX_CONNECTIONS", "22"),
            ("STOMPBOX_BROKER__SHUTDOWN_GRACE", "22s"),
            ("STOMPBOX_BROKER__OUTBOX__SLOW_CONSUMER", "drop-newest"),
            ("STOMPBOX_BIN", "/ignored/because/no/such/key"),
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    let config: ServerConfig = toml::from_str(&stdout).unwrap();
    // File only.
    assert_eq!(config.websocket.listen.to_string(), "127.0.0.1:1001");
    assert_eq!(config.websocket.path, "/from-file");
    assert_eq!(config.broker.heartbeat.min.as_millis(), 111);
    // Env over file.
    assert_eq!(config.broker.max_connections, 22);
    assert_eq!(
        config.broker.outbox.slow_consumer,
        stompbox_broker::SlowConsumerPolicy::DropNewest
    );
    // Flags over env over file.
    assert_eq!(config.tcp.listen.to_string(), "127.0.0.1:2003");
    assert_eq!(config.broker.shutdown_grace.as_secs(), 33);
    // Untouched keys keep their defaults.
    assert_eq!(
        config.broker.max_headers,
        ServerConfig::default().broker.max_headers
    );
}

#[test]
fn invalid_configuration_exits_non_zero_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad_type = dir.path().join("bad-type.toml");
    std::fs::write(&bad_type, "[broker]\nmax_connections = \"lots\"\n").unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[broker]\nmax_conections = 5\n").unwrap();
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[broker\n").unwrap();
    /// Arguments, environment, and a piece of the expected error message.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", bad_type.to_str().unwrap()],
            vec![],
            "line 2",
        ),
        (
            vec!["--config", unknown.to_str().unwrap()],
            vec![],
            "max_conections",
        ),
        (
            vec!["--config", syntax.to_str().unwrap()],
            vec![],
            "syntax.toml",
        ),
        (
            vec!["--config", "/no/such/file.toml"],
            vec![],
            "cannot read configuration file",
        ),
        (
            vec![],
            vec![("STOMPBOX_BROKER__MAX_CONNECTIONS", "many")],
            "STOMPBOX_BROKER__MAX_CONNECTIONS",
        ),
        (
            vec![],
            vec![("STOMPBOX_BROKER__CONNECT_TIMEOUT", "soon")],
            "broker.connect_timeout",
        ),
        (
            vec!["--set", "broker.heartbeat.grace=0.5"],
            vec![],
            "broker.heartbeat.grace",
        ),
        (
            vec!["--set", "broker.nope=1"],
            vec![],
            "unknown configuration key `broker.nope`",
        ),
        (vec!["--set", "no-equals-sign"], vec![], "KEY=VALUE"),
        (vec!["--no-ws", "--no-tcp"], vec![], "at least one"),
        (
            vec!["--ws-listen", "not-an-address"],
            vec![],
            "not-an-address",
        ),
    ];
    for (args, env, needle) in cases {
        let mut args = args.clone();
        args.push("--print-config");
        let (status, stdout, stderr) = run(&args, &env);
        assert_ne!(status, 0, "{args:?} {env:?} should fail; stdout: {stdout}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains(needle),
            "{args:?} {env:?}: expected `{needle}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The binary with `args`, logging at info level; its stderr read line by line. Killed when
/// the child is dropped.
#[cfg(unix)]
fn spawn_logging(
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        // Parallel tests must not share (or create) ./stompbox-data.
        .env("STOMPBOX_STORE__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    (child, lines)
}

/// Starts the binary on port 0, parses the documented `listening` line, checks /health, sends
/// SIGTERM and expects exit 0.
#[cfg(unix)]
#[tokio::test]
async fn listening_line_and_sigterm() {
    use common::within;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut child, mut lines) =
        spawn_logging(&["--ws-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"]);
    let (ws, tcp) = loop {
        let line = within("the listening line", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed before the listening line");
        if let Some(rest) = line.split("listening websocket=").nth(1) {
            let (ws, tcp) = rest.split_once(" tcp=").expect("tcp= follows websocket=");
            break (ws.trim().to_owned(), tcp.trim().to_owned());
        }
    };
    assert!(
        ws.starts_with("ws://127.0.0.1:") && ws.ends_with("/ws"),
        "{ws}"
    );
    let tcp: std::net::SocketAddr = tcp.parse().expect("tcp address");
    assert_ne!(tcp.port(), 0);
    let http_addr = ws.trim_start_matches("ws://").trim_end_matches("/ws");

    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within("health response", stream.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::net::TcpStream::connect(tcp)
        .await
        .expect("tcp listener accepts");

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = within("exit after SIGTERM", child.wait()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut rest = Vec::new();
    while let Some(line) = within("remaining log", lines.next_line()).await.unwrap() {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// `--log-format json`: one JSON object per line, the version first, a warning for a listener
/// open to the network that admits anyone, and a session's close at info with its reason and
/// the session's fields.
#[cfg(unix)]
#[tokio::test]
async fn json_logs_say_what_starts_warns_and_closes() {
    use common::within;
    use tokio::io::AsyncWriteExt;

    let (_child, mut lines) = spawn_logging(&[
        "--log-format",
        "json",
        "--ws-listen",
        "0.0.0.0:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--set",
        "auth.anonymous=anywhere",
    ]);
    let mut seen = Vec::new();
    let tcp = loop {
        let line = within("the listening line", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed before the listening line");
        let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let message = event["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        seen.push((
            event["level"].as_str().unwrap_or_default().to_owned(),
            message,
        ));
        if let Some(tcp) = event["fields"]["tcp"].as_str() {
            break tcp.parse::<std::net::SocketAddr>().unwrap();
        }
    };
    assert_eq!(seen[0], ("INFO".to_owned(), "stompbox starting".to_owned()));
    assert!(
        seen.iter()
            .any(|(level, m)| level == "WARN" && m.contains("admits anyone")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(level, m)| level == "WARN" && m.contains("any web page")),
        "{seen:?}"
    );
    let mut client = tokio::net::TcpStream::connect(tcp).await.unwrap();
    client.write_all(b"NONSENSE\n\n\0").await.unwrap();
    let closed = loop {
        let line = within("the session's close", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["fields"]["message"] == "session ended" {
            break event;
        }
    };
    assert_eq!(closed["level"], "INFO");
    assert_eq!(closed["fields"]["reason"], "protocol_error");
    assert_eq!(closed["span"]["transport"], "Tcp", "{closed}");
}

/// SIGTERM drains: the server waits up to `broker.shutdown_grace` for each session to flush,
/// here a subscriber that stopped reading with megabytes on their way to it. A second SIGTERM
/// exits at once, with status 130.
#[cfg(unix)]
#[tokio::test]
async fn a_second_signal_cuts_the_drain_short() {
    use common::{TcpClient, frames, within};

    let (mut child, mut lines) = spawn_logging(&[
        "--no-ws",
        "--tcp-listen",
        "127.0.0.1:0",
        "--set",
        "broker.shutdown_grace=60s",
        "--set",
        "broker.outbox.write_timeout=60s",
        "--set",
        "broker.outbox.max_bytes=268435456",
    ]);
    let tcp: std::net::SocketAddr = loop {
        let line = within("the listening line", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed before the listening line");
        if let Some(rest) = line.split(" tcp=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // A subscriber that never reads, and 32 MiB for it: more than the sockets hold.
    let mut stalled = TcpClient::connect(tcp).await;
    stalled.subscribe("s", "/topic/big").await;
    let mut publisher = TcpClient::connect(tcp).await;
    let body = vec![b'x'; 256 * 1024];
    for i in 0..128 {
        let send = frames::send("/topic/big", body.clone());
        publisher.send_with_receipt(send, &format!("r{i}")).await;
    }

    let pid = child.id().unwrap().to_string();
    let term = || {
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
    };
    assert!(term().await.unwrap().success());
    within("the drain to start", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("stderr open");
            if line.contains("SIGTERM") {
                break;
            }
        }
    })
    .await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), child.wait())
            .await
            .is_err(),
        "the stalled subscriber holds the drain"
    );
    assert!(term().await.unwrap().success());
    let status = within("exit after the second SIGTERM", child.wait())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    drop(stalled);
}

/// `docs/configuration.md` names every key of the default configuration and its environment
/// variable, so the table cannot silently fall behind a new field.
#[test]
fn configuration_doc_lists_every_key() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let defaults = toml::Table::try_from(ServerConfig::default()).unwrap();
    let mut keys = Vec::new();
    collect_keys(&defaults, "", &mut keys);
    assert!(keys.len() > 20, "{keys:?}");
    for key in keys {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/configuration.md lacks `{key}`"
        );
        let env = format!("STOMPBOX_{}", key.to_ascii_uppercase().replace('.', "__"));
        assert!(doc.contains(&env), "docs/configuration.md lacks {env}");
    }
}

fn collect_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        match value {
            toml::Value::Table(inner) => collect_keys(inner, &format!("{key}."), out),
            _ => out.push(key),
        }
    }
}

/// `stompbox hash-password` reads the password from standard input and prints an argon2id
/// hash that the users file accepts.
#[test]
fn hash_password_prints_a_hash_the_users_file_accepts() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = format!("[[user]]\nlogin = \"a\"\npassword_hash = \"{hash}\"\n");
    stompbox_auth::UsersFile::from_toml_str(&users).unwrap();

    let (code, _, stderr) = run(&["hash-password"], &[]);
    assert_eq!(code, 1, "an empty standard input is an error");
    assert!(stderr.contains("no password"), "{stderr}");
}

/// SIGHUP reloads the users file: a login added to it works without a restart, and a session
/// opened before stays.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_users_file() {
    use common::{TcpClient, frames, within};

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let user = |login: &str, password: &str| {
        let hash = stompbox_auth::hash_password(password);
        format!("[[user]]\nlogin = \"{login}\"\npassword_hash = \"{hash}\"\n\n")
    };
    std::fs::write(&users, user("alice", "a-pw")).unwrap();
    let setting = format!("auth.users_file={}", users.display());
    let (mut child, mut lines) =
        spawn_logging(&["--no-ws", "--tcp-listen", "127.0.0.1:0", "--set", &setting]);
    let mut wait_for = async |needle: &str| loop {
        let line = within("a log line", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed");
        if line.contains(needle) {
            return line;
        }
    };
    let line = wait_for("listening").await;
    let tcp: std::net::SocketAddr = line.split("tcp=").nth(1).unwrap().trim().parse().unwrap();
    let connect = |login: &str, passcode: &str| {
        frames::connect()
            .with_header("login", login)
            .with_header("passcode", passcode)
    };

    let mut alice = TcpClient::open(tcp).await;
    alice.handshake(connect("alice", "a-pw")).await;
    let mut bob = TcpClient::open(tcp).await;
    bob.send_frame(connect("bob", "b-pw")).await;
    bob.expect_error("bad credentials: login or passcode refused")
        .await;

    std::fs::write(&users, user("alice", "a-pw") + &user("bob", "b-pw")).unwrap();
    let pid = child.id().unwrap().to_string();
    let hup = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(hup.success());
    wait_for("reloaded").await;

    let mut bob = TcpClient::open(tcp).await;
    bob.handshake(connect("bob", "b-pw")).await;
    alice
        .send_with_receipt(frames::send("/topic/still-here", "x"), "r")
        .await;
    child.kill().await.unwrap();
}

/// `stompbox ctl` against a running binary's admin API: a queue filled over TCP is listed as a
/// table and as JSON, purged; a wrong token is a clear error and a non-zero exit.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_lists_and_purges_queues_through_the_admin_api() {
    use common::within;

    const TOKEN: &str = "ctl-test-admin-token";
    let mut child = tokio::process::Command::new(BIN)
        .args(["--ws-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"])
        .args([
            "--set",
            "admin.enabled=true",
            "--set",
            "admin.listen=127.0.0.1:0",
        ])
        .env("STOMPBOX_ADMIN__TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("STOMPBOX_STORE__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let (tcp, admin) = loop {
        let line = within("the listening line", lines.next_line())
            .await
            .unwrap()
            .expect("stderr closed before the listening line");
        if let Some(rest) = line.split(" tcp=").nth(1) {
            let (tcp, admin) = rest.split_once(" admin=").expect("admin= when it is on");
            break (
                tcp.parse::<std::net::SocketAddr>().unwrap(),
                admin.trim().to_owned(),
            );
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut producer = common::TcpClient::connect(tcp).await;
    for i in 0..3 {
        producer
            .send_frame(common::frames::send("/queue/ctl.jobs", format!("job {i}")))
            .await;
    }
    producer
        .send_with_receipt(common::frames::send("/queue/ctl.jobs", "last"), "sent")
        .await;

    let url = format!("http://{admin}");
    let ctl = |args: &[&str], token: &str| {
        let mut all = vec!["ctl", "--url", url.as_str()];
        all.extend_from_slice(args);
        run(&all, &[("STOMPBOX_ADMIN__TOKEN", token)])
    };
    let (status, table, _) = tokio::task::block_in_place(|| ctl(&["queues"], TOKEN));
    assert_eq!(status, 0);
    let row = (table.lines())
        .find(|l| l.starts_with("/queue/ctl.jobs"))
        .unwrap_or_else(|| panic!("no row for the queue in:\n{table}"));
    assert_eq!(row.split_whitespace().nth(1), Some("4"), "depth 4: {row}");
    let (status, json, _) = tokio::task::block_in_place(|| ctl(&["--json", "queues"], TOKEN));
    assert_eq!(status, 0);
    let queues: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(queues[0]["destination"], "/queue/ctl.jobs");
    let (status, said, _) =
        tokio::task::block_in_place(|| ctl(&["purge", "/queue/ctl.jobs"], TOKEN));
    assert_eq!(
        (status, said.trim()),
        (0, "purged 4 messages from /queue/ctl.jobs")
    );
    // The producer is the one connection; closing it from ctl ends it with the operator's ERROR.
    let (status, table, _) = tokio::task::block_in_place(|| ctl(&["connections"], TOKEN));
    assert_eq!(status, 0);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "one connection:\n{table}");
    let columns: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(columns[1..5], ["-", columns[2], "tcp", "1.2"], "{table}");
    let id = columns[0];
    let (status, said, _) = tokio::task::block_in_place(|| {
        ctl(&["close", id, "--reason", "ctl test: maintenance"], TOKEN)
    });
    assert_eq!(
        (status, said.trim()),
        (0, format!("session {id} is being closed").as_str())
    );
    let error = producer.recv().await;
    assert_eq!(error.header("message"), Some("closed by an operator"));
    let body = String::from_utf8_lossy(&error.body).into_owned();
    assert!(body.contains("ctl test: maintenance"), "{body}");

    // A subscription, listed one by one and by destination.
    let mut watcher = common::TcpClient::connect(tcp).await;
    watcher.subscribe("w", "/topic/ctl.news").await;
    let (status, table, _) = tokio::task::block_in_place(|| ctl(&["subscriptions"], TOKEN));
    assert_eq!(status, 0);
    let row = (table.lines()).find(|l| l.starts_with("/topic/ctl.news"));
    let row: Vec<&str> = row.expect(&table).split_whitespace().collect();
    assert_eq!(row[2..], ["-", "w", "auto", "false"], "{table}");
    let (status, table, _) = tokio::task::block_in_place(|| ctl(&["destinations"], TOKEN));
    assert_eq!(status, 0);
    let row = (table.lines()).find(|l| l.starts_with("/topic/ctl.news"));
    let row: Vec<&str> = row.expect(&table).split_whitespace().collect();
    assert_eq!(row[1..], ["1", "1"], "{table}");

    let (status, _, error) =
        tokio::task::block_in_place(|| ctl(&["queues"], "a-wrong-token-entirely"));
    assert_eq!(status, 1);
    assert!(error.contains("401"), "{error}");
    child.kill().await.unwrap();
}
