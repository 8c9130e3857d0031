//! WAL checkpoints, kept off the order path: a background thread copies the WAL into the
//! database passively, and the writer finishes each round between two transactions.

use super::{Store, StoreError};
use rusqlite::Connection;
use std::path::Path;

impl Store {
    /// The writer does not checkpoint on its own: a checkpoint syncs the database file and, run
    /// inside a commit, stalled the persist stage (and the order path behind it).
    /// A background thread copies the bulk passively instead (see [`run_checkpoints`]) and the
    /// writer finishes each round between two transactions ([`Store::finish_checkpoint`]); the
    /// WAL then holds at most one round of writes.
    pub fn disable_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Finishes the background checkpoint's round from the writer, between two transactions:
    /// a passive checkpoint that copies only the frames committed since the background passes.
    /// SQLite starts the WAL over from its beginning only at a commit that finds every frame
    /// already in the database file, which a background pass racing a busy writer never sees.
    /// Without this the WAL, and its index mapped into our memory (`-shm`), grew for as long as
    /// orders came (docs/perf/journal.md).
    /// Returns true when the whole WAL is in the database file (the next commit restarts it).
    pub fn finish_checkpoint(&self) -> Result<bool, StoreError> {
        let (busy, log, copied) = wal_checkpoint(&self.conn)?;
        Ok(busy == 0 && log == copied)
    }
}

/// Checkpoints the WAL every `every`, passively (never blocking the writer), until `stop` is
/// signalled or dropped. After each round, `copied` asks the writer to finish it
/// ([`Store::finish_checkpoint`]), which lets the WAL start over. On the way out this
/// connection closes; closed after the writer's, it is the last, and SQLite then copies what is
/// left and removes the WAL file.
pub fn run_checkpoints(
    path: &Path,
    every: std::time::Duration,
    stop: &crossbeam_channel::Receiver<()>,
    copied: impl Fn(),
) {
    let Ok(conn) = Connection::open(path) else { return };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(100));
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        // Busy or locked by another process: the next round tries again.
        if catch_up(&conn) {
            copied();
        }
    }
}

/// WAL frames committed during the last background pass that the writer may be left to copy
/// (a frame is a page: a few milliseconds of writes at a high order rate).
const WRITER_SHARE: i64 = 500;
/// Background passes per round at most.
const PASSES: usize = 4;

/// Passive checkpoints until few frames were committed during the last one: each pass copies
/// what the writer added during the one before, each pass an order of magnitude shorter than
/// the last (docs/perf/journal.md), so the writer's own pass stays small. False if none could run.
pub(super) fn catch_up(conn: &Connection) -> bool {
    let mut seen = None;
    for _ in 0..PASSES {
        let Ok((0, log, _)) = wal_checkpoint(conn) else { return seen.is_some() };
        let added = seen.map_or(i64::MAX, |before| log - before);
        seen = Some(log);
        // A restarted WAL counts from zero again: the writer has nothing left to finish.
        if added <= WRITER_SHARE {
            break;
        }
    }
    true
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (1 if it could not run, WAL frames, frames copied).
fn wal_checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
}
