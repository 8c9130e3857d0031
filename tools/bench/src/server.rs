//! `genesis-exchange` as a child process: started on a free port with generated keys, stopped
//! on drop; and the reader that drains a child's stderr, keeping its tail for the report.

use crate::events::TAIL;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// `genesis-exchange` on a free port, with generated keys; terminated on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
    pub args: Vec<String>,
}

impl Server {
    pub fn start(path: &Path, seed: u64, extra: &[String]) -> Result<Server, String> {
        let api_key = random_hex(32)?;
        let api_secret = random_hex(32)?;
        let mut args: Vec<String> =
            ["--port", "0", "--seed", &seed.to_string(), "--order-limit", "100000000", "--weight-limit", "100000000"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend_from_slice(extra);
        let mut child = Command::new(path)
            .args(&args)
            .arg("--api-key")
            .arg(&api_key)
            .arg("--api-secret")
            .arg(&api_secret)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", path.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // keep the pipe drained
        });
        thread::spawn(move || drain(stderr, None));
        let mut server = Server { child, url: String::new(), api_key, api_secret, args };
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "genesis-exchange printed no address within 20 s".to_string())?;
        server.url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches(['/', ',', '.']).to_string())
            .ok_or_else(|| format!("genesis-exchange's first line has no http:// address: {first}"))?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// SIGTERM (the server's contract), then SIGKILL if it is still there after 3 s.
pub(crate) fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).stderr(Stdio::null()).status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `n` random bytes from the kernel, hex.
fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn drain(from: impl Read, tail: Option<Arc<Mutex<VecDeque<String>>>>) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        if let Some(tail) = &tail {
            let mut t = tail.lock().expect("tail lock");
            if t.len() == TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}
