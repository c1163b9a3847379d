//! A failover that fails, on namespace hosts with the real binaries: the
//! group is left `failed` for the operator, and a failover to the site it
//! is still on brings it back to `steady` there.

use anyhow::Result;

use crate::deploy::Knobs;
use crate::lab::{self, secs, Deploy};

/// An operator's failover a → b fails at b's promote (its hook exits 1):
/// a was fenced (demoted), b keeps the role its failed promote took, and
/// the group is `failed` on a. `warden failover web --to a --epoch E`
/// (the epoch the operator read) then fences b — its demote hook runs at
/// the new epoch — and promotes a again at it: the group is steady on a,
/// users reach a through the frontend, and the orchestrator says which
/// move it made. A second run of the same command is refused (the group
/// moved on), sending nothing. Before, a failover to a was refused ("a is
/// already the active site"): the only way on was the move that had just
/// failed.
#[test]
fn a_failed_failover_is_brought_back_to_steady_on_the_site_it_left() -> Result<()> {
    back_on_the_site_it_left(false)
}

/// The same with a real HAProxy as the frontend (driver `haproxy`): its
/// fence is raised to the new epoch on the server it already routes to.
#[test]
fn behind_haproxy_a_failed_failover_is_brought_back_to_steady_on_the_site_it_left() -> Result<()> {
    back_on_the_site_it_left(true)
}

fn back_on_the_site_it_left(haproxy: bool) -> Result<()> {
    let Some(d) = crate::deployment(Knobs {
        promote_b: "exit 1".into(),
        haproxy,
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.wait_users_on("a", secs(30))?;
    d.wait_verdict("b", "healthy", secs(20))?;
    d.cli_ok(&["failover", "web", "--to", "b"])?;
    let g = lab::eventually(secs(60), secs(0.2), || {
        let g = d.group()?;
        anyhow::ensure!(g["phase"] == "failed", "group {}", g["phase"]);
        Ok(g)
    })?;
    assert_eq!(g["active"], "a", "{g}");
    let failed_at = g["epoch"].as_u64().unwrap_or_default();
    assert!(
        d.hook_log().contains(&format!("demote a {failed_at}")),
        "a was fenced by the failover: {}",
        d.hook_log()
    );
    let epoch = failed_at.to_string();
    let out = d.cli_ok(&["failover", "web", "--to", "a", "--epoch", &epoch])?;
    assert!(out.contains("failover of web to a started"), "{out}");
    let g = lab::eventually(secs(60), secs(0.2), || {
        let g = d.group()?;
        anyhow::ensure!(g["phase"] == "steady", "group {}", g["phase"]);
        Ok(g)
    })?;
    let now = g["epoch"].as_u64().unwrap_or_default();
    assert_eq!(
        (g["active"].as_str(), now > failed_at),
        (Some("a"), true),
        "{g}"
    );
    let hooks = d.hook_log();
    assert!(
        hooks.contains(&format!("demote b {now}")) && hooks.contains(&format!("promote a {now}")),
        "b fenced and a promoted at epoch {now}: {hooks}"
    );
    let rbs = d.runbooks()?;
    let last = rbs.last().cloned().unwrap_or_default();
    assert_eq!(
        (
            last["from"].as_str(),
            last["to"].as_str(),
            last["status"].as_str()
        ),
        (Some("b"), Some("a"), Some("succeeded")),
        "{last}"
    );
    d.wait_users_on("a", secs(30))?;
    // The same command again: the group is at another epoch now.
    let again = d
        .operator()
        .cli(&["failover", "web", "--to", "a", "--epoch", &epoch])?;
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("nothing sent"),
        "{err}"
    );
    assert_eq!(d.runbooks()?.len(), rbs.len(), "no runbook started");
    Ok(())
}
