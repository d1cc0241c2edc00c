//! Pattern: **schema migrations in the constructor** — every object migrates its own
//! database the first time it wakes after a deploy. The schema version lives in KV; each
//! step looks at the table first (`PRAGMA table_info`) so a step that was cut short, or a
//! database older than the version counter says, is still brought up to date. The steps run
//! in `init`, before any event reaches the object, in one transaction.
//!
//! ```text
//! cargo run -p durable-examples --example schema_migrations [-- --data DIR]
//! ```
//!
//! The variable `SCHEMA_TARGET` stops the steps at a version (a deploy of older code); the
//! example and its tests use it to make old databases, then upgrade them.

#[path = "support.rs"]
mod support;

use durable_objects::prelude::*;

/// The newest schema version this code knows.
pub(crate) const LATEST: u32 = 3;

/// A product catalogue, whose schema grew over three versions.
#[durable_object]
pub(crate) struct Catalogue {
    state: State,
    target: u32,
}

impl DurableObject for Catalogue {
    fn new(state: State, env: Env) -> Self {
        let target = env
            .var("SCHEMA_TARGET")
            .and_then(|v| v.parse().ok())
            .unwrap_or(LATEST)
            .min(LATEST);
        Self { state, target }
    }

    /// Brings the schema to `target`; a failure fails the first call (and the next call
    /// tries again), never a half-migrated database: the steps share one transaction.
    async fn init(&self) -> Result<()> {
        let storage = self.state.storage();
        storage.transaction_sync(|| {
            let kv = storage.kv();
            let sql = storage.sql();
            let mut version: u32 = kv.get("schema_version")?.unwrap_or(0);
            while version < self.target {
                match version + 1 {
                    1 => {
                        sql.exec(
                            "CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
                            (),
                        )?;
                    }
                    2 => {
                        if !has_column(&sql, "products", "price_cents")? {
                            sql.exec(
                                "ALTER TABLE products ADD COLUMN price_cents INTEGER NOT NULL DEFAULT 0",
                                (),
                            )?;
                        }
                    }
                    3 => {
                        sql.exec(
                            "CREATE INDEX IF NOT EXISTS products_by_name ON products (name)",
                            (),
                        )?;
                    }
                    _ => unreachable!("versions above LATEST are never targeted"),
                }
                version += 1;
                kv.put("schema_version", &version)?;
            }
            Ok(())
        })
    }
}

/// True if `table` has a column called `column`.
fn has_column(sql: &durable_objects::storage::Sql, table: &str, column: &str) -> Result<bool> {
    let names = sql
        .exec("SELECT name FROM pragma_table_info(?1)", (table,))?
        .to_vec::<ColumnName>()?;
    Ok(names.iter().any(|c| c.name == column))
}

#[derive(serde::Deserialize)]
struct ColumnName {
    name: String,
}

#[rpc]
impl Catalogue {
    /// The schema version the database is at.
    pub(crate) async fn version(&self) -> Result<u32> {
        Ok(self
            .state
            .storage()
            .kv()
            .get("schema_version")?
            .unwrap_or(0))
    }

    /// The `products` table's columns.
    pub(crate) async fn columns(&self) -> Result<Vec<String>> {
        let columns = self
            .state
            .storage()
            .sql()
            .exec("PRAGMA table_info(products)", ())?
            .to_vec::<ColumnName>()?;
        Ok(columns.into_iter().map(|c| c.name).collect())
    }

    /// Adds a product (with its price once the schema has prices).
    pub(crate) async fn add(&self, name: String, price_cents: Option<i64>) -> Result<()> {
        let sql = self.state.storage().sql();
        match price_cents {
            Some(price) => sql.exec(
                "INSERT INTO products (name, price_cents) VALUES (?1, ?2)",
                (name.as_str(), price),
            )?,
            None => sql.exec("INSERT INTO products (name) VALUES (?1)", (name.as_str(),))?,
        };
        Ok(())
    }

    /// The number of products.
    pub(crate) async fn count(&self) -> Result<i64> {
        self.state
            .storage()
            .sql()
            .exec("SELECT count(*) AS n FROM products", ())?
            .one()?
            .get("n")
            .map_err(Error::from)
    }
}

fn runtime(data: &std::path::Path, target: u32) -> anyhow::Result<Runtime> {
    Ok(Runtime::builder()
        .data_dir(data)
        .bind::<Catalogue>("CATALOGUE")
        .var("SCHEMA_TARGET", target.to_string())
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (data, _temp) = support::data_dir();
    run(&data, &mut std::io::stdout()).await
}

/// The scenario, writing what it shows to `out`.
async fn run(data: &std::path::Path, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    // An old deploy: schema version 1.
    let old = runtime(data, 1)?;
    let shop = old
        .env()
        .namespace::<Catalogue>("CATALOGUE")?
        .get_by_name("shop");
    if shop.count().await? == 0 {
        shop.add("teapot".into(), None).await?;
    }
    writeln!(
        out,
        "old code: version {}, columns {:?}",
        shop.version().await?,
        shop.columns().await?
    )?;
    old.shutdown();
    // The new deploy migrates the object the first time it wakes.
    let new = runtime(data, LATEST)?;
    let shop = new
        .env()
        .namespace::<Catalogue>("CATALOGUE")?
        .get_by_name("shop");
    writeln!(
        out,
        "new code: version {}, columns {:?}",
        shop.version().await?,
        shop.columns().await?
    )?;
    shop.add("kettle".into(), Some(2_500)).await?;
    writeln!(
        out,
        "products after the upgrade (the old one kept, one new): {}",
        shop.count().await?
    )?;
    new.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::{TestEnv, run_in_durable_object};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A test environment whose deploys target the version in `target`.
    fn env(target: &Arc<AtomicU32>) -> TestEnv {
        let target = Arc::clone(target);
        TestEnv::new(move |runtime| {
            runtime
                .bind::<Catalogue>("CATALOGUE")
                .var("SCHEMA_TARGET", target.load(Ordering::SeqCst).to_string())
        })
        .unwrap()
    }

    fn shop(test: &TestEnv) -> Stub<Catalogue> {
        test.env()
            .namespace::<Catalogue>("CATALOGUE")
            .unwrap()
            .get_by_name("shop")
    }

    #[tokio::test]
    async fn an_old_database_is_upgraded_and_keeps_its_rows() {
        let target = Arc::new(AtomicU32::new(1));
        let mut test = env(&target);
        shop(&test).add("teapot".into(), None).await.unwrap();
        assert_eq!(shop(&test).columns().await.unwrap(), ["id", "name"]);
        target.store(LATEST, Ordering::SeqCst);
        test.restart().unwrap();
        assert_eq!(shop(&test).version().await.unwrap(), 3);
        assert_eq!(
            shop(&test).columns().await.unwrap(),
            ["id", "name", "price_cents"]
        );
        assert_eq!(shop(&test).count().await.unwrap(), 1);
        shop(&test).add("kettle".into(), Some(2_500)).await.unwrap();
        let indexed = run_in_durable_object(&shop(&test), |_, state| async move {
            state
                .storage()
                .sql()
                .exec("SELECT name FROM pragma_index_list('products')", ())
                .unwrap()
                .to_vec::<ColumnName>()
                .unwrap()
                .into_iter()
                .any(|index| index.name == "products_by_name")
        })
        .await
        .unwrap();
        assert!(indexed);
    }

    #[tokio::test]
    async fn a_column_added_without_its_version_is_not_added_twice() {
        // The database has the column of version 2, but the counter still says 1 (the step
        // ran before the counter existed): the step checks the table, so it does not fail.
        let target = Arc::new(AtomicU32::new(1));
        let mut test = env(&target);
        shop(&test).add("teapot".into(), None).await.unwrap();
        run_in_durable_object(&shop(&test), |_, state| async move {
            state
                .storage()
                .sql()
                .exec(
                    "ALTER TABLE products ADD COLUMN price_cents INTEGER NOT NULL DEFAULT 0",
                    (),
                )
                .unwrap();
        })
        .await
        .unwrap();
        target.store(LATEST, Ordering::SeqCst);
        test.restart().unwrap();
        assert_eq!(shop(&test).version().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn migrating_twice_changes_nothing() {
        let target = Arc::new(AtomicU32::new(LATEST));
        let mut test = env(&target);
        shop(&test).add("teapot".into(), Some(100)).await.unwrap();
        test.restart().unwrap();
        assert_eq!(shop(&test).version().await.unwrap(), 3);
        assert_eq!(shop(&test).count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains(r#"new code: version 3, columns ["id", "name", "price_cents"]"#),
            "{out}"
        );
    }
}
