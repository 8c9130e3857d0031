//! Driving the processes: the exchange server, the engine (stdin writer, stdout event reader,
//! stderr tail), the resident-memory sampler and the idle CPU measurement.

use crate::args::{Args, Setup};
use crate::workload::Workload;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Stages carried by every `order_filled` event (`stages_us`), in this order.
pub const FILL_STAGES: [&str; 6] = ["intake", "sign", "round_trip", "verify_query", "verify", "total"];

/// Events that mean something went wrong (an order not verified in full, or a protection lost).
const PROBLEM_EVENTS: [&str; 10] = [
    "error",
    "order_rejected",
    "order_failed",
    "order_unknown",
    "order_partially_filled",
    "stop_loss_failed",
    "emergency_exit",
    "rate_limited",
    "circuit_breaker",
    "position_dust",
];

/// Lines of stderr kept for the report.
const TAIL: usize = 20;

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
fn terminate(child: &mut Child) {
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

fn drain(from: impl Read, tail: Option<Arc<Mutex<VecDeque<String>>>>) {
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

/// One resident-memory sample.
#[derive(Debug, Clone, Copy)]
pub struct MemSample {
    /// Seconds since the engine was started.
    pub at_s: f64,
    /// Orders verified so far.
    pub verified: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// CPU used by the idle engine.
#[derive(Debug, Clone)]
pub struct Idle {
    pub secs: f64,
    /// utime + stime (/proc/PID/stat), milliseconds.
    pub cpu_ms: f64,
    /// Time on a CPU from /proc/PID/schedstat (nanosecond clock), milliseconds, when available.
    pub sched_ms: Option<f64>,
    /// Per thread: name and on-CPU milliseconds (schedstat, else utime+stime).
    pub threads: Vec<(String, f64)>,
}

/// Everything the engine run produced.
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

/// What the stdout reader hands back.
#[derive(Default)]
struct Events {
    fills: Vec<[u64; 6]>,
    /// When each `order_filled` line was read.
    fill_reads: Vec<Instant>,
    /// Each `order_filled`'s `ts` and the wall clock when it was read, microseconds of the day.
    fill_ts: Vec<(u64, u64)>,
    quote_ages: Vec<u64>,
    last_fill: Option<Instant>,
    counts: BTreeMap<String, u64>,
    problem_count: u64,
    problems: Vec<String>,
    stats: Option<Value>,
}

/// The event name of a JSON line, without parsing the whole line.
pub fn event_name(line: &str) -> Option<&str> {
    let start = line.find("\"event\":\"")? + 9;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The wall clock now, microseconds since midnight UTC.
fn wall_micros_of_day() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_micros() % 86_400_000_000) as u64
}

/// An event's `ts` (`…THH:MM:SS.ffffffZ`), microseconds since midnight UTC.
pub fn ts_micros_of_day(line: &str) -> Option<u64> {
    let start = line.find("\"ts\":\"")? + 6;
    let ts = line.get(start..start + 27)?;
    let field = |a: usize, b: usize| ts.get(a..b)?.parse::<u64>().ok();
    let (h, m, s, us) = (field(11, 13)?, field(14, 16)?, field(17, 19)?, field(20, 26)?);
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + us)
}

/// The `stages_us` object of an `order_filled` line, in [`FILL_STAGES`] order.
pub fn fill_stages(line: &str) -> Option<[u64; 6]> {
    let start = line.find("\"stages_us\":")? + 12;
    let len = line[start..].find('}')? + 1;
    let map: serde_json::Map<String, Value> = serde_json::from_str(&line[start..start + len]).ok()?;
    let mut out = [0u64; 6];
    for (slot, name) in out.iter_mut().zip(FILL_STAGES) {
        *slot = map.get(name)?.as_u64()?;
    }
    Some(out)
}

fn read_events(stdout: ChildStdout, ready: mpsc::Sender<Instant>, verified: Arc<AtomicU64>) -> Events {
    let mut ev = Events::default();
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = String::with_capacity(1024);
    let mut ready = Some(ready);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let now = Instant::now();
        let Some(name) = event_name(&line) else {
            ev.problem_count += 1;
            if ev.problems.len() < TAIL {
                ev.problems.push(format!("unparsed output: {}", line.trim_end()));
            }
            continue;
        };
        *ev.counts.entry(name.to_string()).or_default() += 1;
        match name {
            "order_filled" => match fill_stages(&line) {
                Some(stages) => {
                    ev.fills.push(stages);
                    ev.fill_reads.push(now);
                    if let Some(ts) = ts_micros_of_day(&line) {
                        ev.fill_ts.push((ts, wall_micros_of_day()));
                    }
                    ev.quote_ages.extend(crate::quote_age::age_of(&line));
                    ev.last_fill = Some(now);
                    verified.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    ev.problem_count += 1;
                    if ev.problems.len() < TAIL {
                        ev.problems.push(format!("order_filled without stages_us: {}", line.trim_end()));
                    }
                }
            },
            "ready" => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(now);
                }
            }
            "stats" => ev.stats = serde_json::from_str(&line).ok(),
            "order_cancelled" if line.contains("released for a sell") => {}
            other if PROBLEM_EVENTS.contains(&other) || other == "order_cancelled" => {
                ev.problem_count += 1;
                if ev.problems.len() < TAIL {
                    ev.problems.push(line.trim_end().to_string());
                }
            }
            _ => {}
        }
    }
    ev
}

fn read_proc(pid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
}

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM).
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime in clock ticks from a /proc stat line.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(3) ... utime(14) stime(15), 1-based → index 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// On-CPU nanoseconds from a schedstat line.
fn sched_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// CPU per thread: (tid, name, ticks, schedstat ns).
fn thread_cpu(pid: u32) -> BTreeMap<String, (String, u64, Option<u64>)> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let tid = entry.file_name().to_string_lossy().to_string();
            let base = format!("task/{tid}");
            let name = read_proc(pid, &format!("{base}/comm")).unwrap_or_default().trim().to_string();
            let ticks = read_proc(pid, &format!("{base}/stat")).and_then(|s| stat_ticks(&s)).unwrap_or(0);
            let ns = read_proc(pid, &format!("{base}/schedstat")).and_then(|s| sched_ns(&s));
            out.insert(tid, (name, ticks, ns));
        }
    }
    out
}

fn measure_idle(pid: u32, secs: u64) -> Idle {
    let hz = clock_ticks_per_s();
    let t0 = read_proc(pid, "stat").and_then(|s| stat_ticks(&s)).unwrap_or(0);
    let s0 = read_proc(pid, "schedstat").and_then(|s| sched_ns(&s));
    let th0 = thread_cpu(pid);
    let start = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    let elapsed = start.elapsed().as_secs_f64();
    let t1 = read_proc(pid, "stat").and_then(|s| stat_ticks(&s)).unwrap_or(0);
    let s1 = read_proc(pid, "schedstat").and_then(|s| sched_ns(&s));
    let th1 = thread_cpu(pid);
    let mut threads: Vec<(String, f64)> = th1
        .iter()
        .map(|(tid, (name, ticks, ns))| {
            let (t_before, ns_before) = th0.get(tid).map(|(_, t, n)| (*t, *n)).unwrap_or((0, Some(0)));
            let ms = match (ns, ns_before) {
                (Some(a), Some(b)) => a.saturating_sub(b) as f64 / 1e6,
                _ => ticks.saturating_sub(t_before) as f64 * 1000.0 / hz,
            };
            (format!("{name} ({tid})"), ms)
        })
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    Idle {
        secs: elapsed,
        cpu_ms: t1.saturating_sub(t0) as f64 * 1000.0 / hz,
        sched_ms: match (s0, s1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6),
            _ => None,
        },
        threads,
    }
}

/// Wall time and the host's steal time over some stretches of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    pub secs: f64,
    /// Time the hypervisor ran something else on our vCPUs, summed over them (`/proc/stat`
    /// steal, in USER_HZ ticks turned into ms); `None` where the kernel does not report it.
    pub steal_ms: Option<f64>,
}

impl Window {
    /// Runs `f`, adding its stretch to the window.
    pub fn measure(&mut self, f: impl FnOnce()) {
        let start = window_start();
        f();
        self.add(start);
    }

    fn add(&mut self, from: Mark) {
        self.secs += from.at.elapsed().as_secs_f64();
        self.steal_ms = match (from.steal_ticks, steal_ticks()) {
            (Some(a), Some(b)) => {
                Some(self.steal_ms.unwrap_or(0.0) + b.saturating_sub(a) as f64 * 1000.0 / clock_ticks_per_s())
            }
            _ => None,
        };
    }
}

/// The start of a stretch measured into a [`Window`].
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    steal_ticks: Option<u64>,
}

fn window_start() -> Mark {
    Mark { at: Instant::now(), steal_ticks: steal_ticks() }
}

/// The machine's steal time so far, in USER_HZ ticks: the 8th value of /proc/stat's `cpu` line.
pub fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    steal_of(stat.lines().next()?)
}

fn steal_of(cpu_line: &str) -> Option<u64> {
    let mut fields = cpu_line.split_whitespace();
    (fields.next()? == "cpu").then_some(())?;
    fields.nth(7)?.parse().ok()
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
    fn events_are_recognised_without_a_full_parse() {
        let line = r#"{"avg_price":"150","event":"order_filled","latency_ms":0.5,"stages_us":{"intake":77,"round_trip":36,"sign":0,"total":508,"verify":13,"verify_query":14},"status":"FILLED"}"#;
        assert_eq!(event_name(line), Some("order_filled"));
        assert_eq!(fill_stages(line), Some([77, 0, 36, 14, 13, 508]));
        assert_eq!(event_name("not json"), None);
        assert_eq!(fill_stages(r#"{"event":"order_filled"}"#), None);
    }

    #[test]
    fn an_events_ts_is_read_as_microseconds_of_the_day() {
        let line = r#"{"event":"order_filled","ts":"2026-12-06T01:02:03.000456Z"}"#;
        assert_eq!(ts_micros_of_day(line), Some(3_723_000_456));
        assert_eq!(ts_micros_of_day(r#"{"event":"x"}"#), None);
    }

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

    #[test]
    fn steal_is_the_eighth_value_of_the_cpu_line() {
        assert_eq!(steal_of("cpu  2255 34 2290 22625563 6290 127 456 731 0 0"), Some(731));
        assert_eq!(steal_of("cpu0 2255 34 2290 22625563 6290 127 456 731 0 0"), None);
        assert_eq!(steal_of("cpu  2255 34 2290"), None);
    }

    #[test]
    fn proc_fields_are_read() {
        let status = "Name:\tgenesis\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(status_kb(status, "VmHWM:"), Some(12345));
        assert_eq!(status_kb(status, "VmRSS:"), Some(12000));
        let stat = "1234 (genesis (x) y) S 1 2 3 4 5 6 7 8 9 10 25 7 0 0 20 0 9 0 100 0";
        assert_eq!(stat_ticks(stat), Some(32));
        assert_eq!(sched_ns("123456 789 10\n"), Some(123456));
    }
}
