//! The pipe round trip: what writing a line to a child's stdin and reading a line back from its
//! stdout costs this driver on this machine, with no engine in between. A child that echoes
//! each line (`cat`) is driven exactly as the engine is: one line written on schedule, at the
//! run's pace, with [`crate::run`]'s stamps (just before the write, just after the line is read
//! by a reader thread on the child's stdout). Subtracted from the engine's line → `order_filled`
//! latency, what is left is the engine's.
//!
//! In a paced run with a baseline its blocks go between the engine's blocks (the engine is
//! paused), so both are measured over the same minutes of the machine.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A command line of the engine's length, so both pipes carry about as many bytes in.
const LINE: &[u8] = b"buy BTCUSDT 0.00123\n";

/// Unmeasured round trips first (the child's start-up, first touches).
const WARM_UP: usize = 20;

/// The echoing child and what it measured.
pub struct Echo {
    child: Child,
    stdin: Option<ChildStdin>,
    reads: mpsc::Receiver<Instant>,
    gap: Duration,
    /// Microseconds per round trip, in order.
    pub rtt: Vec<u64>,
    pub blocks: usize,
}

impl Echo {
    /// Starts `cat` with piped stdin and stdout; lines are written one every `1 / rate` s.
    pub fn start(rate: f64) -> Result<Echo, String> {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting cat for the pipe round trip: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, reads) = mpsc::channel();
        // The same reader as the engine's events: a buffered `read_line`, stamped after it.
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut line = String::with_capacity(1024);
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(Instant::now()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let mut echo = Echo { stdin: child.stdin.take(), child, reads, gap, rtt: Vec::new(), blocks: 0 };
        echo.send(WARM_UP)?;
        Ok(echo)
    }

    /// `n` round trips at the run's pace, measured.
    pub fn paced_block(&mut self, n: usize) -> Result<(), String> {
        self.blocks += 1;
        let rtt = self.send(n)?;
        self.rtt.extend(rtt);
        Ok(())
    }

    /// Writes `n` lines on schedule, then pairs each with its echo.
    fn send(&mut self, n: usize) -> Result<Vec<u64>, String> {
        let stdin = self.stdin.as_mut().ok_or("the echo's stdin is closed")?;
        let start = Instant::now();
        let mut written = Vec::with_capacity(n);
        for i in 0..n {
            let due = start + self.gap * i as u32;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            written.push(Instant::now());
            stdin.write_all(LINE).map_err(|e| format!("writing to cat: {e}"))?;
        }
        written
            .into_iter()
            .map(|at| {
                let read = self.reads.recv_timeout(Duration::from_secs(5)).map_err(|_| "cat did not echo a line")?;
                Ok(read.saturating_duration_since(at).as_micros() as u64)
            })
            .collect()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_written_comes_back_with_its_round_trip() {
        let mut echo = Echo::start(1000.0).expect("cat");
        echo.paced_block(5).unwrap();
        assert_eq!(echo.rtt.len(), 5);
        assert_eq!(echo.blocks, 1);
    }
}
