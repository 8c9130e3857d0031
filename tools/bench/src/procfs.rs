//! What /proc says about the engine and the machine: resident memory, CPU per thread while
//! idle, and the host's steal time over the windows of a run.

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

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

pub(crate) fn read_proc(pid: u32, file: &str) -> Option<String> {
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

pub(crate) fn measure_idle(pid: u32, secs: u64) -> Idle {
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

    pub(crate) fn add(&mut self, from: Mark) {
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
pub(crate) struct Mark {
    pub(crate) at: Instant,
    steal_ticks: Option<u64>,
}

pub(crate) fn window_start() -> Mark {
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

#[cfg(test)]
mod tests {
    use super::*;

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
