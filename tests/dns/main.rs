//! The `dns` scheme across network-namespace hosts: sites `a` and `b` run an
//! echo service and an agent, `ctl` the orchestrator, `dns` a real BIND9 or
//! Knot DNS serving the zone, `cli` the users. Users resolve the name through
//! the authoritative server and connect to the answer; warden moves them by
//! DNS UPDATE signed with TSIG.

#[path = "../lab/mod.rs"]
mod lab;

#[path = "../dnsd/mod.rs"]
mod dnsd;

#[allow(dead_code)]
mod deploy;

use anyhow::{Context, Result};
use deploy::{Dep, NAME, SVC_PORT, WARDEN};
use dnsd::Kind;
use lab::secs;
use lab::Deploy;
use serde_json::Value;

const TTL_S: u64 = 2;

/// A full failover and failback of a `dns` group: the primary's service
/// dies → the record moves to b (checked at the authoritative server with the
/// AA bit, and by users connecting to the answer); a returns → failback.
/// `warden probe` in DNS mode measures what users saw, TTL caching included.
/// The TSIG secret never shows up in any log or output.
fn failover_and_failback(kind: Kind) -> Result<()> {
    let Some(d) = Dep::new(kind, TTL_S, "3s") else {
        return Ok(());
    };
    d.start_all()?;
    let resolver = d.server.listen.to_string();
    d.lab.spawn(
        "cli",
        "probe",
        WARDEN,
        [
            "probe",
            &format!("http://{NAME}:{SVC_PORT}/"),
            "--resolver",
            &resolver,
            "--interval",
            "100ms",
            "--timeout",
            "500ms",
            "--duration",
            "60s",
            "--json",
        ],
    )?;
    std::thread::sleep(secs(1));
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30)).context("users moved to b")?;
    assert_eq!(d.dig(NAME)?, d.lab.ip("b").to_string());
    assert!(d.authoritative()?, "the answer carries the AA bit");
    let g = d.group()?;
    assert_eq!(g["active"], "b");
    assert_eq!(g["scheme"], "dns");
    let epoch_after_failover = g["epoch"].as_u64().unwrap_or(0);
    let marker = d.lab.run_ok(
        "cli",
        "dig",
        dnsd::dig_args(d.server.listen, &format!("_warden.{NAME}"), "TXT"),
    )?;
    assert!(
        marker.contains(&format!("epoch={epoch_after_failover} site=b")),
        "marker {marker:?}, epoch {epoch_after_failover}"
    );

    // The primary returns: failback after hold_down, users back on a.
    d.start_service("a")?;
    d.wait_users_on("a", secs(40)).context("failback to a")?;
    let g = d.group()?;
    assert_eq!(g["active"], "a");
    assert!(g["epoch"].as_u64().unwrap_or(0) > epoch_after_failover);

    // Users' resolvers may hold the old answer for the TTL: after that, they are back on a too.
    std::thread::sleep(secs(TTL_S as f64 + 1.5));
    // What the users saw (DNS caching included).
    d.lab.stop("probe")?;
    let log = d.lab.log("probe");
    let rep: Value = log
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("probe printed no JSON: {log}"))?;
    eprintln!("{}: probe report: {rep}", kind.label());
    let answers = rep["answers"].as_object().cloned().unwrap_or_default();
    assert!(
        answers.contains_key("a") && answers.contains_key("b"),
        "users were answered by both sites: {rep}"
    );
    assert_eq!(rep["last_answer"], "a", "users are back on a: {rep}");
    let longest = rep["longest_outage_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        longest < 20_000,
        "longest outage {longest} ms (generous bound; the benchmark measures it): {rep}"
    );

    // Both verify steps connected to the authoritative answer and saw the
    // right site answer there.
    let evs = d.events()?;
    for (kind_, to) in [("failover", "b"), ("failback", "a")] {
        let want = format!("entry {}:{SVC_PORT} answers as {to}", d.lab.ip(to));
        assert!(
            evs.iter().any(|e| {
                let m = e["message"].as_str().unwrap_or("");
                m.starts_with(&format!("{kind_} step verify: Done")) && m.contains(&want)
            }),
            "{}: the {kind_}'s verify went to the answer and identified {to}: {evs:#?}",
            kind.label()
        );
    }

    // Events: both runbooks succeeded through the DNS strategy.
    let ok = evs
        .iter()
        .filter(|e| e["kind"] == "runbook_succeeded")
        .count();
    assert!(ok >= 2, "failover and failback succeeded: {evs:#?}");

    // The secret appears nowhere: logs of every process, status, events.
    let mut everything = String::new();
    for p in ["orchestrator", "agent-a", "agent-b", "probe"] {
        everything.push_str(&d.lab.log(p));
    }
    everything.push_str(&d.cli_ok(&["status", "--json"])?);
    everything.push_str(&d.cli_ok(&["events", "--json"])?);
    everything.push_str(&d.cli_ok(&["status"])?);
    assert!(
        everything.contains("DNS update applied"),
        "debug logs captured"
    );
    assert!(
        !everything.contains(&d.server.secret_b64),
        "the TSIG secret leaked into logs or output"
    );
    Ok(())
}

#[test]
fn bind_dns_failover_and_failback() -> Result<()> {
    failover_and_failback(Kind::Bind)
}

#[test]
fn knot_dns_failover_and_failback() -> Result<()> {
    failover_and_failback(Kind::Knot)
}

/// A wrong TSIG secret: the orchestrator's switch fails with a clear
/// message, the record is unchanged, and the secret is not in the output.
#[test]
fn wrong_tsig_secret_fails_switch_clearly() -> Result<()> {
    let Some(d) = Dep::new(Kind::Bind, TTL_S, "3s") else {
        return Ok(());
    };
    // Replace the key warden reads with a wrong secret of the same name.
    let wrong = dnsd::random_secret();
    let real_key = std::fs::read_to_string(&d.server.key_file)?;
    let warden_key = d.lab.write_file(
        "warden-tsig.key",
        dnsd::bind_key(&d.server.key_name, &wrong),
    )?;
    let conf = std::fs::read_to_string(&d.config)?.replace(
        &d.server.key_file.display().to_string(),
        &warden_key.display().to_string(),
    );
    std::fs::write(&d.config, conf)?;
    assert!(real_key.contains(&d.server.secret_b64));
    d.start_all()?;
    // Reconciliation already tried to write the marker with the wrong key.
    let refused = lab::eventually(secs(20), secs(0.5), || {
        d.events()?
            .into_iter()
            .find(|e| e["kind"] == "reconcile_failed")
            .context("no reconcile_failed yet")
    })?;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TSIG"),
        "{refused}"
    );
    d.cli_ok(&["failover", "web", "--to", "b"])?;
    let failed = lab::eventually(secs(40), secs(0.5), || {
        let evs = d.events()?;
        evs.into_iter()
            .find(|e| e["kind"] == "runbook_failed")
            .context("no runbook_failed yet")
    })?;
    let msg = failed["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("TSIG"), "clear reason: {msg}");
    assert_eq!(d.dig(NAME)?, d.lab.ip("a").to_string(), "record unchanged");
    let mut everything = d.lab.log("orchestrator");
    everything.push_str(&d.cli_ok(&["events", "--json"])?);
    assert!(!everything.contains(&wrong) && !everything.contains(&d.server.secret_b64));
    Ok(())
}

/// Provider `noip` against the strict No-IP stand-in (`warden fake-noip`) on
/// the dns host. Wrong credentials: the first update earns `badauth`; the
/// provider stops itself (alert event, ALERT in `warden status`), a failover's
/// switch step fails without contacting the server, reconciliation does not
/// hammer it; `warden clear` allows exactly one more try. The block is
/// stored: fixing the credentials and restarting sends nothing (a crash
/// loop cannot hammer the provider) until `warden clear`; updates then
/// resume and the No-IP record moves to b, the site the failover promoted
/// before its switch was refused (carried forward, not back to the demoted
/// a). The password never shows up anywhere.
#[test]
fn noip_badauth_stops_updates_until_fixed() -> Result<()> {
    let Some(d) = Dep::new(Kind::Bind, TTL_S, "3s") else {
        return Ok(());
    };
    let fake = format!("{}:8245", d.lab.ip("dns"));
    let good_pw = format!("right-{}", d.lab.prefix());
    let bad_pw = format!("wrong-{}", d.lab.prefix());
    let pwfile = d.lab.write_file("noip.password", &good_pw)?;
    let cred = d
        .lab
        .write_file("noip.credentials", format!("warden:{bad_pw}"))?;
    let conf = std::fs::read_to_string(&d.config)?;
    let cut = conf.find("[groups.web.dns]").context("dns table")?;
    let table = format!(
        r#"[groups.web.dns]
provider = "noip"
name = "{NAME}"
server = "http://{fake}/nic/update"
credentials = {{ file = "{cred}" }}
user_agent = "WardenTests warden/0.1 tests@warden.invalid"
addresses = {{ a = "{a}", b = "{b}" }}
"#,
        cred = cred.display(),
        a = d.lab.ip("a"),
        b = d.lab.ip("b"),
    );
    std::fs::write(&d.config, format!("{}{table}", &conf[..cut]))?;
    d.lab.spawn(
        "dns",
        "fake-noip",
        WARDEN,
        [
            "fake-noip",
            "--listen",
            &fake,
            "--account",
            "warden",
            "--password-file",
            &pwfile.display().to_string(),
            "--host",
            NAME,
        ],
    )?;
    d.lab.wait_tcp("dns", fake.parse()?, secs(10))?;
    let stats = || -> Result<Value> {
        let out = d.lab.run_ok(
            "cli",
            "curl",
            ["-s", "-m", "3", &format!("http://{fake}/test/stats")],
        )?;
        Ok(serde_json::from_str(&out)?)
    };
    d.start_service("a")?;
    d.start_service("b")?;
    d.lab.spawn_env(
        "ctl",
        "orchestrator",
        WARDEN,
        ["orchestrator", "--config", &d.cfg()],
        [("WARDEN_LOG", "debug")],
    )?;
    for s in ["a", "b"] {
        d.lab.spawn(
            s,
            &format!("agent-{s}"),
            WARDEN,
            ["agent", "--config", &d.cfg(), "--site", s],
        )?;
    }
    // Reconciliation publishes a (nothing confirmed yet) and earns badauth.
    let alert = lab::eventually(secs(20), secs(0.25), || {
        d.events()?
            .into_iter()
            .find(|e| e["kind"] == "alert")
            .context("no alert event yet")
    })?;
    assert!(
        alert["message"]
            .as_str()
            .unwrap_or_default()
            .contains("badauth"),
        "{alert}"
    );
    let g = d.group()?;
    let alerts = g["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "{g}");
    assert!(d.cli_ok(&["status"])?.contains("ALERT"));

    // A failover now: the DNS step fails at once, without a request.
    d.wait_verdict("b", "healthy", secs(15))?;
    let before = stats()?["requests"].as_u64().unwrap_or(0);
    assert_eq!(before, 1, "one update so far: {}", stats()?);
    d.cli_ok(&["failover", "web", "--to", "b"])?;
    let failed = lab::eventually(secs(30), secs(0.25), || {
        d.events()?
            .into_iter()
            .find(|e| e["kind"] == "runbook_failed")
            .context("no runbook_failed yet")
    })?;
    let msg = failed["message"].as_str().unwrap_or_default();
    assert!(msg.contains("blocked") && msg.contains("badauth"), "{msg}");
    // Several reconcile cycles (1 s): still no new request.
    std::thread::sleep(secs(3.5));
    assert_eq!(stats()?["requests"].as_u64(), Some(1), "no hammering");

    // `warden clear`: exactly one more try (badauth again), then blocked again.
    let out = d.cli_ok(&["clear", "web"])?;
    assert!(out.contains("cleared"), "{out}");
    lab::eventually(secs(10), secs(0.25), || {
        anyhow::ensure!(stats()?["requests"].as_u64() == Some(2), "not yet");
        Ok(())
    })?;
    std::thread::sleep(secs(3));
    assert_eq!(stats()?["requests"].as_u64(), Some(2), "blocked again");
    assert!(d.events()?.iter().any(|e| e["kind"] == "alert_cleared"));

    // The fix: right credentials, and a restart. The block is stored with
    // the group, so the restarted orchestrator (or a crash loop) still
    // sends nothing: the alert stays until the operator clears it.
    std::fs::write(&cred, format!("warden:{good_pw}"))?;
    d.lab.restart("orchestrator")?;
    lab::eventually(secs(20), secs(0.25), || {
        let g = d.group()?;
        let alerts = g["alerts"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(
            alerts
                .iter()
                .any(|a| a.as_str().unwrap_or_default().contains("badauth")),
            "the stored block is not in force yet: {g}"
        );
        Ok(())
    })?;
    std::thread::sleep(secs(3.5));
    assert_eq!(
        stats()?["requests"].as_u64(),
        Some(2),
        "a restarted orchestrator does not send through a blocked provider"
    );
    // Cleared: updates resume; the record is set to the active site: b,
    // which the failover promoted before its switch was refused (a was
    // demoted: the failover is carried forward, never sent back to it).
    let out = d.cli_ok(&["clear", "web"])?;
    assert!(out.contains("badauth"), "{out}");
    lab::eventually(secs(20), secs(0.25), || {
        let s = stats()?;
        let ip = s["ips"][NAME]["v4"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(ip == d.lab.ip("b").to_string(), "record {ip:?}: {s}");
        Ok(())
    })
    .with_context(|| {
        format!(
            "events: {:#?}",
            d.events()
                .unwrap_or_default()
                .iter()
                .rev()
                .take(12)
                .map(|e| format!("{} {}", e["kind"], e["message"]))
                .collect::<Vec<_>>()
        )
    })?;
    // The failed failover left the group to the operator (phase failed),
    // on b: the provider's block is cleared, and the one alert left says
    // which runbook failed and what the operator may do.
    let g = d.group()?;
    assert_eq!(g["phase"], "failed", "{g}");
    assert_eq!(g["active"], "b", "{g}");
    let alerts: Vec<&str> = g["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(
        alerts.len() == 1 && alerts[0].starts_with("the last runbook (1, failover a → b"),
        "{alerts:?}"
    );
    // No needless update: a few reconcile cycles add no request.
    let n = stats()?["requests"].as_u64().unwrap_or(0);
    std::thread::sleep(secs(3));
    let s = stats()?;
    assert_eq!(s["requests"].as_u64(), Some(n), "no needless nochg: {s}");

    let mut everything = d.lab.log("orchestrator");
    everything.push_str(&d.cli_ok(&["events", "--json"])?);
    everything.push_str(&d.cli_ok(&["status", "--json"])?);
    assert!(!everything.contains(&bad_pw) && !everything.contains(&good_pw));
    Ok(())
}

/// Issue 15, test 5 for the `dns` scheme: the authoritative servers answer
/// b's address, but the service there answers as a (a misconfigured
/// standby): the runbook fails at verify and names who answered.
#[test]
fn dns_verify_fails_when_the_answer_is_served_as_the_primary() -> Result<()> {
    let Some(d) = Dep::new(Kind::Bind, TTL_S, "3s") else {
        return Ok(());
    };
    d.start_all()?;
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
    let failed = lab::eventually(secs(40), secs(0.25), || {
        d.events()?
            .into_iter()
            .find(|e| e["kind"] == "runbook_failed")
            .context("no runbook_failed event yet")
    })?;
    assert!(
        failed["message"].as_str().unwrap_or("").contains("verify"),
        "the runbook event names the step: {failed}"
    );
    let evs = d.events()?;
    let want = format!("entry {listen} answers as a, not b");
    assert!(
        evs.iter().any(|e| {
            let m = e["message"].as_str().unwrap_or("");
            m.starts_with("failover step verify: Failed") && m.contains(&want)
        }),
        "the verify step names the answer's address and who answered there: {evs:#?}"
    );
    // The record did move (the switch step ran): the failure is what users
    // would meet there, not the DNS update.
    assert_eq!(d.dig(NAME)?, d.lab.ip("b").to_string());
    Ok(())
}
