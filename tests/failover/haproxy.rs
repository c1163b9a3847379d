//! Issue 15, test 7 (frontend scheme): a real HAProxy on its own host is the
//! frontend (driver "haproxy", its runtime API over TCP), driven by the
//! orchestrator across hosts: failover and failback with client traffic,
//! each verified through HAProxy's entry with the site's identity.

use anyhow::{ensure, Result};

use crate::deploy::Knobs;
use crate::deployment;
use crate::lab::{self, secs};

/// HAProxy's view of `server` in backend be_web: its admin state and weight
/// from `show servers state` (columns 7 and 8 of format 1).
fn server_state(d: &crate::deploy::Deployment, server: &str) -> Result<(u32, u32)> {
    let out = d.haproxy_cmd("show servers state be_web")?;
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(3) == Some(&server) && f.len() > 7 {
            return Ok((f[6].parse()?, f[7].parse()?));
        }
    }
    anyhow::bail!("no server {server} in: {out}")
}

#[test]
fn haproxy_frontend_fails_over_and_back_with_client_traffic() -> Result<()> {
    let Some(d) = deployment(Knobs {
        haproxy: true,
        hold_down: "3s",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    let client = d
        .lab
        .client_loop("cli", &d.entry_url(), secs(0.1), secs(1))?;
    std::thread::sleep(secs(1));
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30))?;
    let rb = lab::eventually(secs(20), secs(0.25), || {
        let rb = d.runbooks()?.first().cloned().unwrap_or_default();
        ensure!(rb["status"] == "succeeded", "failover not done: {rb}");
        Ok(rb)
    })?;
    let verify = rb["steps"][5]["detail"].as_str().unwrap_or("").to_string();
    assert!(
        verify.contains("answers as b"),
        "verified through HAProxy: {verify}"
    );
    // HAProxy itself: a is in maintenance (admin state bit 1), b serves.
    let (a_admin, _) = server_state(&d, "a")?;
    let (b_admin, b_weight) = server_state(&d, "b")?;
    assert!(a_admin & 1 == 1, "server a in maintenance: {a_admin}");
    assert!(
        b_admin & 1 == 0 && b_weight > 0,
        "server b serves: {b_admin}/{b_weight}"
    );
    // a returns → failback after hold_down, through HAProxy again.
    d.start_service("a")?;
    d.wait_users_on("a", secs(40))?;
    lab::eventually(secs(20), secs(0.25), || {
        let rbs = d.runbooks()?;
        ensure!(
            rbs.len() == 2 && rbs[1]["kind"] == "failback" && rbs[1]["status"] == "succeeded",
            "failback not done: {rbs:?}"
        );
        Ok(())
    })?;
    // A few more requests after the failback (the client asks every 100 ms;
    // the last one before the switch may still have been b's).
    std::thread::sleep(secs(0.5));
    let samples = client.stop();
    let answered: Vec<&str> = samples
        .iter()
        .filter_map(|s| s.result.as_deref().ok().map(str::trim))
        .collect();
    assert!(answered.contains(&"b"), "clients were served by b");
    assert_eq!(answered.last(), Some(&"a"), "clients end on a");
    let outages = lab::outage_windows(&samples);
    assert!(
        outages.len() <= 1,
        "one outage at most (the failover; the failback drains): {outages:?}"
    );
    Ok(())
}

/// A failback's drain outlives the orchestrator that began it: killed
/// once the runbook is done, with b's server still draining (its end was a
/// timer in that process). HAProxy keeps b in `drain` — its open
/// connections stay on b, the site failed back from — while the route reads
/// right, so reconciliation sees no drift. The restarted orchestrator's
/// first read of the route ends the drain: b goes to maintenance.
#[test]
fn a_failback_drain_still_ends_after_an_orchestrator_restart() -> Result<()> {
    let Some(d) = deployment(Knobs {
        haproxy: true,
        hold_down: "3s",
        drain_timeout: "8s",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30))?;
    d.start_service("a")?;
    d.wait_users_on("a", secs(40))?;
    // The failback is done; b drains.
    lab::eventually(secs(20), secs(0.1), || {
        let rbs = d.runbooks()?;
        ensure!(
            rbs.len() == 2 && rbs[1]["kind"] == "failback" && rbs[1]["status"] == "succeeded",
            "failback not done: {rbs:?}"
        );
        Ok(())
    })?;
    d.lab.kill("orchestrator")?;
    let (b_admin, _) = server_state(&d, "b")?;
    ensure!(
        b_admin == 8,
        "b must still drain when the orchestrator stops (admin state {b_admin}); the drain is 8 s"
    );
    d.lab.restart("orchestrator")?;
    lab::eventually(secs(30), secs(0.25), || {
        let (b_admin, _) = server_state(&d, "b")?;
        ensure!(
            b_admin & 1 == 1,
            "b still not in maintenance: admin state {b_admin}"
        );
        Ok(())
    })?;
    let (a_admin, a_weight) = server_state(&d, "a")?;
    assert!(
        a_admin & 1 == 0 && a_weight > 0,
        "a serves: {a_admin}/{a_weight}"
    );
    d.wait_users_on("a", secs(5))?;
    Ok(())
}
