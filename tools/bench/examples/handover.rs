//! What one same-core hand-over costs on this machine, without the engine around it.
//!
//! The engine hands every order from intake to exchange I/O, two threads pinned to one core
//! (so the hand-over is a same-core switch, not a cross-core wake-up). This models that hop:
//! a writer on the first core writes one byte every 2 ms into a pipe (the operator's line);
//! "intake" on the last core wakes from `poll`, reads it, works 5 µs and hands a timestamp
//! over; "exchange I/O", on the same core in `SCHED_BATCH` as in the engine, receives it.
//! Waiting modes for the receiver:
//!
//! - `park`: a crossbeam `recv`, the engine's way (a futex wake-up);
//! - `pipe`: `read` on a second pipe (the kernel's own wake-up, for comparison);
//! - `runnable`: never parked, it yields until the message is there. This burns its core
//!   while idle, so the engine cannot do it; it is the floor: the switch alone.
//!
//! `cargo run --release -p genesis-bench --example handover -- park` (3,000 hand-overs).
//! Prints the sender's cost and send → receive, µs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const HANDOVERS: usize = 3000;
const INTAKE_WORK: Duration = Duration::from_micros(5);

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "park".into());
    if !matches!(mode.as_str(), "park" | "pipe" | "runnable") {
        eprintln!("usage: handover park|pipe|runnable");
        std::process::exit(2);
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (Some(&first), Some(&last)) = (cores.first(), cores.last()) else {
        eprintln!("handover: cannot read the cores");
        std::process::exit(1);
    };
    let (line_rx, line_tx) = pipe();
    let (hop_rx, hop_tx) = pipe();
    let (to_io, from_intake) = crossbeam_channel::bounded::<Instant>(1);
    let (results_tx, results) = crossbeam_channel::unbounded::<u64>();

    let receiver_mode = mode.clone();
    let exchange_io = std::thread::spawn(move || {
        core_affinity::set_for_current(last);
        batch();
        for _ in 0..HANDOVERS {
            let sent = match receiver_mode.as_str() {
                "park" => from_intake.recv().expect("intake hung up"),
                "pipe" => {
                    let mut byte = [0u8; 1];
                    // SAFETY: reads one byte into a valid buffer from a descriptor we own.
                    unsafe { libc::read(hop_rx.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
                    from_intake.recv().expect("intake hung up")
                }
                _ => loop {
                    if let Ok(sent) = from_intake.try_recv() {
                        break sent;
                    }
                    std::thread::yield_now();
                },
            };
            let _ = results_tx.send(sent.elapsed().as_nanos() as u64);
        }
    });
    let writer = std::thread::spawn(move || {
        core_affinity::set_for_current(first);
        for _ in 0..HANDOVERS {
            std::thread::sleep(Duration::from_millis(2));
            // SAFETY: writes one byte from a valid buffer to a descriptor we own.
            unsafe { libc::write(line_tx.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        }
    });
    core_affinity::set_for_current(last);
    let mut send_ns = Vec::with_capacity(HANDOVERS);
    let mut left = HANDOVERS;
    while left > 0 {
        let mut fd = libc::pollfd { fd: line_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; blocks until the writer's byte arrives.
        unsafe { libc::poll(&mut fd, 1, -1) };
        let mut bytes = [0u8; 64];
        // SAFETY: reads into a valid buffer; several lines may have queued up.
        let n = unsafe { libc::read(line_rx.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len()) };
        for _ in 0..n.max(0) {
            left = left.saturating_sub(1);
            let work = Instant::now();
            while work.elapsed() < INTAKE_WORK {
                std::hint::spin_loop();
            }
            let sent = Instant::now();
            to_io.send(sent).expect("exchange I/O hung up");
            if mode == "pipe" {
                // SAFETY: writes one byte from a valid buffer to a descriptor we own.
                unsafe { libc::write(hop_tx.as_raw_fd(), b"x".as_ptr().cast(), 1) };
            }
            send_ns.push(sent.elapsed().as_nanos() as u64);
        }
    }
    writer.join().expect("writer");
    exchange_io.join().expect("exchange I/O");
    let received: Vec<u64> = results.try_iter().collect();
    println!("{mode}: sender {} | send → receive {}", summary(send_ns), summary(received));
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `pipe` fills two descriptors that we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        panic!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `SCHED_BATCH`, as the engine's exchange I/O: its wake-ups never preempt intake.
fn batch() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

fn summary(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let at = |q: f64| ns.get(((ns.len() as f64 * q) as usize).min(ns.len().saturating_sub(1))).copied().unwrap_or(0);
    let us = |v: u64| v as f64 / 1000.0;
    format!("p10 {:.1} p50 {:.1} p90 {:.1} p99 {:.1} µs", us(at(0.1)), us(at(0.5)), us(at(0.9)), us(at(0.99)))
}
