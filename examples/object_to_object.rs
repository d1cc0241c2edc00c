//! Pattern: **one object calling another over RPC** — an `Order` asks the `Warehouse` to
//! reserve stock, through a stub from its own `Env`, and records the order only if the
//! reservation succeeded. The warehouse's refusal arrives as the warehouse's own error
//! (`is_remote()`, its code kept), and the order changes nothing.
//!
//! ```text
//! cargo run -p durable-examples --example object_to_object [-- --data DIR]
//! ```
//!
//! The call leaves the order only after the order's earlier writes are durable (the output
//! gate), and the order's turn is not blocked while it waits: other events may run
//! meanwhile, which is why `place` re-reads its state after the call.

#[path = "support.rs"]
mod support;

use durable_objects::prelude::*;
use serde::{Deserialize, Serialize};

/// Stock of every item, in one object.
#[durable_object]
pub(crate) struct Warehouse {
    state: State,
}

impl DurableObject for Warehouse {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

#[rpc]
impl Warehouse {
    pub(crate) async fn restock(&self, item: String, quantity: u32) -> Result<u32> {
        let kv = self.state.storage().kv();
        let stock = kv.get::<u32>(&item)?.unwrap_or(0).saturating_add(quantity);
        kv.put(&item, &stock)?;
        Ok(stock)
    }

    /// Takes `quantity` of `item` out of stock, or refuses with `out_of_stock`.
    pub(crate) async fn reserve(&self, item: String, quantity: u32) -> Result<u32> {
        let kv = self.state.storage().kv();
        let stock = kv.get::<u32>(&item)?.unwrap_or(0);
        if stock < quantity {
            return Err(Error::user(format!(
                "only {stock} {item} in stock, {quantity} asked for"
            ))
            .with_code("out_of_stock")
            .with_status(409));
        }
        kv.put(&item, &(stock - quantity))?;
        Ok(stock - quantity)
    }

    pub(crate) async fn stock(&self, item: String) -> Result<u32> {
        Ok(self.state.storage().kv().get(&item)?.unwrap_or(0))
    }
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Line {
    pub(crate) item: String,
    pub(crate) quantity: u32,
}

/// A customer's orders.
#[durable_object]
pub(crate) struct Order {
    state: State,
    warehouse: Stub<Warehouse>,
}

impl DurableObject for Order {
    fn new(state: State, env: Env) -> Self {
        // The stub is made once; calls through it go to the one warehouse object.
        let warehouse = env
            .namespace::<Warehouse>("WAREHOUSE")
            .map(|ns| ns.get_by_name("main"))
            .expect("the WAREHOUSE binding exists");
        Self { state, warehouse }
    }
}

#[rpc]
impl Order {
    /// Reserves the line at the warehouse, then records it.
    pub(crate) async fn place(&self, line: Line) -> Result<Vec<Line>> {
        if line.quantity == 0 {
            return Err(Error::new(ErrorKind::InvalidInput, "order at least one"));
        }
        self.warehouse
            .reserve(line.item.clone(), line.quantity)
            .await
            .map_err(|error| error.context(format!("placing an order for {}", line.item)))?;
        // Other events of this object may have run during the call: read after it.
        let kv = self.state.storage().kv();
        let mut lines: Vec<Line> = kv.get("lines")?.unwrap_or_default();
        lines.push(line);
        kv.put("lines", &lines)?;
        Ok(lines)
    }

    pub(crate) async fn lines(&self) -> Result<Vec<Line>> {
        Ok(self.state.storage().kv().get("lines")?.unwrap_or_default())
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
        .bind::<Warehouse>("WAREHOUSE")
        .bind::<Order>("ORDERS")
        .build()?;
    let env = runtime.env();
    let warehouse = env.namespace::<Warehouse>("WAREHOUSE")?.get_by_name("main");
    warehouse.restock("lamp".into(), 3).await?;
    let ann = env
        .namespace::<Order>("ORDERS")?
        .get_by_name("customer-ann");
    ann.place(Line {
        item: "lamp".into(),
        quantity: 2,
    })
    .await?;
    match ann
        .place(Line {
            item: "lamp".into(),
            quantity: 2,
        })
        .await
    {
        Err(error) => writeln!(
            out,
            "refused by the warehouse (remote: {}, code {:?}): {}",
            error.is_remote(),
            error.code(),
            error.message()
        )?,
        Ok(_) => anyhow::bail!("the warehouse oversold"),
    }
    writeln!(
        out,
        "ann's order has {} line(s); lamps left: {}",
        ann.lines().await?.len(),
        warehouse.stock("lamp".into()).await?
    )?;
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;

    fn env() -> TestEnv {
        TestEnv::new(|runtime| {
            runtime
                .bind::<Warehouse>("WAREHOUSE")
                .bind::<Order>("ORDERS")
        })
        .unwrap()
    }

    fn line(item: &str, quantity: u32) -> Line {
        Line {
            item: item.into(),
            quantity,
        }
    }

    #[tokio::test]
    async fn an_order_reserves_stock_through_the_warehouse() {
        let test = env();
        let env = test.env();
        let warehouse = env
            .namespace::<Warehouse>("WAREHOUSE")
            .unwrap()
            .get_by_name("main");
        warehouse.restock("lamp".into(), 5).await.unwrap();
        let order = env.namespace::<Order>("ORDERS").unwrap().get_by_name("ann");
        assert_eq!(
            order.place(line("lamp", 2)).await.unwrap(),
            vec![line("lamp", 2)]
        );
        assert_eq!(warehouse.stock("lamp".into()).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_code_and_records_nothing() {
        let test = env();
        let env = test.env();
        let order = env.namespace::<Order>("ORDERS").unwrap().get_by_name("ann");
        let error = order.place(line("lamp", 1)).await.unwrap_err();
        assert!(error.is_remote());
        assert_eq!(error.code(), Some("out_of_stock"));
        assert!(
            error.message().contains("placing an order for lamp"),
            "{error}"
        );
        assert!(order.lines().await.unwrap().is_empty());
        assert_eq!(
            order.place(line("lamp", 0)).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    #[tokio::test]
    async fn concurrent_orders_from_many_customers_never_oversell() {
        let test = env();
        let env = test.env();
        let warehouse = env
            .namespace::<Warehouse>("WAREHOUSE")
            .unwrap()
            .get_by_name("main");
        warehouse.restock("lamp".into(), 10).await.unwrap();
        let orders = env.namespace::<Order>("ORDERS").unwrap();
        let calls: Vec<_> = (0..30)
            .map(|n| {
                let order = orders.get_by_name(&format!("customer-{n}"));
                tokio::spawn(async move { order.place(line("lamp", 1)).await.is_ok() })
            })
            .collect();
        let mut placed = 0;
        for call in calls {
            placed += usize::from(call.await.unwrap());
        }
        assert_eq!(placed, 10);
        assert_eq!(warehouse.stock("lamp".into()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#"code Some("out_of_stock")"#), "{out}");
    }
}
