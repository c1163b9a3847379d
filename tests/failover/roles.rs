//! Issue 14, tests 3 and 6 on namespace hosts with the real binaries:
//! the read-only token, named operators, replayed agent reports, and
//! `/metrics` through promtool.

use anyhow::Result;

use crate::deploy::{self, Knobs};
use crate::lab::{secs, Deploy};

/// Issue 14, test 3: roles and replayed reports, against the real binaries.
/// The read-only token reads (status, events, metrics) and can never act;
/// a named operator's action is recorded under its name; an agent report
/// played again (same process, same seq) is refused and changes nothing.
#[test]
fn read_only_token_cannot_act_operators_are_named_and_replays_are_refused() -> Result<()> {
    let Some(d) = crate::deployment(Knobs::default()) else {
        return Ok(());
    };
    let read = format!("read-only-{}", d.lab.prefix());
    let alice = format!("alice-{}", d.lab.prefix());
    let read_file = d.lab.write_file("read.token", &read)?;
    let alice_file = d.lab.write_file("alice.token", &alice)?;
    let mut conf = std::fs::read_to_string(&d.config)?;
    conf.push_str(&format!(
        "\n[orchestrator.read_token]\nfile = \"{}\"\n\n[[orchestrator.operators]]\nname = \"alice\"\ntoken = {{ file = \"{}\" }}\n",
        read_file.display(),
        alice_file.display()
    ));
    std::fs::write(&d.config, conf)?;
    d.start_all()?;
    d.wait_verdict("a", "healthy", secs(20))?;

    let api = format!("http://{}:{}", d.lab.ip("ctl"), deploy::API_PORT);
    let call = |token: &str, method: &str, path: &str, body: &str| d.api(token, method, path, body);

    // Reads with the read-only token.
    for path in [
        "/v1/status",
        "/v1/groups/web",
        "/v1/events",
        "/v1/runbooks",
        "/metrics",
    ] {
        let (code, body) = call(&read, "GET", path, "")?;
        assert_eq!(code, 200, "GET {path} with the read-only token: {body}");
    }
    // Test 6: what /metrics serves passes promtool (the classic text format
    // unless the scraper asks for OpenMetrics).
    let read_header = d.lab.auth_header(&read)?;
    let out = d.lab.run(
        "cli",
        "bash",
        [
            "-c",
            &format!(
                "set -o pipefail; curl -sf -H '{read_header}' {api}/metrics | promtool check metrics"
            ),
        ],
    )?;
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let classic = d.lab.run_ok(
        "cli",
        "curl",
        [
            "-sf",
            "-H",
            &d.lab.auth_header(&read)?,
            &format!("{api}/metrics"),
        ],
    )?;
    assert!(
        classic.contains("# TYPE warden_agent_reports_total counter"),
        "{classic}"
    );
    let reports: f64 = classic
        .lines()
        .find_map(|l| l.strip_prefix("warden_agent_reports_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(reports > 0.0, "{classic}");
    let om = d.lab.run_ok(
        "cli",
        "curl",
        [
            "-sf",
            "-H",
            &d.lab.auth_header(&read)?,
            "-H",
            "Accept: application/openmetrics-text; version=1.0.0",
            &format!("{api}/metrics"),
        ],
    )?;
    assert!(om.trim_end().ends_with("# EOF"), "{om}");

    // No action with it: refused, clearly, and nothing changes.
    let before = d.runbooks()?.len();
    for (path, body) in [
        ("/v1/groups/web/failover", r#"{"to":"b"}"#),
        ("/v1/groups/web/maintenance", r#"{"on":true}"#),
        ("/v1/groups/web/clear", ""),
    ] {
        let (code, text) = call(&read, "POST", path, body)?;
        assert_eq!(code, 403, "POST {path} with the read-only token: {text}");
        assert!(text.contains("read-only token may not act"), "{text}");
    }
    assert_eq!(d.group()?["maintenance"], false);
    assert_eq!(d.runbooks()?.len(), before);
    assert_eq!(d.user_get()?, "a");

    // A named operator acts; the event says who.
    let (code, text) = call(
        &alice,
        "POST",
        "/v1/groups/web/maintenance",
        r#"{"on":true}"#,
    )?;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(r#""maintenance":true"#), "{text}");
    let (code, text) = call(
        &d.operator_token,
        "POST",
        "/v1/groups/web/maintenance",
        r#"{"on":false}"#,
    )?;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(r#""maintenance":false"#), "{text}");
    let msgs: Vec<String> = d
        .events_of("maintenance")?
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("on") && m.ends_with("(operator alice)")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("maintenance off (operator)")),
        "{msgs:?}"
    );

    // A report played again is refused (409), a newer one of the same process is not.
    let token_a = std::fs::read_to_string(d.lab.dir().join("a.token"))?;
    let report = |seq: u64| {
        serde_json::json!({
            "site": "a", "seq": seq, "boot": "captured-process",
            "checks": [{ "name": "web", "ok": true, "critical": true }],
        })
        .to_string()
    };
    let (code, text) = call(&token_a, "POST", "/v1/reports", &report(7))?;
    assert_eq!(code, 200, "{text}");
    let (code, text) = call(&token_a, "POST", "/v1/reports", &report(7))?;
    assert_eq!(code, 409, "{text}");
    assert!(
        text.contains("replayed") && text.contains("captured-process"),
        "{text}"
    );
    let (code, _) = call(&token_a, "POST", "/v1/reports", &report(3))?;
    assert_eq!(code, 409, "an older seq of the same process");
    let (code, text) = call(&token_a, "POST", "/v1/reports", &report(8))?;
    assert_eq!(code, 200, "{text}");
    // The real agent (its own process id and sequence) is still heard.
    std::thread::sleep(secs(2));
    d.wait_verdict("a", "healthy", secs(10))?;
    assert_eq!(d.runbooks()?.len(), before);
    Ok(())
}
