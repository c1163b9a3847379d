//! Issue 15: users see a slow request, not an error. A client opening a new
//! connection every 50 ms (each with a 3 s budget, independent of the
//! others) through the built-in frontend sees no failed request while the
//! primary's service is killed and the group fails over (interval 250 ms,
//! fall 3), nor through a planned switchover whose demote stops the old
//! site's service: the orchestrator's hold orders make the frontend hold
//! refused connections until the route changes.
//!
//! The failover has one gap no order can cover: between the kill and the
//! first sign of it at the orchestrator (the next agent check, peer probe or
//! orchestrator probe, at most one detection interval), a refused connect
//! fails fast, as it must when no switch is known to be coming. The test
//! proves that every failure falls in that gap (the frontend closed it
//! before its first hold order) and that the gap is at most one interval's
//! worth of arrivals.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::deploy::{Deployment, Knobs, CONTROL_PORT, HOSTS};
use crate::lab::{self, secs, Deploy};

/// The frontend's route of group web, as JSON (with the hold counters).
fn frontend_state(d: &Deployment) -> Result<Value> {
    let url = format!("http://{}:{CONTROL_PORT}/v1/routes/web", d.lab.ip("fe"));
    let auth = d.lab.auth_header(&d.frontend_token)?;
    let out = d
        .lab
        .run_ok("ctl", "curl", ["-s", "-m", "5", "-H", &auth, &url])?;
    serde_json::from_str(&out).with_context(|| format!("GET {url}: {out}"))
}

/// Failed requests among `samples` started at or after `from`, with why.
fn failures(samples: &[lab::Sample], from: Instant) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.at + s.latency >= from)
        .filter_map(|s| s.result.as_ref().err().cloned())
        .collect()
}

/// Timestamps (RFC 3339, comparable as text) of the frontend's log lines
/// containing `needle`.
fn stamps(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            // Strip ANSI colours; the timestamp is the first word.
            let mut parts = l.split('\u{1b}');
            let mut plain = parts.next().unwrap_or_default().to_string();
            for part in parts {
                plain.push_str(part.split_once('m').map_or(part, |(_, rest)| rest));
            }
            plain.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

fn slowest(samples: &[lab::Sample]) -> std::time::Duration {
    samples.iter().map(|s| s.latency).max().unwrap_or_default()
}

/// What users saw through one service-kill failover of `d`: a client opens
/// a new connection every 50 ms (3 s budget each) from a second before the
/// kill of a's service until a second after users reach b.
struct Drill {
    /// Failed requests that ended after the kill, with why.
    failed: Vec<String>,
    /// Of those, the ones that started once the service was dead (its
    /// process reaped): none of their bytes can have gone to it.
    failed_after_death: Vec<String>,
    /// Requests started after the kill.
    during: usize,
    /// The frontend's route with its hold counters, after the drill.
    fe: Value,
}

fn service_kill_drill(d: &Deployment, label: &str) -> Result<Drill> {
    d.start_all()?;
    let client =
        lab::ClientLoop::start_overlapping(&d.lab, "cli", &d.entry_url(), secs(0.05), secs(3))?;
    std::thread::sleep(secs(1));
    let killed = Instant::now();
    d.lab.kill("svc-a")?;
    let dead = Instant::now();
    d.wait_users_on("b", secs(30))?;
    std::thread::sleep(secs(1));
    let samples = client.stop();
    let drill = Drill {
        failed: failures(&samples, killed),
        failed_after_death: samples
            .iter()
            .filter(|s| s.at >= dead)
            .filter_map(|s| s.result.as_ref().err().cloned())
            .collect(),
        during: samples.iter().filter(|s| s.at >= killed).count(),
        fe: frontend_state(d)?,
    };
    println!(
        "{label}: {} requests after the kill, {} failed, slowest {:?}; frontend: {}",
        drill.during,
        drill.failed.len(),
        slowest(&samples),
        drill.fe
    );
    Ok(drill)
}

#[test]
fn a_service_kill_failover_fails_only_requests_before_its_first_sign() -> Result<()> {
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        return Ok(());
    };
    let d = Deployment::new(lab, Knobs::default())?;
    let Drill {
        failed, during, fe, ..
    } = service_kill_drill(&d, "failover")?;
    assert_eq!(d.group()?["active"], "b");
    assert!(
        fe["held_rescued"].as_u64().unwrap_or(0) > 0,
        "the frontend held connections and the route change rescued them: {fe}"
    );
    assert_eq!(fe["held_now"], 0, "{fe}");
    assert_eq!(fe["held_timed_out"], 0, "{fe}");
    let log = d.lab.log("frontend");
    let first_order = stamps(&log, "hold order: new connections")
        .into_iter()
        .next()
        .context("the frontend never received a hold order")?;
    let fast = stamps(&log, "backend connect failed; closing client connection");
    assert!(
        fast.iter().all(|t| *t < first_order),
        "a connection failed fast after the first hold order ({first_order}): {fast:?}"
    );
    // 250 ms of arrivals every 50 ms, and one in flight at the kill.
    assert!(
        failed.len() <= 7,
        "{} of {during} requests failed during the failover (only those before the first sign may): {failed:?}",
        failed.len()
    );
    Ok(())
}

/// With `connect_retry`, the users who arrive between the kill and the
/// first hold order retry their refused connect until the order takes them
/// over: no request that starts after the kill fails (issue 15's goal;
/// `connect_retry` 1 s here, well above the first sign's ≤ 250 ms, so a
/// loaded CI machine keeps the margin). One request in flight at the kill
/// may be lost (CI saw one "empty reply" in about twenty runs).
#[test]
fn with_connect_retry_no_request_started_after_a_service_kill_fails() -> Result<()> {
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        return Ok(());
    };
    let d = Deployment::new(
        lab,
        Knobs {
            extra: "connect_retry = \"1s\"\n".into(),
            ..Knobs::default()
        },
    )?;
    let Drill {
        failed,
        failed_after_death,
        during,
        fe,
    } = service_kill_drill(&d, "failover with connect_retry")?;
    assert_eq!(d.group()?["active"], "b");
    // Users arriving during the runbook waited for the switch; those who
    // arrived before the first hold order (if any did: the first sign
    // comes 0–250 ms after the kill) retried (`retried_total`).
    assert!(
        fe["held_rescued"].as_u64().unwrap_or(0) > 0,
        "users were held through the cut-over: {fe}"
    );
    // No user who arrives once the service is dead fails.
    assert!(
        failed_after_death.is_empty(),
        "{} of {during} requests that started after the service died failed: {failed_after_death:?}",
        failed_after_death.len()
    );
    // A request whose bytes had reached the service when it was killed
    // cannot be replayed by a TCP proxy (it cannot know whether they were
    // acted on); with a request every 50 ms, at most one is in flight.
    assert!(
        failed.len() <= 1,
        "{} of {during} requests failed during the failover: {failed:?}",
        failed.len()
    );
    Ok(())
}

#[test]
fn no_failed_request_through_a_planned_switchover() -> Result<()> {
    let Some(lab) = lab::Lab::new_or_skip(HOSTS) else {
        return Ok(());
    };
    // The demote of a stops a's service, as a real cut-over does, and b's
    // promote takes a second: without a hold, every user arriving between
    // the two would be refused.
    let pidfile = lab.dir().join("svc-a.pid");
    let d = Deployment::new(
        lab,
        Knobs {
            demote_a: format!("kill $(cat {})", pidfile.display()),
            promote_b: "sleep 1".into(),
            failback: "manual",
            ..Knobs::default()
        },
    )?;
    d.start_all()?;
    std::fs::write(&pidfile, d.lab.pid("svc-a")?.to_string())?;
    let client =
        lab::ClientLoop::start_overlapping(&d.lab, "cli", &d.entry_url(), secs(0.05), secs(3))?;
    std::thread::sleep(secs(1));
    let started = Instant::now();
    d.cli_ok(&["switchover", "web", "--to", "b"])?;
    d.wait_users_on("b", secs(30))?;
    lab::eventually(secs(30), secs(0.25), || {
        let rbs = d.runbooks()?;
        match rbs.iter().rev().find(|r| r["kind"] == "switchover") {
            Some(r) if r["status"] == "succeeded" => Ok(()),
            other => anyhow::bail!("switchover not done: {other:?}"),
        }
    })?;
    std::thread::sleep(secs(1));
    let samples = client.stop();
    assert!(
        !d.lab.is_running("svc-a"),
        "the demote hook stopped a's service"
    );
    let failed = failures(&samples, started);
    let fe = frontend_state(&d)?;
    let during = samples.iter().filter(|s| s.at >= started).count();
    println!(
        "switchover: {} requests from the order, {} failed, slowest {:?}; frontend: {fe}",
        during,
        failed.len(),
        slowest(&samples)
    );
    assert!(
        fe["held_rescued"].as_u64().unwrap_or(0) > 0,
        "the frontend held connections through the cut-over: {fe}"
    );
    assert!(
        failed.is_empty(),
        "{} of {during} requests failed during the switchover: {failed:?}",
        failed.len()
    );
    Ok(())
}
