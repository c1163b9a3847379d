//! Issue 15, test 5: the verify step checks which site users really reach
//! through the public entry. When the frontend routes to b but b answers as
//! a (its identity says a), the runbook fails at verify and says so.

use anyhow::{Context, Result};

use crate::deploy::{Knobs, SVC_PORT, WARDEN};
use crate::deployment;
use crate::lab::{self, secs, Deploy};

#[test]
fn verify_fails_when_the_standby_answers_as_the_primary() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    // b's service still passes its own checks (its body is "b") but says it
    // is a in X-Served-By: a misrouted or misconfigured standby.
    d.lab.stop("svc-b")?;
    let listen = format!("{}:{SVC_PORT}", d.lab.ip("b"));
    d.lab.spawn(
        "b",
        "svc-b",
        WARDEN,
        [
            "echo-server",
            "--listen",
            &listen,
            "--text",
            "b",
            "--served-by",
            "a",
        ],
    )?;
    d.lab
        .wait_tcp("b", listen.parse()?, lab::patient(secs(10)))?;
    d.wait_verdict("b", "healthy", secs(15))?;
    d.lab.kill("svc-a")?;
    let rb = lab::eventually(secs(40), secs(0.25), || {
        let rbs = d.runbooks()?;
        let rb = rbs.first().cloned().context("no runbook yet")?;
        anyhow::ensure!(rb["status"] != "running", "runbook still running");
        Ok(rb)
    })?;
    assert_eq!(rb["kind"], "failover");
    assert_eq!(rb["status"], "failed", "{rb:#}");
    let verify = rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "verify"))
        .cloned()
        .context("a verify step")?;
    assert_eq!(verify["status"], "failed", "{verify:#}");
    let detail = verify["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("answers as a, not b"),
        "the step names who answered: {detail}"
    );
    let failed = d.wait_event("runbook_failed", secs(5))?;
    assert!(
        failed["message"].as_str().unwrap_or("").contains("verify"),
        "the runbook event names the step: {failed}"
    );
    Ok(())
}
