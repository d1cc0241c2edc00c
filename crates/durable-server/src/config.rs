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
//! * `limits.cpu_ms`: how long one turn of a handler may run without yielding before its
//!   shard counts as stalled (default 30,000). `limits.subrequests` is refused: there is no
//!   subrequest limit here.
//! * `durable`: our own keys: `listen`, `data_dir`, `shards`, `idle_timeout_ms`,
//!   `hibernation_timeout_ms`, `max_queued_events`, `max_queued_bytes`, `max_database_bytes`,
//!   `max_open_databases`, `disk_reserve_bytes`, `storage_timeout_ms`, `max_connections`,
//!   `header_timeout_ms`, `keep_alive_timeout_ms`, `shutdown_timeout_ms`, `durability`
//!   (`"group_commit"` or `"fsync_each_commit"`), `commit_log` (`"local"`, the default, or
//!   `"off"`), `history_days` (how far back point-in-time recovery reaches, default 30),
//!   `replication.postgres` (a `postgres://` URL: every commit is in PostgreSQL before its
//!   outputs leave; it then holds the history instead of the local archive), and
//!   `admin.listen` (where the admin API and console listen; off when unset).
//!
//! Wrangler's deployment keys (`name`, `main`, `compatibility_date`, `routes`, ...) are
//! accepted and ignored. Keys that would change behaviour if they were honoured are refused
//! by name rather than ignored: `env` (per-environment settings: use one file per environment
//! with `--config`), and `exports` (declarative class states: use `migrations`). Any other
//! unknown key is refused, naming it, so a typo is not silently ignored. JSONC means JSON with `//` and `/* */` comments and trailing commas, nothing
//! more (parsed with `jsonc-parser`); TOML is parsed with `toml`. Both deserialize into the
//! same typed structs, so every error names the key and the line.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_runtime::{CommitLogSetting, DurabilityMode, Migration, RuntimeBuilder};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// No configuration file was found.
    #[error(
        "{}: no configuration file: create one of {CONFIG_FILE_NAMES:?}, or pass --config FILE",
        dir.display()
    )]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
    },
    /// The text is not valid JSONC / TOML, or does not have the configuration's shape: an
    /// unknown or refused key, a value of the wrong type, a missing field.
    #[error("{}: {message}", place(path.as_deref(), *line))]
    Invalid {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The line (1-based) the problem is on, when the parser knows it.
        line: Option<usize>,
        /// What is wrong and how to fix it; it names the key.
        message: String,
    },
}

/// "wrangler.toml, line 3", "line 3", "wrangler.toml" or "configuration".
fn place(path: Option<&Path>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(path), Some(line)) => format!("{}, line {line}", path.display()),
        (Some(path), None) => path.display().to_string(),
        (None, Some(line)) => format!("line {line}"),
        (None, None) => "configuration".to_owned(),
    }
}

impl ConfigError {
    /// The line the problem is on, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Invalid { line, message, .. } => ConfigError::Invalid {
                path: Some(file.to_path_buf()),
                line,
                message,
            },
            other => other,
        }
    }
}

/// The syntax of a configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON with comments and trailing commas (`wrangler.jsonc`, `wrangler.json`).
    Jsonc,
    /// TOML (`wrangler.toml`).
    Toml,
}

impl Format {
    /// The format a file name implies: TOML for `.toml`, else JSONC.
    pub fn of(path: &Path) -> Self {
        if path.extension().is_some_and(|ext| ext == "toml") {
            Format::Toml
        } else {
            Format::Jsonc
        }
    }
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
    /// The variables, by name.
    pub vars: Vec<(String, String)>,
    /// Where to listen (`durable.listen`).
    pub listen: Option<SocketAddr>,
    /// Where the admin API and console listen (`durable.admin.listen`; off when unset).
    pub admin_listen: Option<SocketAddr>,
    /// The data folder (`durable.data_dir`), relative to the working directory.
    pub data_dir: Option<PathBuf>,
    /// How long shutdown waits for in-flight work (`durable.shutdown_timeout_ms`, default 30 s).
    pub shutdown_timeout: Option<Duration>,
    /// Limits of the HTTP front's connections.
    pub connections: ConnectionSettings,
    /// Runtime settings from the `durable` section, applied over the defaults.
    pub runtime: RuntimeSettings,
}

/// The connection settings a configuration may set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionSettings {
    /// `durable.max_connections` (default: half the file descriptors the process may use,
    /// after a reserve).
    pub max_connections: Option<usize>,
    /// `durable.header_timeout_ms`: how long a client has to send a whole request head,
    /// from its first byte (from the connection's start for its first request; default
    /// 10 s).
    pub header_timeout: Option<Duration>,
    /// `durable.keep_alive_timeout_ms`: how long an idle keep-alive connection stays open
    /// waiting for its next request (default 60 s).
    pub keep_alive_timeout: Option<Duration>,
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
    /// `durable.max_queued_bytes`.
    pub max_queued_bytes: Option<usize>,
    /// `durable.max_database_bytes`.
    pub max_database_bytes: Option<u64>,
    /// `durable.durability`.
    pub durability: Option<DurabilityMode>,
    /// `durable.max_open_databases`.
    pub max_open_databases: Option<usize>,
    /// `durable.disk_reserve_bytes`.
    pub disk_reserve_bytes: Option<u64>,
    /// `durable.storage_timeout_ms`.
    pub storage_timeout: Option<Duration>,
    /// `limits.cpu_ms`.
    pub cpu_limit: Option<Duration>,
    /// `durable.commit_log`, or PostgreSQL with `durable.replication.postgres`.
    pub commit_log: Option<CommitLogSetting>,
    /// `durable.history_days`.
    pub history_window: Option<Duration>,
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
        if let Some(limit) = self.max_queued_bytes {
            builder = builder.max_queued_bytes(limit);
        }
        if let Some(bytes) = self.max_database_bytes {
            builder = builder.max_database_bytes(bytes);
        }
        if let Some(mode) = self.durability {
            builder = builder.durability(mode);
        }
        if let Some(limit) = self.max_open_databases {
            builder = builder.max_open_databases(limit);
        }
        if let Some(bytes) = self.disk_reserve_bytes {
            builder = builder.disk_reserve_bytes(bytes);
        }
        if let Some(timeout) = self.storage_timeout {
            builder = builder.storage_timeout(timeout);
        }
        if let Some(limit) = self.cpu_limit {
            builder = builder.cpu_limit(limit);
        }
        if let Some(setting) = &self.commit_log {
            builder = builder.commit_log(setting.clone());
        }
        if let Some(window) = self.history_window {
            builder = builder.history_window(window);
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
];

impl Config {
    /// Sets on `builder` what the configuration says about the runtime: its bindings (by
    /// class name; register the classes with `RuntimeBuilder::class`), variables,
    /// migrations and `durable` settings. What a server does with it; a test's
    /// `TestEnv` can do the same (see `durable_server::testing::test_env`).
    ///
    /// ```
    /// use durable_objects::prelude::*;
    /// use durable_server::config::{Config, Format};
    ///
    /// #[durable_object]
    /// pub struct Room;
    /// impl DurableObject for Room { fn new(_: State, _: Env) -> Self { Room } }
    ///
    /// # fn main() -> anyhow::Result<()> {
    /// let config = Config::parse(r#"{
    ///     "durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] },
    ///     "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Room"] }],
    ///     "vars": { "MODE": "test" }
    /// }"#, Format::Jsonc)?;
    /// let data = tempfile::tempdir()?;
    /// let runtime = config.apply_to(Runtime::builder().data_dir(data.path()).class::<Room>()).build()?;
    /// assert_eq!(runtime.env().var("MODE"), Some("test"));
    /// runtime.env().namespace::<Room>("ROOMS")?;
    /// # Ok(()) }
    /// ```
    pub fn apply_to(&self, builder: RuntimeBuilder) -> RuntimeBuilder {
        let mut builder = self.runtime.apply_to(builder);
        for binding in &self.bindings {
            builder = builder.bind_class(&binding.name, &binding.class_name);
        }
        for (name, value) in &self.vars {
            builder = builder.var(name, value);
        }
        builder.migrations(self.migrations.clone())
    }
}

impl Config {
    /// Finds `wrangler.jsonc`, `wrangler.json` or `wrangler.toml` in `dir` and loads it.
    pub fn discover(dir: &Path) -> Result<Config, ConfigError> {
        match Config::find(dir) {
            Some(path) => Config::load(&path),
            None => Err(ConfigError::NotFound {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// The configuration file in `dir`, if there is one.
    pub fn find(dir: &Path) -> Option<PathBuf> {
        CONFIG_FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
    }

    /// Loads a configuration file; its extension picks the syntax (`.toml`, or JSONC).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, Format::of(path)).map_err(|err| err.in_file(path))?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text.
    pub fn parse(text: &str, format: Format) -> Result<Config, ConfigError> {
        let invalid = |line: Option<usize>, message: String| ConfigError::Invalid {
            path: None,
            line,
            message,
        };
        let raw: RawConfig = match format {
            Format::Jsonc => {
                let value: serde_json::Value =
                    jsonc_parser::parse_to_serde_value(text, &jsonc_options())
                        .map_err(|err| invalid(Some(err.line_display()), err.kind().to_string()))?;
                serde_path_to_error::deserialize(value).map_err(|err| {
                    let line = jsonc_line(text, err.path());
                    invalid(line, with_key(err.path(), &err.inner().to_string()))
                })?
            }
            Format::Toml => {
                let deserializer = toml::de::Deserializer::parse(text).map_err(|err| {
                    invalid(
                        err.span().map(|span| line_of(text, span.start)),
                        err.message().to_owned(),
                    )
                })?;
                serde_path_to_error::deserialize(deserializer).map_err(|err| {
                    let line = err.inner().span().map(|span| line_of(text, span.start));
                    invalid(line, with_key(err.path(), err.inner().message()))
                })?
            }
        };
        raw.into_config().map_err(|message| invalid(None, message))
    }
}

/// The line (1-based) of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text
        .as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
}

/// Wrangler's JSONC: comments and trailing commas, nothing else of JSON5.
fn jsonc_options() -> jsonc_parser::ParseOptions {
    jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// The message, prefixed with the key it is about (`durable.listen: ...`).
fn with_key(path: &serde_path_to_error::Path, message: &str) -> String {
    let key = path.to_string();
    if key.is_empty() || key == "." {
        message.to_owned()
    } else {
        format!("{key}: {message}")
    }
}

/// The line of the deepest part of `path` the JSONC text has (the key itself when it is
/// there: an unknown or refused key; its object when the key is missing).
fn jsonc_line(text: &str, path: &serde_path_to_error::Path) -> Option<usize> {
    use jsonc_parser::ast::Value;
    use jsonc_parser::common::Ranged;
    use serde_path_to_error::Segment;

    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &jsonc_options()).ok()?;
    let mut node = parsed.value?;
    let mut at = node.start();
    for segment in path.iter() {
        let next = match (segment, &node) {
            (Segment::Map { key }, Value::Object(object)) => object.get(key).map(|prop| {
                at = prop.range.start;
                prop.value.clone()
            }),
            (Segment::Seq { index }, Value::Array(array)) => array.elements.get(*index).cloned(),
            _ => None,
        };
        match next {
            Some(child) => {
                if !matches!(segment, Segment::Map { .. }) {
                    at = child.start();
                }
                node = child;
            }
            None => break,
        }
    }
    Some(line_of(text, at))
}

// ----- the typed shape of the file ---------------------------------------------------------

/// The whole file. Its keys are dispatched by hand so that Wrangler's deployment keys are
/// ignored and any other unknown key gets a message that lists the supported ones.
#[derive(Debug, Default)]
struct RawConfig {
    durable_objects: Option<RawDurableObjects>,
    migrations: Vec<RawMigration>,
    vars: BTreeMap<String, VarValue>,
    durable: Option<RawOwn>,
    limits: Option<RawLimits>,
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Top;
        impl<'de> Visitor<'de> for Top {
            type Value = RawConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the configuration as an object (a table in TOML)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
                let mut config = RawConfig::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "durable_objects" => config.durable_objects = Some(map.next_value()?),
                        "migrations" => config.migrations = map.next_value()?,
                        "vars" => config.vars = map.next_value()?,
                        "durable" => config.durable = Some(map.next_value()?),
                        "limits" => config.limits = Some(map.next_value()?),
                        "env" => {
                            return Err(refuse(
                                &mut map,
                                "\"env\" (per-environment settings) is not supported: keep one configuration file per environment and choose it with --config",
                            ));
                        }
                        "exports" => {
                            return Err(refuse(
                                &mut map,
                                "\"exports\" (declarative class states) is not supported: declare classes with \"migrations\" instead",
                            ));
                        }
                        key if IGNORED_KEYS.contains(&key) => {
                            tracing::debug!(
                                key,
                                "configuration key ignored: it only matters on Cloudflare"
                            );
                            map.next_value::<IgnoredAny>()?;
                        }
                        other => {
                            return Err(refuse(
                                &mut map,
                                &format!(
                                    "unknown key {other:?}: supported are \"durable_objects\", \"migrations\", \"vars\" and \"durable\" (Wrangler's deployment keys are ignored)"
                                ),
                            ));
                        }
                    }
                }
                Ok(config)
            }
        }
        deserializer.deserialize_map(Top)
    }
}

/// Fails with `message` while reading the current key's value, so the parser places the
/// error on that value's line.
fn refuse<'de, A: MapAccess<'de>>(map: &mut A, message: &str) -> A::Error {
    match map.next_value_seed(Refusal(message)) {
        Err(err) => err,
        Ok(()) => de::Error::custom(message),
    }
}

/// A value that is never accepted: deserializing it fails with the message.
struct Refusal<'m>(&'m str);

impl<'de> de::DeserializeSeed<'de> for Refusal<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Refusal<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
}

/// Why a key is refused; the marker type's message is the error.
trait RefusedKey {
    const MESSAGE: &'static str;
}

/// A key that is accepted by the parser's shape but never allowed.
struct Refused<K>(PhantomData<K>);

impl<K> fmt::Debug for Refused<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Refused")
    }
}

impl<'de, K: RefusedKey> Deserialize<'de> for Refused<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(Refusal(K::MESSAGE), deserializer)?;
        Ok(Refused(PhantomData))
    }
}

#[derive(Debug)]
struct AnotherWorker;
impl RefusedKey for AnotherWorker {
    const MESSAGE: &'static str = "\"script_name\" and \"environment\" (a class of another Worker) are not supported; bind classes of this program only";
}

#[derive(Debug)]
struct Transfer;
impl RefusedKey for Transfer {
    const MESSAGE: &'static str = "\"transferred_classes\": transferring classes between Workers is not supported: there is one program per server";
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with \"bindings\"")]
struct RawDurableObjects {
    #[serde(default)]
    bindings: Bindings,
}

/// The bindings, refusing a name used twice.
#[derive(Debug, Default)]
struct Bindings(Vec<RawBinding>);

impl<'de> Deserialize<'de> for Bindings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bindings = Vec::<RawBinding>::deserialize(deserializer)?;
        for (index, binding) in bindings.iter().enumerate() {
            if bindings[..index].iter().any(|b| b.name == binding.name) {
                return Err(de::Error::custom(format!(
                    "\"durable_objects.bindings[{index}]\": binding name {:?} is used twice: binding names must be unique",
                    binding.name
                )));
            }
        }
        Ok(Bindings(bindings))
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a binding: an object with \"name\" and \"class_name\""
)]
struct RawBinding {
    name: String,
    class_name: String,
    // Present only to be refused, with their own message.
    #[serde(rename = "script_name")]
    _script_name: Option<Refused<AnotherWorker>>,
    #[serde(rename = "environment")]
    _environment: Option<Refused<AnotherWorker>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a migration: an object with a \"tag\""
)]
struct RawMigration {
    tag: String,
    #[serde(default)]
    new_sqlite_classes: Vec<String>,
    #[serde(default)]
    new_classes: Vec<String>,
    #[serde(default)]
    renamed_classes: Vec<RawRename>,
    #[serde(default)]
    deleted_classes: Vec<String>,
    #[serde(rename = "transferred_classes")]
    _transferred_classes: Option<Refused<Transfer>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rename: an object with \"from\" and \"to\""
)]
struct RawRename {
    from: String,
    to: String,
}

/// A variable: a string, number or boolean (the latter two become their text).
#[derive(Debug)]
struct VarValue(String);

impl<'de> Deserialize<'de> for VarValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = VarValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variable: a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarValue, E> {
                Ok(VarValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

/// Our own section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object of our own settings")]
struct RawOwn {
    listen: Option<ListenAddr>,
    data_dir: Option<PathBuf>,
    shards: Option<usize>,
    idle_timeout_ms: Option<u64>,
    hibernation_timeout_ms: Option<u64>,
    max_queued_events: Option<usize>,
    max_queued_bytes: Option<usize>,
    max_database_bytes: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    durability: Option<RawDurability>,
    max_open_databases: Option<usize>,
    disk_reserve_bytes: Option<u64>,
    storage_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    header_timeout_ms: Option<u64>,
    keep_alive_timeout_ms: Option<u64>,
    commit_log: Option<RawCommitLog>,
    history_days: Option<u64>,
    replication: Option<RawReplication>,
    admin: Option<RawAdmin>,
}

/// `durable.admin`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with \"listen\": \"127.0.0.1:8788\""
)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawCommitLog {
    Local,
    Off,
}

/// `durable.replication`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with \"postgres\": \"postgres://user:password@host:port/database\""
)]
struct RawReplication {
    postgres: Option<PostgresUrl>,
}

/// `durable.replication.postgres`: a `postgres://` or `postgresql://` URL.
#[derive(Debug, Clone)]
struct PostgresUrl(String);

impl<'de> Deserialize<'de> for PostgresUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Url;
        impl Visitor<'_> for Url {
            type Value = PostgresUrl;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL such as \"postgres://user:password@127.0.0.1:5432/durable\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PostgresUrl, E> {
                if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                    Ok(PostgresUrl(text.to_owned()))
                } else {
                    Err(E::custom(
                        "\"durable.replication.postgres\" must be a URL such as \"postgres://user:password@127.0.0.1:5432/durable\"",
                    ))
                }
            }
        }
        deserializer.deserialize_str(Url)
    }
}

/// Wrangler's `limits`: only `cpu_ms` applies here.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with \"cpu_ms\" (subrequests has no meaning here)"
)]
struct RawLimits {
    cpu_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawDurability {
    GroupCommit,
    FsyncEachCommit,
}

/// `durable.listen`: an address such as `127.0.0.1:8787`.
#[derive(Debug, Clone, Copy)]
struct ListenAddr(SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so a bad address is reported at its own line.
        struct Address;
        impl Visitor<'_> for Address {
            type Value = ListenAddr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address such as \"127.0.0.1:8787\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ListenAddr, E> {
                text.parse().map(ListenAddr).map_err(|_| {
                    E::custom(format!(
                        "\"durable.listen\" is {text:?}; use an address such as \"127.0.0.1:8787\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(Address)
    }
}

impl RawConfig {
    fn into_config(self) -> Result<Config, String> {
        let bindings = self
            .durable_objects
            .map(|section| section.bindings.0)
            .unwrap_or_default()
            .into_iter()
            .map(|raw| Binding {
                name: raw.name,
                class_name: raw.class_name,
            })
            .collect();
        let migrations = self
            .migrations
            .into_iter()
            .map(|raw| {
                let mut migration = Migration::new(raw.tag);
                migration.new_sqlite_classes = raw.new_sqlite_classes;
                migration.new_classes = raw.new_classes;
                migration.renamed_classes = raw
                    .renamed_classes
                    .into_iter()
                    .map(|rename| (rename.from, rename.to))
                    .collect();
                migration.deleted_classes = raw.deleted_classes;
                migration
            })
            .collect();
        let own = self.durable.unwrap_or_default();
        let millis = |ms: Option<u64>| ms.map(Duration::from_millis);
        let postgres = own.replication.and_then(|replication| replication.postgres);
        let commit_log = match (own.commit_log, postgres) {
            (Some(RawCommitLog::Off), Some(_)) => {
                return Err(
                    "durable.commit_log is \"off\" while durable.replication.postgres is set: replication writes the commit log to PostgreSQL; remove one of them".to_owned(),
                );
            }
            (_, Some(url)) => Some(CommitLogSetting::Postgres { url: url.0 }),
            (Some(RawCommitLog::Off), None) => Some(CommitLogSetting::Off),
            (Some(RawCommitLog::Local), None) => Some(CommitLogSetting::Local),
            (None, None) => None,
        };
        if own.history_days == Some(0) {
            return Err("durable.history_days is 0; use at least 1 (the default is 30)".to_owned());
        }
        let admin_listen = match own.admin.and_then(|admin| admin.listen) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "durable.admin.listen is {text:?}; use an address such as \"127.0.0.1:8788\" (the admin API and console are off when it is not set)"
                )
            })?),
        };
        Ok(Config {
            path: None,
            bindings,
            migrations,
            vars: self
                .vars
                .into_iter()
                .map(|(name, value)| (name, value.0))
                .collect(),
            listen: own.listen.map(|addr| addr.0),
            admin_listen,
            data_dir: own.data_dir,
            shutdown_timeout: millis(own.shutdown_timeout_ms),
            connections: ConnectionSettings {
                max_connections: own.max_connections,
                header_timeout: millis(own.header_timeout_ms),
                keep_alive_timeout: millis(own.keep_alive_timeout_ms),
            },
            runtime: RuntimeSettings {
                shards: own.shards,
                idle_timeout: millis(own.idle_timeout_ms),
                hibernation_timeout: millis(own.hibernation_timeout_ms),
                max_queued_events: own.max_queued_events,
                max_queued_bytes: own.max_queued_bytes,
                max_database_bytes: own.max_database_bytes,
                durability: own.durability.map(|mode| match mode {
                    RawDurability::GroupCommit => DurabilityMode::GroupCommit,
                    RawDurability::FsyncEachCommit => DurabilityMode::FsyncEachCommit,
                }),
                max_open_databases: own.max_open_databases,
                disk_reserve_bytes: own.disk_reserve_bytes,
                storage_timeout: millis(own.storage_timeout_ms),
                cpu_limit: millis(self.limits.and_then(|limits| limits.cpu_ms)),
                commit_log,
                history_window: own
                    .history_days
                    .map(|days| Duration::from_secs(days.saturating_mul(86_400))),
            },
        })
    }
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
        let config = Config::parse(JSONC, Format::Jsonc).unwrap();
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
        let config = Config::parse(text, Format::Toml).unwrap();
        assert_eq!(config.bindings[0].class_name, "Counter");
        assert_eq!(config.migrations[0].tag, "v1");
        assert_eq!(config.vars, vec![("GREETING".to_owned(), "hi".to_owned())]);
        assert_eq!(
            config.runtime.durability,
            Some(DurabilityMode::FsyncEachCommit)
        );
    }

    #[test]
    fn the_commit_log_and_replication_keys() {
        let parse = |text: &str| Config::parse(text, Format::Jsonc);
        assert_eq!(parse("{}").unwrap().runtime.commit_log, None);
        assert_eq!(
            parse(r#"{"durable": {"commit_log": "off"}}"#)
                .unwrap()
                .runtime
                .commit_log,
            Some(CommitLogSetting::Off)
        );
        let replicated = parse(
            r#"{"durable": {"replication": {"postgres": "postgres://u:p@127.0.0.1:5432/d"}, "history_days": 7}}"#,
        )
        .unwrap();
        assert_eq!(
            replicated.runtime.commit_log,
            Some(CommitLogSetting::Postgres {
                url: "postgres://u:p@127.0.0.1:5432/d".into()
            })
        );
        assert_eq!(
            replicated.runtime.history_window,
            Some(Duration::from_secs(7 * 86_400))
        );
        let toml = Config::parse(
            "[durable]\ncommit_log = \"local\"\n[durable.replication]\npostgres = \"postgresql://h/d\"\n",
            Format::Toml,
        )
        .unwrap();
        assert!(matches!(
            toml.runtime.commit_log,
            Some(CommitLogSetting::Postgres { .. })
        ));
        for (text, expected) in [
            (
                r#"{"durable": {"replication": {"postgres": "mysql://x"}}}"#,
                "must be a URL such as",
            ),
            (
                r#"{"durable": {"replication": {"postgress": "postgres://x"}}}"#,
                "unknown field",
            ),
            (
                r#"{"durable": {"commit_log": "remote"}}"#,
                "unknown variant",
            ),
            (
                r#"{"durable": {"commit_log": "off", "replication": {"postgres": "postgres://h/d"}}}"#,
                "remove one of them",
            ),
            (r#"{"durable": {"history_days": 0}}"#, "at least 1"),
            (
                r#"{"durable": {"admin": {"listen": "localhost"}}}"#,
                "durable.admin.listen is \"localhost\"",
            ),
            (
                r#"{"durable": {"admin": {"listn": "127.0.0.1:1"}}}"#,
                "unknown field",
            ),
        ] {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        assert_eq!(parse("{}").unwrap().admin_listen, None, "off by default");
        assert_eq!(
            parse(r#"{"durable": {"admin": {"listen": "127.0.0.1:8788"}}}"#)
                .unwrap()
                .admin_listen,
            Some("127.0.0.1:8788".parse().unwrap())
        );
    }

    /// Each case: the text, what the message must say, and the line it must name.
    fn check(format: Format, cases: &[(&str, &str, Option<usize>)]) {
        for (text, expected, line) in cases {
            let err = Config::parse(text, format).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert_eq!(err.line(), *line, "{text}: {message}");
        }
    }

    #[test]
    fn fault_settings_parse_into_runtime_and_connection_settings() {
        let config = Config::parse(
            r#"{"limits": {"cpu_ms": 250}, "durable": {"max_open_databases": 9,
                "disk_reserve_bytes": 1048576, "storage_timeout_ms": 700, "max_connections": 12,
                "header_timeout_ms": 300, "keep_alive_timeout_ms": 400}}"#,
            Format::Jsonc,
        )
        .unwrap();
        assert_eq!(config.runtime.cpu_limit, Some(Duration::from_millis(250)));
        assert_eq!(config.runtime.max_open_databases, Some(9));
        assert_eq!(config.runtime.disk_reserve_bytes, Some(1_048_576));
        assert_eq!(
            config.runtime.storage_timeout,
            Some(Duration::from_millis(700))
        );
        assert_eq!(config.connections.max_connections, Some(12));
        assert_eq!(
            config.connections.header_timeout,
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            config.connections.keep_alive_timeout,
            Some(Duration::from_millis(400))
        );
        let effective = config
            .runtime
            .apply_to(durable_runtime::Runtime::builder())
            .effective_config();
        assert_eq!(effective.cpu_limit, Duration::from_millis(250));
        assert_eq!(effective.max_open_databases, Some(9));
    }

    #[test]
    fn unsupported_and_malformed_entries_are_refused_by_name_and_line() {
        check(
            Format::Jsonc,
            &[
                (
                    r#"{"exports": {}}"#,
                    "declare classes with \"migrations\"",
                    Some(1),
                ),
                (
                    "{\n\"limits\": {\"cpu_ms\": 50,\n \"subrequests\": 5}}",
                    "unknown field `subrequests`, expected `cpu_ms`",
                    Some(3),
                ),
                (
                    "{\"env\": {\"staging\": {}}}",
                    "choose it with --config",
                    Some(1),
                ),
                (
                    "{\n\n  \"nonsense\": 1}",
                    "unknown key \"nonsense\"",
                    Some(3),
                ),
                (
                    "{\"durable_objects\": {\"bindings\": [\n{\"class_name\": \"A\"}]}}",
                    "missing field `name`",
                    Some(2),
                ),
                (
                    r#"{"durable_objects": {"bindings": [{"name": "A"}]}}"#,
                    "missing field `class_name`",
                    Some(1),
                ),
                (
                    "{\"durable_objects\": {\"bindings\": [{\"name\": \"A\", \"class_name\": \"A\",\n \"script_name\": \"w\"}]}}",
                    "another Worker",
                    Some(2),
                ),
                (
                    "{\"durable_objects\": {\"bindings\": [\n{\"name\": \"A\", \"class_name\": \"A\", \"x\": 1}]}}",
                    "unknown field `x`",
                    Some(2),
                ),
                (
                    r#"{"durable_objects": {"bindings": [{"name": "A", "class_name": "A"}, {"name": "A", "class_name": "B"}]}}"#,
                    "binding name \"A\" is used twice",
                    Some(1),
                ),
                (
                    r#"{"migrations": [{"tag": "v1", "transferred_classes": []}]}"#,
                    "not supported",
                    Some(1),
                ),
                (
                    r#"{"migrations": [{"new_classes": []}]}"#,
                    "missing field `tag`",
                    Some(1),
                ),
                (
                    "{\"durable\": {\n\"listen\": \"nowhere\"}}",
                    "127.0.0.1:8787",
                    Some(2),
                ),
                (
                    "{\"durable\": {\n\n\"shard\": 2}}",
                    "unknown field `shard`",
                    Some(3),
                ),
                (
                    r#"{"durable": {"durability": "sometimes"}}"#,
                    "unknown variant `sometimes`",
                    Some(1),
                ),
                (r#"{"durable": {"shards": "two"}}"#, "invalid type", Some(1)),
                (
                    r#"{"vars": {"A": [1]}}"#,
                    "a string, number or boolean",
                    Some(1),
                ),
                ("{\"a\": 1", "", Some(1)),
                // JSON5 extensions are not JSONC.
                ("{'name': 'x'}", "", Some(1)),
                ("{\"shards\": 0x10}", "", Some(1)),
            ],
        );
    }

    #[test]
    fn toml_errors_name_the_key_and_line_too() {
        check(
            Format::Toml,
            &[
                (
                    "name = \"x\"\nnonsense = 1\n",
                    "unknown key \"nonsense\"",
                    Some(2),
                ),
                (
                    "[[durable_objects.bindings]]\nname = \"A\"\nclass_name = \"A\"\nscript_name = \"w\"\n",
                    "another Worker",
                    Some(4),
                ),
                ("[durable]\nshard = 2\n", "unknown field `shard`", Some(2)),
                ("[durable\n", "", Some(1)),
            ],
        );
    }

    #[test]
    fn a_file_error_names_the_file_and_missing_files_name_what_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::discover(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("wrangler.jsonc"), "{err}");
        let file = dir.path().join("wrangler.toml");
        std::fs::write(&file, "[durable]\nshard = 2\n").unwrap();
        let err = Config::discover(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("wrangler.toml, line 2: "), "{text}");
    }
}
