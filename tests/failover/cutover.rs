//! A cut-over whose switch cannot reach the routing layer: the orchestrator
//! is cut off from the frontend's control API for the whole switch step of
//! a failover. b was promoted (a's service is dead): the group stays on b,
//! failed for the operator, and once the frontend can be reached again
//! reconciliation routes users to b — never back to the site that was lost.

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
