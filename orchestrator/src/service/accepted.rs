//! Whatever `check-config` accepts must run: the service test's config with
//! its timings and numbers drawn from the whole range the loader takes (and
//! beyond: what it refuses is skipped), then a confirmed disaster, a
//! failover, the primary's return and a failback, on paused time. The bug
//! this guards against: `step_timeout = "300000000000y"` passed the loader
//! and the first failover panicked adding it to an instant.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::harness::{config_text, group, round_inner, start_from, test_dir};
use super::*;
use crate::store::MemStore;

/// Values the loader takes for most keys, edges included (10 years is the
/// longest duration there is).
const DURATIONS: &[&str] = &[
    "1ms", "10ms", "250ms", "1s", "3s", "59s", "1h", "30d", "3650d",
];
/// Values it should refuse (or that sit just outside its ranges).
const ABSURD_DURATIONS: &[&str] = &["0s", "1ns", "10y", "300000000000y", "18446744073709551615s"];
const NUMBERS: &[&str] = &["1", "2", "3", "10", "255", "65535"];
/// Configs run through a failover and a failback, each run.
const WANTED: usize = 24;
/// Configs drawn at most to find them.
const DRAWS: u32 = 2000;
const ABSURD_NUMBERS: &[&str] = &["0", "256", "4294967295", "18446744073709551615"];

#[tokio::test(start_paused = true)]
async fn accepted_timings_run_a_failover_and_a_failback() {
    let d = || prop_oneof![6 => prop::sample::select(DURATIONS), 1 => prop::sample::select(ABSURD_DURATIONS)];
    let n = || prop_oneof![6 => prop::sample::select(NUMBERS), 1 => prop::sample::select(ABSURD_NUMBERS)];
    let strategy = ((d(), n(), n(), d(), d()), (d(), d(), n(), d()));
    let mut runner = TestRunner::new(Config {
        cases: DRAWS,
        ..Config::default()
    });
    // Draws until WANTED configs were accepted (about one in ten is: a
    // fixed number of draws made the count a matter of luck, and a run
    // with fewer than 10 of 128 failed about once in 30).
    let mut accepted = 0;
    // Configs that failed over to b; of them, those failed back to a.
    let (mut failed_over, mut asked_back, mut failed_back) = (0, 0, 0);
    for _ in 0..DRAWS {
        if accepted == WANTED {
            break;
        }
        let (
            (interval, fall, rise, hold_down, agent_timeout),
            (probe_timeout, step_timeout, max_failovers, window),
        ) = strategy.new_tree(&mut runner).expect("a case").current();
        let dir = test_dir(true, 1);
        let text = config_text(&dir, true, 5, "")
            .replace(
                "interval = \"250ms\"",
                &format!("interval = \"{interval}\"\nprobe_timeout = \"{probe_timeout}\""),
            )
            .replace("fall = 3", &format!("fall = {fall}"))
            .replace("rise = 3", &format!("rise = {rise}"))
            .replace(
                "hold_down = \"2s\"",
                &format!("hold_down = \"{hold_down}\""),
            )
            .replace(
                "agent_timeout = \"1s\"",
                &format!("agent_timeout = \"{agent_timeout}\""),
            )
            .replace(
                "max_failovers = 5",
                &format!("max_failovers = {max_failovers}"),
            )
            .replace(
                "failover_window = \"1h\"",
                &format!("failover_window = \"{window}\""),
            )
            .replace(
                "step_timeout = \"5s\"",
                &format!("step_timeout = \"{step_timeout}\""),
            );
        let (s, _fake) = match start_from(&text, &dir, Arc::new(MemStore::default())) {
            Ok(x) => x,
            Err(e) => {
                if std::env::var("SHOW_REFUSED").is_ok() {
                    eprintln!("refused: {e}");
                }
                continue;
            }
        };
        accepted += 1;
        for _ in 0..4 {
            round_inner(&s, true, true).await;
        }
        for _ in 0..30 {
            round_inner(&s, false, true).await;
        }
        for _ in 0..30 {
            round_inner(&s, true, true).await;
        }
        // a is back: a failback is asked each round until one is taken
        // (a judged recovered: `rise` rounds, `hold_down`), then rounds
        // until it has ended.
        let g = group(&s);
        let mut back = false;
        if g.active == "b" && g.phase != Phase::Running {
            failed_over += 1;
            for _ in 0..200 {
                round_inner(&s, true, true).await;
                if s.operator_failback("web", "operator").is_ok() {
                    back = true;
                    break;
                }
            }
        }
        for _ in 0..100 {
            round_inner(&s, true, true).await;
            if group(&s).phase != Phase::Running {
                break;
            }
        }
        if back {
            asked_back += 1;
            let g = group(&s);
            // Ended: on a, or given up with its cause said (a step timeout
            // shorter than the agents' rounds cannot hear an outcome).
            assert!(
                g.phase != Phase::Running && (g.active == "a" || g.last_failback_failure.is_some()),
                "a failback neither ended on a nor said why not: {g:#?}\n{text}"
            );
            if g.active == "a" {
                failed_back += 1;
            }
        }
        // Whatever the timings made of it, the service still answers.
        let view = s.status_view();
        assert_eq!(view.groups.len(), 1, "{text}");
    }
    assert_eq!(
        accepted, WANTED,
        "only {accepted} of {DRAWS} configs were accepted: the test proves little"
    );
    eprintln!("{accepted} configs run: {failed_over} failed over, {asked_back} failbacks taken, {failed_back} ended on a");
    // Timings drawn long (a 30-day interval, 65535 rounds to fall) leave
    // a config where it is within the rounds run (4 to 15 of 24 failed
    // over in runs of this test); some must (each failback taken is
    // checked above).
    assert!(
        failed_over > 0,
        "{accepted} configs run: only {failed_over} failed over"
    );
}
