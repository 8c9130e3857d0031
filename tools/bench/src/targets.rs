//! The targets the issues set, judged against what a run measured: what the user sees (a paced
//! run, minus the pipe) or the flood's throughput (an unpaced run).

use crate::args::{Args, ExchangeKind};
use crate::run::EngineOutcome;
use crate::stats::{core_percent, Dist};

/// A target from the issue, next to what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub limit: String,
    pub measured: String,
    /// `None`: not judged by this run (say, throughput when the offered rate is below the target).
    pub pass: Option<bool>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(fills: Vec<[u64; 6]>) -> EngineOutcome {
        EngineOutcome { sent: fills.len() as u64, fills, vm_hwm_kb: 10_000, exit_ok: true, ..EngineOutcome::default() }
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
