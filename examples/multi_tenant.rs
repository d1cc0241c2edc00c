//! Pattern: **per-user storage for a multi-tenant app** — one object per (tenant, user),
//! named `tenant/user`, so each user's data is its own SQLite database: no row of another
//! user can leak into a query, and deleting an account is one `delete_all`.
//!
//! ```text
//! cargo run -p durable-examples --example multi_tenant [-- --data DIR]
//! ```

#[path = "support.rs"]
mod support;

use durable_objects::prelude::*;
use serde::{Deserialize, Serialize};

/// One note of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Note {
    pub(crate) title: String,
    pub(crate) body: String,
}

/// One user's private store.
#[durable_object]
pub(crate) struct UserStore {
    state: State,
}

impl DurableObject for UserStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        self.create_schema()
    }
}

impl UserStore {
    fn create_schema(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS notes (title TEXT PRIMARY KEY, body TEXT NOT NULL)",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl UserStore {
    /// Saves a note (replacing one with the same title).
    pub(crate) async fn save(&self, note: Note) -> Result<()> {
        if note.title.is_empty() || note.title.len() > 200 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a note's title is 1 to 200 bytes",
            ));
        }
        self.state.storage().sql().exec(
            "INSERT INTO notes (title, body) VALUES (?1, ?2)
             ON CONFLICT (title) DO UPDATE SET body = excluded.body",
            (note.title.as_str(), note.body.as_str()),
        )?;
        Ok(())
    }

    /// The user's notes, by title.
    pub(crate) async fn notes(&self) -> Result<Vec<Note>> {
        Ok(self
            .state
            .storage()
            .sql()
            .exec("SELECT title, body FROM notes ORDER BY title", ())?
            .to_vec()?)
    }

    /// Deletes everything the user stored. `delete_all` drops the tables too, and this
    /// instance lives on: the schema is created again in the same turn, so the deletion and
    /// the empty schema commit together.
    pub(crate) async fn delete_account(&self) -> Result<()> {
        self.state.storage().delete_all().await?;
        self.create_schema()
    }
}

/// The store of `user` in `tenant`; both names are checked, since they become the object's
/// name (a `/` in them could make two users share a store).
pub(crate) fn store_for(env: &Env, tenant: &str, user: &str) -> Result<Stub<UserStore>> {
    for (what, name) in [("tenant", tenant), ("user", user)] {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{what} {name:?}: use 1 to 64 letters, digits, '-' or '_'"),
            ));
        }
    }
    Ok(env
        .namespace::<UserStore>("USERS")?
        .get_by_name(&format!("{tenant}/{user}")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (data, _temp) = support::data_dir();
    run(&data, &mut std::io::stdout()).await
}

/// The scenario, writing what it shows to `out`.
async fn run(data: &std::path::Path, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let runtime = Runtime::builder()
        .data_dir(data)
        .bind::<UserStore>("USERS")
        .build()?;
    let env = runtime.env();
    let ann = store_for(&env, "acme", "ann")?;
    let bob = store_for(&env, "acme", "bob")?;
    ann.save(Note {
        title: "plan".into(),
        body: "ship it".into(),
    })
    .await?;
    bob.save(Note {
        title: "todo".into(),
        body: "review".into(),
    })
    .await?;
    writeln!(
        out,
        "ann sees {} note(s): {:?}",
        ann.notes().await?.len(),
        ann.notes().await?
    )?;
    writeln!(out, "bob sees {} note(s)", bob.notes().await?.len())?;
    bob.delete_account().await?;
    writeln!(
        out,
        "after bob's account is deleted, ann still has {} note(s)",
        ann.notes().await?.len()
    )?;
    match store_for(&env, "acme", "../ann") {
        Err(error) => writeln!(out, "refused: {}", error.message())?,
        Ok(_) => anyhow::bail!("a path-like user name was accepted"),
    }
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::{TestEnv, list_durable_object_ids};

    fn note(title: &str) -> Note {
        Note {
            title: title.into(),
            body: format!("body of {title}"),
        }
    }

    fn env() -> TestEnv {
        TestEnv::new(|runtime| runtime.bind::<UserStore>("USERS")).unwrap()
    }

    #[tokio::test]
    async fn users_never_see_each_others_notes() {
        let test = env();
        let env = test.env();
        store_for(&env, "t1", "ann")
            .unwrap()
            .save(note("a"))
            .await
            .unwrap();
        store_for(&env, "t1", "bob")
            .unwrap()
            .save(note("b"))
            .await
            .unwrap();
        // The same user name in another tenant is another store.
        store_for(&env, "t2", "ann")
            .unwrap()
            .save(note("c"))
            .await
            .unwrap();
        let ann = store_for(&env, "t1", "ann").unwrap();
        assert_eq!(ann.notes().await.unwrap(), vec![note("a")]);
        let ids = list_durable_object_ids(&env.namespace::<UserStore>("USERS").unwrap()).unwrap();
        assert_eq!(ids.len(), 3, "one database per user");
    }

    #[tokio::test]
    async fn deleting_an_account_deletes_only_that_account() {
        let test = env();
        let env = test.env();
        let ann = store_for(&env, "t", "ann").unwrap();
        let bob = store_for(&env, "t", "bob").unwrap();
        ann.save(note("a")).await.unwrap();
        bob.save(note("b")).await.unwrap();
        bob.delete_account().await.unwrap();
        assert!(
            bob.notes().await.unwrap().is_empty(),
            "the table is recreated empty"
        );
        assert_eq!(ann.notes().await.unwrap(), vec![note("a")]);
    }

    #[tokio::test]
    async fn names_that_could_collide_are_refused() {
        let test = env();
        let env = test.env();
        for (tenant, user) in [
            ("t", "a/b"),
            ("t/a", "b"),
            ("", "x"),
            ("t", &"x".repeat(65)),
        ] {
            let error = store_for(&env, tenant, user).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{tenant}/{user}");
        }
        let ann = store_for(&env, "t", "ann").unwrap();
        assert_eq!(
            ann.save(note("")).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    #[tokio::test]
    async fn notes_survive_a_restart() {
        let mut test = env();
        store_for(&test.env(), "t", "ann")
            .unwrap()
            .save(note("a"))
            .await
            .unwrap();
        test.restart().unwrap();
        let ann = store_for(&test.env(), "t", "ann").unwrap();
        assert_eq!(ann.notes().await.unwrap(), vec![note("a")]);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("after bob's account is deleted, ann still has 1 note(s)"),
            "{out}"
        );
    }
}
