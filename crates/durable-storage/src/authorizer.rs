//! The SQLite authorizer: what user SQL may do inside its object's database.
//!
//! User SQL is compiled with the authorizer on; the storage layer's own statements (KV table,
//! batch transactions, savepoints) are compiled with it off. [`decide`] is a pure function of
//! one SQLite action, so every rule is unit-tested without a database. SQLite itself only
//! reports "not authorized"; the `Guard` remembers the rule that refused, so the error the
//! user sees names it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Which rule refused a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE.
    Transaction,
    /// ATTACH, DETACH.
    Attach,
    /// TEMP tables, indexes, triggers, views.
    Temporary,
    /// A name starting with `_cf_`.
    ReservedName,
    /// A virtual table module other than FTS5 and R-tree.
    VirtualTable,
    /// A PRAGMA outside the allowlist.
    Pragma,
    /// A function that reveals or changes the engine.
    Function,
}

/// A refused action, with a message that names the rule and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule.
    pub rule: Rule,
    /// The explanation.
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not authorized: {}: SQLITE_AUTH", self.detail)
    }
}

fn refuse(rule: Rule, detail: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        rule,
        detail: detail.into(),
    })
}

/// True for names the platform reserves (`_cf_` prefix, any case).
pub fn is_reserved_name(name: &str) -> bool {
    name.len() >= 4 && name.as_bytes()[..4].eq_ignore_ascii_case(b"_cf_")
}

fn check_name(name: &str) -> Result<(), Refusal> {
    if is_reserved_name(name) {
        refuse(
            Rule::ReservedName,
            format!(
                "access to {name} is prohibited: names starting with _cf_ are reserved for the platform"
            ),
        )
    } else {
        Ok(())
    }
}

const VIRTUAL_TABLE_MODULES: &[&str] = &["fts5", "fts5vocab", "rtree", "rtree_i32"];

const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "sqlite_version",
    "sqlite_source_id",
    "sqlite_compileoption_get",
    "sqlite_compileoption_used",
    "fts3_tokenizer",
    "readfile",
    "writefile",
];

const READ_ONLY_PRAGMAS: &[&str] = &["data_version", "page_size", "table_list"];
const BOOLEAN_PRAGMAS: &[&str] = &[
    "case_sensitive_like",
    "foreign_keys",
    "defer_foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
];
const OBJECT_PRAGMAS: &[&str] = &[
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "table_info",
    "table_xinfo",
];

fn check_pragma(name: &str, value: Option<&str>) -> Result<(), Refusal> {
    let lower = name.to_ascii_lowercase();
    let value = value.map(|v| v.trim_matches(|c| c == '\'' || c == '"'));
    let allowed = if READ_ONLY_PRAGMAS.contains(&lower.as_str()) {
        value.is_none()
    } else if BOOLEAN_PRAGMAS.contains(&lower.as_str()) {
        value.is_none_or(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
            )
        })
    } else if OBJECT_PRAGMAS.contains(&lower.as_str()) {
        match value {
            Some(object) => return check_name(object),
            None => false,
        }
    } else if lower == "foreign_key_check" {
        return value.map_or(Ok(()), check_name);
    } else if lower == "quick_check" {
        return value.map_or(Ok(()), |v| {
            if v.parse::<u32>().is_ok() {
                Ok(())
            } else {
                check_name(v)
            }
        });
    } else if lower == "optimize" {
        value.is_none_or(|v| v.parse::<u64>().is_ok() || v.starts_with("0x"))
    } else {
        false
    };
    if allowed {
        Ok(())
    } else {
        let shown = match value {
            Some(v) => format!("PRAGMA {name} = {v}"),
            None => format!("PRAGMA {name}"),
        };
        refuse(
            Rule::Pragma,
            format!(
                "{shown} is not allowed; allowed are read-only and introspection pragmas such as table_info, table_list and foreign_keys"
            ),
        )
    }
}

/// Decides one action of user SQL.
pub fn decide(action: &AuthAction<'_>) -> Result<(), Refusal> {
    match *action {
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => refuse(
            Rule::Transaction,
            "transaction statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) are not allowed: use transaction_sync() or transaction() instead",
        ),
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => refuse(
            Rule::Attach,
            "ATTACH and DETACH are not allowed: an object has exactly one database",
        ),
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => refuse(
            Rule::Temporary,
            "TEMP tables, indexes, triggers and views are not allowed: create ordinary ones",
        ),
        AuthAction::CreateVtable {
            table_name,
            module_name,
        } => {
            check_name(table_name)?;
            if VIRTUAL_TABLE_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module_name))
            {
                Ok(())
            } else {
                refuse(
                    Rule::VirtualTable,
                    format!(
                        "virtual table module {module_name} is not allowed; use fts5, fts5vocab, rtree or rtree_i32"
                    ),
                )
            }
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                refuse(
                    Rule::Function,
                    format!("not authorized to use function: {function_name}"),
                )
            } else {
                Ok(())
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => check_pragma(pragma_name, pragma_value),
        AuthAction::CreateIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropIndex {
            index_name,
            table_name,
        } => {
            check_name(index_name)?;
            check_name(table_name)
        }
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTrigger {
            trigger_name,
            table_name,
        } => {
            check_name(trigger_name)?;
            check_name(table_name)
        }
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Insert { table_name }
        | AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::DropVtable { table_name, .. } => check_name(table_name),
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            check_name(view_name)
        }
        AuthAction::Reindex { index_name } => check_name(index_name),
        _ => Ok(()),
    }
}

/// The authorizer installed on a connection: off for the storage layer's own statements, on
/// while user SQL is compiled, remembering the last refusal.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    enabled: AtomicBool,
    refusal: Mutex<Option<Refusal>>,
}

impl Guard {
    pub(crate) fn install(conn: &mut rusqlite::Connection) -> rusqlite::Result<Arc<Guard>> {
        let guard = Arc::new(Guard::default());
        let hook_guard = Arc::clone(&guard);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if !hook_guard.enabled.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            match decide(&ctx.action) {
                Ok(()) => Authorization::Allow,
                Err(refusal) => {
                    *hook_guard.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
                    Authorization::Deny
                }
            }
        }))?;
        Ok(guard)
    }

    /// Runs `compile` with the authorizer on; returns the refusal it recorded, if any.
    pub(crate) fn checked<T>(&self, compile: impl FnOnce() -> T) -> (T, Option<Refusal>) {
        self.enabled.store(true, Ordering::Relaxed);
        let out = compile();
        self.enabled.store(false, Ordering::Relaxed);
        let refusal = self
            .refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        (out, refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::hooks::TransactionOperation;

    fn check(action: AuthAction<'_>, expected: Option<Rule>) {
        let got = decide(&action).err().map(|r| r.rule);
        assert_eq!(got, expected, "{action:?}");
    }

    #[test]
    fn rules_table() {
        use AuthAction as A;
        check(A::Select, None);
        check(
            A::Read {
                table_name: "users",
                column_name: "id",
            },
            None,
        );
        check(
            A::Read {
                table_name: "_cf_KV",
                column_name: "key",
            },
            Some(Rule::ReservedName),
        );
        check(
            A::Read {
                table_name: "_CF_kv",
                column_name: "key",
            },
            Some(Rule::ReservedName),
        );
        check(
            A::Insert {
                table_name: "_cf_x",
            },
            Some(Rule::ReservedName),
        );
        check(
            A::CreateTable {
                table_name: "_cf_mine",
            },
            Some(Rule::ReservedName),
        );
        check(
            A::CreateTable {
                table_name: "cf_fine",
            },
            None,
        );
        check(
            A::CreateIndex {
                index_name: "_cf_i",
                table_name: "t",
            },
            Some(Rule::ReservedName),
        );
        check(
            A::Transaction {
                operation: TransactionOperation::Begin,
            },
            Some(Rule::Transaction),
        );
        check(
            A::Savepoint {
                operation: TransactionOperation::Begin,
                savepoint_name: "s",
            },
            Some(Rule::Transaction),
        );
        check(
            A::Attach {
                filename: "other.db",
            },
            Some(Rule::Attach),
        );
        check(A::Detach { database_name: "x" }, Some(Rule::Attach));
        check(
            A::CreateTempTable { table_name: "t" },
            Some(Rule::Temporary),
        );
        check(A::CreateTempView { view_name: "v" }, Some(Rule::Temporary));
        check(
            A::CreateVtable {
                table_name: "docs",
                module_name: "FTS5",
            },
            None,
        );
        check(
            A::CreateVtable {
                table_name: "box",
                module_name: "rtree",
            },
            None,
        );
        check(
            A::CreateVtable {
                table_name: "x",
                module_name: "fts4",
            },
            Some(Rule::VirtualTable),
        );
        check(
            A::Function {
                function_name: "load_extension",
            },
            Some(Rule::Function),
        );
        check(
            A::Function {
                function_name: "sqlite_version",
            },
            Some(Rule::Function),
        );
        check(
            A::Function {
                function_name: "json_extract",
            },
            None,
        );
    }

    #[test]
    fn pragma_allowlist() {
        let pragma = |name, value| AuthAction::Pragma {
            pragma_name: name,
            pragma_value: value,
        };
        check(pragma("table_list", None), None);
        check(pragma("table_info", Some("users")), None);
        check(
            pragma("table_info", Some("_cf_KV")),
            Some(Rule::ReservedName),
        );
        check(pragma("foreign_keys", None), None);
        check(pragma("foreign_keys", Some("ON")), None);
        check(pragma("foreign_keys", Some("'off'")), None);
        check(pragma("foreign_keys", Some("maybe")), Some(Rule::Pragma));
        check(pragma("page_size", None), None);
        check(pragma("page_size", Some("8192")), Some(Rule::Pragma));
        check(pragma("user_version", None), Some(Rule::Pragma));
        check(pragma("journal_mode", Some("delete")), Some(Rule::Pragma));
        check(pragma("writable_schema", Some("1")), Some(Rule::Pragma));
        check(pragma("quick_check", Some("10")), None);
        check(pragma("optimize", None), None);
        let message = decide(&pragma("user_version", None))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("PRAGMA user_version is not allowed"),
            "{message}"
        );
        assert!(message.ends_with("SQLITE_AUTH"), "{message}");
    }
}
