//! `warden drill` as an operator runs it against the real orchestrator,
//! agents and frontend: users move to the standby by a planned switchover
//! and come back by a failback, each move waited for and reported; a drill
//! on a group that is not ready is refused before anything moves.

use anyhow::Result;

use crate::deploy::Knobs;
use crate::lab::{secs, Deploy};

/// A healthy group on its primary: the drill's two moves succeed, users
/// (a client opening a new connection every 100 ms) reach b during the
/// stay and a after it, and the report names both runbooks with their RTO.
#[test]
fn a_drill_moves_users_to_the_standby_and_back() -> Result<()> {
    let Some(d) = crate::deployment(Knobs::default()) else {
        return Ok(());
    };
    d.start_all()?;
    d.wait_verdict("a", "healthy", secs(30))?;
    d.wait_verdict("b", "healthy", secs(30))?;
    let client = d
        .lab
        .client_loop("cli", &d.entry_url(), secs(0.1), secs(3))?;
    let t0 = std::time::Instant::now();
    let out = d.cli_ok(&["drill", "web", "--stay", "3s", "--timeout", "2m"])?;
    assert!(t0.elapsed() >= secs(3), "users stayed on b for --stay");
    let samples = client.stop();
    assert!(out.starts_with("drill of web: succeeded"), "{out}");
    let moves: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("switchover") || l.starts_with("failback"))
        .collect();
    assert_eq!(moves.len(), 2, "{out}");
    assert!(
        moves[0].contains("a → b") && moves[0].contains("succeeded"),
        "{out}"
    );
    assert!(
        moves[1].contains("b → a") && moves[1].contains("succeeded"),
        "{out}"
    );
    assert!(
        moves.iter().all(|m| m.contains(" ms")),
        "an RTO per move: {out}"
    );
    assert!(out.contains("verify"), "the steps are listed: {out}");
    let bodies: Vec<String> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().ok().map(|b| b.trim().to_string()))
        .collect();
    assert!(
        bodies.iter().any(|b| b == "b"),
        "users reached b during the drill"
    );
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("a"),
        "and a after it"
    );
    let rbs = d.runbooks()?;
    let kinds: Vec<(&str, &str)> = rbs
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("switchover", "succeeded"), ("failback", "succeeded")],
        "{rbs:#?}"
    );
    let g = d.group()?;
    assert_eq!(g["active"], "a");

    // In maintenance: refused before anything moves.
    d.cli_ok(&["maintenance", "web", "on"])?;
    let o = d.operator().cli(&["drill", "web", "--stay", "1s"])?;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is in maintenance"), "{err}");
    assert_eq!(d.runbooks()?.len(), 2, "nothing moved");
    d.cli_ok(&["maintenance", "web", "off"])?;

    // The standby down: refused before anything moves.
    d.lab.kill("svc-b")?;
    d.wait_verdict("b", "down", secs(30))?;
    let o = d.operator().cli(&["drill", "web", "--stay", "1s"])?;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("must be healthy for a drill"), "{err}");
    assert_eq!(d.runbooks()?.len(), 2, "nothing moved");
    Ok(())
}
