//! The binary's contract that `scripts/bench` relies on: `floor` prints `listening ADDR`, a run
//! prints one JSON object with the documented keys, and the exit code follows `ok`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Bound on waiting for the floor's first line.
const WAIT: Duration = Duration::from_secs(20);

struct Floor(Child);

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stompbox-bench"))
}

/// Starts `stompbox-bench floor` on a free port; returns it and its address.
fn floor() -> (Floor, String) {
    let mut child = bench()
        .args(["floor", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the floor");
    let stdout = child.stdout.take().unwrap();
    let floor = Floor(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).expect("the floor's `listening` line");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (floor, addr)
}

/// Runs the binary to completion (it bounds itself with `--timeout`); stdout as JSON.
fn run(args: &[&str]) -> (bool, serde_json::Value) {
    let output = bench().args(args).output().expect("run stompbox-bench");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    (output.status.success(), json)
}

#[test]
fn fanout_over_the_floor_prints_one_passing_json_object() {
    let (_floor, addr) = floor();
    let url = format!("ws://{addr}/");
    let (success, json) = run(&[
        "fanout",
        "--url",
        &url,
        "--raw",
        "--publishers",
        "1",
        "--subscribers",
        "2",
        "--body",
        "64",
        "--messages",
        "100",
        "--label",
        "cli-test",
        "--timeout",
        "20",
    ]);
    assert!(success, "{json}");
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["scenario"], "fanout");
    assert_eq!(json["label"], "cli-test");
    assert_eq!(json["sent"], 100);
    assert_eq!(json["expected"], 200);
    assert_eq!(json["delivered"], 200);
    assert_eq!(json["lost"], 0);
    for key in [
        "url",
        "publishers",
        "subscribers",
        "body",
        "rate",
        "duplicates",
        "out_of_order",
        "error",
        "elapsed_s",
        "deliveries_per_s",
        "messages_per_s",
        "latency_us",
        "broker_cpu_s",
        "broker_cpu_per_s",
        "broker_rss_kib",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    for key in ["p50", "p99", "p999", "max"] {
        assert!(json["latency_us"][key].is_number(), "{key}: {json}");
    }
}

#[test]
fn connections_to_the_floor_reports_its_keys() {
    let (floor, addr) = floor();
    let url = format!("ws://{addr}/");
    let pid = floor.0.id().to_string();
    let (success, json) = run(&[
        "connections",
        "--url",
        &url,
        "--raw",
        "--count",
        "10",
        "--sources",
        "2",
        "--settle",
        "0",
        "--pid",
        &pid,
        "--timeout",
        "20",
    ]);
    assert!(success, "{json}");
    assert_eq!(json["connected"], 10, "{json}");
    for key in [
        "count",
        "connect_s",
        "connects_per_s",
        "rss_before_kib",
        "rss_after_kib",
        "rss_per_conn_kib",
    ] {
        assert!(!json[key].is_null(), "{key}: {json}");
    }
}

#[test]
fn a_failed_run_exits_non_zero_with_ok_false() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{addr}/ws");
    let (success, json) = run(&[
        "fanout",
        "--url",
        &url,
        "--messages",
        "1",
        "--timeout",
        "10",
    ]);
    assert!(!success);
    assert_eq!(json["ok"], false);
    assert!(json["error"].is_string(), "{json}");
}
