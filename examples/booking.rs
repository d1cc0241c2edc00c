//! Pattern: **inventory that never oversells** — one object per event holds its seats in
//! SQL; a purchase reads what is free and takes it in one turn (no await between the read
//! and the write), so any number of concurrent buyers cannot sell a seat twice.
//!
//! ```text
//! cargo run -p durable-examples --example booking [-- --data DIR]
//! ```

#[path = "support.rs"]
mod support;

use durable_objects::prelude::*;

/// The most seats one purchase may take.
pub(crate) const MAX_PER_ORDER: u32 = 8;

/// A row of the `seats` table.
#[derive(serde::Deserialize)]
struct Seat {
    seat: u32,
    #[serde(default)]
    holder: Option<String>,
}

/// The seats of one event.
#[durable_object]
pub(crate) struct Event {
    state: State,
}

impl DurableObject for Event {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn init(&self) -> Result<()> {
        self.state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS seats (
                 seat INTEGER PRIMARY KEY,
                 holder TEXT
             )",
            (),
        )?;
        Ok(())
    }
}

#[rpc]
impl Event {
    /// Puts seats `1..=count` on sale (seats already there are kept, with their holders).
    pub(crate) async fn open(&self, count: u32) -> Result<u32> {
        if count == 0 || count > 100_000 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("an event has 1 to 100000 seats, not {count}"),
            ));
        }
        let sql = self.state.storage().sql();
        sql.exec(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
             INSERT OR IGNORE INTO seats (seat) SELECT x FROM n",
            (i64::from(count),),
        )?;
        self.available().await
    }

    /// Seats still free.
    pub(crate) async fn available(&self) -> Result<u32> {
        let row = self
            .state
            .storage()
            .sql()
            .exec("SELECT count(*) AS n FROM seats WHERE holder IS NULL", ())?
            .one()?;
        Ok(u32::try_from(row.get::<i64>("n")?).unwrap_or(0))
    }

    /// Sells `quantity` seats to `buyer`, the lowest numbers first: all of them, or none
    /// (`sold_out`, with how many are left).
    pub(crate) async fn buy(&self, buyer: String, quantity: u32) -> Result<Vec<u32>> {
        if buyer.is_empty() || buyer.len() > 64 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a buyer is named by 1 to 64 bytes",
            ));
        }
        if quantity == 0 || quantity > MAX_PER_ORDER {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("buy 1 to {MAX_PER_ORDER} seats at once, not {quantity}"),
            ));
        }
        let sql = self.state.storage().sql();
        let seats: Vec<u32> = sql
            .exec(
                "SELECT seat FROM seats WHERE holder IS NULL ORDER BY seat LIMIT ?1",
                (i64::from(quantity),),
            )?
            .to_vec::<Seat>()?
            .into_iter()
            .map(|row| row.seat)
            .collect();
        if seats.len() < quantity as usize {
            return Err(Error::user(format!(
                "sold out: {} seats left, {quantity} asked for",
                seats.len()
            ))
            .with_code("sold_out")
            .with_status(409));
        }
        for seat in &seats {
            sql.exec(
                "UPDATE seats SET holder = ?1 WHERE seat = ?2",
                (buyer.as_str(), i64::from(*seat)),
            )?;
        }
        Ok(seats)
    }

    /// Every sold seat with its holder.
    pub(crate) async fn sold(&self) -> Result<Vec<(u32, String)>> {
        let rows = self
            .state
            .storage()
            .sql()
            .exec(
                "SELECT seat, holder FROM seats WHERE holder IS NOT NULL ORDER BY seat",
                (),
            )?
            .to_vec::<Seat>()?;
        Ok(rows
            .into_iter()
            .map(|row| (row.seat, row.holder.unwrap_or_default()))
            .collect())
    }
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
        .bind::<Event>("EVENTS")
        .build()?;
    let event = runtime
        .env()
        .namespace::<Event>("EVENTS")?
        .get_by_name("concert-2026-12-31");
    writeln!(out, "seats on sale: {}", event.open(50).await?)?;
    let buyers: Vec<_> = (0..100)
        .map(|n| {
            let event = event.clone();
            tokio::spawn(async move { event.buy(format!("buyer-{n}"), 1).await })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for buyer in buyers {
        match buyer.await? {
            Ok(_) => served += 1,
            Err(error) if error.code() == Some("sold_out") => refused += 1,
            Err(error) => return Err(error.into()),
        }
    }
    let sold = event.sold().await?;
    writeln!(
        out,
        "100 concurrent buyers: {served} served, {refused} told sold out"
    )?;
    writeln!(out, "seats sold: {}, each once", sold.len())?;
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::{TestEnv, run_in_durable_object};
    use std::collections::BTreeSet;

    fn event(test: &TestEnv) -> Stub<Event> {
        test.env()
            .namespace::<Event>("EVENTS")
            .unwrap()
            .get_by_name("show")
    }

    fn env() -> TestEnv {
        TestEnv::new(|runtime| runtime.bind::<Event>("EVENTS")).unwrap()
    }

    #[tokio::test]
    async fn two_hundred_concurrent_buyers_never_oversell() {
        let test = env();
        let show = event(&test);
        show.open(50).await.unwrap();
        let buyers: Vec<_> = (0..200)
            .map(|n| {
                let show = show.clone();
                tokio::spawn(async move { show.buy(format!("b{n}"), 1 + n % 3).await })
            })
            .collect();
        let mut seats_sold = BTreeSet::new();
        let mut sold_out = 0;
        for buyer in buyers {
            match buyer.await.unwrap() {
                Ok(seats) => {
                    for seat in seats {
                        assert!(seats_sold.insert(seat), "seat {seat} was sold twice");
                    }
                }
                Err(error) => {
                    assert_eq!(error.code(), Some("sold_out"), "{error}");
                    sold_out += 1;
                }
            }
        }
        assert!(sold_out > 0);
        // What the buyers were told matches what the object holds.
        let stored: BTreeSet<u32> = show
            .sold()
            .await
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(stored, seats_sold);
        assert_eq!(stored.len() as u32 + show.available().await.unwrap(), 50);
    }

    #[tokio::test]
    async fn an_order_bigger_than_what_is_left_takes_nothing() {
        let test = env();
        let show = event(&test);
        show.open(3).await.unwrap();
        assert_eq!(show.buy("a".into(), 2).await.unwrap(), vec![1, 2]);
        let error = show.buy("b".into(), 2).await.unwrap_err();
        assert_eq!(error.code(), Some("sold_out"));
        assert_eq!(error.status(), Some(409));
        assert_eq!(show.available().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn bad_orders_are_refused_with_the_rule() {
        let test = env();
        let show = event(&test);
        show.open(10).await.unwrap();
        for (buyer, quantity) in [("a", 0), ("a", MAX_PER_ORDER + 1), ("", 1)] {
            let error = show.buy(buyer.into(), quantity).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
        }
        assert_eq!(
            show.open(0).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(show.available().await.unwrap(), 10);
    }

    #[tokio::test]
    async fn sales_survive_a_restart() {
        let mut test = env();
        event(&test).open(5).await.unwrap();
        event(&test).buy("a".into(), 2).await.unwrap();
        test.restart().unwrap();
        assert_eq!(
            event(&test).sold().await.unwrap(),
            vec![(1, "a".into()), (2, "a".into())]
        );
        // Reopening does not free sold seats.
        assert_eq!(event(&test).open(5).await.unwrap(), 3);
        let free = run_in_durable_object(&event(&test), |_, state| async move {
            state
                .storage()
                .sql()
                .exec("SELECT count(*) AS n FROM seats", ())
                .unwrap()
                .one()
                .unwrap()
                .get::<i64>("n")
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(free, 5);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#"seats sold: 50, each once"#), "{out}");
    }
}
