//! Drives the real `genesis` binary through stdin and reads its JSON events and database.

#![allow(dead_code)]

pub mod server;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn engine_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genesis"))
}

/// A temporary directory with a database path in it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir { dir: tempfile::tempdir().expect("temp dir") }
    }
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("genesis.db")
    }
    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open db")
    }
}

/// The outcome of a piped session.
pub struct Session {
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

impl Session {
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }
    pub fn first(&self, kind: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == kind)
            .unwrap_or_else(|| panic!("no '{kind}' event in:\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
    pub fn kinds(&self) -> Vec<String> {
        self.events.iter().map(|e| e["event"].as_str().unwrap_or("?").to_string()).collect()
    }
}

/// Runs the engine with `args` (plus --json and --db), pipes `input`, waits for exit.
pub fn run_piped(work: &Workdir, args: &[&str], input: &str) -> Session {
    run_piped_env(work, args, input, &[])
}

/// As `run_piped`, with environment variables (API keys).
pub fn run_piped_env(work: &Workdir, args: &[&str], input: &str, env: &[(&str, &str)]) -> Session {
    let mut child = Command::new(engine_bin())
        .args(["--json", "--db"])
        .arg(work.db())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn genesis");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = wait_with_timeout(child, Duration::from_secs(120));
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let events = parse_events(&stdout);
    Session { events, stdout, stderr, status: output.status }
}

fn wait_with_timeout(child: Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for genesis"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("genesis did not exit within {limit:?}");
        }
    }
}

pub fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
        .collect()
}

/// An engine kept running, for conversations: write a line, wait for an event.
pub struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Live {
    pub fn start(work: &Workdir, args: &[&str]) -> Live {
        Self::start_bin(&engine_bin(), &work.db(), args)
    }

    pub fn start_bin(bin: &Path, db: &Path, args: &[&str]) -> Live {
        Self::start_env(bin, db, args, &[])
    }

    pub fn start_env(bin: &Path, db: &Path, args: &[&str], env: &[(&str, &str)]) -> Live {
        let mut child = Command::new(bin)
            .args(["--json", "--db"])
            .arg(db)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn genesis");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut live = Live { child, stdin, events: rx, seen: Vec::new() };
        // A start that meets the exchange's rate limit waits it out (up to a minute).
        live.wait_for("ready", Duration::from_secs(90));
        live
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to genesis");
        stdin.flush().expect("flush");
    }

    /// Waits for the next event of `kind` (events before it are kept in `seen`).
    pub fn wait_for(&mut self, kind: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if event["event"] == kind {
                        return event;
                    }
                }
                Err(_) => panic!("no '{kind}' event within {limit:?}; seen: {:?}", self.seen),
            }
        }
    }

    /// Closes stdin and waits for a clean exit.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush or finish anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(event) = self.events.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(event);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("genesis did not exit after end of input");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one text column of the orders table for an order.
pub fn order_field(conn: &rusqlite::Connection, client_order_id: &str, column: &str) -> Option<String> {
    conn.query_row(
        &format!("SELECT CAST({column} AS TEXT) FROM orders WHERE client_order_id = ?1"),
        [client_order_id],
        |r| r.get(0),
    )
    .expect("order row")
}

pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count query")
}

pub fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().expect("decimal")
}
