//! [`Admin`]: an operator's access to any object of a running node, by namespace and name or
//! id, without the user's types: what the server's admin API and console stand on.
//!
//! Reads need no runtime at all (`durable_storage::inspect` reads the files, beside the
//! node). Writes must not go around it: an operator's write runs *inside* the object, as an
//! event of its own ([`Admin::run`]), so it waits its turn behind the object's other events,
//! commits through the commit pipeline (the commit log, the output gate, the alarm index), and
//! is as durable as the object's own writes. Like any event, it starts the object (its
//! constructor and `init` run) if it is not running.

use std::any::Any;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use durable_core::{Error, ErrorKind, ObjectId, Result};
use durable_storage::{DataLayout, SqlValue};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::event::{Payload, Reply, RunInObject};
use crate::rpc::RpcValue;
use crate::shared::RuntimeShared;
use crate::state::State;
use crate::stub::RawStub;

/// One namespace of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminNamespace {
    /// The class.
    pub class: String,
    /// The bindings naming it.
    pub bindings: Vec<String>,
}

/// One object, found by [`Admin::resolve`].
#[derive(Debug, Clone)]
pub struct AdminTarget {
    /// Its class.
    pub class: String,
    /// Its id (with its name when it was given by name).
    pub id: ObjectId,
    ns: u32,
}

impl AdminTarget {
    /// Its name, if it was found by name.
    pub fn name(&self) -> Option<&str> {
        self.id.name()
    }
}

/// What a SQL statement returned: column names and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRows {
    /// The columns' names.
    pub columns: Vec<String>,
    /// The rows' values.
    pub rows: Vec<Vec<SqlValue>>,
    /// Rows the statement wrote.
    pub rows_written: u64,
}

/// One object's content to import (what `durable export` wrote of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectContent {
    /// The `CREATE` statements of its tables and indexes, in order.
    pub schema: Vec<String>,
    /// Rows by table: each row's values, in the table's column order.
    pub rows: Vec<(String, Vec<Vec<SqlValue>>)>,
    /// KV entries, their values as stored (encoded).
    pub kv: Vec<(String, Vec<u8>)>,
    /// Its alarm, in milliseconds since the Unix epoch.
    pub alarm_ms: Option<i64>,
}

/// What [`Admin::import`] wrote into one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Tables and indexes created (those already there with the same definition are kept).
    pub created: usize,
    /// Rows inserted.
    pub rows: u64,
    /// KV entries stored.
    pub kv: usize,
    /// True if the alarm was set.
    pub alarm: bool,
}

/// One hibernatable WebSocket of an object, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSocket {
    /// The tags it was accepted with.
    pub tags: Vec<String>,
    /// Its serialized attachment, if it has one (self-describing MessagePack).
    pub attachment: Option<Vec<u8>>,
}

/// Operator access to the objects of a running node (see the module's doc).
#[derive(Clone)]
pub struct Admin {
    shared: Arc<RuntimeShared>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    pub(crate) fn new(shared: Arc<RuntimeShared>) -> Self {
        Self { shared }
    }

    /// The node's data folder.
    pub fn layout(&self) -> &DataLayout {
        &self.shared.layout
    }

    /// The node's namespaces, by class, with their bindings.
    pub fn namespaces(&self) -> Vec<AdminNamespace> {
        let mut out: Vec<AdminNamespace> = self
            .shared
            .namespaces
            .iter()
            .map(|ns| AdminNamespace {
                class: ns.class_name.to_owned(),
                bindings: Vec::new(),
            })
            .collect();
        for (binding, &index) in &self.shared.bindings {
            if let Some(ns) = out.get_mut(index as usize) {
                ns.bindings.push(binding.clone());
            }
        }
        for ns in &mut out {
            ns.bindings.sort();
        }
        out.sort_by(|a, b| a.class.cmp(&b.class));
        out
    }

    /// The class a namespace argument names: a binding, or a class.
    pub fn class_of(&self, namespace: &str) -> Result<String> {
        self.namespace_index(namespace)
            .map(|index| self.shared.namespaces[index as usize].class_name.to_owned())
    }

    fn namespace_index(&self, namespace: &str) -> Result<u32> {
        if let Some(&index) = self.shared.bindings.get(namespace) {
            return Ok(index);
        }
        if let Some(ns) = self.shared.namespace_of(namespace) {
            return Ok(ns.index);
        }
        let known: Vec<String> = self
            .namespaces()
            .into_iter()
            .map(|ns| format!("{} (binding {})", ns.class, ns.bindings.join(", ")))
            .collect();
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "unknown namespace {namespace:?}: the node has {}",
                known.join(", ")
            ),
        ))
    }

    /// The object `object` (a name, or a 64-hex-digit id of the namespace) of `namespace` (a
    /// binding or a class).
    pub fn resolve(&self, namespace: &str, object: &str) -> Result<AdminTarget> {
        let index = self.namespace_index(namespace)?;
        let ns = &self.shared.namespaces[index as usize];
        let id = if object.len() == 64 && object.bytes().all(|b| b.is_ascii_hexdigit()) {
            ns.key.id_from_string(object).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidId,
                    format!(
                        "{object} is not an object of namespace {}: {e}",
                        ns.class_name
                    ),
                )
            })?
        } else if object.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "give an object's name or its 64-hex-digit id",
            ));
        } else {
            ns.key.id_from_name(object)
        };
        Ok(AdminTarget {
            class: ns.class_name.to_owned(),
            id,
            ns: index,
        })
    }

    /// The path of `target`'s database (which may not exist: an object that never wrote).
    pub fn database_path(&self, target: &AdminTarget) -> std::path::PathBuf {
        self.shared
            .layout
            .object_db(&target.class, &target.id.to_string())
    }

    /// The object's open hibernatable WebSockets, in accept order (read from the node's
    /// memory: it does not wake the object).
    pub fn web_sockets(&self, target: &AdminTarget) -> Vec<AdminSocket> {
        let key = crate::core::ObjectKey::new(target.ns, &target.id);
        let Some(hub) = self.shared.hubs.get(&key) else {
            return Vec::new();
        };
        let sockets: Vec<_> = hub.inner().sockets.values().cloned().collect();
        sockets
            .iter()
            .map(|socket| {
                let state = socket.state();
                AdminSocket {
                    tags: state.tags.clone(),
                    attachment: state.attachment.clone(),
                }
            })
            .collect()
    }

    /// Runs `f` inside the object, as an event of its own (see the module's doc), and
    /// returns its result once its writes are durable.
    pub async fn run<R, F, Fut>(&self, target: &AdminTarget, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(State) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R>> + 'static,
    {
        let raw = RawStub::live(target.id.clone(), Arc::clone(&self.shared), target.ns);
        run_in_object(&raw, move |_object, state| f(state)).await?
    }

    /// Runs `query` inside the object (it may write).
    pub async fn sql(&self, target: &AdminTarget, query: String) -> Result<AdminRows> {
        self.run(target, move |state| async move {
            let cursor = state.storage().sql().exec(&query, ())?;
            let columns = cursor.column_names().to_vec();
            let rows_written = cursor.rows_written();
            let rows: Vec<Vec<SqlValue>> = cursor.raw().collect();
            Ok(AdminRows {
                columns,
                rows,
                rows_written,
            })
        })
        .await
    }

    /// Writes `content` into the object, as one transaction: all of it, or (on any error:
    /// a table there with another definition, a row that conflicts) none of it. A table or
    /// index already there with the same definition (one the class's `init` creates) is
    /// kept; rows are inserted; KV entries are stored as they were exported.
    pub async fn import(
        &self,
        target: &AdminTarget,
        content: ObjectContent,
    ) -> Result<ImportReport> {
        self.run(target, move |state| async move {
            let storage = state.storage();
            let inner = storage.clone();
            storage
                .transaction(|_txn| async move {
                    let sql = inner.sql();
                    let mut report = ImportReport::default();
                    for statement in &content.schema {
                        let existing: Vec<Vec<SqlValue>> = sql
                            .exec(
                                "SELECT sql FROM sqlite_master WHERE sql = ?1",
                                (statement.as_str(),),
                            )?
                            .raw()
                            .collect();
                        if existing.is_empty() {
                            sql.exec(statement, ())?;
                            report.created += 1;
                        }
                    }
                    for (table, rows) in &content.rows {
                        let Some(first) = rows.first() else { continue };
                        let marks = vec!["?"; first.len()].join(", ");
                        let insert = format!(
                            "INSERT INTO \"{}\" VALUES ({marks})",
                            table.replace('"', "\"\"")
                        );
                        for row in rows {
                            sql.exec(&insert, row.clone())?;
                            report.rows += 1;
                        }
                    }
                    let kv = inner.kv();
                    for (key, bytes) in &content.kv {
                        kv.put_encoded(key, bytes)?;
                        report.kv += 1;
                    }
                    if let Some(ms) = content.alarm_ms {
                        inner.set_alarm(ms).await?;
                        report.alarm = true;
                    }
                    Ok(report)
                })
                .await
        })
        .await
    }

    /// Stores `value` under `key` in the object's KV storage.
    pub async fn kv_put<V>(&self, target: &AdminTarget, key: String, value: V) -> Result<()>
    where
        V: Serialize + Send + 'static,
    {
        self.run(target, move |state| async move {
            state.storage().kv().put(&key, &value)
        })
        .await
    }

    /// Deletes `key` from the object's KV storage; true if it was there.
    pub async fn kv_delete(&self, target: &AdminTarget, key: String) -> Result<bool> {
        self.run(target, move |state| async move {
            state.storage().kv().delete(&key)
        })
        .await
    }

    /// Sets the object's alarm.
    pub async fn set_alarm(&self, target: &AdminTarget, time_ms: i64) -> Result<()> {
        self.run(target, move |state| async move {
            state.storage().set_alarm(time_ms).await
        })
        .await
    }

    /// Deletes the object's alarm.
    pub async fn delete_alarm(&self, target: &AdminTarget) -> Result<()> {
        self.run(target, move |state| async move {
            state.storage().delete_alarm().await
        })
        .await
    }
}

/// Runs `f` in `raw`'s object with its instance and `State`, as an event of its own.
pub(crate) async fn run_in_object<F, Fut, R>(raw: &RawStub, f: F) -> Result<R>
where
    F: FnOnce(Rc<dyn Any>, State) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let run: RunInObject = Box::new(move |object: Rc<dyn Any>, state: Box<dyn Any>| {
        Box::pin(async move {
            let state = *state
                .downcast::<State>()
                .map_err(|_| Error::new(ErrorKind::Internal, "no State came with the object"))?;
            let value = f(object, state).await;
            Ok(RpcValue::Local(Box::new(value)))
        })
    });
    let (reply, answer) = oneshot::channel();
    raw.send(Payload::Run(run), Reply::Rpc(reply));
    let value = answer.await.map_err(|_| {
        Error::disconnected("the object's shard stopped before the operation returned")
    })??;
    match value {
        RpcValue::Local(value) => value.downcast::<R>().map(|value| *value).map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                "the operation's value came back as another type",
            )
        }),
        RpcValue::Encoded(_) => Err(Error::new(
            ErrorKind::Internal,
            "the operation's value came back encoded",
        )),
    }
}
