//! The outbox's reports on disk: one `redb` table, each report's sequence number to its JSON,
//! written by one thread that commits whatever has queued up together (a group commit: one
//! `fsync` for a burst of reports, each acknowledged once its commit is durable).

use super::OutboxError;
use callroute_plugin::report::Outcome;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The reports: sequence number to [`Stored`] as JSON.
const REPORTS: TableDefinition<u64, &[u8]> = TableDefinition::new("reports");

/// Most writes one commit takes.
const MAX_BATCH: usize = 1024;

/// One report waiting.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its place in the outbox (the key on disk).
    pub(super) seq: u64,
    /// Its scheme.
    pub(super) scheme: String,
    /// Its id, the `Idempotency-Key` of every attempt.
    pub(super) id: String,
    /// What the platform reported.
    pub(super) outcome: Outcome,
    /// When it was accepted, in Unix milliseconds.
    pub(super) accepted_ms: u64,
    /// Attempts made so far.
    pub(super) attempts: u32,
    /// When it is next tried, in Unix milliseconds.
    pub(super) due_ms: u64,
}

/// An entry as stored: the outcome in the JSON form every front end reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    scheme: String,
    id: String,
    outcome: String,
    accepted_ms: u64,
    attempts: u32,
    due_ms: u64,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Stored {
            scheme: self.scheme.clone(),
            id: self.id.clone(),
            outcome: self.outcome.to_json(),
            accepted_ms: self.accepted_ms,
            attempts: self.attempts,
            due_ms: self.due_ms,
        })
        .expect("a report serialises")
    }

    fn decode(seq: u64, bytes: &[u8]) -> Result<Entry, String> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let outcome = Outcome::from_json(&stored.outcome).map_err(|e| e.to_string())?;
        Ok(Entry {
            seq,
            scheme: stored.scheme,
            id: stored.id,
            outcome,
            accepted_ms: stored.accepted_ms,
            attempts: stored.attempts,
            due_ms: stored.due_ms,
        })
    }
}

/// A write for the writer thread.
enum Write {
    /// Store a new report; say when it is durable.
    Insert(u64, Vec<u8>, oneshot::Sender<Result<(), String>>),
    /// Store a report again (its attempts, when it is next due).
    Put(u64, Vec<u8>),
    /// Remove a report (delivered or expired).
    Remove(u64),
}

/// The database, behind its writer thread.
pub(super) struct Store {
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
        let db = Database::create(path).map_err(|e| failed(&e))?;
        // The table exists from the first open on, so reading never meets its absence.
        let write = db.begin_write().map_err(|e| failed(&e))?;
        write.open_table(REPORTS).map_err(|e| failed(&e))?;
        write.commit().map_err(|e| failed(&e))?;
        let mut entries = Vec::new();
        {
            let read = db.begin_read().map_err(|e| failed(&e))?;
            let table = read.open_table(REPORTS).map_err(|e| failed(&e))?;
            for row in table.iter().map_err(|e| failed(&e))? {
                let (seq, bytes) = row.map_err(|e| failed(&e))?;
                match Entry::decode(seq.value(), bytes.value()) {
                    Ok(entry) => entries.push(entry),
                    // Written by this code; never expected. Kept on disk, and said.
                    Err(e) => {
                        tracing::error!(seq = seq.value(), error = %e, "outbox: unreadable report kept")
                    }
                }
            }
        }
        let next_seq = entries.iter().map(|e| e.seq + 1).max().unwrap_or(1);
        let (writes, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("callroute-outbox".into())
            .spawn(move || write_loop(db, queue))
            .map_err(|e| failed(&e))?;
        Ok((
            Store {
                writes: Some(writes),
                writer: Some(writer),
                next_seq: AtomicU64::new(next_seq),
            },
            entries,
        ))
    }

    /// A new report's sequence number.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Store a new report; returns once it is durable.
    pub(super) async fn insert(&self, entry: &Entry) -> Result<(), OutboxError> {
        let (done, durable) = oneshot::channel();
        self.send(Write::Insert(entry.seq, entry.encode(), done))
            .map_err(|_| OutboxError::Store("the outbox's writer has stopped".into()))?;
        durable
            .await
            .map_err(|_| OutboxError::Store("the outbox's writer has stopped".into()))?
            .map_err(OutboxError::Store)
    }

    /// Store a report again (not waited for: a crash before it is written only repeats an
    /// attempt).
    pub(super) fn put(&self, entry: &Entry) {
        let _ = self.send(Write::Put(entry.seq, entry.encode()));
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
fn write_loop(db: Database, queue: mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let result = commit(&db, &batch).map_err(|e| e.to_string());
        if let Err(error) = &result {
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
