//! The outbox's reports on disk: one `redb` table, each report's sequence number to its JSON,
//! written by one thread that commits whatever has queued up together (a group commit: one
//! `fsync` for a burst of reports, each acknowledged once its commit is durable). Reads (a
//! report's outcome, when it is attempted) go straight to the database: redb's readers never
//! wait for its writer.

use super::OutboxError;
use callroute_plugin::report::Outcome;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// The reports: sequence number to [`Stored`] as JSON.
const REPORTS: TableDefinition<u64, &[u8]> = TableDefinition::new("reports");

/// Most writes one commit takes.
const MAX_BATCH: usize = 1024;

/// What the outbox keeps of a report in memory (its outcome stays on disk until attempted).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its place in the outbox (the key on disk); later reports have larger ones.
    pub(super) seq: u64,
    /// Its scheme.
    pub(super) scheme: String,
    /// Its id, the `Idempotency-Key` of every attempt.
    pub(super) id: String,
    /// When it was accepted, in Unix milliseconds.
    pub(super) accepted_ms: u64,
    /// When it is given up, in Unix milliseconds (its scheme's `outcome_retry_hours` then).
    pub(super) expires_ms: u64,
    /// Attempts made so far.
    pub(super) attempts: u32,
    /// Its size on disk, in bytes.
    pub(super) size: usize,
}

/// An entry as stored: the outcome in the JSON form every front end reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    scheme: String,
    id: String,
    outcome: String,
    accepted_ms: u64,
    expires_ms: u64,
    attempts: u32,
}

/// A report's bytes on disk.
pub(super) fn encode(entry: &Entry, outcome: &Outcome) -> Vec<u8> {
    serde_json::to_vec(&Stored {
        scheme: entry.scheme.clone(),
        id: entry.id.clone(),
        outcome: outcome.to_json(),
        accepted_ms: entry.accepted_ms,
        expires_ms: entry.expires_ms,
        attempts: entry.attempts,
    })
    .expect("a report serialises")
}

/// A report from its bytes on disk: the entry, and its outcome.
fn decode(seq: u64, bytes: &[u8]) -> Result<(Entry, Outcome), String> {
    let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let outcome = Outcome::from_json(&stored.outcome).map_err(|e| e.to_string())?;
    let entry = Entry {
        seq,
        scheme: stored.scheme,
        id: stored.id,
        accepted_ms: stored.accepted_ms,
        expires_ms: stored.expires_ms,
        attempts: stored.attempts,
        size: bytes.len(),
    };
    Ok((entry, outcome))
}

/// A write for the writer thread.
enum Write {
    /// Store a new report; say when it is durable.
    Insert(u64, Vec<u8>, oneshot::Sender<Result<(), String>>),
    /// Store a report again (its attempts so far).
    Put(u64, Vec<u8>),
    /// Remove a report (delivered or expired).
    Remove(u64),
}

/// The database, behind its writer thread.
pub(super) struct Store {
    db: Arc<Database>,
    /// `None` once dropped: the writer then finishes what is queued and closes the file.
    writes: Option<mpsc::Sender<Write>>,
    writer: Option<std::thread::JoinHandle<()>>,
    next_seq: AtomicU64,
}

impl Drop for Store {
    /// Every write queued is committed before the file is closed.
    fn drop(&mut self) {
        self.writes = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Store {
    /// Open or create the database at `path` (and its directory), with every report in it.
    pub(super) fn open(path: &Path) -> Result<(Store, Vec<Entry>), OutboxError> {
        let failed =
            |e: &dyn std::fmt::Display| OutboxError::Store(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        }
        let db = Arc::new(Database::create(path).map_err(|e| failed(&e))?);
        // The table exists from the first open on, so reading never meets its absence.
        let write = db.begin_write().map_err(|e| failed(&e))?;
        write.open_table(REPORTS).map_err(|e| failed(&e))?;
        write.commit().map_err(|e| failed(&e))?;
        let mut entries = Vec::new();
        let mut last_seq = 0;
        {
            let read = db.begin_read().map_err(|e| failed(&e))?;
            let table = read.open_table(REPORTS).map_err(|e| failed(&e))?;
            for row in table.iter().map_err(|e| failed(&e))? {
                let (seq, bytes) = row.map_err(|e| failed(&e))?;
                // Every row's number is taken, readable or not: a new report never overwrites
                // one this version cannot read.
                last_seq = last_seq.max(seq.value());
                match decode(seq.value(), bytes.value()) {
                    Ok((entry, _)) => entries.push(entry),
                    Err(e) => tracing::error!(
                        seq = seq.value(),
                        error = %e,
                        "outbox: a report this version cannot read is kept on disk, not sent"
                    ),
                }
            }
        }
        let (writes, queue) = mpsc::channel();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("callroute-outbox".into())
            .spawn(move || write_loop(&writer_db, queue))
            .map_err(|e| failed(&e))?;
        Ok((
            Store {
                db,
                writes: Some(writes),
                writer: Some(writer),
                next_seq: AtomicU64::new(last_seq + 1),
            },
            entries,
        ))
    }

    /// A new report's sequence number.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Store a new report (`bytes` from [`encode`]); returns once it is durable.
    pub(super) async fn insert(&self, seq: u64, bytes: Vec<u8>) -> Result<(), OutboxError> {
        let stopped = || OutboxError::Store("the outbox's writer has stopped".into());
        let (done, durable) = oneshot::channel();
        self.send(Write::Insert(seq, bytes, done))
            .map_err(|()| stopped())?;
        durable
            .await
            .map_err(|_| stopped())?
            .map_err(OutboxError::Store)
    }

    /// A report's outcome, read from disk.
    pub(super) fn outcome(&self, seq: u64) -> Result<Outcome, String> {
        let read = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = read.open_table(REPORTS).map_err(|e| e.to_string())?;
        let row = table
            .get(seq)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("report {seq} is not on disk"))?;
        decode(seq, row.value()).map(|(_, outcome)| outcome)
    }

    /// Store a report again with its attempts so far (not waited for: a crash before it is
    /// written only repeats an attempt's number).
    pub(super) fn put(&self, entry: &Entry, outcome: &Outcome) {
        let _ = self.send(Write::Put(entry.seq, encode(entry, outcome)));
    }

    /// Remove a report (not waited for: a crash before it is written only repeats a
    /// delivery, which the report's id lets the CRM drop).
    pub(super) fn remove(&self, seq: u64) {
        let _ = self.send(Write::Remove(seq));
    }

    fn send(&self, write: Write) -> Result<(), ()> {
        match &self.writes {
            Some(writes) => writes.send(write).map_err(|_| ()),
            None => Err(()),
        }
    }
}

/// The writer thread: take a write, and every other already queued (up to [`MAX_BATCH`]),
/// commit them as one transaction, then acknowledge the inserts among them. Ends when every
/// sender is gone.
fn write_loop(db: &Database, queue: mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let result = commit(db, &batch).map_err(|e| e.to_string());
        if let Err(error) = &result {
            // The inserts among them are refused (503: the platform sends them again); a lost
            // update or removal only repeats an attempt or a delivery.
            tracing::error!(%error, writes = batch.len(), "outbox: a commit failed");
        }
        for write in batch {
            if let Write::Insert(_, _, done) = write {
                let _ = done.send(result.clone());
            }
        }
    }
}

fn commit(db: &Database, batch: &[Write]) -> Result<(), redb::Error> {
    let write = db.begin_write()?;
    {
        let mut table = write.open_table(REPORTS)?;
        for item in batch {
            match item {
                Write::Insert(seq, bytes, _) | Write::Put(seq, bytes) => {
                    table.insert(seq, bytes.as_slice())?;
                }
                Write::Remove(seq) => {
                    table.remove(seq)?;
                }
            }
        }
    }
    // redb's default durability: the commit returns once it is on disk.
    write.commit()?;
    Ok(())
}
