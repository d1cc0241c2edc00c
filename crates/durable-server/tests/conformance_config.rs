//! The conformance suite's configuration and front items (8.x, 11.x): the wrangler subset a
//! node reads, and the Worker-style front (`docs/conformance.md` maps every item).
#![allow(clippy::unwrap_used, missing_debug_implementations)]

use durable_objects::prelude::*;
use durable_server::config::{Config, Format};
use durable_server::testing::{TestClient, test_env};

#[durable_object]
pub struct Room {
    state: State,
}

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, _request: Request) -> Result<Response> {
        let kv = self.state.storage().kv();
        let visits: u64 = kv.get("visits")?.unwrap_or(0) + 1;
        kv.put("visits", &visits)?;
        Ok(Response::new(Body::from(visits.to_string())))
    }
}

#[rpc]
impl Room {}

fn parse(text: &str) -> std::result::Result<Config, String> {
    Config::parse(text, Format::Jsonc).map_err(|e| e.to_string())
}

#[test]
fn spec_8_1_bindings_need_a_name_and_a_class_and_nothing_else() {
    let good = parse(
        r#"{"durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}]}"#,
    )
    .unwrap();
    assert_eq!(good.bindings.len(), 1);
    for (text, named) in [
        (
            r#"{"durable_objects": {"bindings": [{"class_name": "Room"}]}}"#,
            "name",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "R"}]}}"#,
            "class_name",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "R", "class_name": "Room", "script_name": "other"}]}}"#,
            "script_name",
        ),
        (
            r#"{"durable_objects": {"bindings": [{"name": "R", "class_name": "Room", "colour": "red"}]}}"#,
            "colour",
        ),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.contains(named), "{text}: {error}");
    }
}

#[test]
fn spec_8_2_a_bound_class_must_be_registered_and_migrated() {
    let config =
        parse(r#"{"durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]}}"#)
            .unwrap();
    let unmigrated = test_env(&config, |runtime| runtime.class::<Room>()).unwrap_err();
    assert!(unmigrated.to_string().contains("Room"), "{unmigrated}");
    let config = parse(
        r#"{"durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}]}"#,
    )
    .unwrap();
    let unregistered = test_env(&config, |runtime| runtime).unwrap_err();
    assert!(unregistered.to_string().contains("Room"), "{unregistered}");
}

#[test]
fn spec_8_3_migrations_are_checked_key_by_key() {
    let ok = parse(
        r#"{"migrations": [
            {"tag": "v1", "new_sqlite_classes": ["A"]},
            {"tag": "v2", "renamed_classes": [{"from": "A", "to": "B"}]},
            {"tag": "v3", "deleted_classes": ["B"]}
        ]}"#,
    )
    .unwrap();
    assert_eq!(ok.migrations.len(), 3);
    for (text, named) in [
        (r#"{"migrations": [{"new_sqlite_classes": ["A"]}]}"#, "tag"),
        (
            r#"{"migrations": [{"tag": "v1", "new_tables": ["A"]}]}"#,
            "new_tables",
        ),
        (
            r#"{"migrations": [{"tag": "v1", "transferred_classes": [{"from": "A", "from_script": "s", "to": "B"}]}]}"#,
            "transferred_classes",
        ),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.contains(named), "{text}: {error}");
    }
}

#[test]
fn spec_8_4_the_exports_map_is_refused_by_name() {
    let error = parse(r#"{"exports": {"Room": {"type": "durable-object"}}}"#).unwrap_err();
    assert!(error.contains("exports"), "{error}");
    assert!(
        error.contains("migrations"),
        "says what to use instead: {error}"
    );
}

#[test]
fn spec_8_5_limits_cpu_ms_sets_the_per_turn_limit() {
    let config = parse(
        r#"{"durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}],
            "limits": {"cpu_ms": 60000}}"#,
    )
    .unwrap();
    let test = test_env(&config, |runtime| runtime.class::<Room>()).unwrap();
    assert_eq!(
        test.runtime().config().cpu_limit,
        std::time::Duration::from_secs(60)
    );
    // Above Cloudflare's 300,000 ms cap is accepted (a deliberate deviation: the operator
    // owns the machine); a value that is not a number of milliseconds is not.
    assert!(parse(r#"{"limits": {"cpu_ms": 600000}}"#).is_ok());
    let error = parse(r#"{"limits": {"cpu_ms": "fast"}}"#).unwrap_err();
    assert!(error.contains("cpu_ms"), "{error}");
}

#[tokio::test]
async fn spec_11_1_and_11_2_a_front_validates_then_forwards_to_the_object_by_name() {
    let config = parse(
        r#"{"durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
            "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}]}"#,
    )
    .unwrap();
    let test = test_env(&config, |runtime| runtime.class::<Room>()).unwrap();
    use durable_server::axum::extract::{Path, Request as HttpRequest, State as Front};
    use durable_server::axum::routing::get;
    let router = durable_server::axum::Router::new()
        .route(
            "/rooms/{name}",
            get(
                |Front(env): Front<Env>, Path(name): Path<String>, request: HttpRequest| async move {
                    if name.len() > 8 {
                        return durable_server::error_response(
                            durable_objects::http::StatusCode::BAD_REQUEST,
                            "a room name is at most 8 bytes",
                        );
                    }
                    let stub = env.namespace::<Room>("ROOMS").unwrap().get_by_name(&name);
                    durable_server::forward(&stub, request).await
                },
            ),
        )
        .with_state(test.env());
    let client = TestClient::new(router);
    assert_eq!(client.get("/rooms/a").await.unwrap().text(), "1");
    assert_eq!(client.get("/rooms/a").await.unwrap().text(), "2");
    assert_eq!(client.get("/rooms/b").await.unwrap().text(), "1");
    assert_eq!(
        client.get("/rooms/much-too-long").await.unwrap().status,
        400
    );
}
