//! Pattern: **alarms** — a subscription that renews itself every 30 days until cancelled,
//! and a game whose turn times out: each move re-arms a 30-second alarm, and when it fires
//! the player who did not move loses the turn and the alarm re-arms for the next one.
//!
//! ```text
//! cargo run -p durable-examples --example alarms [-- --data DIR]
//! ```
//!
//! Alarms are stored with the object, fire at least once, survive restarts and are retried
//! when the handler fails; the tests move time with `TestEnv::advance`.

#[path = "support.rs"]
mod support;

use std::time::Duration;

use durable_objects::prelude::*;
use serde::{Deserialize, Serialize};

/// How often a subscription renews.
pub(crate) const PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// How long a player has to move.
pub(crate) const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// A subscription that renews itself.
#[durable_object]
pub(crate) struct Subscription {
    state: State,
}

impl DurableObject for Subscription {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn alarm(&self, info: AlarmInfo) -> Result<()> {
        let kv = self.state.storage().kv();
        if kv.get::<bool>("cancelled")?.unwrap_or(false) {
            return Ok(());
        }
        let mut renewals: Vec<i64> = kv.get("renewals")?.unwrap_or_default();
        renewals.push(info.scheduled_time_ms);
        kv.put("renewals", &renewals)?;
        // The next renewal, a period after this one was due (not after it ran), so a late
        // run does not shift the schedule.
        let next = info.scheduled_time_ms + PERIOD.as_millis() as i64;
        self.state.storage().set_alarm(next).await
    }
}

#[rpc]
impl Subscription {
    /// Starts the subscription: the first renewal is one period from now.
    pub(crate) async fn start(&self) -> Result<()> {
        self.state.storage().kv().put("cancelled", &false)?;
        self.state.storage().set_alarm_in(PERIOD).await
    }

    /// Cancels: no renewal after this.
    pub(crate) async fn cancel(&self) -> Result<()> {
        self.state.storage().kv().put("cancelled", &true)?;
        self.state.storage().delete_alarm().await
    }

    /// When each renewal was due.
    pub(crate) async fn renewals(&self) -> Result<Vec<i64>> {
        Ok(self
            .state
            .storage()
            .kv()
            .get("renewals")?
            .unwrap_or_default())
    }

    /// When the next renewal is due.
    pub(crate) async fn next_renewal(&self) -> Result<Option<i64>> {
        self.state.storage().get_alarm().await
    }
}

/// The state of a game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Game {
    pub(crate) players: Vec<String>,
    /// Whose turn it is (an index into `players`).
    pub(crate) turn: usize,
    pub(crate) moves: Vec<(String, String)>,
    /// Turns lost to the timeout, by player.
    pub(crate) timeouts: Vec<String>,
}

/// A turn-based game with a turn timer.
#[durable_object]
pub(crate) struct TurnGame {
    state: State,
}

impl DurableObject for TurnGame {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    /// The player to move ran out of time: the turn passes, and the timer re-arms.
    async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
        let Some(mut game) = self.game()? else {
            return Ok(());
        };
        game.timeouts.push(game.players[game.turn].clone());
        game.turn = (game.turn + 1) % game.players.len();
        self.save(&game)?;
        self.state.storage().set_alarm_in(TURN_TIMEOUT).await
    }
}

impl TurnGame {
    fn game(&self) -> Result<Option<Game>> {
        self.state.storage().kv().get("game")
    }

    fn save(&self, game: &Game) -> Result<()> {
        self.state.storage().kv().put("game", game)
    }
}

#[rpc]
impl TurnGame {
    /// Starts a game; the first player's timer starts.
    pub(crate) async fn start(&self, players: Vec<String>) -> Result<Game> {
        if players.len() < 2 || players.len() > 8 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a game has 2 to 8 players, not {}", players.len()),
            ));
        }
        let game = Game {
            players,
            turn: 0,
            moves: Vec::new(),
            timeouts: Vec::new(),
        };
        self.save(&game)?;
        self.state.storage().set_alarm_in(TURN_TIMEOUT).await?;
        Ok(game)
    }

    /// `player` moves; only the player whose turn it is may. The timer restarts for the
    /// next player (in the same turn as the move, so both commit together).
    pub(crate) async fn play(&self, player: String, action: String) -> Result<Game> {
        let Some(mut game) = self.game()? else {
            return Err(Error::new(ErrorKind::InvalidInput, "no game was started"));
        };
        if game.players[game.turn] != player {
            return Err(Error::user(format!(
                "it is {}'s turn, not {player}'s",
                game.players[game.turn]
            ))
            .with_code("not_your_turn")
            .with_status(409));
        }
        game.moves.push((player, action));
        game.turn = (game.turn + 1) % game.players.len();
        self.save(&game)?;
        self.state.storage().set_alarm_in(TURN_TIMEOUT).await?;
        Ok(game)
    }

    pub(crate) async fn game_state(&self) -> Result<Option<Game>> {
        self.game()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (data, _temp) = support::data_dir();
    run(&data, &mut std::io::stdout()).await
}

/// The scenario, writing what it shows to `out`.
async fn run(data: &std::path::Path, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    // A manual clock, so the example shows months and timeouts in a moment.
    let clock = std::sync::Arc::new(ManualClock::new(1_800_000_000_000));
    let runtime = Runtime::builder()
        .data_dir(data)
        .clock(clock.clone())
        .bind::<Subscription>("SUBSCRIPTIONS")
        .bind::<TurnGame>("GAMES")
        .build()?;
    let env = runtime.env();
    let sub = env
        .namespace::<Subscription>("SUBSCRIPTIONS")?
        .get_by_name("alice");
    sub.start().await?;
    for renewals in 1..=3 {
        clock.advance_ms(PERIOD.as_millis() as i64);
        while sub.renewals().await?.len() < renewals {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writeln!(out, "alice renewed {} times", sub.renewals().await?.len())?;

    let game = env.namespace::<TurnGame>("GAMES")?.get_by_name("table-1");
    game.start(vec!["ann".into(), "bob".into()]).await?;
    game.play("ann".into(), "e4".into()).await?;
    // Bob does not move in time.
    clock.advance_ms(TURN_TIMEOUT.as_millis() as i64);
    while game
        .game_state()
        .await?
        .is_some_and(|g| g.timeouts.is_empty())
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let state = game.game_state().await?.unwrap_or_else(|| unreachable!());
    writeln!(
        out,
        "bob timed out; turn back to {}; timeouts {:?}",
        state.players[state.turn], state.timeouts
    )?;
    runtime.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_objects::testing::{TestEnv, run_durable_object_alarm};

    fn env() -> TestEnv {
        TestEnv::new(|runtime| {
            runtime
                .bind::<Subscription>("SUBSCRIPTIONS")
                .bind::<TurnGame>("GAMES")
        })
        .unwrap()
    }

    fn subscription(test: &TestEnv) -> Stub<Subscription> {
        test.env()
            .namespace::<Subscription>("SUBSCRIPTIONS")
            .unwrap()
            .get_by_name("alice")
    }

    fn game(test: &TestEnv) -> Stub<TurnGame> {
        test.env()
            .namespace::<TurnGame>("GAMES")
            .unwrap()
            .get_by_name("t")
    }

    #[tokio::test]
    async fn a_subscription_renews_every_period_on_schedule() {
        let test = env();
        let start = test.clock().now_ms();
        subscription(&test).start().await.unwrap();
        test.advance(PERIOD * 3 + Duration::from_secs(1))
            .await
            .unwrap();
        let period = PERIOD.as_millis() as i64;
        assert_eq!(
            subscription(&test).renewals().await.unwrap(),
            vec![start + period, start + 2 * period, start + 3 * period]
        );
        assert_eq!(
            subscription(&test).next_renewal().await.unwrap(),
            Some(start + 4 * period)
        );
    }

    #[tokio::test]
    async fn a_cancelled_subscription_stops_renewing() {
        let test = env();
        subscription(&test).start().await.unwrap();
        test.advance(PERIOD).await.unwrap();
        subscription(&test).cancel().await.unwrap();
        test.advance(PERIOD * 2).await.unwrap();
        assert_eq!(subscription(&test).renewals().await.unwrap().len(), 1);
        assert_eq!(subscription(&test).next_renewal().await.unwrap(), None);
    }

    #[tokio::test]
    async fn renewals_survive_a_restart() {
        let mut test = env();
        subscription(&test).start().await.unwrap();
        test.restart().unwrap();
        test.advance(PERIOD).await.unwrap();
        assert_eq!(subscription(&test).renewals().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_move_rearms_the_timer_and_a_timeout_passes_the_turn() {
        let test = env();
        game(&test)
            .start(vec!["ann".into(), "bob".into()])
            .await
            .unwrap();
        test.advance(Duration::from_secs(20)).await.unwrap();
        game(&test).play("ann".into(), "e4".into()).await.unwrap();
        // 20 s after the move: bob still has time (the move re-armed the timer).
        test.advance(Duration::from_secs(20)).await.unwrap();
        let state = game(&test).game_state().await.unwrap().unwrap();
        assert!(state.timeouts.is_empty());
        assert_eq!(state.turn, 1);
        // Bob runs out of time, then ann does too: the timer keeps re-arming.
        test.advance(Duration::from_secs(10 + 30)).await.unwrap();
        let state = game(&test).game_state().await.unwrap().unwrap();
        assert_eq!(state.timeouts, ["bob", "ann"]);
        assert_eq!(state.turn, 1);
    }

    #[tokio::test]
    async fn out_of_turn_moves_and_bad_games_are_refused() {
        let test = env();
        let error = game(&test)
            .play("ann".into(), "e4".into())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            game(&test)
                .start(vec!["solo".into()])
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
        game(&test)
            .start(vec!["ann".into(), "bob".into()])
            .await
            .unwrap();
        let error = game(&test)
            .play("bob".into(), "e5".into())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some("not_your_turn"));
        assert!(
            game(&test)
                .game_state()
                .await
                .unwrap()
                .unwrap()
                .moves
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_timeout_can_be_run_on_demand() {
        let test = env();
        game(&test)
            .start(vec!["ann".into(), "bob".into()])
            .await
            .unwrap();
        assert!(run_durable_object_alarm(&game(&test)).await.unwrap());
        let state = game(&test).game_state().await.unwrap().unwrap();
        assert_eq!(state.timeouts, ["ann"]);
    }

    #[tokio::test]
    async fn the_example_runs() {
        let data = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        run(data.path(), &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#"alice renewed 3 times"#), "{out}");
    }
}
