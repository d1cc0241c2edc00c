//! Configuration: the subset of Wrangler's `wrangler.jsonc` / `wrangler.json` /
//! `wrangler.toml` that applies to a self-hosted node, plus our own `durable` section.
//!
//! Accepted:
//!
//! * `durable_objects.bindings[]`: `name`, `class_name` (both required strings). `script_name`
//!   and `environment` (classes of another Worker) are refused: one server runs one program.
//! * `migrations[]`: `tag`, `new_sqlite_classes`, `new_classes` (stored in SQLite as well:
//!   there is no other backend here), `renamed_classes` (`[{from, to}]`), `deleted_classes`.
//!   `transferred_classes` is refused.
//! * `vars`: strings, numbers and booleans (numbers and booleans become their text).
//! * `durable`: our own keys: `listen`, `data_dir`, `shards`, `idle_timeout_ms`,
//!   `hibernation_timeout_ms`, `max_queued_events`, `max_database_bytes`,
//!   `shutdown_timeout_ms`, `durability` (`"group_commit"` or `"fsync_each_commit"`).
//!
//! Wrangler's deployment keys (`name`, `main`, `compatibility_date`, `routes`, ...) are
//! accepted and ignored; `exports` (declarative class states) is refused in favour of
//! `migrations`; any other unknown key is refused, naming it, so a typo is not silently
//! ignored. JSONC means JSON with `//` and `/* */` comments and trailing commas.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_runtime::{DurabilityMode, Migration, RuntimeBuilder};
use serde_json::{Map, Value};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One `durable_objects.bindings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The name code uses: `env.namespace::<T>(name)`.
    pub name: String,
    /// The class it binds.
    pub class_name: String,
}

/// A parsed configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// The bindings.
    pub bindings: Vec<Binding>,
    /// The migrations, in order.
    pub migrations: Vec<Migration>,
    /// The variables.
    pub vars: Vec<(String, String)>,
    /// Where to listen (`durable.listen`).
    pub listen: Option<SocketAddr>,
    /// The data folder (`durable.data_dir`), relative to the working directory.
    pub data_dir: Option<PathBuf>,
    /// How long shutdown waits for in-flight work (`durable.shutdown_timeout_ms`, default 30 s).
    pub shutdown_timeout: Option<Duration>,
    /// Runtime settings from the `durable` section, applied over the defaults.
    pub runtime: RuntimeSettings,
}

/// The runtime settings a configuration may set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeSettings {
    /// `durable.shards`.
    pub shards: Option<usize>,
    /// `durable.idle_timeout_ms`.
    pub idle_timeout: Option<Duration>,
    /// `durable.hibernation_timeout_ms`.
    pub hibernation_timeout: Option<Duration>,
    /// `durable.max_queued_events`.
    pub max_queued_events: Option<usize>,
    /// `durable.max_database_bytes`.
    pub max_database_bytes: Option<u64>,
    /// `durable.durability`.
    pub durability: Option<DurabilityMode>,
}

impl RuntimeSettings {
    /// Sets on `builder` the settings the configuration gives; the others keep the
    /// builder's values.
    pub fn apply_to(&self, mut builder: RuntimeBuilder) -> RuntimeBuilder {
        if let Some(shards) = self.shards {
            builder = builder.shards(shards);
        }
        if let Some(idle) = self.idle_timeout {
            builder = builder.idle_timeout(idle);
        }
        if let Some(hibernation) = self.hibernation_timeout {
            builder = builder.hibernation_timeout(hibernation);
        }
        if let Some(limit) = self.max_queued_events {
            builder = builder.max_queued_events(limit);
        }
        if let Some(bytes) = self.max_database_bytes {
            builder = builder.max_database_bytes(bytes);
        }
        if let Some(mode) = self.durability {
            builder = builder.durability(mode);
        }
        builder
    }
}

/// The file names looked for, in order, when none is given.
pub const CONFIG_FILE_NAMES: [&str; 3] = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"];

/// Wrangler keys that describe a deployment to Cloudflare; meaningless here, so ignored.
const IGNORED_KEYS: &[&str] = &[
    "$schema",
    "name",
    "main",
    "compatibility_date",
    "compatibility_flags",
    "account_id",
    "workers_dev",
    "preview_urls",
    "route",
    "routes",
    "observability",
    "placement",
    "limits",
    "build",
    "rules",
    "no_bundle",
    "minify",
    "keep_vars",
    "logpush",
    "upload_source_maps",
    "triggers",
    "dev",
    "assets",
    "tail_consumers",
    "env",
];

impl Config {
    /// Finds `wrangler.jsonc`, `wrangler.json` or `wrangler.toml` in `dir` and loads it.
    pub fn discover(dir: &Path) -> Result<Config, ConfigError> {
        for name in CONFIG_FILE_NAMES {
            let path = dir.join(name);
            if path.is_file() {
                return Config::load(&path);
            }
        }
        Err(ConfigError {
            path: dir.to_path_buf(),
            message: format!(
                "no configuration file: create one of {CONFIG_FILE_NAMES:?}, or pass --config FILE"
            ),
        })
    }

    /// Loads a configuration file; its extension picks the syntax (`.toml`, or JSON/JSONC).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            path: path.to_path_buf(),
            message: format!("cannot read it: {err}"),
        })?;
        let toml = path.extension().is_some_and(|ext| ext == "toml");
        let mut config = Config::parse(&text, toml).map_err(|message| ConfigError {
            path: path.to_path_buf(),
            message,
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text: TOML if `toml`, else JSON with comments and trailing
    /// commas allowed.
    pub fn parse(text: &str, toml: bool) -> Result<Config, String> {
        let value: Value = if toml {
            ::toml::from_str(text).map_err(|err| format!("invalid TOML: {err}"))?
        } else {
            serde_json::from_str(&strip_jsonc(text))
                .map_err(|err| format!("invalid JSON: {err}"))?
        };
        let Value::Object(top) = value else {
            return Err("the configuration must be an object (a table in TOML)".to_owned());
        };
        let mut config = Config::default();
        for (key, value) in &top {
            match key.as_str() {
                "durable_objects" => config.bindings = parse_bindings(value)?,
                "migrations" => config.migrations = parse_migrations(value)?,
                "vars" => config.vars = parse_vars(value)?,
                "durable" => parse_own(value, &mut config)?,
                "exports" => {
                    return Err("\"exports\" (declarative class states) is not supported: declare classes with \"migrations\" instead".to_owned());
                }
                key if IGNORED_KEYS.contains(&key) => {
                    tracing::debug!(
                        key,
                        "configuration key ignored: it only matters on Cloudflare"
                    );
                }
                other => {
                    return Err(format!(
                        "unknown key {other:?}: supported are \"durable_objects\", \"migrations\", \"vars\" and \"durable\" (Wrangler's deployment keys are ignored)"
                    ));
                }
            }
        }
        Ok(config)
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("{what} must be an array"))
}

fn string(value: &Value, what: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} must be a string"))
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    array(value, what)?
        .iter()
        .enumerate()
        .map(|(i, v)| string(v, &format!("{what}[{i}]")))
        .collect()
}

fn parse_bindings(value: &Value) -> Result<Vec<Binding>, String> {
    let section = object(value, "\"durable_objects\"")?;
    let mut bindings = Vec::new();
    for (key, value) in section {
        if key != "bindings" {
            return Err(format!(
                "unknown key \"durable_objects.{key}\": only \"bindings\" is allowed"
            ));
        }
        for (i, entry) in array(value, "\"durable_objects.bindings\"")?
            .iter()
            .enumerate()
        {
            let what = format!("\"durable_objects.bindings[{i}]\"");
            let entry = object(entry, &what)?;
            let mut name = None;
            let mut class_name = None;
            for (key, value) in entry {
                match key.as_str() {
                    "name" => name = Some(value),
                    "class_name" => class_name = Some(value),
                    "script_name" | "environment" => {
                        return Err(format!(
                            "{what}: \"{key}\" (a class of another Worker) is not supported; bind classes of this program only"
                        ));
                    }
                    other => return Err(format!("{what}: unknown key {other:?}")),
                }
            }
            let name = name
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{what}: binding should have a string \"name\" field."))?;
            let class_name = class_name.and_then(Value::as_str).ok_or_else(|| {
                format!("{what}: binding should have a string \"class_name\" field.")
            })?;
            if bindings.iter().any(|b: &Binding| b.name == name) {
                return Err(format!(
                    "{what}: binding name {name:?} is used twice: binding names must be unique"
                ));
            }
            bindings.push(Binding {
                name: name.to_owned(),
                class_name: class_name.to_owned(),
            });
        }
    }
    Ok(bindings)
}

fn parse_migrations(value: &Value) -> Result<Vec<Migration>, String> {
    let mut migrations = Vec::new();
    for (i, entry) in array(value, "\"migrations\"")?.iter().enumerate() {
        let what = format!("\"migrations[{i}]\"");
        let entry = object(entry, &what)?;
        let tag = entry
            .get("tag")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what}: a migration needs a string \"tag\""))?;
        let mut migration = Migration::new(tag);
        for (key, value) in entry {
            let field = format!("{what}.{key}");
            match key.as_str() {
                "tag" => {}
                "new_sqlite_classes" => migration.new_sqlite_classes = strings(value, &field)?,
                "new_classes" => migration.new_classes = strings(value, &field)?,
                "deleted_classes" => migration.deleted_classes = strings(value, &field)?,
                "renamed_classes" => {
                    for (j, rename) in array(value, &field)?.iter().enumerate() {
                        let rename = object(rename, &format!("{field}[{j}]"))?;
                        if let Some(other) = rename.keys().find(|k| *k != "from" && *k != "to") {
                            return Err(format!("{field}[{j}]: unknown key {other:?}"));
                        }
                        let from = rename
                            .get("from")
                            .ok_or_else(|| format!("{field}[{j}] needs \"from\""))?;
                        let to = rename
                            .get("to")
                            .ok_or_else(|| format!("{field}[{j}] needs \"to\""))?;
                        migration.renamed_classes.push((
                            string(from, &format!("{field}[{j}].from"))?,
                            string(to, &format!("{field}[{j}].to"))?,
                        ));
                    }
                }
                "transferred_classes" => {
                    return Err(format!(
                        "{field}: transferring classes between Workers is not supported: there is one program per server"
                    ));
                }
                other => return Err(format!("{what}: unknown key {other:?}")),
            }
        }
        migrations.push(migration);
    }
    Ok(migrations)
}

fn parse_vars(value: &Value) -> Result<Vec<(String, String)>, String> {
    object(value, "\"vars\"")?
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => {
                    return Err(format!(
                        "\"vars.{name}\" must be a string, number or boolean"
                    ));
                }
            };
            Ok((name.clone(), text))
        })
        .collect()
}

fn parse_own(value: &Value, config: &mut Config) -> Result<(), String> {
    let millis = |value: &Value, key: &str| {
        value
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| format!("\"durable.{key}\" must be a whole number of milliseconds"))
    };
    let count = |value: &Value, key: &str| {
        value
            .as_u64()
            .ok_or_else(|| format!("\"durable.{key}\" must be a whole number"))
    };
    for (key, value) in object(value, "\"durable\"")? {
        let settings = &mut config.runtime;
        match key.as_str() {
            "listen" => {
                let text = string(value, "\"durable.listen\"")?;
                config.listen = Some(text.parse().map_err(|_| {
                    format!(
                        "\"durable.listen\" is {text:?}; use an address such as \"127.0.0.1:8787\""
                    )
                })?);
            }
            "data_dir" => config.data_dir = Some(string(value, "\"durable.data_dir\"")?.into()),
            "shutdown_timeout_ms" => config.shutdown_timeout = Some(millis(value, key)?),
            "shards" => settings.shards = Some(count(value, key)? as usize),
            "idle_timeout_ms" => settings.idle_timeout = Some(millis(value, key)?),
            "hibernation_timeout_ms" => settings.hibernation_timeout = Some(millis(value, key)?),
            "max_queued_events" => settings.max_queued_events = Some(count(value, key)? as usize),
            "max_database_bytes" => settings.max_database_bytes = Some(count(value, key)?),
            "durability" => {
                settings.durability = Some(match value.as_str() {
                    Some("group_commit") => DurabilityMode::GroupCommit,
                    Some("fsync_each_commit") => DurabilityMode::FsyncEachCommit,
                    _ => {
                        return Err("\"durable.durability\" must be \"group_commit\" or \"fsync_each_commit\"".to_owned());
                    }
                });
            }
            other => {
                return Err(format!(
                    "unknown key \"durable.{other}\": the keys are listen, data_dir, shards, idle_timeout_ms, hibernation_timeout_ms, max_queued_events, max_database_bytes, shutdown_timeout_ms, durability"
                ));
            }
        }
    }
    Ok(())
}

/// JSONC to JSON: drops comments and trailing commas, leaving strings untouched.
pub fn strip_jsonc(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if chars[i - 1] == '"' {
                        break;
                    }
                }
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    // Keep line breaks so JSON errors point at the right line.
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
                i += 2;
            }
            ',' => {
                // A comma followed (after blanks and comments) by a closing bracket is dropped.
                let mut j = i + 1;
                loop {
                    while j < chars.len() && chars[j].is_whitespace() {
                        j += 1;
                    }
                    if chars.get(j) == Some(&'/') && chars.get(j + 1) == Some(&'/') {
                        while j < chars.len() && chars[j] != '\n' {
                            j += 1;
                        }
                    } else if chars.get(j) == Some(&'/') && chars.get(j + 1) == Some(&'*') {
                        j += 2;
                        while j < chars.len()
                            && !(chars[j] == '*' && chars.get(j + 1) == Some(&'/'))
                        {
                            j += 1;
                        }
                        j += 2;
                    } else {
                        break;
                    }
                }
                if !matches!(chars.get(j), Some('}') | Some(']')) {
                    out.push(c);
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSONC: &str = r#"{
        // The demo's configuration.
        "name": "demo", /* ignored */
        "durable_objects": {
            "bindings": [
                { "name": "COUNTER", "class_name": "Counter" }, // trailing comma next
            ],
        },
        "migrations": [
            { "tag": "v1", "new_sqlite_classes": ["Counter"], "new_classes": ["Old"] },
            { "tag": "v2", "renamed_classes": [{ "from": "Old", "to": "New" }], "deleted_classes": ["New"] },
        ],
        "vars": { "GREETING": "hi // not a comment", "LIMIT": 5, "ON": true },
        "durable": { "listen": "127.0.0.1:9000", "data_dir": "./d", "idle_timeout_ms": 500 },
    }"#;

    #[test]
    fn jsonc_with_comments_and_trailing_commas_parses() {
        let config = Config::parse(JSONC, false).unwrap();
        assert_eq!(
            config.bindings,
            vec![Binding {
                name: "COUNTER".into(),
                class_name: "Counter".into()
            }]
        );
        assert_eq!(config.migrations.len(), 2);
        assert_eq!(config.migrations[0].new_classes, vec!["Old".to_owned()]);
        assert_eq!(
            config.migrations[1].renamed_classes,
            vec![("Old".to_owned(), "New".to_owned())]
        );
        assert_eq!(
            config.vars,
            vec![
                ("GREETING".to_owned(), "hi // not a comment".to_owned()),
                ("LIMIT".to_owned(), "5".to_owned()),
                ("ON".to_owned(), "true".to_owned()),
            ]
        );
        assert_eq!(config.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.data_dir, Some(PathBuf::from("./d")));
        assert_eq!(
            config.runtime.idle_timeout,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn toml_parses_the_same_shape() {
        let text = r#"
            name = "demo"
            [[durable_objects.bindings]]
            name = "COUNTER"
            class_name = "Counter"
            [[migrations]]
            tag = "v1"
            new_sqlite_classes = ["Counter"]
            [vars]
            GREETING = "hi"
            [durable]
            durability = "fsync_each_commit"
        "#;
        let config = Config::parse(text, true).unwrap();
        assert_eq!(config.bindings[0].class_name, "Counter");
        assert_eq!(config.migrations[0].tag, "v1");
        assert_eq!(config.vars, vec![("GREETING".to_owned(), "hi".to_owned())]);
        assert_eq!(
            config.runtime.durability,
            Some(DurabilityMode::FsyncEachCommit)
        );
    }

    #[test]
    fn unsupported_and_malformed_entries_are_refused_by_name() {
        let cases = [
            (r#"{"exports": {}}"#, "declare classes with \"migrations\""),
            (r#"{"nonsense": 1}"#, "unknown key \"nonsense\""),
            (
                r#"{"durable_objects": {"bindings": [{"class_name": "A"}]}}"#,
                "binding should have a string \"name\" field.",
            ),
            (
                r#"{"durable_objects": {"bindings": [{"name": "A"}]}}"#,
                "binding should have a string \"class_name\" field.",
            ),
            (
                r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "A", "script_name": "w"}]}}"#,
                "another Worker",
            ),
            (
                r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "A", "x": 1}]}}"#,
                "unknown key \"x\"",
            ),
            (
                r#"{"migrations": [{"tag": "v1", "transferred_classes": []}]}"#,
                "not supported",
            ),
            (r#"{"migrations": [{"new_classes": []}]}"#, "\"tag\""),
            (r#"{"durable": {"listen": "nowhere"}}"#, "127.0.0.1:8787"),
            (r#"{"durable": {"shard": 2}}"#, "durable.shard"),
            (r#"{"vars": {"A": [1]}}"#, "vars.A"),
            (r#"{"a": 1"#, "invalid JSON"),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text, false).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn strings_keep_their_slashes_and_commas() {
        assert_eq!(
            strip_jsonc(r#"{"a": "x//y,]", "b": "q\"/*"} // c"#),
            r#"{"a": "x//y,]", "b": "q\"/*"} "#
        );
        assert_eq!(strip_jsonc("[1, 2, /* c */ ]"), "[1, 2  ]");
    }
}
