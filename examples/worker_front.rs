//! Pattern: **a Worker-style front** — axum handlers that validate the request before any
//! object is touched, pick the object by name, log with the object's id, and map every error
//! to an HTTP status with a JSON body (`durable_server::ApiError`): 400 for a malformed
//! request, 422 for a value out of range, 409 when the object refuses (not enough credit);
//! the runtime's own errors map the same way (503 with `Retry-After` for an overloaded
//! object, 507 for a full disk).
//!
//! ```text
//! cargo run -p durable-examples --example worker_front -- --listen 127.0.0.1:8790
//! curl -X POST 127.0.0.1:8790/wallets/ann/deposit -d '{"amount": 50}'
//! curl -X POST 127.0.0.1:8790/wallets/ann/spend -d '{"amount": 80}'    # 409
//! ```

use durable_objects::http::StatusCode;
use durable_objects::prelude::*;
use durable_server::ApiError;
use durable_server::axum::body::Bytes;
use durable_server::axum::extract::{Path, State as Front};
use durable_server::axum::routing::{get, post};
use durable_server::axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The server's configuration when no `wrangler.jsonc` is given.
pub(crate) const CONFIG: &str = r#"{
    "durable_objects": { "bindings": [{ "name": "WALLETS", "class_name": "Wallet" }] },
    "migrations": [{ "tag": "v1", "new_sqlite_classes": ["Wallet"] }],
    "durable": { "data_dir": ".durable-wallets" }
}"#;

/// The most one request may move.
pub(crate) const MAX_AMOUNT: i64 = 1_000_000;

/// One user's credits.
#[durable_object]
pub(crate) struct Wallet {
    state: State,
}

impl DurableObject for Wallet {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }
}

impl Wallet {
    fn balance_now(&self) -> Result<i64> {
        Ok(self.state.storage().kv().get("balance")?.unwrap_or(0))
    }
}

#[rpc]
impl Wallet {
    pub(crate) async fn balance(&self) -> Result<i64> {
        self.balance_now()
    }

    pub(crate) async fn deposit(&self, amount: i64) -> Result<i64> {
        let balance = self.balance_now()? + amount;
        self.state.storage().kv().put("balance", &balance)?;
        Ok(balance)
    }

    /// Spends `amount`, or refuses (409 `insufficient_funds`) and changes nothing.
    pub(crate) async fn spend(&self, amount: i64) -> Result<i64> {
        let balance = self.balance_now()?;
        if balance < amount {
            return Err(Error::user(format!(
                "the balance is {balance}, {amount} cannot be spent"
            ))
            .with_code("insufficient_funds")
            .with_status(409));
        }
        self.state
            .storage()
            .kv()
            .put("balance", &(balance - amount))?;
        Ok(balance - amount)
    }
}

/// The body of `deposit` and `spend`.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Amount {
    pub(crate) amount: i64,
}

/// The wallet of `user`, once the name is known to be acceptable (before any object is
/// touched: requests to objects cost, bad ones should not reach them).
fn wallet(env: &Env, user: &str) -> Result<Stub<Wallet>, ApiError> {
    let valid = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(ApiError::bad_request(format!(
            "user {user:?}: 1 to 32 lowercase letters, digits or '-'"
        ))
        .with_code("invalid_user"));
    }
    Ok(env.namespace::<Wallet>("WALLETS")?.get_by_name(user))
}

/// The amount in `body`: JSON `{"amount": n}` with `1 <= n <= MAX_AMOUNT`.
fn amount(body: &Bytes) -> Result<i64, ApiError> {
    let Amount { amount } = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!("expected JSON {{\"amount\": n}}: {error}"))
            .with_code("malformed_body")
    })?;
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("amount {amount}: must be between 1 and {MAX_AMOUNT}"),
        )
        .with_code("invalid_amount"));
    }
    Ok(amount)
}

async fn balance(
    Front(env): Front<Env>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let wallet = wallet(&env, &user)?;
    let balance = wallet.balance().await?;
    Ok(Json(json!({ "user": user, "balance": balance })))
}

async fn deposit(
    Front(env): Front<Env>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let amount = amount(&body)?;
    let wallet = wallet(&env, &user)?;
    tracing::info!(object_id = %wallet.id(), user, amount, "deposit");
    let balance = wallet.deposit(amount).await?;
    Ok(Json(json!({ "user": user, "balance": balance })))
}

async fn spend(
    Front(env): Front<Env>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let amount = amount(&body)?;
    let wallet = wallet(&env, &user)?;
    tracing::info!(object_id = %wallet.id(), user, amount, "spend");
    let balance = wallet.spend(amount).await.inspect_err(|error| {
        tracing::info!(object_id = %wallet.id(), user, error = %error, "spend refused");
    })?;
    Ok(Json(json!({ "user": user, "balance": balance })))
}

/// The front.
pub(crate) fn router(env: Env) -> Router {
    Router::new()
        .route("/wallets/{user}", get(balance))
        .route("/wallets/{user}/deposit", post(deposit))
        .route("/wallets/{user}/spend", post(spend))
        .with_state(env)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    durable_server::run_main("worker_front", Some(CONFIG), configure).await
}

/// The example's server: its class and its front (what `main` serves).
fn configure(server: durable_server::ServerBuilder) -> durable_server::ServerBuilder {
    server.class::<Wallet>().router(router)
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::TestEnv;
    use durable_server::config::{Config, Format};
    use durable_server::testing::{TestClient, TestResponse, test_env};

    fn setup() -> (TestEnv, TestClient) {
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let test = test_env(&config, |runtime| runtime.class::<Wallet>()).unwrap();
        let client = TestClient::new(router(test.env()));
        (test, client)
    }

    fn code(response: &TestResponse) -> Option<String> {
        response.json::<Value>().unwrap()["code"]
            .as_str()
            .map(str::to_owned)
    }

    #[tokio::test]
    async fn deposits_and_spends_move_the_balance() {
        let (_test, client) = setup();
        let response = client
            .post("/wallets/ann/deposit", r#"{"amount": 50}"#)
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.json::<Value>().unwrap()["balance"], 50);
        let response = client
            .post("/wallets/ann/spend", r#"{"amount": 20}"#)
            .await
            .unwrap();
        assert_eq!(response.json::<Value>().unwrap()["balance"], 30);
        let response = client.get("/wallets/ann").await.unwrap();
        assert_eq!(response.json::<Value>().unwrap()["balance"], 30);
    }

    #[tokio::test]
    async fn every_failure_has_its_status_and_code() {
        let (test, client) = setup();
        let cases = [
            (
                "/wallets/Ann/deposit",
                r#"{"amount": 5}"#,
                400,
                "invalid_user",
            ),
            ("/wallets/ann/deposit", "five", 400, "malformed_body"),
            (
                "/wallets/ann/deposit",
                r#"{"amount": 0}"#,
                422,
                "invalid_amount",
            ),
            (
                "/wallets/ann/deposit",
                r#"{"amount": 1000001}"#,
                422,
                "invalid_amount",
            ),
            (
                "/wallets/ann/spend",
                r#"{"amount": 1}"#,
                409,
                "insufficient_funds",
            ),
        ];
        for (path, body, status, expected) in cases {
            let response = client.post(path, body).await.unwrap();
            assert_eq!(
                response.status,
                status,
                "{path} {body}: {}",
                response.text()
            );
            assert_eq!(code(&response).as_deref(), Some(expected), "{path} {body}");
        }
        // The requests refused by the front reached no object: the only wallet with storage
        // is ann's (whose spend the object itself refused), and it holds nothing.
        let ns = test.env().namespace::<Wallet>("WALLETS").unwrap();
        assert_eq!(
            durable_objects::testing::list_durable_object_ids(&ns).unwrap(),
            vec![ns.id_from_name("ann")]
        );
        let response = client.get("/wallets/ann").await.unwrap();
        assert_eq!(response.json::<Value>().unwrap()["balance"], 0);
        assert_eq!(client.get("/nowhere").await.unwrap().status, 404);
    }

    #[tokio::test]
    async fn the_example_serves_on_a_real_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = Config::parse(CONFIG, Format::Jsonc).unwrap();
        let server = durable_server::testing::start_server(configure(
            durable_server::Server::builder(config),
        ))
        .await
        .unwrap();
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream
            .write_all(b"GET /wallets/ann HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(r#"{"balance":0,"user":"ann"}"#),
            "{answer}"
        );
        server.stop().await.unwrap();
    }
}
