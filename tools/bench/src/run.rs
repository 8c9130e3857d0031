//! One engine run: starts the engine, writes the workload (paced, or in blocks interleaved with
//! the bare baseline), samples its memory, measures it idle and collects the outcome. The parts
//! it drives live beside it: `server` (genesis-exchange), `events` (the stdout reader),
//! `procfs` (memory, CPU, steal time).

use crate::args::{Args, Setup};
use crate::events::{read_events, wall_micros_of_day};
use crate::procfs::{measure_idle, read_proc, status_kb, window_start, Idle, MemSample, Window};
use crate::server::{drain, Server};
use crate::workload::Workload;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct EngineOutcome {
    pub engine_args: Vec<String>,
    /// The server's flags (keys left out).
    pub server_args: Vec<String>,
    pub sent: u64,
    /// Per verified order: the six `stages_us` values in [`FILL_STAGES`] order.
    pub fills: Vec<[u64; 6]>,
    /// What the user sees, per order of a paced run: the harness's stamp just before it wrote
    /// the line to the engine's stdin → its stamp once it read the order's `order_filled` line
    /// from stdout, microseconds. (Orders are one at a time at this pace: the n-th `order_filled`
    /// read is the n-th line's.)
    pub visible: Vec<u64>,
    /// The same orders split at the fill's event stamp (`ts`, the wall clock, taken just before
    /// its line is rendered and written): write → `ts`, and `ts` → read, microseconds.
    pub visible_split: Vec<(u64, u64)>,
    /// Per verified order: `expected_price_age_us` (see `quote_age`).
    pub quote_ages: Vec<u64>,
    pub events: BTreeMap<String, u64>,
    pub problem_count: u64,
    pub problems: Vec<String>,
    /// The `stats` reply.
    pub stats: Option<Value>,
    pub startup_ms: f64,
    /// First line written → last line written.
    pub write_s: f64,
    /// First line written → last `order_filled` read.
    pub fill_s: f64,
    /// First line written → engine exited.
    pub drain_s: f64,
    /// The engine's windows of the load: written until verified (paused blocks excluded).
    pub engine_window: Window,
    /// The baseline blocks sent between the engine's (empty when not interleaved).
    pub baseline_window: Window,
    pub mem: Vec<MemSample>,
    pub vm_hwm_kb: u64,
    pub idle: Option<Idle>,
    pub exit: String,
    pub exit_ok: bool,
    pub write_error: Option<String>,
    pub stderr_tail: Vec<String>,
}

impl EngineOutcome {
    pub fn verified(&self) -> u64 {
        self.fills.len() as u64
    }
    /// Orders written but not verified as filled.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.verified())
    }
    pub fn healthy(&self) -> bool {
        self.exit_ok && self.lost() == 0 && self.problem_count == 0 && self.write_error.is_none()
    }
}

/// The paced load in blocks, with the bare baseline's blocks in between (see [`run_engine`]).
pub struct Interleave<'a> {
    pub blocks: usize,
    /// Sends one baseline block; called with the engine paused.
    pub between: &'a mut dyn FnMut(),
}

/// Lets the engine finish what an order leaves behind (its stop-loss, commits, events) before
/// it is paused.
const SETTLE: Duration = Duration::from_millis(20);
/// After the engine resumes: it reads the stream's pushes of the baseline's orders (ignored,
/// they are not its own) before its next block starts.
const CATCH_UP: Duration = Duration::from_millis(100);

/// `n` lines in `blocks` ranges of even length (a buy and its sell stay together).
pub fn block_ranges(n: usize, blocks: usize) -> Vec<std::ops::Range<usize>> {
    let blocks = blocks.max(1);
    let pairs = n.div_ceil(2);
    let per = pairs.div_ceil(blocks).max(1) * 2;
    (0..n).step_by(per).map(|start| start..(start + per).min(n)).collect()
}

/// SIGSTOP / SIGCONT: the engine does nothing while the baseline's block runs, and is always
/// resumed, even if the harness fails in between.
struct Paused(u32);

impl Paused {
    fn pause(pid: u32) -> Paused {
        signal(pid, libc::SIGSTOP);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers; a wrong pid is an error return, not UB.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits until `verified` reaches `sent` (every line written so far is a verified order), up
/// to `limit`.
fn wait_verified(verified: &AtomicU64, sent: u64, limit: Duration) {
    let until = Instant::now() + limit;
    while verified.load(Ordering::Relaxed) < sent && Instant::now() < until {
        thread::sleep(Duration::from_micros(200));
    }
}

/// A scratch directory for a database (the engine's, the baseline simulator's), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = std::env::temp_dir().join(format!("genesis-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The engine's flags for this run (keys go through the environment, never the command line).
pub fn engine_args(args: &Args, db: &Path, server: Option<&Server>) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--exchange".into(),
        args.exchange.as_str().into(),
        "--db".into(),
        db.display().to_string(),
        "--no-confirm".into(),
        "--json".into(),
        "--tilt".into(),
        "off".into(),
        "--seed".into(),
        args.seed.to_string(),
        "--pin".into(),
        args.pin.as_str().into(),
        "--spin-us".into(),
        args.spin_us.to_string(),
        // Every round trip pays fees: without this the default 25 USD daily loss limit (SNIPER)
        // would stop entries after a few thousand orders.
        "--daily-loss-limit".into(),
        "1000000000".into(),
    ];
    if let Some(server) = server {
        v.push("--base-url".into());
        v.push(server.url.clone());
        v.push("--transport".into());
        v.push(args.transport.clone());
        v.extend(crate::quote_age::engine_flags(args));
    }
    v
}

/// Starts the engine, optionally leaves it idle, writes the order stream, reads every event
/// until the engine exits.
///
/// With `interleave` (a paced load and a baseline), the lines go in blocks: each block is
/// written on schedule, every order in it verified, then the engine is paused (SIGSTOP) while
/// one baseline block runs, and resumed. The two are measured over the same minutes, so the
/// machine's drift does not pass for overhead; the pauses are left out of the throughput.
pub fn run_engine(
    args: &Args,
    setup: &Setup,
    server: Option<&Server>,
    mut interleave: Option<Interleave<'_>>,
) -> Result<EngineOutcome, String> {
    let scratch = Scratch::new()?;
    let db = scratch.0.join("bench.db");
    let engine_args = engine_args(args, &db, server);
    let script = Workload::script(args.seed, args.orders);
    let lines: Vec<&str> = script.split_inclusive('\n').collect();

    let mut cmd = Command::new(&setup.engine);
    cmd.args(&engine_args).env("RUST_LOG", "warn").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(server) = server {
        cmd.env("BINANCE_API_KEY", &server.api_key).env("BINANCE_API_SECRET", &server.api_secret);
    } else {
        cmd.env_remove("BINANCE_API_KEY").env_remove("BINANCE_API_SECRET");
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", setup.engine.display()))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");

    let verified = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = {
        let verified = Arc::clone(&verified);
        thread::spawn(move || read_events(stdout, ready_tx, verified))
    };
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_thread = {
        let tail = Arc::clone(&tail);
        thread::spawn(move || drain(stderr, Some(tail)))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, verified) = (Arc::clone(&stop), Arc::clone(&verified));
        let every = Duration::from_millis(args.sample_ms.max(1));
        thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(status) = read_proc(pid, "status") else { break };
                if let (Some(rss_kb), Some(hwm_kb)) = (status_kb(&status, "VmRSS:"), status_kb(&status, "VmHWM:")) {
                    samples.push(MemSample {
                        at_s: spawned.elapsed().as_secs_f64(),
                        verified: verified.load(Ordering::Relaxed),
                        rss_kb,
                        hwm_kb,
                    });
                }
                thread::sleep(every);
            }
            samples
        })
    };

    let server_args = server.map(|s| s.args.clone()).unwrap_or_default();
    let mut out = EngineOutcome { engine_args, server_args, ..EngineOutcome::default() };
    let ready_at = match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(at) => at,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            stop.store(true, Ordering::Relaxed);
            let _ = stderr_thread.join();
            let tail: Vec<String> = tail.lock().expect("tail lock").iter().cloned().collect();
            return Err(format!("the engine did not print `ready` within 30 s; stderr:\n{}", tail.join("\n")));
        }
    };
    out.startup_ms = ready_at.duration_since(spawned).as_secs_f64() * 1e3;

    if args.idle_secs > 0 {
        out.idle = Some(measure_idle(pid, args.idle_secs));
    }

    // The load.
    let load_start = window_start();
    let t0 = load_start.at;
    let mut sent = 0u64;
    // Time the engine spent paused, and when each pause ended.
    let mut pauses: Vec<(Instant, Duration)> = Vec::new();
    let mut engine_window = Window::default();
    let mut baseline_window = Window::default();
    // Stamped just before each paced line is written (see `EngineOutcome::visible`).
    let mut written: Vec<Instant> = Vec::with_capacity(if args.rate > 0.0 { lines.len() } else { 0 });
    let mut written_wall: Vec<u64> = Vec::with_capacity(written.capacity());
    let write_result: std::io::Result<()> = (|| {
        if args.rate > 0.0 {
            let blocks = interleave.as_ref().map_or(1, |i| i.blocks);
            for range in block_ranges(lines.len(), blocks) {
                let block_start = window_start();
                // When the next line would have been due: the pause starts there.
                let next_due = block_start.at + Duration::from_secs_f64(range.len() as f64 / args.rate);
                for (i, line) in lines[range].iter().enumerate() {
                    let due = block_start.at + Duration::from_secs_f64(i as f64 / args.rate);
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    written_wall.push(wall_micros_of_day());
                    written.push(Instant::now());
                    stdin.write_all(line.as_bytes())?;
                    sent += 1;
                }
                if let Some(interleave) = interleave.as_mut() {
                    wait_verified(&verified, sent, Duration::from_secs(10));
                    engine_window.add(block_start);
                    thread::sleep(SETTLE);
                    {
                        let _paused = Paused::pause(pid);
                        let bare = window_start();
                        (interleave.between)();
                        baseline_window.add(bare);
                    }
                    thread::sleep(CATCH_UP);
                    let resumed = Instant::now();
                    pauses.push((resumed, resumed.saturating_duration_since(next_due)));
                }
            }
        } else {
            // One write of the whole stream: the pipe and the engine's reader set the pace.
            stdin.write_all(script.as_bytes())?;
            sent = lines.len() as u64;
        }
        Ok(())
    })();
    let paused_before = |t: Instant| -> Duration { pauses.iter().filter(|(end, _)| *end <= t).map(|(_, d)| *d).sum() };
    let written_at = Instant::now();
    out.write_s = (written_at - t0 - paused_before(written_at)).as_secs_f64();
    if let Err(e) = write_result {
        out.write_error = Some(format!("writing to the engine after {sent} orders: {e}"));
    }
    out.sent = sent;
    // `stats` is answered after every write before it; end of input then finishes the engine.
    let _ = stdin.write_all(b"stats\n");
    drop(stdin);

    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let exited_at = Instant::now();
    out.drain_s = (exited_at - t0 - paused_before(exited_at)).as_secs_f64();
    if interleave.is_none() {
        engine_window.add(load_start);
    }
    out.engine_window = engine_window;
    out.baseline_window = baseline_window;
    stop.store(true, Ordering::Relaxed);
    out.mem = sampler.join().unwrap_or_default();
    out.vm_hwm_kb = out.mem.iter().map(|s| s.hwm_kb).max().unwrap_or(0);
    // Samples before `ready` catch the process between fork and exec, or half loaded.
    let ready_s = out.startup_ms / 1e3;
    out.mem.retain(|s| s.at_s >= ready_s);
    let events = reader.join().map_err(|_| "the event reader panicked".to_string())?;
    let _ = stderr_thread.join();
    out.stderr_tail = tail.lock().expect("tail lock").iter().cloned().collect();
    (out.exit, out.exit_ok) = match status {
        Some(s) => (s.to_string(), s.success()),
        None => (format!("killed after the {} s timeout", args.timeout_secs), false),
    };
    out.fill_s = events
        .last_fill
        .map(|t| t.saturating_duration_since(t0).saturating_sub(paused_before(t)).as_secs_f64())
        .unwrap_or(0.0);
    out.visible = written
        .iter()
        .zip(&events.fill_reads)
        .map(|(w, r)| r.saturating_duration_since(*w).as_micros() as u64)
        .collect();
    out.visible_split = written_wall
        .iter()
        .zip(&events.fill_ts)
        .map(|(w, (ts, read))| (ts.saturating_sub(*w), read.saturating_sub(*ts)))
        .collect();
    out.fills = events.fills;
    out.quote_ages = events.quote_ages;
    out.events = events.counts;
    out.problem_count = events.problem_count;
    out.problems = events.problems;
    out.stats = events.stats;
    drop(scratch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_line_once_and_keep_each_buy_with_its_sell() {
        for (n, blocks) in [(10_000, 10), (5_000, 10), (7, 3), (10, 10), (2, 1), (1, 4)] {
            let ranges = block_ranges(n, blocks);
            assert!(ranges.len() <= blocks, "{n} lines in {blocks}: {ranges:?}");
            assert_eq!(ranges.first().map(|r| r.start), Some(0));
            assert_eq!(ranges.last().map(|r| r.end), Some(n));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(pair[0].len() % 2, 0, "{n} lines in {blocks}: {ranges:?}");
            }
        }
        assert_eq!(block_ranges(10_000, 10).len(), 10);
        assert_eq!(block_ranges(10_000, 10)[0], 0..1000);
    }
}
