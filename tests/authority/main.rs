//! Authority end to end (issue 10), with the real `warden` binary on
//! network-namespace hosts: a forged outcome changes nothing, a withdrawn or
//! replayed order is never carried out, a site failed away from while cut off
//! is demoted when it is heard again, an active site that lost its state
//! file is promoted again, and an epoch pushed far ahead at the routing
//! layer is reported and adopted only by an explicit operator action.

#[path = "../lab/mod.rs"]
mod lab;

#[path = "../failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;

use anyhow::{bail, Context, Result};
use deploy::{Deployment, Knobs, API_PORT, CONTROL_PORT, HOSTS, WARDEN};
use lab::secs;
use lab::Deploy;
use serde_json::Value;

fn deployment(knobs: Knobs) -> Option<Deployment> {
    let lab = lab::Lab::new_or_skip(HOSTS)?;
    Some(Deployment::new(lab, knobs).expect("deployment config"))
}

/// `curl` from `host`: (HTTP status, body).
fn curl(
    d: &Deployment,
    host: &str,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let auth = d.lab.auth_header(token)?;
    let mut args = vec![
        "-s",
        "-m",
        "10",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
    ];
    if let Some(b) = body {
        args.extend(["-d", b]);
    }
    args.push(url);
    let out = d.lab.run_ok(host, "curl", args)?;
    let (text, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    Ok((code.parse().context("http code")?, text.to_string()))
}

fn api(d: &Deployment, path: &str) -> String {
    format!("http://{}:{API_PORT}{path}", d.lab.ip("ctl"))
}

fn agent_token(d: &Deployment, site: &str) -> String {
    format!("agent-{site}-{}", d.lab.prefix())
}

/// A well-formed report from `site`'s agent token carrying forged outcomes.
fn forge_outcomes(d: &Deployment, site: &str, seq: u64, ids: &[&str]) -> Result<Value> {
    let outcomes: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::json!({ "id": id, "ok": true, "detail": "forged: hooks ran" }))
        .collect();
    let body = serde_json::json!({
        "site": site,
        "seq": seq,
        "checks": [{ "name": "web", "ok": true, "critical": true }],
        "outcomes": outcomes,
    });
    let (code, text) = curl(
        d,
        "cli",
        "POST",
        &api(d, "/v1/reports"),
        &agent_token(d, site),
        Some(&body.to_string()),
    )?;
    if code != 200 {
        bail!("report answered {code}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

fn hooks(d: &Deployment) -> Vec<String> {
    d.hook_log().lines().map(str::to_string).collect()
}

fn runbook_of<'a>(rbs: &'a [Value], id: &Value) -> Option<&'a Value> {
    rbs.iter().find(|r| r["id"] == *id)
}

fn started_runbook(out: &str) -> Value {
    // "failover of web to b started (runbook N)"
    let n = out
        .rsplit_once("runbook ")
        .and_then(|(_, r)| r.trim().trim_end_matches(')').parse::<u64>().ok())
        .unwrap_or(0);
    Value::from(n)
}

fn wait_runbook_done(d: &Deployment, id: &Value) -> Result<Value> {
    lab::eventually(secs(60), secs(0.25), || {
        let rbs = d.runbooks()?;
        let rb = runbook_of(&rbs, id).context("runbook not listed")?;
        // A failed failback is recorded as failed before its rollback
        // runs (`rolling_back`): it has ended once the rollback has.
        if rb["status"] == "running" || rb["rolling_back"] == true {
            bail!("runbook {id} still running or rolling back");
        }
        Ok(rb.clone())
    })
}

/// Issue test 1: site b's token reports outcomes for commands of site a
/// (before and while the fence waits) → dropped and evented; with
/// `fencing = "required"` the fence step waits for a's own answer and fails
/// while a is silent; users stay on a. When a answers, it really demotes.
#[test]
fn forged_outcomes_from_another_site_change_nothing() -> Result<()> {
    let Some(d) = deployment(Knobs {
        group_extra: r#"fencing = "required""#.into(),
        // The operator's failover must stay put while the test looks: a
        // healthy primary is otherwise failed back to after hold_down.
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    // Before anything is queued: outcomes for the ids the failover will use.
    let resp = forge_outcomes(&d, "b", 1_000, &["web:2:demote", "web:2:promote"])?;
    assert!(
        resp["acked"].as_array().is_some_and(|a| a.len() == 2),
        "acked so that an honest agent would stop resending: {resp}"
    );
    // a's agent goes silent (paused), so its demote cannot be answered.
    d.lab.pause("agent-a")?;
    let out = d.cli_ok(&["failover", "web", "--to", "b"])?;
    let id = started_runbook(&out);
    // While the fence waits: forge again, now that the command is queued.
    std::thread::sleep(secs(0.5));
    forge_outcomes(&d, "b", 1_001, &["web:2:demote"])?;
    let rb = wait_runbook_done(&d, &id)?;
    assert_eq!(rb["status"], "failed", "{rb:#}");
    let fence = rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "fence"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fence["status"], "failed", "{rb:#}");
    assert_eq!(d.user_get()?, "a", "users never left a");
    assert!(
        !hooks(&d).iter().any(|l| l.starts_with("promote b")),
        "b was never promoted: {:?}",
        hooks(&d)
    );
    let dropped: Vec<Value> = d
        .events_of("fencing")?
        .into_iter()
        .filter(|e| e["message"].as_str().unwrap_or("").contains("dropped"))
        .collect();
    assert!(!dropped.is_empty(), "the forged outcomes are evented");
    assert!(dropped.iter().all(|e| e["site"] == "b"), "{dropped:#?}");
    assert!(
        dropped
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("web:2:demote")),
        "{dropped:#?}"
    );
    // a answers again; the next failover really demotes it first.
    d.lab.resume("agent-a")?;
    d.wait_verdict("a", "healthy", secs(15))?;
    let out = d.cli_ok(&["failover", "web", "--to", "b"])?;
    let rb = wait_runbook_done(&d, &started_runbook(&out))?;
    assert_eq!(rb["status"], "succeeded", "{rb:#}");
    d.wait_users_on("b", secs(10))?;
    let h = hooks(&d);
    let demote = h.iter().position(|l| l == "demote a 3");
    let promote = h.iter().position(|l| l == "promote b 3");
    assert!(
        matches!((demote, promote), (Some(x), Some(y)) if x < y),
        "a demoted, then b promoted: {h:?}"
    );
    Ok(())
}

/// Issue test 2: a failback that fails at promote (a's agent silent) leaves
/// nothing queued for a; a's agent, restarted against an orchestrator that
/// replays the old promote id, refuses it by epoch.
#[test]
fn a_failed_failback_leaves_no_order_behind_and_replays_are_refused() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        hold_down: "1s",
        demote_b: "sleep 3".into(),
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30))?;
    d.start_service("a")?;
    d.wait_event("site_recovered", secs(20))?;
    let out = d.cli_ok(&["failback", "web"])?;
    let id = started_runbook(&out);
    // b's demote hook takes 3 s: a goes silent before the promote is asked.
    std::thread::sleep(secs(1));
    d.lab.pause("agent-a")?;
    let rb = wait_runbook_done(&d, &id)?;
    assert_ne!(rb["status"], "succeeded", "{rb:#}");
    let epoch = rb["epoch"].as_u64().context("epoch")?;
    assert_eq!(epoch, 3);
    // Nothing is left queued for a: its promote was withdrawn with the runbook.
    let (code, text) = curl(
        &d,
        "cli",
        "GET",
        &api(&d, "/v1/agents/commands?wait_ms=0"),
        &agent_token(&d, "a"),
        None,
    )?;
    assert_eq!(code, 200, "{text}");
    let q: Value = serde_json::from_str(&text)?;
    assert_eq!(q["commands"], serde_json::json!([]), "{q}");
    // a returns: it does not promote itself.
    d.lab.resume("agent-a")?;
    std::thread::sleep(secs(3));
    assert!(
        !hooks(&d).iter().any(|l| l == "promote a 3"),
        "{:?}",
        hooks(&d)
    );
    d.wait_users_on("b", secs(10))?;

    // A later move raises the epoch a has seen …
    d.cli_ok(&["failback", "web"])?;
    d.wait_users_on("a", secs(40))?;
    let status = d.group()?;
    let now = status["epoch"].as_u64().context("epoch")?;
    assert!(now >= 4, "{status:#}");
    // … then a's agent is restarted against a replaying orchestrator.
    d.lab.kill("agent-a")?;
    let log = d.lab.dir().join("replay.jsonl");
    let replay_port = API_PORT + 1;
    let script = format!(
        r#"
import http.server, json, sys
CMD = {{"id": "web:3:promote", "group": "web", "epoch": 3, "kind": "promote", "site": "a"}}
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = json.dumps({{"commands": [CMD], "acked": []}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer()
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        data = self.rfile.read(n)
        with open({log:?}, "ab") as f:
            f.write(data + b"\n")
        self.answer()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(({ctl:?}, {replay_port}), H).serve_forever()
"#,
        log = log.display().to_string(),
        ctl = d.lab.ip("ctl").to_string(),
    );
    let script_path = d.lab.write_file("replay.py", script)?;
    d.lab.spawn(
        "ctl",
        "replay",
        "python3",
        [script_path.display().to_string()],
    )?;
    d.lab.wait_tcp(
        "ctl",
        format!("{}:{replay_port}", d.lab.ip("ctl")).parse()?,
        secs(10),
    )?;
    let cfg = std::fs::read_to_string(&d.config)?.replace(
        &format!("{}:{API_PORT}", d.lab.ip("ctl")),
        &format!("{}:{replay_port}", d.lab.ip("ctl")),
    );
    let replay_cfg = d.lab.write_file("replay.conf", cfg)?;
    d.lab.spawn(
        "a",
        "agent-a-replayed",
        WARDEN,
        [
            "agent",
            "--config",
            &replay_cfg.display().to_string(),
            "--site",
            "a",
        ],
    )?;
    let refused = lab::eventually(secs(20), secs(0.25), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines() {
            let r: Value = serde_json::from_str(line)?;
            if let Some(o) = r["outcomes"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["id"] == "web:3:promote"))
            {
                return Ok(o.clone());
            }
        }
        bail!("no outcome for the replayed command yet")
    })?;
    assert_eq!(refused["ok"], false, "{refused}");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("epoch 3, older than epoch"),
        "refused by epoch: {detail}"
    );
    assert!(
        !hooks(&d).iter().any(|l| l == "promote a 3"),
        "{:?}",
        hooks(&d)
    );
    Ok(())
}

/// Issue test 9: site a is cut off from everyone while its service runs →
/// failover to b; when the partition heals (failback = manual) a's agent is
/// told to demote at once, and the event says why.
#[test]
fn a_site_failed_away_from_while_cut_off_is_demoted_when_heard_again() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.lab.isolate("a")?;
    d.wait_users_on("b", secs(40))?;
    assert!(
        !hooks(&d).iter().any(|l| l.starts_with("demote a")),
        "a could not be told while cut off: {:?}",
        hooks(&d)
    );
    d.lab.unisolate("a")?;
    lab::eventually(secs(20), secs(0.25), || {
        if hooks(&d).iter().any(|l| l == "demote a 2") {
            Ok(())
        } else {
            bail!("a not demoted yet: {:?}", hooks(&d))
        }
    })?;
    let ev = d
        .events_of("fencing")?
        .into_iter()
        .find(|e| {
            e["site"] == "a"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("failed away from while it was unreachable")
        })
        .context("a fencing event names the demotion")?;
    assert!(
        ev["message"].as_str().unwrap().contains("active: b"),
        "{ev}"
    );
    assert_eq!(d.user_get()?, "b", "manual failback: users stay on b");
    assert_eq!(d.runbooks()?.len(), 1, "the demotion is not a new decision");
    Ok(())
}

/// The active site's agent loses its state file (a disk restored without
/// it) after a failover: restarted, it reports its role unknown instead of
/// the configured standby, and the orchestrator promotes it again at the
/// failover's epoch (its hooks run again, the file says active); users
/// never leave it, and no new decision is taken.
#[test]
fn an_active_site_that_lost_its_state_file_is_promoted_again() -> Result<()> {
    let Some(d) = deployment(Knobs {
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(30))?;
    let epoch = d.group()?["epoch"].as_u64().context("epoch")?;
    let promote_b = format!("promote b {epoch}");
    let promotes = |d: &Deployment| hooks(d).iter().filter(|l| **l == promote_b).count();
    lab::eventually(secs(20), secs(0.25), || {
        if promotes(&d) == 1 {
            Ok(())
        } else {
            bail!("b's promote hook: {:?}", hooks(&d))
        }
    })?;
    let state = d.lab.dir().join("state-b");
    let file = state.join("authority.json");
    let role = |file: &std::path::Path| -> Result<String> {
        let v: Value = serde_json::from_slice(&std::fs::read(file)?)?;
        Ok(v["groups"]["web"]["role"]
            .as_str()
            .unwrap_or("")
            .to_string())
    };
    assert_eq!(role(&file)?, "active");

    d.lab.kill("agent-b")?;
    std::fs::remove_file(&file)?;
    d.start_agent("b")?;
    lab::eventually(secs(30), secs(0.25), || {
        if promotes(&d) == 2 && role(&file)? == "active" {
            Ok(())
        } else {
            bail!(
                "b not promoted again: {:?}, file {:?}",
                hooks(&d),
                role(&file)
            )
        }
    })?;
    let ev = d
        .events_of("fencing")?
        .into_iter()
        .find(|e| e["site"] == "b")
        .context("a fencing event names b")?;
    let msg = ev["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("b is the active site") && msg.contains("reports its role unknown"),
        "{ev}"
    );
    assert_eq!(d.user_get()?, "b");
    assert_eq!(d.runbooks()?.len(), 1, "the promote is not a new decision");
    assert_eq!(d.group()?["epoch"].as_u64(), Some(epoch));
    Ok(())
}

/// Issue test 10: the frontend is pushed to a huge epoch → the orchestrator
/// reports it (alert, no move possible), the operator adopts it, and a
/// failover works without restarting the frontend. An epoch no
/// orchestrator decides (near `u64::MAX`) the frontend refuses outright.
#[test]
fn an_epoch_pushed_far_ahead_is_reported_then_adopted() -> Result<()> {
    let Some(d) = deployment(Knobs {
        // After the failover below the group stays on b: an automatic
        // failback (a healthy primary, hold_down) racing the test's second
        // part would meet the forged route as a refused switch first.
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    let route = format!("http://{}:{CONTROL_PORT}/v1/routes/web", d.lab.ip("fe"));
    let huge: u64 = 1_000_000_000_000_000_000;
    let (code, text) = curl(
        &d,
        "cli",
        "PUT",
        &route,
        &d.frontend_token,
        Some(&format!(r#"{{"site":"a","epoch":{huge}}}"#)),
    )?;
    assert!((200..300).contains(&code), "{code} {text}");
    let alert = lab::eventually(secs(15), secs(0.25), || {
        let g = d.group()?;
        g["alerts"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|x| x.as_str().unwrap_or("").contains(&huge.to_string()))
            })
            .cloned()
            .context("no alert about the epoch yet")
    })?;
    assert!(
        alert.as_str().unwrap().contains("warden adopt-epoch web"),
        "{alert}"
    );
    // Nothing jumps by itself and no move can start.
    assert_eq!(d.group()?["epoch"], 1);
    let out = d.operator().cli(&["failover", "web", "--to", "b"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("adopt"), "{err}");
    // Adopt, then fail over.
    let out = d.cli_ok(&["adopt-epoch", "web"])?;
    assert!(out.contains(&huge.to_string()), "{out}");
    assert_eq!(d.group()?["epoch"], huge);
    // (events reach the log through the store's writer: a moment later)
    let ev = lab::eventually(secs(5), secs(0.1), || {
        d.events_of("adopted")?
            .into_iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("operator adopted")
            })
            .context("an adopted event names the operator's action")
    })?;
    assert!(
        ev["message"].as_str().unwrap().contains(&huge.to_string()),
        "{ev}"
    );
    d.cli_ok(&["failover", "web", "--to", "b"])?;
    d.wait_users_on("b", secs(30))?;
    let (site, epoch, _) = d.frontend_route()?;
    assert_eq!((site.as_str(), epoch), (Some("b"), huge + 1));
    // An epoch no orchestrator decides (within 2^32 of the largest) is
    // refused by the frontend itself and kept nowhere: no alert, the route
    // and the group as they were (a new store or `adopt-epoch` would not
    // take one either: orchestrator state_tests).
    let (code, text) = curl(
        &d,
        "cli",
        "PUT",
        &route,
        &d.frontend_token,
        Some(&format!(r#"{{"site":"a","epoch":{}}}"#, u64::MAX)),
    )?;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("no orchestrator decides"), "{text}");
    let (site, epoch, _) = d.frontend_route()?;
    assert_eq!((site.as_str(), epoch), (Some("b"), huge + 1));
    assert_eq!(d.user_get()?, "b");
    assert_eq!(d.group()?["epoch"], huge + 1);
    Ok(())
}
