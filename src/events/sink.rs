//! Where stdout's lines go, shared by the stdout writer thread and the order path.
//!
//! The writer thread writes everything that was queued for it. The order path may also write
//! its own lines (an order's `order_submitted` and `order_filled`) straight from its thread, the
//! moment the fill is verified: a hand-over to a parked writer costs 11-13 µs on the same core
//! and 50+ µs across cores on a machine like ours, more than the order's whole compute. It does
//! so only when that can neither wait nor reorder anything:
//! - nothing queued for the writer is still unwritten (every line published before goes first);
//! - the writer is not in the middle of a write (`try_lock`, never `lock`);
//! - stdout can take the bytes now (`poll` says writable, and the lines fit in `PIPE_BUF`, which
//!   a pipe takes in one write once it has room for any);
//!
//! and otherwise queues them for the writer like any other event. So a slow stdout reader never
//! stalls the order path; what the writer cannot show in time is counted and reported as before
//! (the event log has every event).

use super::event::Event;
use parking_lot::Mutex;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Output format of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The most the order path writes at once: what a pipe takes in one write, whole.
const MAX_DIRECT: usize = libc::PIPE_BUF;

pub struct Sink {
    /// Where lines go; `None`: the process's stdout through the standard library, and nothing is
    /// written directly (the stages' unit tests).
    out: Option<File>,
    format: Format,
    /// Held for each write, by the writer thread and by the order path.
    lock: Mutex<()>,
    /// Events handed to the writer and not yet written (or dropped).
    queued: AtomicU64,
}

impl Sink {
    /// Lines to `fd` (a duplicate of stdout in the engine), in `format`; the order path may
    /// write to it directly.
    pub fn on(fd: OwnedFd, format: Format) -> Sink {
        Sink { out: Some(File::from(fd)), format, lock: Mutex::new(()), queued: AtomicU64::new(0) }
    }

    /// The process's stdout through the standard library; nothing is written directly.
    pub fn queued_only(format: Format) -> Sink {
        Sink { out: None, format, lock: Mutex::new(()), queued: AtomicU64::new(0) }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// One event's line, with its newline, appended to `buf`.
    pub fn render(&self, event: &Event, buf: &mut Vec<u8>) {
        match self.format {
            Format::Json => super::json::write_line(event, buf),
            Format::Text => buf.extend_from_slice(event.to_text_line().as_bytes()),
        }
        buf.push(b'\n');
    }

    /// An event is about to be queued for the writer.
    pub(super) fn queue_one(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// `n` queued events were written, or dropped.
    pub(super) fn done(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::SeqCst);
    }

    /// The writer thread: writes `lines` (the last `events` queued events, and perhaps the
    /// `events_dropped` notice), waiting for stdout as long as it takes.
    pub(super) fn write_queued(&self, lines: &[u8], events: u64) {
        {
            let _writing = self.lock.lock();
            let _ = match &self.out {
                Some(file) => (&*file).write_all(lines),
                None => std::io::stdout().lock().write_all(lines).and_then(|_| std::io::stdout().flush()),
            };
        }
        self.done(events);
    }

    /// The order path: writes `lines` now if that waits for nothing and reorders nothing (see
    /// the module's doc); false: nothing was written, queue them instead.
    pub fn try_write_now(&self, lines: &[u8]) -> bool {
        let Some(file) = &self.out else { return false };
        if lines.len() > MAX_DIRECT {
            return false;
        }
        let Some(_writing) = self.lock.try_lock() else { return false };
        if self.queued.load(Ordering::SeqCst) != 0 || !writable(file) {
            return false;
        }
        (&*file).write_all(lines).is_ok()
    }
}

/// True when a write to `file` does not wait now.
fn writable(file: &File) -> bool {
    let mut fd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    let ready = crate::os::poll(std::slice::from_mut(&mut fd), 0);
    ready.is_ok_and(|n| n == 1) && fd.revents & libc::POLLOUT != 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// A sink on one end of a socket pair (a pipe-like stdout), and the reader's end.
    fn sink() -> (Sink, UnixStream) {
        let (ours, reader) = UnixStream::pair().unwrap();
        (Sink::on(OwnedFd::from(ours), Format::Json), reader)
    }

    fn read_now(reader: &mut UnixStream) -> String {
        reader.set_nonblocking(true).unwrap();
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    }

    #[test]
    fn lines_go_out_directly_when_nothing_is_queued() {
        let (sink, mut reader) = sink();
        assert!(sink.try_write_now(b"a\n"));
        assert_eq!(read_now(&mut reader), "a\n");
    }

    #[test]
    fn lines_wait_behind_anything_queued_for_the_writer() {
        let (sink, mut reader) = sink();
        sink.queue_one();
        assert!(!sink.try_write_now(b"a\n"));
        sink.write_queued(b"first\n", 1);
        assert!(sink.try_write_now(b"a\n"));
        assert_eq!(read_now(&mut reader), "first\na\n");
    }

    #[test]
    fn lines_wait_while_the_writer_is_writing() {
        let (sink, _reader) = sink();
        let _writing = sink.lock.lock();
        assert!(!sink.try_write_now(b"a\n"));
    }

    #[test]
    fn a_stdout_that_is_full_is_never_waited_for() {
        let (sink, _reader) = sink();
        let big = vec![b'x'; MAX_DIRECT];
        // Fill the reader's buffer without blocking: whatever fits, then direct writes refuse.
        let filler = UnixStream::from(OwnedFd::from(sink.out.as_ref().unwrap().try_clone().unwrap()));
        filler.set_nonblocking(true).unwrap();
        while (&filler).write(&big).is_ok() {}
        assert!(!sink.try_write_now(b"a\n"));
    }

    #[test]
    fn lines_longer_than_one_atomic_write_are_queued() {
        let (sink, _reader) = sink();
        assert!(!sink.try_write_now(&vec![b'x'; MAX_DIRECT + 1]));
    }

    #[test]
    fn without_a_file_nothing_is_written_directly() {
        assert!(!Sink::queued_only(Format::Json).try_write_now(b"a\n"));
    }

    #[test]
    fn lines_render_in_the_sinks_format() {
        let event = Event::new(EventKind::Ready, "up");
        let mut json = Vec::new();
        Sink::queued_only(Format::Json).render(&event, &mut json);
        assert!(json.starts_with(b"{") && json.ends_with(b"}\n"));
        let mut text = Vec::new();
        Sink::queued_only(Format::Text).render(&event, &mut text);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("ready") && text.ends_with(" up\n"), "{text}");
    }
}
