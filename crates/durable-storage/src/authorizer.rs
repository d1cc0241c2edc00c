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
    /// TEMP tables, indexes, triggers, views, and anything in the `temp` schema.
    Temporary,
    /// A name starting with `_cf_`.
    ReservedName,
    /// A virtual table module other than FTS5 and R-tree, or an introspection table
    /// (`dbstat`).
    VirtualTable,
    /// A PRAGMA outside the allowlist, or a table-valued pragma function outside it.
    Pragma,
    /// A function outside the allowlist.
    Function,
    /// An action this version of the authorizer does not know: refused until reviewed.
    Unreviewed,
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
        match self.rule {
            // The fix comes first: what to use instead is all the caller needs.
            Rule::Transaction => write!(f, "{} (SQLITE_AUTH)", self.detail),
            _ => write!(f, "not authorized: {}: SQLITE_AUTH", self.detail),
        }
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

/// Every SQL function user code may call, by the name SQLite reports (lower case). It is an
/// allowlist, so a function a future SQLite adds stays unavailable until it is reviewed. The
/// set follows Cloudflare's runtime: SQLite's core, date, aggregate, window, math and JSON
/// functions and the FTS5 auxiliary functions; not `load_extension`, not the functions that
/// reveal the engine's build (`sqlite_version`, `sqlite_source_id`,
/// `sqlite_compileoption_*`, `sqlite_offset`), and not `soundex` (not compiled in).
const ALLOWED_FUNCTIONS: &[&str] = &[
    // Core scalar functions.
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "if",
    "ifnull",
    "iif",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unlikely",
    "upper",
    "zeroblob",
    // Date and time.
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "julianday",
    "strftime",
    "time",
    "timediff",
    "unixepoch",
    // Aggregates.
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    // Window functions.
    "cume_dist",
    "dense_rank",
    "first_value",
    "lag",
    "last_value",
    "lead",
    "nth_value",
    "ntile",
    "percent_rank",
    "rank",
    "row_number",
    // Math.
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON (the `->` and `->>` operators are functions too).
    "->",
    "->>",
    "json",
    "json_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    // Full-text search.
    "bm25",
    "highlight",
    "match",
    "snippet",
    // Called by SQLite itself while it runs ALTER TABLE.
    "sqlite_drop_column",
    "sqlite_rename_column",
    "sqlite_rename_quotefix",
    "sqlite_rename_table",
    "sqlite_rename_test",
];

/// Table-valued functions and virtual tables that exist in every database: allowed when
/// listed here, refused when they are introspection tables (`dbstat`, `pragma_*` outside
/// the pragma allowlist).
const ALLOWED_TABLE_FUNCTIONS: &[&str] = &[
    "json_each",
    "json_tree",
    "jsonb_each",
    "jsonb_tree",
    "pragma_foreign_key_list",
    "pragma_index_info",
    "pragma_index_list",
    "pragma_index_xinfo",
    "pragma_table_info",
    "pragma_table_list",
    "pragma_table_xinfo",
];

const INTROSPECTION_TABLES: &[&str] = &[
    "dbstat",
    "sqlite_dbpage",
    "sqlite_stmt",
    "bytecode",
    "tables_used",
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

/// Checks a table read: reserved names, and the built-in table-valued functions and
/// virtual tables that reveal the engine or the file.
fn check_read(table_name: &str) -> Result<(), Refusal> {
    check_name(table_name)?;
    let lower = table_name.to_ascii_lowercase();
    if INTROSPECTION_TABLES.contains(&lower.as_str()) {
        return refuse(
            Rule::VirtualTable,
            format!("{table_name} is not available: it shows the database file, not its data"),
        );
    }
    if lower.starts_with("pragma_") && !ALLOWED_TABLE_FUNCTIONS.contains(&lower.as_str()) {
        return refuse(
            Rule::Pragma,
            format!(
                "{table_name} is not allowed; allowed table-valued pragmas are {}",
                ALLOWED_TABLE_FUNCTIONS
                    .iter()
                    .filter(|name| name.starts_with("pragma_"))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Ok(())
}

/// Checks the schema an action names: only `main` (user SQL never sees another schema;
/// `temp` is refused, as TEMP objects are).
fn check_schema(action: &AuthAction<'_>, database: Option<&str>) -> Result<(), Refusal> {
    match database {
        None | Some("main") => Ok(()),
        // SQLite reads (and during ALTER TABLE updates) the temp schema's catalog itself.
        Some("temp")
            if matches!(
                action,
                AuthAction::Read { table_name, .. } | AuthAction::Update { table_name, .. }
                    if table_name.eq_ignore_ascii_case("sqlite_temp_master")
                        || table_name.eq_ignore_ascii_case("sqlite_master")
            ) =>
        {
            Ok(())
        }
        Some("temp") => refuse(
            Rule::Temporary,
            "TEMP tables, indexes, triggers and views (the temp schema) are not allowed: create ordinary ones",
        ),
        Some(other) => refuse(
            Rule::Attach,
            format!("schema {other} does not exist: an object has exactly one database"),
        ),
    }
}

/// Decides one action of user SQL. `database` is the schema the action is in, as SQLite
/// reports it.
pub fn decide(action: &AuthAction<'_>, database: Option<&str>) -> Result<(), Refusal> {
    check_schema(action, database)?;
    match *action {
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => refuse(
            Rule::Transaction,
            "use transaction_sync() or transaction() instead of BEGIN, COMMIT, ROLLBACK, SAVEPOINT or RELEASE: they roll back on error and commit with the turn's other writes",
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
            if ALLOWED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Ok(())
            } else {
                refuse(
                    Rule::Function,
                    format!("not authorized to use function: {function_name}"),
                )
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
        AuthAction::Read { table_name, .. } => check_read(table_name),
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::DropVtable { table_name, .. } => check_name(table_name),
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => {
            check_name(view_name)
        }
        AuthAction::Reindex { index_name } => check_name(index_name),
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        // A new action code (or one rusqlite does not name): refused until reviewed, so a
        // newer SQLite cannot open a hole by adding one.
        _ => refuse(
            Rule::Unreviewed,
            format!("{action:?} is not allowed: this action has not been reviewed for user SQL"),
        ),
    }
}

/// The new name of an `ALTER TABLE ... RENAME TO name` statement (unquoted), if `sql` is one.
/// SQLite's authorizer reports the old name only, so the new one is read from the text.
pub fn rename_target(sql: &str) -> Option<String> {
    let tokens = tokens(sql, 8);
    let keyword = |index: usize, word: &str| {
        tokens
            .get(index)
            .is_some_and(|(text, quoted)| !quoted && text.eq_ignore_ascii_case(word))
    };
    if !(keyword(0, "alter") && keyword(1, "table")) {
        return None;
    }
    // ALTER TABLE [schema .] name RENAME TO new
    let after_name = if tokens
        .get(3)
        .is_some_and(|(text, quoted)| !quoted && text == ".")
    {
        5
    } else {
        3
    };
    if keyword(after_name, "rename") && keyword(after_name + 1, "to") {
        tokens.get(after_name + 2).map(|(text, _)| text.clone())
    } else {
        None
    }
}

/// The first `max` tokens of `sql`: words, quoted names (unquoted, flagged) and single
/// punctuation characters; comments and whitespace skipped.
fn tokens(sql: &str, max: usize) -> Vec<(String, bool)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < max {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            i = sql[i..].find('\n').map_or(bytes.len(), |p| i + p + 1);
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |p| i + 2 + p + 2);
        } else if matches!(c, b'"' | b'`' | b'\'' | b'[') {
            let close = if c == b'[' { b']' } else { c };
            let mut name = Vec::new();
            let mut j = i + 1;
            while j < bytes.len() {
                if bytes[j] == close {
                    if close != b']' && bytes.get(j + 1) == Some(&close) {
                        name.push(close);
                        j += 2;
                        continue;
                    }
                    break;
                }
                name.push(bytes[j]);
                j += 1;
            }
            out.push((String::from_utf8_lossy(&name).into_owned(), true));
            i = j + 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let end = bytes[i..]
                .iter()
                .position(|b| {
                    !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$' || *b >= 0x80)
                })
                .map_or(bytes.len(), |p| i + p);
            out.push((sql[i..end].to_owned(), false));
            i = end;
        } else {
            out.push(((c as char).to_string(), false));
            i += 1;
        }
    }
    out
}

/// True for actions that add or change rows of the object's tables: what a full disk
/// refuses. Reading, deleting and dropping are how space is freed, and schema statements
/// (`CREATE TABLE IF NOT EXISTS` in a constructor) stay allowed so objects can still start;
/// they take little space, except a new index over a large table.
pub fn may_grow(action: &AuthAction<'_>) -> bool {
    match action {
        AuthAction::Insert { table_name } | AuthAction::Update { table_name, .. } => {
            // Schema statements insert into the schema table; that is not row growth.
            !table_name.starts_with("sqlite_")
        }
        _ => false,
    }
}

/// The authorizer installed on a connection: off for the storage layer's own statements, on
/// while user SQL is compiled, remembering the last refusal.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    enabled: AtomicBool,
    refusal: Mutex<Option<Refusal>>,
    /// An action seen since the last `take_grows` may make the database bigger.
    grows: AtomicBool,
}

impl Guard {
    pub(crate) fn install(conn: &mut rusqlite::Connection) -> rusqlite::Result<Arc<Guard>> {
        let guard = Arc::new(Guard::default());
        let hook_guard = Arc::clone(&guard);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if !hook_guard.enabled.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            if may_grow(&ctx.action) {
                hook_guard.grows.store(true, Ordering::Relaxed);
            }
            // A plain `ANALYZE` asks for every table: the reserved ones are skipped (SQLite
            // leaves a table out when told to ignore it), not a reason to refuse the statement.
            if let AuthAction::Analyze { table_name } = &ctx.action
                && is_reserved_name(table_name)
            {
                return Authorization::Ignore;
            }
            match decide(&ctx.action, ctx.database_name) {
                Ok(()) => Authorization::Allow,
                Err(refusal) => {
                    *hook_guard.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
                    Authorization::Deny
                }
            }
        }))?;
        Ok(guard)
    }

    /// True if an action seen since the last call may make the database bigger.
    pub(crate) fn take_grows(&self) -> bool {
        self.grows.swap(false, Ordering::Relaxed)
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
        let got = decide(&action, Some("main")).err().map(|r| r.rule);
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
        for allowed in ["sqrt", "->>", "string_agg", "bm25", "unixepoch", "COUNT"] {
            check(
                A::Function {
                    function_name: allowed,
                },
                None,
            );
        }
        for denied in ["soundex", "sqlite_offset", "fts5_source_id", "made_up"] {
            check(
                A::Function {
                    function_name: denied,
                },
                Some(Rule::Function),
            );
        }
        for table in ["dbstat", "pragma_function_list", "pragma_compile_options"] {
            let rule = decide(
                &A::Read {
                    table_name: table,
                    column_name: "x",
                },
                Some("main"),
            )
            .unwrap_err()
            .rule;
            assert_ne!(rule, Rule::ReservedName, "{table}");
        }
        check(
            A::Read {
                table_name: "pragma_table_info",
                column_name: "name",
            },
            None,
        );
        check(
            A::Read {
                table_name: "json_each",
                column_name: "value",
            },
            None,
        );
        check(A::Recursive, None);
        check(
            A::Unknown {
                code: 99,
                arg1: None,
                arg2: None,
            },
            Some(Rule::Unreviewed),
        );
    }

    #[test]
    fn only_the_main_schema_is_reachable() {
        use AuthAction as A;
        let create = A::CreateTable { table_name: "tt" };
        assert_eq!(
            decide(&create, Some("temp")).unwrap_err().rule,
            Rule::Temporary
        );
        assert_eq!(
            decide(&create, Some("other")).unwrap_err().rule,
            Rule::Attach
        );
        assert!(decide(&create, Some("main")).is_ok());
        let catalog = A::Read {
            table_name: "sqlite_temp_master",
            column_name: "sql",
        };
        assert!(decide(&catalog, Some("temp")).is_ok());
        let insert = A::Insert { table_name: "tt" };
        assert_eq!(
            decide(&insert, Some("temp")).unwrap_err().rule,
            Rule::Temporary
        );
    }

    #[test]
    fn rename_targets_are_read_from_the_text() {
        assert_eq!(
            rename_target("ALTER TABLE t RENAME TO _cf_KV").as_deref(),
            Some("_cf_KV")
        );
        assert_eq!(
            rename_target("alter /* x */ table main.t rename to \"_cf_x\"").as_deref(),
            Some("_cf_x")
        );
        assert_eq!(
            rename_target("ALTER TABLE [t] RENAME TO [a b]").as_deref(),
            Some("a b")
        );
        assert_eq!(rename_target("ALTER TABLE t RENAME COLUMN a TO b"), None);
        assert_eq!(rename_target("ALTER TABLE t ADD COLUMN c"), None);
        assert_eq!(rename_target("SELECT 1"), None);
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
        let message = decide(&pragma("user_version", None), None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("PRAGMA user_version is not allowed"),
            "{message}"
        );
        assert!(message.ends_with("SQLITE_AUTH"), "{message}");
    }
}
