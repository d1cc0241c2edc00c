//! [`PostgresLog`] (feature `postgres`): the records of every object in PostgreSQL, as a
//! second home (replication) and the base a cluster's nodes share.
//!
//! Its tables (created by [`PostgresLog::connect`], versioned in `durable_log_schema`):
//! `durable_object_head` (each object's head: its last record's number and checksum, the
//! compare-and-set point), `durable_commit_log` (each record, its number, time and checksum
//! as columns, its encoded bytes as `bytea`), `durable_snapshot` (where an object's retained
//! history starts once retention compacted it: that record and the database after it) and
//! `durable_class_key` (the namespace keys). An append is one transaction of three
//! statements, whatever its size (array parameters, `unnest`): the heads of new objects are
//! created, every other head moves from exactly the record before the append's first one,
//! then the records are inserted; a head that moved meanwhile (another writer)
//! or a broken chain rolls everything back. So the log never forks and never has a gap, and
//! an append that returned `Ok` is committed (the server must run with `synchronous_commit`
//! on, and synchronous standbys for high availability).
//!
//! The connection is re-opened when it was lost (the server restarted): the operation that
//! found it lost fails with [`LogError::Store`] and may be retried; the next one reconnects.

use std::collections::BTreeMap;
use std::sync::Mutex;

use postgres::{Client, NoTls};

use crate::chain::Head;
use crate::log::{CommitLog, LogError, RecordTime};
use crate::record::{Checksum, EncodedRecord, LogRecord, ObjectName};
use crate::snapshot::Snapshot;

/// The schema version this build creates and uses.
pub const SCHEMA_VERSION: i32 = 3;

/// The commit log in a PostgreSQL database.
pub struct PostgresLog {
    url: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only its host part is shown.
        let host = self.url.rsplit('@').next().unwrap_or("");
        f.debug_struct("PostgresLog").field("host", &host).finish()
    }
}

impl Drop for PostgresLog {
    fn drop(&mut self) {
        // Closing the connection blocks on its runtime too: not on a thread that runs
        // async tasks.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if client.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope.spawn(move || drop(client));
            });
        }
    }
}

fn store(error: postgres::Error) -> LogError {
    LogError::Store(format!("PostgreSQL: {error}"))
}

impl PostgresLog {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and creates the
    /// tables if they are missing.
    pub fn connect(url: &str) -> Result<Self, LogError> {
        let log = Self {
            url: url.to_owned(),
            client: Mutex::new(None),
        };
        log.with_client(migrate)?;
        Ok(log)
    }

    /// Connects to `url` where the log's tables must already exist (a verifier, a restore):
    /// nothing is created; a database without them is an error that says so.
    pub fn open_existing(url: &str) -> Result<Self, LogError> {
        let log = Self {
            url: url.to_owned(),
            client: Mutex::new(None),
        };
        let version: Option<i32> = log.with_client(|client| {
            let exists: bool = client
                .query_one("SELECT to_regclass('durable_log_schema') IS NOT NULL", &[])
                .map_err(store)?
                .get(0);
            if !exists {
                return Ok(None);
            }
            Ok(client
                .query_one("SELECT max(version) FROM durable_log_schema", &[])
                .map_err(store)?
                .get(0))
        })?;
        match version {
            Some(SCHEMA_VERSION) => Ok(log),
            Some(other) => Err(LogError::Store(format!(
                "the database's log schema is version {other}; this build reads version {SCHEMA_VERSION}"
            ))),
            None => Err(LogError::Store(
                "no commit log in this database: its tables (durable_log_schema, durable_commit_log) are missing".into(),
            )),
        }
    }

    /// Runs `f` on the connection, connecting first if there is none or it was lost. The
    /// connection drives its socket with a runtime of its own, which cannot run inside
    /// another: called from a thread that runs async tasks (a shard's), `f` runs on a
    /// short-lived helper thread while the caller waits.
    fn with_client<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, LogError> + Send,
    ) -> Result<T, LogError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.with_client_here(f);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.with_client_here(f))
                .join()
                .unwrap_or_else(|_| Err(LogError::Store("the PostgreSQL call panicked".into())))
        })
    }

    /// [`with_client`](Self::with_client) for an operation that may run twice (a read, or
    /// a write that is the same whether it ran once or twice): when the connection turns out
    /// to have been lost (the server restarted since its last use), it runs once more on a
    /// new one instead of failing. Appends are not retried here: their writer reads the
    /// heads back first.
    fn with_client_again<T: Send>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, LogError> + Send + Sync,
    ) -> Result<T, LogError> {
        let first = self.with_client(&f);
        let lost = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none();
        match first {
            Err(LogError::Store(_)) if lost => self.with_client(&f),
            other => other,
        }
    }

    fn with_client_here<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            let mut config: postgres::Config = self.url.parse().map_err(store)?;
            if config.get_connect_timeout().is_none() {
                // A server that does not answer (a partition) fails the call in seconds, not
                // after the system's TCP timeout.
                config.connect_timeout(std::time::Duration::from_secs(5));
            }
            *slot = Some(config.connect(NoTls).map_err(store)?);
        }
        let client = slot
            .as_mut()
            .ok_or_else(|| LogError::Store("no connection".into()))?;
        let result = f(client);
        if client.is_closed() {
            *slot = None;
        }
        result
    }
}

fn migrate(client: &mut Client) -> Result<(), LogError> {
    let mut tx = client.transaction().map_err(store)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS durable_log_schema (version integer PRIMARY KEY);
         LOCK TABLE durable_log_schema IN EXCLUSIVE MODE;",
    )
    .map_err(store)?;
    let version: Option<i32> = tx
        .query_opt("SELECT max(version) FROM durable_log_schema", &[])
        .map_err(store)?
        .and_then(|row| row.get(0));
    match version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(LogError::Store(format!(
                "the database's log schema is version {v}, newer than this build's {SCHEMA_VERSION}: upgrade this node"
            )));
        }
        Some(v) if v == SCHEMA_VERSION => {}
        Some(1) => tx
            .batch_execute(&format!("{SCHEMA_V2}{SCHEMA_V3}"))
            .map_err(store)?,
        Some(2) => tx.batch_execute(SCHEMA_V3).map_err(store)?,
        _ => {
            tx.batch_execute(
                "CREATE TABLE durable_object_head (
                     class text NOT NULL, id bytea NOT NULL,
                     seq bigint NOT NULL, checksum bigint NOT NULL,
                     PRIMARY KEY (class, id));
                 CREATE TABLE durable_commit_log (
                     class text NOT NULL, id bytea NOT NULL, seq bigint NOT NULL,
                     time_ms bigint NOT NULL, checksum bigint NOT NULL, record bytea NOT NULL,
                     PRIMARY KEY (class, id, seq));
                 INSERT INTO durable_log_schema (version) VALUES (1);",
            )
            .map_err(store)?;
            tx.batch_execute(&format!("{SCHEMA_V2}{SCHEMA_V3}"))
                .map_err(store)?;
        }
    }
    tx.commit().map_err(store)
}

/// Version 2: the namespace keys of the classes.
const SCHEMA_V2: &str =
    "CREATE TABLE durable_class_key (class text PRIMARY KEY, key text NOT NULL);
     INSERT INTO durable_log_schema (version) VALUES (2);";

/// Version 3: each object's snapshot, where its retained history starts (its record and
/// the database after it); the records it covers are deleted.
const SCHEMA_V3: &str = "CREATE TABLE durable_snapshot (
         class text NOT NULL, id bytea NOT NULL, seq bigint NOT NULL,
         time_ms bigint NOT NULL, checksum bigint NOT NULL,
         record bytea NOT NULL, image bytea NOT NULL,
         PRIMARY KEY (class, id));
     INSERT INTO durable_log_schema (version) VALUES (3);";

/// The columns of the head statements: class, id, start seq and checksum, end seq and
/// checksum, one entry per run.
type HeadColumns<'a> = (
    Vec<&'a str>,
    Vec<&'a [u8]>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
);

fn columns<'a>(runs: &[(&&'a ObjectName, &(Head, Head))]) -> HeadColumns<'a> {
    let classes = runs.iter().map(|(o, _)| o.class.as_str()).collect();
    let ids = runs.iter().map(|(o, _)| o.id.as_slice()).collect();
    let start_seq = runs.iter().map(|(_, (s, _))| s.seq as i64).collect();
    let start_sum = runs.iter().map(|(_, (s, _))| s.checksum.0 as i64).collect();
    let end_seq = runs.iter().map(|(_, (_, e))| e.seq as i64).collect();
    let end_sum = runs.iter().map(|(_, (_, e))| e.checksum.0 as i64).collect();
    (classes, ids, start_seq, start_sum, end_seq, end_sum)
}

/// A record's place in history from a row of `SELECT seq, time_ms, checksum`.
fn record_time(row: &postgres::Row) -> RecordTime {
    RecordTime {
        seq: row.get::<_, i64>(0) as u64,
        time_ms: row.get(1),
        checksum: Checksum(row.get::<_, i64>(2) as u64),
    }
}

fn head_of(
    client: &mut impl postgres::GenericClient,
    object: &ObjectName,
) -> Result<Head, LogError> {
    let row = client
        .query_opt(
            "SELECT seq, checksum FROM durable_object_head WHERE class = $1 AND id = $2",
            &[&object.class, &object.id.as_slice()],
        )
        .map_err(store)?;
    Ok(row.map_or(Head::EMPTY, |row| Head {
        seq: row.get::<_, i64>(0) as u64,
        checksum: Checksum(row.get::<_, i64>(1) as u64),
    }))
}

impl CommitLog for PostgresLog {
    fn append_encoded(&self, records: &[EncodedRecord]) -> Result<(), LogError> {
        if records.is_empty() {
            return Ok(());
        }
        // Each object's run, in order, with the head it must start from and end at.
        let mut runs: BTreeMap<&ObjectName, (Head, Head)> = BTreeMap::new();
        for record in records {
            if record.seq == 1 && record.prev != Checksum::GENESIS {
                return Err(LogError::Chain {
                    class: record.object.class.clone(),
                    seq: 1,
                    source: crate::chain::ChainError::Fork {
                        seq: 1,
                        expected_prev: Checksum::GENESIS,
                        found_prev: record.prev,
                    },
                });
            }
            let (_, end) = runs.entry(&record.object).or_insert_with(|| {
                let start = Head {
                    seq: record.seq.saturating_sub(1),
                    checksum: record.prev,
                };
                (start, start)
            });
            *end = end
                .follow(record.seq, record.prev, record.checksum)
                .map_err(|source| LogError::Chain {
                    class: record.object.class.clone(),
                    seq: record.seq,
                    source,
                })?;
        }
        // Three statements whatever the number of records: heads created, heads moved (each
        // from exactly its expected value), records inserted.
        let (new, moved): (Vec<_>, Vec<_>) =
            runs.iter().partition(|(_, (start, _))| start.seq == 0);
        self.with_client(|client| {
            let mut tx = client.transaction().map_err(store)?;
            let mut done = 0;
            if !new.is_empty() {
                let (classes, ids, _, _, end_seq, end_sum) = columns(&new);
                done += tx
                    .execute(
                        "INSERT INTO durable_object_head (class, id, seq, checksum)
                         SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[])
                         ON CONFLICT DO NOTHING",
                        &[&classes, &ids, &end_seq, &end_sum],
                    )
                    .map_err(store)?;
            }
            if !moved.is_empty() {
                let (classes, ids, start_seq, start_sum, end_seq, end_sum) = columns(&moved);
                done += tx
                    .execute(
                        "UPDATE durable_object_head AS h SET seq = u.end_seq, checksum = u.end_sum
                         FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
                             AS u(class, id, start_seq, start_sum, end_seq, end_sum)
                         WHERE h.class = u.class AND h.id = u.id
                           AND h.seq = u.start_seq AND h.checksum = u.start_sum",
                        &[&classes, &ids, &start_seq, &start_sum, &end_seq, &end_sum],
                    )
                    .map_err(store)?;
            }
            if done != runs.len() as u64 {
                // Some stored head is not the one its run continues: say which, and how.
                for (object, (start, _)) in &runs {
                    let stored = head_of(&mut tx, object)?;
                    if stored.seq == start.seq && stored.checksum == start.checksum {
                        continue;
                    }
                    let first = records
                        .iter()
                        .find(|r| &&r.object == object)
                        .ok_or_else(|| LogError::Store("a run without records".into()))?;
                    let source = match stored.follow(first.seq, first.prev, first.checksum) {
                        Err(source) => source,
                        Ok(_) => crate::chain::ChainError::Repeat {
                            seq: first.seq,
                            head: stored.seq,
                        },
                    };
                    return Err(LogError::Chain {
                        class: object.class.clone(),
                        seq: first.seq,
                        source,
                    });
                }
                return Err(LogError::Store("the heads moved during the append".into()));
            }
            let classes: Vec<&str> = records.iter().map(|r| r.object.class.as_str()).collect();
            let ids: Vec<&[u8]> = records.iter().map(|r| r.object.id.as_slice()).collect();
            let seqs: Vec<i64> = records.iter().map(|r| r.seq as i64).collect();
            let times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
            let sums: Vec<i64> = records.iter().map(|r| r.checksum.0 as i64).collect();
            let bytes: Vec<&[u8]> = records.iter().map(|r| r.bytes.as_slice()).collect();
            tx.execute(
                "INSERT INTO durable_commit_log (class, id, seq, time_ms, checksum, record)
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], $6::bytea[])",
                &[&classes, &ids, &seqs, &times, &sums, &bytes],
            )
            .map_err(store)?;
            tx.commit().map_err(store)
        })
    }

    fn head(&self, object: &ObjectName) -> Result<Head, LogError> {
        self.with_client_again(|client| head_of(client, object))
    }

    fn records(&self, object: &ObjectName, from: u64, to: u64) -> Result<Vec<LogRecord>, LogError> {
        let to = i64::try_from(to).unwrap_or(i64::MAX);
        let rows = self.with_client_again(|client| {
            client
                .query(
                    "SELECT seq, record FROM durable_snapshot
                     WHERE class = $1 AND id = $2 AND seq BETWEEN $3 AND $4
                     UNION ALL
                     SELECT seq, record FROM durable_commit_log
                     WHERE class = $1 AND id = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq",
                    &[&object.class, &object.id.as_slice(), &(from as i64), &to],
                )
                .map_err(store)
        })?;
        rows.into_iter()
            .map(|row| {
                let seq = row.get::<_, i64>(0) as u64;
                let bytes: Vec<u8> = row.get(1);
                let (record, _) = LogRecord::decode(&bytes).map_err(|error| {
                    LogError::Damaged(format!("record {seq} of {}: {error}", object.class))
                })?;
                if record.seq != seq || &record.object != object {
                    return Err(LogError::Damaged(format!(
                        "the row of record {seq} of {} holds another record",
                        object.class
                    )));
                }
                Ok(record)
            })
            .collect()
    }

    fn record_at_time(
        &self,
        object: &ObjectName,
        time_ms: i64,
    ) -> Result<Option<RecordTime>, LogError> {
        let row = self.with_client_again(|client| {
            client
                .query_opt(
                    "(SELECT seq, time_ms, checksum FROM durable_commit_log
                      WHERE class = $1 AND id = $2 AND time_ms <= $3 ORDER BY seq DESC LIMIT 1)
                     UNION ALL
                     (SELECT seq, time_ms, checksum FROM durable_snapshot
                      WHERE class = $1 AND id = $2 AND time_ms <= $3)
                     ORDER BY seq DESC LIMIT 1",
                    &[&object.class, &object.id.as_slice(), &time_ms],
                )
                .map_err(store)
        })?;
        Ok(row.as_ref().map(record_time))
    }

    fn history_start(&self, object: &ObjectName) -> Result<Option<RecordTime>, LogError> {
        let row = self.with_client_again(|client| {
            client
                .query_opt(
                    "SELECT seq, time_ms, checksum FROM durable_snapshot
                     WHERE class = $1 AND id = $2",
                    &[&object.class, &object.id.as_slice()],
                )
                .map_err(store)
        })?;
        Ok(row.as_ref().map(record_time))
    }

    fn snapshot(&self, object: &ObjectName) -> Result<Option<Snapshot>, LogError> {
        let row = self.with_client_again(|client| {
            client
                .query_opt(
                    "SELECT seq, record, image FROM durable_snapshot WHERE class = $1 AND id = $2",
                    &[&object.class, &object.id.as_slice()],
                )
                .map_err(store)
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seq = row.get::<_, i64>(0) as u64;
        let bytes: Vec<u8> = row.get(1);
        let (record, _) = LogRecord::decode(&bytes).map_err(|error| {
            LogError::Damaged(format!(
                "the snapshot of {} at record {seq}: {error}",
                object.class
            ))
        })?;
        if record.seq != seq || &record.object != object {
            return Err(LogError::Damaged(format!(
                "the snapshot row of {} at record {seq} holds another record",
                object.class
            )));
        }
        Ok(Some(Snapshot {
            record,
            image: row.get(2),
        }))
    }

    fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), LogError> {
        let object = snapshot.object();
        let at = snapshot.record_time();
        let record = snapshot.record.encode();
        self.with_client(|client| {
            let mut tx = client.transaction().map_err(store)?;
            // The snapshot's record must be one the log holds: a retained record, or the
            // current snapshot's (put again).
            let held: Option<i64> = tx
                .query_opt(
                    "SELECT checksum FROM durable_commit_log WHERE class = $1 AND id = $2 AND seq = $3
                     UNION ALL
                     SELECT checksum FROM durable_snapshot WHERE class = $1 AND id = $2 AND seq = $3",
                    &[&object.class, &object.id.as_slice(), &(at.seq as i64)],
                )
                .map_err(store)?
                .map(|row| row.get(0));
            if held != Some(at.checksum.0 as i64) {
                return Err(LogError::Conflict(format!(
                    "the snapshot's record {} of {} is not one the log holds",
                    at.seq, object.class
                )));
            }
            let moved = tx
                .execute(
                    "INSERT INTO durable_snapshot (class, id, seq, time_ms, checksum, record, image)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (class, id) DO UPDATE SET seq = excluded.seq,
                         time_ms = excluded.time_ms, checksum = excluded.checksum,
                         record = excluded.record, image = excluded.image
                     WHERE durable_snapshot.seq <= excluded.seq",
                    &[
                        &object.class,
                        &object.id.as_slice(),
                        &(at.seq as i64),
                        &at.time_ms,
                        &(at.checksum.0 as i64),
                        &record,
                        &snapshot.image,
                    ],
                )
                .map_err(store)?;
            if moved != 1 {
                return Err(LogError::Conflict(format!(
                    "a snapshot at record {} of {} would move its history back",
                    at.seq, object.class
                )));
            }
            tx.execute(
                "DELETE FROM durable_commit_log WHERE class = $1 AND id = $2 AND seq <= $3",
                &[&object.class, &object.id.as_slice(), &(at.seq as i64)],
            )
            .map_err(store)?;
            tx.commit().map_err(store)
        })
    }

    fn objects(&self) -> Result<Vec<ObjectName>, LogError> {
        let rows = self.with_client_again(|client| {
            client
                .query(
                    "SELECT class, id FROM durable_object_head ORDER BY class, id",
                    &[],
                )
                .map_err(store)
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let class: String = row.get(0);
                let id: Vec<u8> = row.get(1);
                let id: [u8; 32] = id.try_into().ok()?;
                Some(ObjectName { class, id })
            })
            .collect())
    }

    fn class_keys(&self) -> Result<Vec<(String, String)>, LogError> {
        let rows = self.with_client_again(|client| {
            client
                .query(
                    "SELECT class, key FROM durable_class_key ORDER BY class",
                    &[],
                )
                .map_err(store)
        })?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    fn forget_class_key(&self, class: &str) -> Result<(), LogError> {
        self.with_client_again(|client| {
            client
                .execute("DELETE FROM durable_class_key WHERE class = $1", &[&class])
                .map_err(store)
                .map(drop)
        })
    }

    fn put_class_key(&self, class: &str, key_hex: &str) -> Result<(), LogError> {
        self.with_client_again(|client| {
            client
                .execute(
                    "INSERT INTO durable_class_key (class, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&class, &key_hex],
                )
                .map_err(store)?;
            let stored: String = client
                .query_one("SELECT key FROM durable_class_key WHERE class = $1", &[&class])
                .map_err(store)?
                .get(0);
            crate::log::check_class_key(class, Some(&stored), key_hex).map(|_| ())
        })
    }
}
