//! Statistics, targets, and the report in its three forms: the table (report.txt and stdout),
//! JSON (report.json, `--json`) and the latency plot (latency.svg).

use crate::args::{Args, ExchangeKind, Setup};
use crate::baseline::Baseline;
use crate::plot::{self, Series};
use crate::run::{EngineOutcome, Window, FILL_STAGES};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// Known when every sample is (not for distributions taken from the engine's histograms).
    pub mean: Option<f64>,
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` of the
/// samples at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Dist {
    pub fn of(values: &[u64]) -> Option<Dist> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Some(Dist::of_sorted(&sorted))
    }

    pub fn of_sorted(sorted: &[u64]) -> Dist {
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        Dist {
            count: sorted.len() as u64,
            min: sorted[0],
            p50: percentile(sorted, 0.5),
            p90: percentile(sorted, 0.9),
            p99: percentile(sorted, 0.99),
            p999: percentile(sorted, 0.999),
            max: sorted[sorted.len() - 1],
            mean: Some(sum as f64 / sorted.len() as f64),
        }
    }

    /// A stage of the engine's `stats` reply (`{count,min,p50,p90,p99,p999,max}`).
    pub fn of_stats(v: &Value) -> Option<Dist> {
        let f = |k: &str| v.get(k).and_then(Value::as_u64);
        Some(Dist {
            count: f("count")?,
            min: f("min")?,
            p50: f("p50")?,
            p90: f("p90")?,
            p99: f("p99")?,
            p999: f("p999")?,
            max: f("max")?,
            mean: None,
        })
    }

    pub fn json(&self) -> Value {
        json!({"count": self.count, "min": self.min, "p50": self.p50, "p90": self.p90, "p99": self.p99,
               "p999": self.p999, "max": self.max, "mean": self.mean.map(|m| (m * 10.0).round() / 10.0)})
    }

    /// The percentile curve through the summary points (for the plot).
    pub fn points(&self) -> Vec<(f64, f64)> {
        [(self.min, 0.0), (self.p50, 0.5), (self.p90, 0.9), (self.p99, 0.99), (self.p999, 0.999)]
            .into_iter()
            .map(|(v, p)| (v as f64, p))
            .collect()
    }
}

/// One row of the latency table.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: &'static str,
    pub label: &'static str,
    pub dist: Dist,
    /// Every sample, sorted, when the harness saw them (else the summary from `stats`).
    pub sorted: Option<Vec<u64>>,
}

/// A target from the issue, next to what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub limit: String,
    pub measured: String,
    /// `None`: not judged by this run (say, throughput when the offered rate is below the target).
    pub pass: Option<bool>,
}

pub struct Report {
    pub text: String,
    pub json: Value,
    pub svg: String,
}

/// Human label of each stage of `stages_us`.
fn label(key: &str) -> &'static str {
    match key {
        "intake" => "intake (line read → request ready)",
        "sign" => "signing the placement",
        "round_trip" => "exchange round trip (placement)",
        "verify_query" => "verification query",
        "verify" => "verification hop (→ verified)",
        "total" => "TOTAL line read → verified fill",
        _ => "?",
    }
}

/// Rows of the latency table: the six stages of every fill, the derived wait for exchange I/O,
/// and stop-loss placement and persistence commit from the engine's `stats`.
pub fn rows(engine: &EngineOutcome) -> Vec<Row> {
    fn exact(key: &'static str, label: &'static str, mut values: Vec<u64>) -> Option<Row> {
        values.sort_unstable();
        (!values.is_empty()).then(|| Row { key, label, dist: Dist::of_sorted(&values), sorted: Some(values) })
    }
    let column = |i: usize| -> Vec<u64> { engine.fills.iter().map(|f| f[i]).collect() };
    let mut rows = Vec::new();
    for (i, key) in FILL_STAGES.iter().enumerate().take(5) {
        if *key == "round_trip" {
            // ready → sent: the queue to exchange I/O and signing; the rest of the total.
            let wait = engine.fills.iter().map(|f| f[5].saturating_sub(f[0] + f[2] + f[3] + f[4])).collect();
            rows.extend(exact("queue_and_sign", "queue to exchange I/O + signing", wait));
        }
        rows.extend(exact(key, label(key), column(i)));
    }
    let stats = engine.stats.as_ref().and_then(|s| s.get("latency_us"));
    for (key, label) in
        [("stop_loss", "stop-loss placement (engine stats)"), ("persist_commit", "persistence commit (engine stats)")]
    {
        if let Some(dist) = stats.and_then(|s| s.get(key)).and_then(Dist::of_stats) {
            rows.push(Row { key, label, dist, sorted: None });
        }
    }
    rows.extend(exact("total", label("total"), column(5)));
    rows
}

fn fmt_mean(m: Option<f64>) -> String {
    m.map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into())
}

fn table_row(out: &mut String, label: &str, d: &Dist) {
    let _ = writeln!(
        out,
        "  {label:<40} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        d.count,
        d.min,
        d.p50,
        d.p90,
        d.p99,
        d.p999,
        d.max,
        fmt_mean(d.mean)
    );
}

fn table_head(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "  {title:<40} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
}

/// The `--flag value` form of the run's configuration.
fn flags(args: &Args) -> String {
    let mut f = format!(
        "--exchange {} --orders {} --rate {} --seed {} --baseline {} --blocks {} --idle-secs {} --pin {} --spin-us {} --sample-ms {}",
        args.exchange.as_str(),
        args.orders,
        args.rate,
        args.seed,
        args.baseline,
        args.blocks,
        args.idle_secs,
        args.pin.as_str(),
        args.spin_us,
        args.sample_ms
    );
    let _ = write!(f, " --out {}", args.out.display());
    if args.json {
        f.push_str(" --json");
    }
    f
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    json!({"cores": cores, "cpu": cpu, "kernel": kernel})
}

/// Percent of one core.
fn window_json(w: &Window) -> Value {
    json!({"secs": w.secs, "steal_ms": w.steal_ms})
}

/// How much of the engine's and the baseline's time the host took for something else: a run
/// whose windows differ much here compares two different machines.
pub fn steal_line(engine: &EngineOutcome) -> String {
    let part = |name: &str, w: &Window| match w.steal_ms {
        Some(ms) if w.secs > 0.0 => format!("{name} {ms:.0} ms in {:.1} s ({:.1} ms/s)", w.secs, ms / w.secs),
        _ => format!("{name} not measured"),
    };
    format!(
        "host steal (the hypervisor running something else on our vCPUs): {}; {}",
        part("engine's windows", &engine.engine_window),
        part("baseline's", &engine.baseline_window)
    )
}

fn core_percent(ms: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        ms / (secs * 1000.0) * 100.0
    } else {
        0.0
    }
}

/// What the user sees, from the harness's own stamps: line written → `order_filled` read, with
/// the pipe round trip (the same driver and pace, a child echoing lines) beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visible {
    pub seen: Dist,
    pub pipe: Dist,
}

impl Visible {
    pub fn of(engine: &EngineOutcome, pipe: &[u64]) -> Option<Visible> {
        Some(Visible { seen: Dist::of(&engine.visible)?, pipe: Dist::of(pipe)? })
    }
    /// The engine's part of what the user sees at p50: minus the pipe round trip's p50.
    pub fn p50(&self) -> i64 {
        self.seen.p50 as i64 - self.pipe.p50 as i64
    }
    pub fn p99(&self) -> i64 {
        self.seen.p99 as i64 - self.pipe.p99 as i64
    }
}

/// The flood's throughput target (issue 21), orders/s.
const FLOOD_TARGET: f64 = 20_000.0;

/// The targets of issue 21, judged on what the user sees (a paced run) or on the flood (`--rate
/// 0`); `pair` is the bare client's placement + query at the same pace.
pub fn targets(
    args: &Args,
    engine: &EngineOutcome,
    visible: Option<&Visible>,
    pair: Option<&Dist>,
    throughput: f64,
) -> Vec<Target> {
    let mut t = Vec::new();
    let mut add = |name: &str, limit: &str, measured: String, pass: Option<bool>| {
        t.push(Target { name: name.into(), limit: limit.into(), measured, pass });
    };
    if let Some(v) = visible {
        match args.exchange {
            ExchangeKind::Sim => {
                let (p50, p99) = (v.p50(), v.p99());
                add("sim: line → order_filled − pipe round trip, p50", "≤ 40 µs", format!("{p50} µs"), Some(p50 <= 40));
                add(
                    "sim: line → order_filled − pipe round trip, p99",
                    "≤ 150 µs",
                    format!("{p99} µs"),
                    Some(p99 <= 150),
                );
            }
            ExchangeKind::Binance => {
                if let Some(pair) = pair {
                    let over = v.p50() - pair.p50 as i64;
                    add(
                        "loopback: (line → order_filled − pipe) − bare place+query, p50",
                        "≤ 20 µs",
                        format!("{over} µs"),
                        Some(over <= 20),
                    );
                }
                let p99 = v.p99();
                add(
                    "loopback: line → order_filled − pipe round trip, p99",
                    "≤ 1000 µs",
                    format!("{p99} µs"),
                    Some(p99 <= 1000),
                );
            }
        }
    }
    if args.exchange == ExchangeKind::Sim {
        let name = "sim flood, persistence on, every order recorded";
        if args.rate > 0.0 {
            let note = format!("{throughput:.0} orders/s (offered {} /s: judge on a --rate 0 run)", args.rate);
            add(name, "≥ 20000 orders/s", note, None);
        } else {
            let pass = throughput >= FLOOD_TARGET;
            add(name, "≥ 20000 orders/s", format!("{throughput:.0} orders/s"), Some(pass));
        }
    }
    add(
        "orders lost (sent − verified) and problem events",
        "0 and 0",
        format!("{} and {}", engine.lost(), engine.problem_count),
        Some(engine.lost() == 0 && engine.problem_count == 0),
    );
    let hwm_bytes = engine.vm_hwm_kb * 1024;
    add(
        "peak resident memory (VmHWM)",
        "≤ 30 MB",
        format!("{:.1} MB over {} orders", hwm_bytes as f64 / 1e6, engine.sent),
        Some(hwm_bytes > 0 && hwm_bytes <= 30_000_000),
    );
    if let Some(idle) = &engine.idle {
        let ms = idle.sched_ms.unwrap_or(idle.cpu_ms).max(idle.cpu_ms);
        let pct = core_percent(ms, idle.secs);
        add(
            "idle CPU",
            "~0 (≤ 1 % of a core)",
            format!("{ms:.1} ms in {:.1} s = {pct:.3} % of a core", idle.secs),
            Some(pct <= 1.0),
        );
    }
    t
}

/// RSS at 0, 25, 50, 75 and 100 % of the verified orders (the first sample at or past each).
pub fn rss_profile(engine: &EngineOutcome) -> Vec<(u64, u64)> {
    let total = engine.verified();
    let mut out = Vec::new();
    for q in [0u64, 25, 50, 75, 100] {
        let want = total * q / 100;
        if let Some(s) = engine.mem.iter().find(|s| s.verified >= want) {
            out.push((s.verified, s.rss_kb));
        }
    }
    out
}

impl Report {
    pub fn build(args: &Args, setup: &Setup, engine: &EngineOutcome, baseline: &Baseline, pipe: &[u64]) -> Report {
        let rows = rows(engine);
        let total = rows.iter().rev().find(|r| r.key == "total").map(|r| r.dist);
        let verified = engine.verified();
        let throughput = if engine.fill_s > 0.0 { verified as f64 / engine.fill_s } else { 0.0 };
        let base_rows: Vec<(&str, Vec<u64>)> = vec![
            ("signing the placement", baseline.sign.clone()),
            ("placement (sell: cancel-replace) round trip", baseline.place.clone()),
            ("verification query round trip", baseline.query.clone()),
            ("placement + query (bare order)", baseline.pair.clone()),
            ("  the same back to back (no gap)", baseline.back_to_back.clone()),
        ];
        let pair = Dist::of(&baseline.pair);
        let visible = Visible::of(engine, pipe);
        let targets = targets(args, engine, visible.as_ref(), pair.as_ref(), throughput);
        let machine = machine();
        let rate = if args.rate > 0.0 {
            format!("{} orders/s on a schedule", args.rate)
        } else {
            "as fast as possible".into()
        };

        // ---- text ----
        let mut out = String::new();
        let _ = writeln!(out, "genesis-bench: {} orders on --exchange {}, {rate}", args.orders, args.exchange.as_str());
        let _ = writeln!(out, "\nconfiguration");
        let _ = writeln!(out, "  flags    {}", flags(args));
        let _ = writeln!(out, "  engine   {} {}", setup.engine.display(), engine.engine_args.join(" "));
        let _ = writeln!(out, "           (RUST_LOG=warn; the db is a fresh temp file, removed afterwards)");
        if args.exchange == ExchangeKind::Binance {
            let _ = writeln!(
                out,
                "  server   {} {} --api-key <generated> --api-secret <generated>",
                setup.server.display(),
                engine.server_args.join(" ")
            );
        }
        let _ = writeln!(
            out,
            "  machine  {} cores, {}, Linux {}",
            machine["cores"],
            machine["cpu"].as_str().unwrap_or("?"),
            machine["kernel"].as_str().unwrap_or("?")
        );
        let _ = writeln!(out, "  engine start-up (spawn → ready) {:.1} ms", engine.startup_ms);

        let _ = writeln!(out, "\nwhat the user sees: line written to stdin → order_filled read from stdout, µs");
        let _ = writeln!(out, "  (the harness's own stamps: just before each write, just after each line is read)");
        let visible_json = match &visible {
            Some(v) => {
                table_head(&mut out, "");
                table_row(&mut out, "line → order_filled", &v.seen);
                table_row(&mut out, "pipe round trip (cat, same driver, pace)", &v.pipe);
                let _ = writeln!(
                    out,
                    "  engine's part (minus the pipe round trip): p50 {} µs, p99 {} µs",
                    v.p50(),
                    v.p99()
                );
                // Split at the fill event's wall-clock stamp; the engine's own total (line read →
                // verified) is inside the first part.
                let first: Vec<u64> = engine.visible_split.iter().map(|s| s.0).collect();
                let last: Vec<u64> = engine.visible_split.iter().map(|s| s.1).collect();
                let waited: Vec<u64> =
                    engine.visible_split.iter().zip(&engine.fills).map(|(s, f)| s.0.saturating_sub(f[5])).collect();
                for (label, values) in [
                    ("  write → engine has read the line", &waited),
                    ("  write → fill event stamped (wall clock)", &first),
                    ("  fill event stamped → line read", &last),
                ] {
                    if let Some(d) = Dist::of(values) {
                        table_row(&mut out, label, &d);
                    }
                }
                let over =
                    pair.as_ref().filter(|_| args.exchange == ExchangeKind::Binance).map(|b| v.p50() - b.p50 as i64);
                if let (Some(over), Some(b)) = (over, &pair) {
                    let _ = writeln!(
                        out,
                        "  over a bare client's placement + query at the same pace (p50 {} µs): {over} µs at p50",
                        b.p50
                    );
                }
                json!({"line_to_order_filled": v.seen.json(), "pipe_round_trip": v.pipe.json(),
                       "minus_pipe": {"p50": v.p50(), "p99": v.p99()}, "minus_pipe_minus_bare_p50": over})
            }
            None => {
                let _ = writeln!(out, "  not measured: only a paced run (--rate > 0) times single orders");
                Value::Null
            }
        };

        let _ = writeln!(out, "\norders");
        let _ = writeln!(
            out,
            "  sent {} · verified {} · lost {} · problem events {} · engine {}",
            engine.sent,
            verified,
            engine.lost(),
            engine.problem_count,
            engine.exit
        );
        let events: Vec<String> = engine.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  events: {}", events.join(", "));
        for p in &engine.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
        if let Some(e) = &engine.write_error {
            let _ = writeln!(out, "  write error: {e}");
        }
        if !engine.exit_ok {
            for l in &engine.stderr_tail {
                let _ = writeln!(out, "  stderr: {l}");
            }
        }

        let _ = writeln!(out, "\nthroughput");
        let _ = writeln!(
            out,
            "  {throughput:.0} orders/s: {verified} verified in {:.3} s from the first line written to the last order_filled",
            engine.fill_s
        );
        let offered = if args.rate > 0.0 {
            format!("{:.0} lines/s offered", engine.sent as f64 / engine.write_s.max(1e-9))
        } else {
            "one write: every order is queued at once".into()
        };
        let _ = writeln!(
            out,
            "  ({} lines written in {:.3} s, {offered}; engine exited {:.3} s after the first line)",
            engine.sent, engine.write_s, engine.drain_s
        );

        let _ =
            writeln!(out, "\nengine latency per stage, µs (every verified order; stop-loss and commit from `stats`)");
        table_head(&mut out, "stage");
        for r in &rows {
            table_row(&mut out, r.label, &r.dist);
        }
        let _ = writeln!(
            out,
            "  (the mean column adds up: intake + queue/signing + round trip + query + hop = total; signing is\n   inside the queue/signing row and is the placement's HMAC only)"
        );

        let _ = writeln!(out, "\nbaseline: the same requests bare, {} pairs, {}", baseline.pair.len(), baseline.target);
        if let Some(gap) = baseline.paced_every_us {
            let _ = writeln!(
                out,
                "  (a pair every {gap} µs, the engine's cadence: an idle gap makes a request slower on its own; the\n   last row sends the pairs back to back, for reference)"
            );
        }
        if baseline.blocks > 0 {
            let _ = writeln!(
                out,
                "  (in {} blocks between the engine's {} blocks, with the engine paused (SIGSTOP) once its block\n   was verified: both measured over the same minutes of a machine whose speed drifts)",
                baseline.blocks, baseline.blocks
            );
        }
        let _ = writeln!(out, "  {}", steal_line(engine));
        if !baseline.pair.is_empty() {
            table_head(&mut out, "request");
            for (label, v) in &base_rows {
                if let Some(d) = Dist::of(v) {
                    table_row(&mut out, label, &d);
                }
            }
        }
        if baseline.errors > 0 {
            let _ = writeln!(
                out,
                "  {} pairs failed; first: {}",
                baseline.errors,
                baseline.first_error.as_deref().unwrap_or("?")
            );
        }
        let overhead = match (&total, &pair) {
            (Some(t), Some(b)) => {
                let hot = Dist::of(&baseline.back_to_back);
                let _ = writeln!(out, "\nengine overhead = engine total − baseline (placement + query), µs");
                let _ = writeln!(
                    out,
                    "  {:<6} {:>12} {:>12} {:>12}   {:>20}",
                    "", "engine", "baseline", "overhead", "over back to back"
                );
                let row = |name: &str, engine: u64, base: u64, hot: Option<u64>| {
                    let hot = hot.map_or("-".to_string(), |h| (engine as i64 - h as i64).to_string());
                    format!("  {name:<6} {engine:>12} {base:>12} {:>12}   {hot:>20}", engine as i64 - base as i64)
                };
                let _ = writeln!(out, "{}", row("p50", t.p50, b.p50, hot.as_ref().map(|h| h.p50)));
                let _ = writeln!(out, "{}", row("p99", t.p99, b.p99, hot.as_ref().map(|h| h.p99)));
                let against_hot = |engine: u64, h: Option<u64>| h.map(|h| engine as i64 - h as i64);
                json!({"p50": {"engine": t.p50, "baseline": b.p50, "overhead": t.p50 as i64 - b.p50 as i64,
                               "overhead_over_back_to_back": against_hot(t.p50, hot.as_ref().map(|h| h.p50))},
                       "p99": {"engine": t.p99, "baseline": b.p99, "overhead": t.p99 as i64 - b.p99 as i64,
                               "overhead_over_back_to_back": against_hot(t.p99, hot.as_ref().map(|h| h.p99))}})
            }
            _ => Value::Null,
        };

        let _ = writeln!(out, "\nmemory");
        let profile = rss_profile(engine);
        let _ = writeln!(
            out,
            "  peak resident (VmHWM) {:.1} MB; {} RSS samples every {} ms",
            engine.vm_hwm_kb as f64 * 1024.0 / 1e6,
            engine.mem.len(),
            args.sample_ms
        );
        let prof: Vec<String> =
            profile.iter().map(|(n, kb)| format!("{:.1} MB @ {n}", *kb as f64 * 1024.0 / 1e6)).collect();
        let _ = writeln!(out, "  RSS at 0/25/50/75/100 % of verified orders: {}", prof.join(", "));

        if let Some(idle) = &engine.idle {
            let _ = writeln!(out, "\nidle");
            let _ = writeln!(
                out,
                "  {:.1} s idle after `ready`: utime+stime {:.1} ms, on-CPU (schedstat) {} = {:.3} % of one core",
                idle.secs,
                idle.cpu_ms,
                idle.sched_ms.map(|m| format!("{m:.2} ms")).unwrap_or_else(|| "n/a".into()),
                core_percent(idle.sched_ms.unwrap_or(idle.cpu_ms), idle.secs)
            );
            let threads: Vec<String> = idle.threads.iter().map(|(n, ms)| format!("{n} {ms:.2} ms")).collect();
            let _ = writeln!(out, "  per thread: {}", threads.join(", "));
        }

        let quote_age = crate::quote_age::section(args, &engine.quote_ages, &mut out);

        let _ = writeln!(out, "\ntargets (2-core machine, loopback, release build)");
        for t in &targets {
            let _ = writeln!(
                out,
                "  {}  {:<52} {:<22} measured {}",
                match t.pass {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "n/a ",
                },
                t.name,
                t.limit,
                t.measured
            );
        }

        // ---- json ----
        let mut latency = serde_json::Map::new();
        for r in &rows {
            latency.insert(r.key.to_string(), r.dist.json());
        }
        let mut base = serde_json::Map::new();
        for (key, (_, v)) in ["sign", "place", "query", "pair", "pair_back_to_back"].iter().zip(&base_rows) {
            if let Some(d) = Dist::of(v) {
                base.insert(key.to_string(), d.json());
            }
        }
        let json = json!({
            "config": {
                "exchange": args.exchange.as_str(), "orders": args.orders, "rate": args.rate, "seed": args.seed,
                "baseline": args.baseline, "blocks": args.blocks, "idle_secs": args.idle_secs, "pin": args.pin.as_str(), "spin_us": args.spin_us,
                "sample_ms": args.sample_ms, "out": args.out.display().to_string(), "flags": flags(args),
                "engine": setup.engine.display().to_string(), "engine_args": engine.engine_args,
                "server": if args.exchange == ExchangeKind::Binance { json!(setup.server.display().to_string()) } else { Value::Null },
                "server_args": engine.server_args,
            },
            "machine": machine,
            "engine_startup_ms": engine.startup_ms,
            "orders": {"sent": engine.sent, "verified": verified, "lost": engine.lost(),
                       "problem_events": engine.problem_count, "problems": engine.problems,
                       "events": engine.events, "exit": engine.exit, "write_error": engine.write_error},
            "throughput": {"orders_per_s": throughput, "fill_s": engine.fill_s, "write_s": engine.write_s, "drain_s": engine.drain_s},
            "user_visible_us": visible_json,
            "latency_us": latency,
            "baseline": {"target": baseline.target, "pairs": baseline.pair.len(), "errors": baseline.errors,
                         "paced_every_us": baseline.paced_every_us, "blocks": baseline.blocks,
                         "engine_window": window_json(&engine.engine_window),
                         "baseline_window": window_json(&engine.baseline_window),
                         "first_error": baseline.first_error, "latency_us": base},
            "overhead_us": overhead,
            "quote_age_us": quote_age,
            "memory": {"vm_hwm_kb": engine.vm_hwm_kb, "sample_ms": args.sample_ms,
                       "samples": engine.mem.iter().map(|s| json!([(s.at_s * 1000.0).round() / 1000.0, s.verified, s.rss_kb])).collect::<Vec<_>>(),
                       "samples_columns": ["seconds_since_spawn", "orders_verified", "rss_kb"]},
            "idle": engine.idle.as_ref().map(|i| json!({"secs": i.secs, "cpu_ms": i.cpu_ms, "sched_ms": i.sched_ms,
                       "threads": i.threads.iter().map(|(n, ms)| json!({"thread": n, "ms": ms})).collect::<Vec<_>>()})),
            "targets": targets.iter().map(|t| json!({"name": t.name, "limit": t.limit, "measured": t.measured, "pass": t.pass})).collect::<Vec<_>>(),
        });

        // ---- plot ----
        let mut series: Vec<Series> = rows
            .iter()
            .map(|r| Series {
                name: r.label.to_string(),
                points: match &r.sorted {
                    Some(sorted) => plot::curve(sorted),
                    None => r.dist.points(),
                },
            })
            .collect();
        if let Some(mut pair) = Some(baseline.pair.clone()).filter(|p| !p.is_empty()) {
            pair.sort_unstable();
            series.push(Series { name: "BASELINE bare placement + query".into(), points: plot::curve(&pair) });
        }
        let mem: Vec<(f64, f64)> =
            engine.mem.iter().map(|s| (s.verified as f64, s.rss_kb as f64 * 1024.0 / 1e6)).collect();
        let title = format!(
            "genesis-bench: {} orders, --exchange {}, {rate}, seed {}",
            args.orders,
            args.exchange.as_str(),
            args.seed
        );
        let svg = plot::render(&title, &series, &mem);
        Report { text: out, json, svg }
    }

    /// Writes report.txt, report.json and latency.svg into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let files = [
            ("report.txt", self.text.clone()),
            ("report.json", serde_json::to_string_pretty(&self.json).map_err(|e| e.to_string())? + "\n"),
            ("latency.svg", self.svg.clone()),
        ];
        let mut written = Vec::new();
        for (name, content) in files {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 500);
        assert_eq!(percentile(&v, 0.9), 900);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&v, 0.999), 999);
        assert_eq!(percentile(&v, 1.0), 1000);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        let d = Dist::of(&[5, 1, 3, 2, 4]).unwrap();
        assert_eq!((d.count, d.min, d.p50, d.max), (5, 1, 3, 5));
        assert_eq!(d.mean, Some(3.0));
        assert!(Dist::of(&[]).is_none());
    }

    #[test]
    fn stats_stages_are_read() {
        let v = json!({"count": 3, "min": 1, "p50": 2, "p90": 3, "p99": 3, "p999": 3, "max": 3});
        let d = Dist::of_stats(&v).unwrap();
        assert_eq!(d.p50, 2);
        assert_eq!(d.mean, None);
        assert!(Dist::of_stats(&json!({"count": 3})).is_none());
    }

    #[test]
    fn table_rows_line_up() {
        let mut out = String::new();
        table_head(&mut out, "stage");
        let d = Dist { count: 10, min: 1, p50: 2, p90: 3, p99: 4, p999: 5, max: 123456, mean: Some(2.25) };
        table_row(&mut out, "intake", &d);
        table_row(&mut out, "x", &Dist { mean: None, ..d });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(lines[1].ends_with("   2.2") || lines[1].ends_with("   2.3"));
        assert!(lines[2].trim_end().ends_with('-'));
        assert!(lines[0].contains("p99.9"));
    }

    fn outcome(fills: Vec<[u64; 6]>) -> EngineOutcome {
        EngineOutcome { sent: fills.len() as u64, fills, vm_hwm_kb: 10_000, exit_ok: true, ..EngineOutcome::default() }
    }

    #[test]
    fn rows_split_the_total_into_stages() {
        let e = outcome(vec![[10, 1, 50, 40, 5, 120], [20, 1, 60, 40, 5, 130]]);
        let rows = rows(&e);
        let keys: Vec<&str> = rows.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["intake", "sign", "queue_and_sign", "round_trip", "verify_query", "verify", "total"]);
        let wait = &rows[2].dist;
        assert_eq!((wait.min, wait.max), (5, 15));
        let sum: f64 = rows.iter().filter(|r| !["sign", "total"].contains(&r.key)).map(|r| r.dist.mean.unwrap()).sum();
        assert_eq!(sum, rows[6].dist.mean.unwrap());
    }

    fn visible(seen: &[u64], pipe: &[u64]) -> Visible {
        Visible { seen: Dist::of(seen).unwrap(), pipe: Dist::of(pipe).unwrap() }
    }

    #[test]
    fn sim_targets_judge_what_the_user_sees_minus_the_pipe() {
        let args = <Args as clap::Parser>::parse_from(["genesis-bench", "--rate", "500"]);
        let e = outcome(vec![[1, 1, 1, 1, 1, 10]]);
        let v = visible(&[60, 300], &[25, 100]);
        let t = targets(&args, &e, Some(&v), None, 500.0);
        let get = |name: &str| t.iter().find(|t| t.name.contains(name)).unwrap().clone();
        assert_eq!(get("p50").measured, "35 µs");
        assert_eq!(get("p50").pass, Some(true));
        assert_eq!(get("p99").measured, "200 µs");
        assert_eq!(get("p99").pass, Some(false));
        assert_eq!(get("flood").pass, None);
        assert_eq!(get("lost").pass, Some(true));
        assert_eq!(get("memory").pass, Some(true)); // 10.24 MB
    }

    #[test]
    fn the_flood_target_is_judged_on_an_unpaced_run() {
        let args = <Args as clap::Parser>::parse_from(["genesis-bench"]);
        let e = outcome(vec![[1, 1, 1, 1, 1, 10]]);
        let t = targets(&args, &e, None, None, 19_000.0);
        assert_eq!(t.iter().find(|t| t.name.contains("flood")).unwrap().pass, Some(false));
        let t = targets(&args, &e, None, None, 21_000.0);
        assert_eq!(t.iter().find(|t| t.name.contains("flood")).unwrap().pass, Some(true));
    }

    #[test]
    fn loopback_targets_subtract_the_pipe_and_the_bare_client() {
        let args = <Args as clap::Parser>::parse_from(["genesis-bench", "--exchange", "binance", "--rate", "500"]);
        let e = outcome(vec![[1, 1, 1, 1, 1, 10]]);
        let v = visible(&[200, 1200], &[20, 100]);
        let pair = Dist::of(&[150, 400]).unwrap();
        let t = targets(&args, &e, Some(&v), Some(&pair), 500.0);
        let get = |name: &str| t.iter().find(|t| t.name.contains(name)).unwrap().clone();
        assert_eq!(get("bare place+query, p50").measured, "30 µs"); // 200 - 20 - 150
        assert_eq!(get("bare place+query, p50").pass, Some(false));
        assert_eq!(get("pipe round trip, p99").measured, "1100 µs");
        assert!(t.iter().all(|t| !t.name.contains("flood")));
    }
}
