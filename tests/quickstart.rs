//! The quickstart (`warden demo`, README's first command) as a user runs it,
//! on loopback: two sites, their agents, the orchestrator and the frontend in
//! one process; a failover and a failback. Its JSON report is what is
//! checked: both runbooks succeeded, users reached b and then a again, and
//! no request failed that was not in flight at the kill or later (users
//! arrive once the frontend has its first route).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

#[test]
fn the_quickstart_fails_over_and_back() {
    let mut child = Command::new(WARDEN)
        .args(["demo", "--json"])
        .env("WARDEN_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start warden demo");
    // At most two minutes (it takes about ten seconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("demo status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("warden demo did not end within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("demo output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warden demo failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the demo's JSON report: {e}; stderr: {stderr}"));

    let (fo, fb) = (&report["failover"], &report["failback"]);
    for (rb, from, to) in [
        (&fo["runbook"], "site-a", "site-b"),
        (&fb["runbook"], "site-b", "site-a"),
    ] {
        assert_eq!(rb["status"], "succeeded", "{rb:#}");
        assert_eq!(
            (rb["from"].as_str(), rb["to"].as_str()),
            (Some(from), Some(to)),
            "{rb:#}"
        );
    }
    assert_eq!(fb["runbook"]["kind"], "failback");
    assert!(
        fb["runbook"]["epoch"].as_u64() > fo["runbook"]["epoch"].as_u64(),
        "the failback carries a newer epoch than the failover"
    );

    let probe = &report["probe"];
    for site in ["site-a", "site-b"] {
        assert!(
            probe["answers"][site].as_u64().unwrap_or(0) > 0,
            "users reached {site}: {probe:#}"
        );
    }
    assert_eq!(probe["last_answer"], "site-a", "users end on site-a");
    // A request still in flight at the kill (started up to a client
    // timeout before it) may fail because of it; one that failed earlier
    // is a fault of the quickstart.
    let killed = fo["killed_at_ms"].as_u64().expect("killed_at_ms");
    let timeout = report["client_timeout_ms"]
        .as_u64()
        .expect("client_timeout_ms");
    for o in probe["outages"].as_array().expect("outages") {
        let start = o["start_ms"].as_u64().expect("start_ms");
        assert!(
            start + timeout > killed,
            "a request failed at {start} ms, more than its {timeout} ms timeout before site-a was killed at {killed} ms: {o}"
        );
    }
    // Generous bounds (the quickstart prints about 0.5 s and 0 ms).
    let fo_out = fo["client_outage_ms"].as_u64().expect("failover outage");
    assert!(fo_out < 10_000, "failover outage {fo_out} ms");
    let fb_out = fb["client_outage_ms"].as_u64().expect("failback outage");
    assert!(fb_out < 2_000, "failback outage {fb_out} ms");
}
