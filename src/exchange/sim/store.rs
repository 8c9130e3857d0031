//! Durable state for the embedded simulator: a snapshot file plus an append-only journal.
//!
//! Each mutating call appends one JSON line holding the full new state of every record it
//! changed (orders, balances, trades, prices, counters), written with a single `write` and no
//! fsync: it survives a process kill, not a power cut. On open the snapshot is loaded, the
//! journal replayed (records with a sequence number above the snapshot's; the last record of an
//! order or balance wins) and folded into a fresh snapshot. A torn last line (no newline, or
//! not valid JSON) is ignored.
//!
//! Every `compact_every` records the journal is rotated (renamed to `<path>.journal.old`, a new
//! one started) and a copy of the state is written to the snapshot on a background thread,
//! which then deletes the old journal; so a mutating call never waits for a whole snapshot. A
//! kill at any point leaves snapshot + old journal + journal, which replay to the same state.

use super::book::Book;
use super::error::SimStoreError;
use super::records::{SimOrder, Trade};
use crate::domain::money::Decimal;
use crate::exchange::Balance;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The whole exchange state, borrowed for writing.
#[derive(serde::Serialize)]
pub struct SnapshotOut<'a> {
    pub version: u32,
    pub seq: u64,
    pub seed: u64,
    pub rng_word_pos: String,
    pub next_order_id: i64,
    pub next_trade_id: i64,
    pub books: Vec<&'a Book>,
    pub balances: &'a [Balance],
    pub open: Vec<&'a SimOrder>,
    /// Closed orders, oldest closing first.
    pub closed: Vec<&'a SimOrder>,
    pub trades: Vec<&'a Trade>,
}

/// The whole exchange state, owned (as read back, or copied for a background write).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotIn {
    pub version: u32,
    pub seq: u64,
    pub seed: u64,
    pub rng_word_pos: String,
    pub next_order_id: i64,
    pub next_trade_id: i64,
    pub books: Vec<Book>,
    pub balances: Vec<Balance>,
    pub open: Vec<SimOrder>,
    pub closed: Vec<SimOrder>,
    pub trades: Vec<Trade>,
}

/// A new top of book.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PriceRecord {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
}

/// What one mutating call changed, borrowed for writing.
#[derive(serde::Serialize)]
pub struct MutationOut<'a> {
    pub seq: u64,
    pub rng_word_pos: String,
    pub next_order_id: i64,
    pub next_trade_id: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<PriceRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<&'a Balance>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<&'a SimOrder>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trades: Vec<&'a Trade>,
}

/// What one mutating call changed, as read back.
#[derive(serde::Deserialize)]
pub struct MutationIn {
    pub seq: u64,
    pub rng_word_pos: String,
    pub next_order_id: i64,
    pub next_trade_id: i64,
    #[serde(default)]
    pub prices: Vec<PriceRecord>,
    #[serde(default)]
    pub balances: Vec<Balance>,
    #[serde(default)]
    pub orders: Vec<SimOrder>,
    #[serde(default)]
    pub trades: Vec<Trade>,
}

/// The open journal and where the snapshot lives.
pub struct Store {
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    old_journal_path: PathBuf,
    journal: File,
    buf: Vec<u8>,
    /// Records appended since the last snapshot.
    pub records: u64,
    /// The background snapshot writer, if one is running.
    pending: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.wait_for_snapshot();
    }
}

/// The journal sits beside the snapshot: `<path>.journal`.
pub fn journal_path(path: &Path) -> PathBuf {
    with_suffix(path, ".journal")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes `value` as JSON to a temporary file, then renames it over `path`.
fn write_atomically(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    {
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        serde_json::to_writer(&mut out, value)?;
        out.flush()?;
    }
    std::fs::rename(&tmp, path)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimStoreError + '_ {
    move |source| SimStoreError::Io { path: path.to_path_buf(), source }
}

impl Store {
    /// Opens (creating if needed) the journal and reads what is on disk.
    pub fn open(path: &Path) -> Result<(Store, Option<SnapshotIn>, Vec<MutationIn>), SimStoreError> {
        let snapshot = read_snapshot(path)?;
        let journal_path = journal_path(path);
        let old_journal_path = with_suffix(path, ".journal.old");
        let mut mutations = read_journal(&old_journal_path)?;
        mutations.extend(read_journal(&journal_path)?);
        let journal =
            OpenOptions::new().create(true).append(true).open(&journal_path).map_err(io_err(&journal_path))?;
        Ok((
            Store {
                snapshot_path: path.to_path_buf(),
                journal_path,
                old_journal_path,
                journal,
                buf: Vec::with_capacity(4096),
                records: 0,
                pending: None,
            },
            snapshot,
            mutations,
        ))
    }

    /// Appends one record as a single line, with one `write` call.
    pub fn append(&mut self, record: &MutationOut<'_>) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record)?;
        self.buf.push(b'\n');
        self.journal.write_all(&self.buf)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the snapshot now and empties the journal(s).
    pub fn write_snapshot(&mut self, snapshot: &SnapshotOut<'_>) -> std::io::Result<()> {
        self.wait_for_snapshot();
        write_atomically(&self.snapshot_path, snapshot)?;
        self.journal.set_len(0)?;
        remove_if_present(&self.old_journal_path)?;
        self.records = 0;
        Ok(())
    }

    /// Rotates the journal and writes `snapshot` (the state as of the last journaled record)
    /// on a background thread, which deletes the old journal once the snapshot is in place.
    pub fn snapshot_in_background(&mut self, snapshot: SnapshotIn) -> std::io::Result<()> {
        self.wait_for_snapshot();
        std::fs::rename(&self.journal_path, &self.old_journal_path)?;
        self.journal = OpenOptions::new().create(true).append(true).open(&self.journal_path)?;
        self.records = 0;
        let snapshot_path = self.snapshot_path.clone();
        let old_journal = self.old_journal_path.clone();
        let writer = std::thread::Builder::new().name("sim-snapshot".into()).spawn(move || {
            write_atomically(&snapshot_path, &snapshot)?;
            remove_if_present(&old_journal)
        })?;
        self.pending = Some(writer);
        Ok(())
    }

    /// Waits for a background snapshot to finish (a failure only means the old journal stays,
    /// to be replayed at the next open).
    pub fn wait_for_snapshot(&mut self) {
        if let Some(writer) = self.pending.take() {
            match writer.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("simulator snapshot failed: {e}"),
                // No test can make the writer panic: it serialises plain data and reports every
                // I/O failure as an error.
                #[cfg(not(tarpaulin_include))]
                Err(_) => log::warn!("simulator snapshot writer panicked"),
            }
        }
    }

    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }
}

#[cfg(test)]
impl Store {
    /// Swaps the journal for a read-only handle on the same file, so that every later append
    /// fails as it would on a full disk.
    pub(super) fn break_journal(&mut self) {
        self.journal = File::open(&self.journal_path).expect("the journal exists");
    }
}

fn read_snapshot(path: &Path) -> Result<Option<SnapshotIn>, SimStoreError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let snapshot: SnapshotIn = serde_json::from_slice(&text).map_err(|e| SimStoreError::Corrupt {
        path: path.to_path_buf(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    if snapshot.version != SNAPSHOT_VERSION {
        return Err(SimStoreError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            reason: format!("unknown snapshot version {}", snapshot.version),
        });
    }
    Ok(Some(snapshot))
}

/// Reads every complete journal line. A last line cut short by a kill (no newline, or not
/// parseable) is ignored; an unparseable line before it is corruption.
fn read_journal(path: &Path) -> Result<Vec<MutationIn>, SimStoreError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes).map_err(io_err(path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    }
    // Everything after the last newline is a torn write.
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return Ok(Vec::new()),
    };
    let lines: Vec<&[u8]> = complete.split(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<MutationIn>(line) {
            Ok(m) => out.push(m),
            Err(_) if i + 1 == lines.len() => {
                log::warn!("ignoring a torn last line in {}", path.display());
            }
            Err(e) => {
                return Err(SimStoreError::Corrupt { path: path.to_path_buf(), line: i + 1, reason: e.to_string() })
            }
        }
    }
    Ok(out)
}
