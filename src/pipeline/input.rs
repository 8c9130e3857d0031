//! Intake's input: command lines read straight from stdin by the intake thread.
//!
//! There is no reader thread in front of intake: waking the receiver of a hop between two
//! threads costs more than everything intake computes (docs/perf/journal.md). Intake
//! waits in `poll(2)` on stdin and on a wake-up pipe (signals), with a timeout for its own
//! timers (confirmation deadlines, TWAP slices).

use super::msg::Line;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The read buffer's first size, and its growth whenever one line fills it. A line is stamped
/// when it is taken from this buffer, so a backlog still in the buffer or the pipe does not
/// count as engine time.
const READ_CHUNK: usize = 8192;

/// The longest line intake takes. A command is a few dozen bytes; without a bound, input with no
/// newline (a binary piped in by mistake) would grow the buffer until memory ran out.
pub const MAX_LINE: usize = 64 * 1024;

/// What woke intake.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// A complete line is ready.
    Line(Line),
    /// Line `number` passed [`MAX_LINE`] bytes: it is skipped up to its newline.
    TooLong(u64),
    /// SIGINT or SIGTERM arrived.
    Signal,
    /// The timeout passed with nothing to read.
    Timeout,
    /// End of input (or an unreadable input, logged).
    Closed,
}

/// Lines from a file descriptor (stdin in the engine, a pipe in tests), plus the signal pipe.
pub struct Input {
    source: std::fs::File,
    signals: UnixStream,
    /// Zeroed once as it grows, then reused: bytes read are `buffer[..end]`.
    buffer: Vec<u8>,
    /// Start of the first byte not yet handed out as a line.
    start: usize,
    /// End of the bytes read.
    end: usize,
    /// Inside a line longer than [`MAX_LINE`]: its bytes are dropped up to its newline.
    skipping: bool,
    /// The number of a line found too long, not yet reported.
    too_long: Option<u64>,
    closed: bool,
    number: u64,
}

impl Input {
    /// Reads from a duplicate of stdin's descriptor (so nothing else in the process holds a
    /// buffered view of the same bytes).
    pub fn stdin(signals: UnixStream) -> std::io::Result<Input> {
        Ok(Input::from_fd(std::io::stdin().as_fd().try_clone_to_owned()?, signals))
    }

    pub fn from_fd(fd: OwnedFd, signals: UnixStream) -> Input {
        Input {
            source: std::fs::File::from(fd),
            signals,
            buffer: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            skipping: false,
            too_long: None,
            closed: false,
            number: 0,
        }
    }

    /// The next line, a signal, the end of input, or `Timeout` once `timeout` has passed.
    pub fn next(&mut self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(number) = self.too_long.take() {
                return Wake::TooLong(number);
            }
            if let Some(line) = self.take_line() {
                return Wake::Line(line);
            }
            if self.closed {
                return self.last_line().map_or(Wake::Closed, Wake::Line);
            }
            match self.wait(deadline.saturating_duration_since(Instant::now())) {
                Ready::Input => self.fill(),
                Ready::Signal => {
                    let mut byte = [0u8; 16];
                    let _ = (&self.signals).read(&mut byte);
                    return Wake::Signal;
                }
                Ready::Nothing if Instant::now() >= deadline => return Wake::Timeout,
                Ready::Nothing => {}
            }
        }
    }

    /// Start-up, before the engine takes commands: waits up to `timeout` without handing out
    /// any line. True when SIGINT or SIGTERM arrived, or a `quit` line is waiting. Every other
    /// line stays for intake once the engine is ready; at most [`MAX_LINE`] bytes are read
    /// ahead, the rest waits in the pipe.
    pub fn wait_for_stop(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.quit_is_waiting() {
                return true;
            }
            let read_ahead = !self.closed && self.end - self.start < MAX_LINE;
            match self.poll(deadline.saturating_duration_since(Instant::now()), read_ahead) {
                Ready::Input => self.fill(),
                Ready::Signal => {
                    let mut byte = [0u8; 16];
                    let _ = (&self.signals).read(&mut byte);
                    return true;
                }
                Ready::Nothing if Instant::now() >= deadline => return false,
                Ready::Nothing => {}
            }
        }
    }

    /// True when the first command read ahead (blank and comment lines aside) is `quit` (or
    /// `exit`). Commands before a `quit` are the user's to run first: commands run in the order
    /// typed, so a piped script ending in `quit` runs once the engine is ready.
    fn quit_is_waiting(&self) -> bool {
        use crate::domain::command::{parse, Command};
        let waiting = &self.buffer[self.start..self.end];
        let complete = waiting.iter().rposition(|&b| b == b'\n').map_or(&waiting[..0], |at| &waiting[..at]);
        let lines = if self.closed { waiting } else { complete };
        let mut commands = lines.split(|&b| b == b'\n').map(|line| parse(&String::from_utf8_lossy(line)));
        let first = commands.find(|parsed| parsed != &Ok(None));
        matches!(first, Some(Ok(Some(Command::Quit))))
    }

    /// A complete line from the buffer, stamped now.
    fn take_line(&mut self) -> Option<Line> {
        if self.skipping {
            match self.buffer[self.start..self.end].iter().position(|&b| b == b'\n') {
                Some(at) => {
                    self.start += at + 1;
                    self.skipping = false;
                }
                None => {
                    self.start = self.end;
                    return None;
                }
            }
        }
        let end = self.buffer[self.start..self.end].iter().position(|&b| b == b'\n')? + self.start;
        let line = self.line(self.start, end + 1);
        self.start = end + 1;
        Some(line)
    }

    /// Input ended without a final newline: what is left is the last line.
    fn last_line(&mut self) -> Option<Line> {
        if self.start >= self.end || self.skipping {
            return None;
        }
        let line = self.line(self.start, self.end);
        self.start = self.end;
        Some(line)
    }

    fn line(&mut self, from: usize, to: usize) -> Line {
        self.number += 1;
        // Invalid UTF-8 is not a reason to stop: the parser will name the bad line.
        let text = String::from_utf8_lossy(&self.buffer[from..to]).into_owned();
        Line { text, number: self.number, read_at: Instant::now() }
    }

    /// One read into the buffer (moving a partial line to the front first, and growing the
    /// buffer only when that line fills it); 0 bytes or an error closes the input. The buffer is
    /// not zeroed again before each read (it used to be, a store per byte of the buffer for every
    /// command).
    fn fill(&mut self) {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buffer.len() {
            if self.end >= MAX_LINE {
                // One line fills the buffer: report it and drop its bytes from here on.
                self.number += 1;
                self.too_long = Some(self.number);
                self.skipping = true;
                self.end = 0;
            } else {
                self.buffer.resize(self.buffer.len() + READ_CHUNK, 0);
            }
        }
        let end = self.end;
        match retry_interrupted(|| self.source.read(&mut self.buffer[end..])) {
            Ok(n) => {
                self.end += n;
                self.closed = n == 0;
            }
            Err(e) => {
                log::error!("stdin: {e}");
                self.closed = true;
            }
        }
    }

    /// Blocks in poll(2) until input or a signal is ready, or `timeout` passes.
    fn wait(&self, timeout: Duration) -> Ready {
        self.poll(timeout, true)
    }

    /// As [`Input::wait`]; with `with_input` false, only a signal (or the timeout) wakes it.
    fn poll(&self, timeout: Duration, with_input: bool) -> Ready {
        // Without input, the signal pipe alone: the first entry is ignored (negative fd).
        let input_fd = if with_input { self.source.as_raw_fd() } else { -1 };
        let mut fds = [
            libc::pollfd { fd: input_fd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.signals.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // Rounded up: a timer never fires early.
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        match crate::os::poll(&mut fds, millis) {
            // The timeout passed.
            Ok(0) => return Ready::Nothing,
            Ok(_) => {}
            Err(e) => return after_poll_error(e.kind()),
        }
        if fds[1].revents != 0 {
            Ready::Signal
        } else {
            // POLLIN, POLLHUP or POLLERR: the read tells which.
            Ready::Input
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ready {
    Input,
    Signal,
    Nothing,
}

/// poll(2) failed. EINTR is a signal handled elsewhere in the process: keep waiting. Anything
/// else (ENOMEM; EINVAL, with RLIMIT_NOFILE below 2) is left to the read, which reports it.
fn after_poll_error(kind: ErrorKind) -> Ready {
    if kind == ErrorKind::Interrupted {
        Ready::Nothing
    } else {
        Ready::Input
    }
}

/// Runs `op` again while a signal interrupts it (EINTR).
fn retry_interrupted<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe_input() -> (Input, UnixStream, UnixStream) {
        let (reader, writer) = UnixStream::pair().unwrap();
        let (from_signals, to_intake) = UnixStream::pair().unwrap();
        (Input::from_fd(OwnedFd::from(reader), from_signals), writer, to_intake)
    }

    fn text(wake: Wake) -> String {
        match wake {
            Wake::Line(line) => line.text,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    #[test]
    fn lines_come_out_one_at_a_time_and_numbered() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"buy BTCUSDT 0.001\nstatus\n").unwrap();
        let Wake::Line(first) = input.next(Duration::from_secs(1)) else { panic!("no first line") };
        assert_eq!((first.text.as_str(), first.number), ("buy BTCUSDT 0.001\n", 1));
        let Wake::Line(second) = input.next(Duration::from_secs(1)) else { panic!("no second line") };
        assert_eq!((second.text.as_str(), second.number), ("status\n", 2));
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"buy BTC").unwrap();
        assert_eq!(input.next(Duration::from_millis(20)), Wake::Timeout);
        writer.write_all(b"USDT 0.001\n").unwrap();
        assert_eq!(text(input.next(Duration::from_secs(1))), "buy BTCUSDT 0.001\n");
    }

    #[test]
    fn a_line_past_the_limit_is_reported_skipped_and_the_next_line_is_read() {
        let (mut input, mut writer, _signals) = pipe_input();
        let writing = std::thread::spawn(move || {
            writer.write_all(b"status\n").unwrap();
            writer.write_all(&vec![b'x'; MAX_LINE * 3]).unwrap();
            writer.write_all(b"tail of the long line\nbalance\n").unwrap();
        });
        assert_eq!(text(input.next(Duration::from_secs(5))), "status\n");
        assert_eq!(input.next(Duration::from_secs(5)), Wake::TooLong(2));
        let Wake::Line(next) = input.next(Duration::from_secs(5)) else { panic!("no line after the long one") };
        assert_eq!((next.text.as_str(), next.number), ("balance\n", 3));
        writing.join().unwrap();
        assert!(input.buffer.len() <= MAX_LINE, "the buffer grew to {}", input.buffer.len());
    }

    #[test]
    fn input_that_ends_inside_a_line_past_the_limit_just_closes() {
        let (mut input, mut writer, _signals) = pipe_input();
        let writing = std::thread::spawn(move || {
            writer.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        });
        assert_eq!(input.next(Duration::from_secs(5)), Wake::TooLong(1));
        writing.join().unwrap();
        assert_eq!(input.next(Duration::from_secs(5)), Wake::Closed);
    }

    #[test]
    fn a_line_longer_than_the_buffer_and_the_lines_after_it_come_out_whole() {
        let (mut input, mut writer, _signals) = pipe_input();
        let long = format!("{}\n", "x".repeat(READ_CHUNK * 2 + 100));
        let writing = std::thread::spawn(move || {
            for _ in 0..3 {
                writer.write_all(long.as_bytes()).unwrap();
                writer.write_all(b"status\n").unwrap();
            }
        });
        for _ in 0..3 {
            assert_eq!(text(input.next(Duration::from_secs(5))).len(), READ_CHUNK * 2 + 101);
            assert_eq!(text(input.next(Duration::from_secs(5))), "status\n");
        }
        writing.join().unwrap();
    }

    #[test]
    fn a_last_line_without_newline_is_still_read_then_input_closes() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"status").unwrap();
        drop(writer);
        assert_eq!(text(input.next(Duration::from_secs(1))), "status");
        assert_eq!(input.next(Duration::from_secs(1)), Wake::Closed);
    }

    #[test]
    fn lines_typed_during_start_up_are_kept_for_intake() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"buy BTCUSDT 0.001\nstatus\n").unwrap();
        assert!(!input.wait_for_stop(Duration::from_millis(20)));
        assert_eq!(text(input.next(Duration::from_secs(1))), "buy BTCUSDT 0.001\n");
        assert_eq!(text(input.next(Duration::from_secs(1))), "status\n");
    }

    #[test]
    fn a_quit_line_typed_during_start_up_asks_to_stop() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"\n# done\nquit\n").unwrap();
        assert!(input.wait_for_stop(Duration::from_secs(5)));
    }

    #[test]
    fn a_quit_after_other_commands_waits_for_them_to_run() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"buy BTCUSDT 0.001\nquit\n").unwrap();
        assert!(!input.wait_for_stop(Duration::from_millis(20)));
        assert_eq!(text(input.next(Duration::from_secs(1))), "buy BTCUSDT 0.001\n");
    }

    #[test]
    fn a_signal_during_start_up_asks_to_stop() {
        let (mut input, _writer, mut signals) = pipe_input();
        signals.write_all(&[1]).unwrap();
        assert!(input.wait_for_stop(Duration::from_secs(5)));
    }

    #[test]
    fn closed_input_during_start_up_is_not_a_stop_and_its_last_line_still_counts() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"status").unwrap();
        drop(writer);
        assert!(!input.wait_for_stop(Duration::from_millis(20)), "end of input waits for the engine");
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"quit").unwrap();
        drop(writer);
        assert!(input.wait_for_stop(Duration::from_secs(5)));
    }

    #[test]
    fn start_up_reads_ahead_no_more_than_one_line_limit() {
        let (mut input, mut writer, _signals) = pipe_input();
        let big = vec![b'x'; MAX_LINE + READ_CHUNK];
        std::thread::spawn(move || {
            let _ = writer.write_all(&big);
        });
        assert!(!input.wait_for_stop(Duration::from_millis(100)));
        assert!(input.end - input.start <= MAX_LINE + READ_CHUNK);
    }

    #[test]
    fn a_signal_wakes_a_waiting_intake() {
        let (mut input, _writer, mut signals) = pipe_input();
        signals.write_all(&[1]).unwrap();
        assert_eq!(input.next(Duration::from_secs(5)), Wake::Signal);
    }

    #[test]
    fn nothing_to_read_is_a_timeout_not_before_it_is_due() {
        let (mut input, _writer, _signals) = pipe_input();
        let started = Instant::now();
        assert_eq!(input.next(Duration::from_millis(30)), Wake::Timeout);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn an_unreadable_input_closes_instead_of_spinning() {
        // Opened for writing only: poll says readable (a device without its own poll), the
        // read fails (EBADF).
        let write_only = std::fs::File::options().write(true).open("/dev/null").unwrap();
        let (from_signals, _to_intake) = UnixStream::pair().unwrap();
        let mut input = Input::from_fd(OwnedFd::from(write_only), from_signals);
        assert_eq!(input.next(Duration::from_secs(5)), Wake::Closed);
    }

    #[test]
    fn a_signal_meant_for_someone_else_does_not_end_the_wait() {
        // A handler for SIGUSR1, so that delivering it interrupts poll (EINTR) instead of
        // killing the test process.
        let delivered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = signal_hook::flag::register(signal_hook::consts::SIGUSR1, delivered.clone()).unwrap();
        let (mut input, mut writer, _signals) = pipe_input();
        let reader = std::thread::spawn(move || input.next(Duration::from_secs(30)));
        // Several times, so that at least one lands while the reader is blocked in poll.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            crate::os::signal_thread(&reader, libc::SIGUSR1).unwrap();
        }
        writer.write_all(b"status\n").unwrap();
        assert_eq!(text(reader.join().unwrap()), "status\n");
        assert!(delivered.load(std::sync::atomic::Ordering::SeqCst));
        signal_hook::low_level::unregister(handler);
    }

    #[test]
    fn a_signal_meant_for_someone_else_does_not_end_the_start_up_wait() {
        let delivered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = signal_hook::flag::register(signal_hook::consts::SIGUSR1, delivered.clone()).unwrap();
        let (mut input, mut writer, _signals) = pipe_input();
        let waiter = std::thread::spawn(move || input.wait_for_stop(Duration::from_secs(30)));
        // Several times, so that at least one lands while the waiter is blocked in poll.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            crate::os::signal_thread(&waiter, libc::SIGUSR1).unwrap();
        }
        // Still waiting: only a quit (or SIGINT / SIGTERM) ends it.
        writer.write_all(b"quit\n").unwrap();
        assert!(waiter.join().unwrap());
        assert!(delivered.load(std::sync::atomic::Ordering::SeqCst));
        signal_hook::low_level::unregister(handler);
    }

    #[test]
    fn an_interrupted_read_is_retried() {
        let mut calls = 0;
        let read = retry_interrupted(|| {
            calls += 1;
            if calls == 1 {
                Err(ErrorKind::Interrupted.into())
            } else {
                Ok(7)
            }
        });
        assert_eq!((read.unwrap(), calls), (7, 2));
    }

    #[test]
    fn a_failed_poll_is_waited_out_after_a_signal_and_left_to_the_read_otherwise() {
        assert_eq!(after_poll_error(ErrorKind::Interrupted), Ready::Nothing);
        assert_eq!(after_poll_error(ErrorKind::OutOfMemory), Ready::Input);
    }

    #[test]
    fn invalid_utf8_becomes_a_line_for_the_parser_to_refuse() {
        let (mut input, mut writer, _signals) = pipe_input();
        writer.write_all(b"buy \xff\n").unwrap();
        assert_eq!(text(input.next(Duration::from_secs(1))), "buy \u{fffd}\n");
    }
}
