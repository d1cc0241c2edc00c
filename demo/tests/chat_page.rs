//! The demo's chat page in a real headless Chromium, as two people use it: both in one
//! room, a message typed in one page appears in both, the history is there after a reload,
//! and the page says so when the server goes away, and again when it comes back (and the
//! conversation goes on).
#![allow(clippy::unwrap_used)]

mod support;

use durable_browser::{Browser, Page};
use support::Demo;

/// Types `text` into the page's message box and sends it.
async fn say(page: &Page, text: &str) {
    page.eval(&format!(
        "document.getElementById('text').value = {}; document.getElementById('send').requestSubmit()",
        serde_json::json!(text)
    ))
    .await
    .unwrap();
}

/// Waits until the page's log shows `text`.
async fn sees(page: &Page, text: &str) {
    page.wait_for(
        &format!(
            "document.getElementById('log').innerText.includes({})",
            serde_json::json!(text)
        ),
        &format!("{text:?} in the chat log"),
    )
    .await
    .unwrap();
}

async fn connected(page: &Page) {
    page.wait_for(
        "document.getElementById('status').dataset.state === 'connected'",
        "the page to be in the room",
    )
    .await
    .unwrap();
    assert_eq!(
        page.text("#status").await.unwrap().as_deref(),
        Some("in room lobby")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_chat_and_the_page_follows_the_server_going_away_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = Demo::start(&data, None);
    let home = format!("http://{}/", demo.addr);
    let browser = Browser::launch().await.unwrap();
    let ada = browser.new_page().await.unwrap();
    let bob = browser.new_page().await.unwrap();
    ada.goto(&home).await.unwrap();
    bob.goto(&home).await.unwrap();
    connected(&ada).await;
    connected(&bob).await;

    // Typed in one page, shown in both.
    say(&ada, "hello from ada").await;
    sees(&ada, "hello from ada").await;
    sees(&bob, "hello from ada").await;
    say(&bob, "hi ada <b>bold?</b>").await;
    sees(&ada, "hi ada <b>bold?</b>").await;
    assert_eq!(
        ada.eval("document.querySelectorAll('#log b').length")
            .await
            .unwrap(),
        0,
        "a message is text, never markup"
    );

    // After a reload, the history is there.
    bob.goto(&home).await.unwrap();
    connected(&bob).await;
    sees(&bob, "hello from ada").await;
    sees(&bob, "hi ada <b>bold?</b>").await;

    // The server goes away: both pages say so.
    let addr = demo.addr.clone();
    demo.kill9();
    for page in [&ada, &bob] {
        page.wait_for(
            "document.getElementById('status').dataset.state === 'disconnected'",
            "the page to say the server went away",
        )
        .await
        .unwrap();
        assert!(
            page.text("#status")
                .await
                .unwrap()
                .unwrap()
                .contains("disconnected"),
            "{:?}",
            page.text("#status").await
        );
    }

    // It comes back where it was: both pages reconnect by themselves, with the history.
    let demo = Demo::start_on(&data, None, &addr);
    connected(&ada).await;
    connected(&bob).await;
    sees(&ada, "hello from ada").await;
    say(&bob, "back again").await;
    sees(&ada, "back again").await;
    sees(&bob, "back again").await;
    let lines = ada
        .eval("document.querySelectorAll('#log .msg').length")
        .await
        .unwrap();
    assert_eq!(lines, 3, "each message once");

    drop(browser);
    demo.terminate().await;
}
