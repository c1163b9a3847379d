//! Cut-overs that go wrong. A switch that cannot reach the routing layer:
//! the orchestrator is cut off from the frontend's control API for the
//! whole switch step of a failover. b was promoted (a's service is dead):
//! the group stays on b, failed for the operator, and once the frontend can
//! be reached again reconciliation routes users to b — never back to the
//! site that was lost. A failback's rollback cut short by a SIGKILL of the
//! orchestrator: the restarted orchestrator finishes it.

use anyhow::{Context, Result};

use crate::deploy::Knobs;
use crate::deployment;
use crate::lab::{self, secs, Deploy};

#[test]
fn a_failover_whose_switch_cannot_reach_the_frontend_is_completed_toward_b() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        step_timeout: "20s",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.wait_users_on("a", secs(20))?;
    d.lab.cut("fe", "ctl")?;
    d.lab.kill("svc-a")?;
    let rb = lab::eventually(secs(60), secs(0.25), || {
        let rbs = d.runbooks()?;
        let rb = rbs.first().cloned().context("no runbook yet")?;
        anyhow::ensure!(rb["status"] != "running", "runbook still running");
        Ok(rb)
    })?;
    assert_eq!(rb["kind"], "failover");
    assert_eq!(rb["status"], "failed", "{rb:#}");
    assert_eq!(rb["rolled_forward"], true, "{rb:#}");
    let switch = rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "switch"))
        .cloned()
        .context("a switch step")?;
    assert_eq!(switch["status"], "failed", "{switch:#}");
    let g = d.group()?;
    assert_eq!(g["active"], "b", "{g:#}");
    assert_eq!(g["phase"], "failed", "{g:#}");
    let alert = lab::eventually(secs(5), secs(0.25), || {
        d.events_of("alert")?
            .into_iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("b stays the active site")
            })
            .context("no carried-forward alert yet")
    })?;
    assert_eq!(alert["site"], "b", "{alert:#}");
    // The frontend answers again: reconciliation completes the route.
    d.lab.heal("fe", "ctl")?;
    d.wait_users_on("b", secs(20))?;
    let (site, epoch, _) = d.frontend_route()?;
    assert_eq!(site, "b");
    assert_eq!(Some(epoch), g["epoch"].as_u64(), "{g:#}");
    Ok(())
}

/// A failback whose promote of a fails is rolled back; the orchestrator is
/// SIGKILLed while the rollback demotes a again (a's demote hook takes its
/// time), before b is promoted again — b demoted, users routed to b.
/// The rollback routed b at the failback's epoch first: a deposed leader's
/// late switch to a at that epoch is refused by the frontend. Restarted,
/// it finishes the rollback (the route to b at the failback's epoch is
/// its own, not the switch's): b promoted again at the failback's epoch,
/// the group steady on b, and the cut-over is not resumed (a's promote ran
/// once).
#[test]
fn an_orchestrator_killed_mid_rollback_finishes_it_once_restarted() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        hold_down: "1s",
        promote_a: "exit 1".into(),
        // Only the failback's epoch (3) is slow: the rollback's demote.
        demote_a: "test $WARDEN_EPOCH -eq 3 && sleep 6; true".into(),
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.wait_users_on("a", secs(20))?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30))?;
    d.start_service("a")?;
    lab::eventually(secs(60), secs(0.5), || d.cli_ok(&["failback", "web"]))?;
    lab::eventually(secs(60), secs(0.1), || {
        anyhow::ensure!(
            d.hook_log().contains("demote a 3"),
            "the rollback has not demoted a yet: {}",
            d.hook_log()
        );
        Ok(())
    })?;
    d.lab.kill("orchestrator")?;
    assert!(
        !d.hook_log().contains("promote b 3"),
        "b was promoted again before the kill: {}",
        d.hook_log()
    );
    // The rollback routed b at the failback's epoch before it undid
    // anything: the frontend's fence names b at 3, and a deposed leader's
    // late switch to a at epoch 3 is refused as a conflicting decision
    // (taken, it would have refused reconciliation's route back to b at 3,
    // leaving users on a, demoted, for good).
    let url = format!(
        "http://{}:{}/v1/routes/web",
        d.lab.ip("fe"),
        crate::deploy::CONTROL_PORT
    );
    let auth = d.lab.auth_header(&d.frontend_token)?;
    let (_, status, body) = d.curl(&[
        "-X",
        "PUT",
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"site":"a","epoch":3,"mode":"drain"}"#,
        &url,
    ])?;
    assert_eq!(status, 409, "the late route to a was not refused: {body}");
    assert!(body.contains("conflicting decision"), "{body}");
    let (site, epoch, _) = d.frontend_route()?;
    assert_eq!((site.as_str(), epoch), (Some("b"), 3));
    d.lab.restart("orchestrator")?;
    let g = lab::eventually(secs(60), secs(0.5), || {
        let g = d.group()?;
        anyhow::ensure!(g["phase"] == "steady", "group {g:#}");
        Ok(g)
    })?;
    assert_eq!(g["active"], "b", "{g:#}");
    let failback = d
        .runbooks()?
        .into_iter()
        .find(|r| r["kind"] == "failback")
        .context("the failback")?;
    assert_eq!(failback["status"], "failed", "{failback:#}");
    assert_eq!(failback["aborted"], true, "{failback:#}");
    let log = d.hook_log();
    assert_eq!(log.matches("promote b 3").count(), 1, "{log}");
    assert_eq!(log.matches("promote a 3").count(), 1, "{log}");
    assert_eq!(d.user_get()?, "b");
    assert_eq!(d.events_of("runbook_resumed")?.len(), 1);
    Ok(())
}
