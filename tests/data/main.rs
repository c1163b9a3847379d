//! Data across a disaster (issue 5), with the real `warden` binary and real
//! rsync daemons on network-namespace hosts: sites `a` and `b` each run an
//! echo service, an rsync daemon exporting the site's data directory, and an
//! agent whose `rsync` plan mirrors the active site's directory into the
//! other site's module. Users go through the built-in frontend on `fe`.

#[path = "../lab/mod.rs"]
mod lab;

#[path = "../failover/deploy.rs"]
#[allow(dead_code)]
mod deploy;
mod fidelity;
mod orphans;
mod preempt;
mod site;
#[path = "../support/sshd.rs"]
mod sshd;
mod swift_plan;
mod three;
#[path = "../../agents/tests/support/tree.rs"]
mod tree;
mod volume;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use lab::secs;
use lab::Deploy;
use serde_json::Value;
use site::{text, tree, Data};

fn runbook_of<'a>(rbs: &'a [Value], kind: &str) -> Option<&'a Value> {
    rbs.iter().rev().find(|r| r["kind"] == kind)
}

/// The last failback runbook, once it has succeeded (within 30 s).
fn failback_succeeded(x: &Data) -> Result<Value> {
    succeeded(x, "failback", secs(30))
}

/// The last runbook of `kind`, once it has succeeded (within `limit`).
fn succeeded(x: &Data, kind: &str, limit: std::time::Duration) -> Result<Value> {
    lab::eventually(limit, secs(0.3), || {
        let rbs = x.d.runbooks()?;
        let rb = runbook_of(&rbs, kind)
            .cloned()
            .with_context(|| format!("no {kind} runbook"))?;
        if rb["status"] == "succeeded" {
            Ok(rb)
        } else {
            bail!("{kind} {}", rb["status"])
        }
    })
}

/// Waits (60 s at most) until the last failback's resync step runs.
fn failback_resyncing(x: &Data) -> Result<()> {
    lab::eventually(secs(60), secs(0.05), || {
        let rbs = x.d.runbooks()?;
        match runbook_of(&rbs, "failback") {
            Some(fb) if step(fb, "resync")["status"] == "running" => Ok(()),
            _ => bail!("the failback's resync is not running yet"),
        }
    })
}

fn step<'a>(rb: &'a Value, name: &str) -> &'a Value {
    rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Issue tests 1 and 2: continuous replication a → b; a disaster with writes
/// and deletes at b and divergent writes left on a; failback resyncs b → a
/// (quarantining the divergent items), verifies, switches, and replication
/// runs a → b again. Nothing written during the disaster is lost.
#[test]
fn disaster_writes_come_back_and_divergent_writes_are_quarantined() -> Result<()> {
    let Some(x) = Data::new("quarantine", "pw-b-right") else {
        return Ok(());
    };
    x.write("a", "before.txt", "written before warden started")?;
    x.write("a", "docs/shared.txt", "v1 from a")?;
    x.start()?;

    // 1. continuous replication: create, overwrite, rename, delete
    x.wait_same(secs(20)).context("initial full pass a → b")?;
    x.write("a", "new.txt", "new at a")?;
    x.write("a", "docs/shared.txt", "v2 from a")?;
    x.write("a", "gone.txt", "deleted later, during the disaster")?;
    x.write("a", "changed-on-a.txt", "replicated version")?;
    x.write("a", "old-name.txt", "renamed")?;
    std::fs::rename(
        x.dir("a").join("old-name.txt"),
        x.dir("a").join("new-name.txt"),
    )?;
    x.write("a", "tmp.txt", "short-lived")?;
    std::fs::remove_file(x.dir("a").join("tmp.txt"))?;
    let synced = x.wait_same(secs(20)).context("changes at a reach b")?;
    assert!(!synced.contains_key("old-name.txt") && !synced.contains_key("tmp.txt"));
    assert_eq!(
        text(&synced, "docs/shared.txt").as_deref(),
        Some("v2 from a")
    );
    let r = x.replication()?;
    assert_eq!(r["state"], "replicating", "{r}");
    assert_eq!(
        (r["source"].as_str(), r["target"].as_str()),
        (Some("a"), Some("b"))
    );
    assert!(r["rpo_ms"].as_u64().is_some_and(|v| v < 5_000), "{r}");
    let status = x.d.cli_ok(&["status"])?;
    assert!(
        status.contains("replication rsync: replicating a → b"),
        "{status}"
    );

    // The manifest is flushed at most once a second.
    std::thread::sleep(secs(1.5));
    // 2. a's agent dies first: writes at a from now on never reach b.
    x.d.lab.kill("agent-a")?;
    x.write(
        "a",
        "never-replicated.txt",
        "written at a after its agent died",
    )?;
    x.write("a", "changed-on-a.txt", "changed at a, never replicated")?;
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    // writes and deletes at b during the disaster
    x.write("b", "during.txt", "written at b during the disaster")?;
    x.write("b", "docs/shared.txt", "v3 from b during the disaster")?;
    std::fs::remove_file(x.dir("b").join("gone.txt"))?;
    assert_eq!(x.replication()?["state"], "paused");

    // a returns → failback: resync, demote b, final pass + verify, switch
    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(90)).context("failback to a")?;
    let rbs = x.d.runbooks()?;
    let fb = runbook_of(&rbs, "failback").context("no failback runbook")?;
    let fb = failback_succeeded(&x).with_context(|| format!("{fb:#}"))?;
    for s in [
        "resync",
        "demote",
        "final_sync",
        "promote",
        "switch",
        "verify",
        "start_replication",
    ] {
        assert_eq!(step(&fb, s)["status"], "done", "{s}: {fb:#}");
    }
    let fin = step(&fb, "final_sync")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(fin.contains("verified a holds what b holds"), "{fin}");

    let a = tree(&x.dir("a"))?;
    // every write made during the disaster is at a; deleted items are gone
    assert_eq!(
        text(&a, "during.txt").as_deref(),
        Some("written at b during the disaster")
    );
    assert_eq!(
        text(&a, "docs/shared.txt").as_deref(),
        Some("v3 from b during the disaster")
    );
    assert!(
        !a.contains_key("gone.txt"),
        "deleted at b during the disaster"
    );
    for k in ["before.txt", "new.txt", "new-name.txt"] {
        assert!(a.contains_key(k), "{k} lost");
    }
    // divergent writes: moved aside, listed in status and in an event
    assert!(!a.contains_key("never-replicated.txt"));
    assert_eq!(
        text(&a, "changed-on-a.txt").as_deref(),
        Some("replicated version")
    );
    let mut qdir = x.dir("a").into_os_string();
    qdir.push(".warden-quarantine");
    let q = tree(Path::new(&qdir))?;
    let quarantined: Vec<&String> = q.keys().collect();
    assert!(
        q.iter().any(|(k, v)| k.ends_with("never-replicated.txt")
            && v == b"written at a after its agent died"),
        "{quarantined:?}"
    );
    assert!(
        q.iter().any(|(k, v)| k.ends_with("changed-on-a.txt") && v == b"changed at a, never replicated"),
        "{quarantined:?}"
    );
    let r = x.replication()?;
    let names: Vec<&str> = r["divergent"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["name"].as_str().unwrap_or(""))
        .collect();
    assert!(
        names.contains(&"never-replicated.txt") && names.contains(&"changed-on-a.txt"),
        "{r}"
    );
    assert!(
        r["divergent"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["action"] == "quarantined"),
        "{r}"
    );
    let ev = x.d.wait_event("divergent", secs(5))?;
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("never-replicated.txt"),
        "{ev}"
    );
    let status = x.d.cli_ok(&["status"])?;
    assert!(
        status.contains("never-replicated.txt") && status.contains("quarantined"),
        "{status}"
    );

    // replication runs a → b again
    x.write("a", "after.txt", "after failback")?;
    let both = x
        .wait_same(secs(30))
        .context("forward replication after failback")?;
    assert!(both.contains_key("after.txt") && both.contains_key("during.txt"));
    let r = x.replication()?;
    assert_eq!(
        (r["state"].as_str(), r["source"].as_str()),
        (Some("replicating"), Some("a")),
        "{r}"
    );
    // the rsync password never shows
    let all = format!(
        "{status}{}{}",
        serde_json::to_string(&x.d.events()?)?,
        x.logs()
    );
    assert!(!all.contains("pw-b-right") && !all.contains("pw-a-right"));
    Ok(())
}

/// Issue test 3: the returning site dies again during the resync → the
/// failback aborts before anything moves, users stay on b with all data;
/// when a returns again, the resync resumes and the failback completes.
/// a dies in the middle of the resync's pull (b's daemon sends at 2 MiB/s
/// meanwhile), and b's users then delete files that had already reached
/// a: the next failback deletes them at a too — never kept as a's writes
/// and pushed back to b (before: the killed pull's files were unconfirmed,
/// kept under `keep`, and the cut-over restored them at b).
#[test]
fn returning_site_dies_during_resync_and_the_failback_resumes_later() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    x.write("a", "seed.txt", "seed")?;
    x.start()?;
    x.wait_same(secs(20))?;
    std::thread::sleep(secs(1.5));
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    // Enough written at b that the resync takes a while.
    let blob = "x".repeat(256 * 1024);
    for i in 0..1200 {
        x.write("b", &format!("bulk/{:04}.dat", i), &blob)?;
    }
    // b's daemon slowed, so that a dies in the middle of the pull.
    x.d.lab.kill("rsyncd-b")?;
    x.start_rsyncd_with("b", &["--bwlimit=2048"])?;
    x.restart_site("a")?;
    // Wait until the failback's resync runs and has fetched some files
    // whole, then a dies again.
    failback_resyncing(&x)?;
    let whole = |t: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
        t.iter()
            .filter(|(k, v)| k.starts_with("bulk/") && v.len() == blob.len())
            .map(|(k, _)| k.clone())
            .collect()
    };
    lab::eventually(secs(60), secs(0.05), || {
        let n = whole(&tree(&x.dir("a"))?).len();
        anyhow::ensure!(n >= 20, "{n} files fetched whole at a");
        Ok(())
    })?;
    let arrived = whole(&tree(&x.dir("a"))?);
    x.kill_site("a")?;
    let ev = x.d.wait_event("failback_aborted", secs(60))?;
    assert!(
        ev["message"].as_str().unwrap().contains("users stay on b"),
        "{ev}"
    );
    let g = x.d.group()?;
    assert_eq!(
        (g["active"].as_str(), g["phase"].as_str()),
        (Some("b"), Some("steady")),
        "{g:#}"
    );
    let fb = runbook_of(&x.d.runbooks()?, "failback").cloned().unwrap();
    assert_eq!(step(&fb, "resync")["status"], "failed", "{fb:#}");
    for s in ["demote", "switch"] {
        assert_eq!(step(&fb, s)["status"], "pending", "{s}: {fb:#}");
    }
    assert_eq!(x.d.user_get()?, "b");
    assert_eq!(tree(&x.dir("b"))?.len(), 1201, "nothing lost at b");

    assert!(
        arrived.len() < 1200,
        "a died in the middle of the pull: {} of 1200 had arrived",
        arrived.len()
    );
    // b's users delete files that had reached a before it died.
    x.d.lab.kill("rsyncd-b")?;
    x.start_rsyncd("b")?;
    let deleted = &arrived[..10];
    for n in deleted {
        std::fs::remove_file(x.dir("b").join(n))?;
    }

    // a returns for good: the resync resumes (a new failback) and completes.
    x.write("b", "late.txt", "written at b while a was down again")?;
    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(120))
        .context("second failback")?;
    let a = lab::eventually(secs(30), secs(0.3), || {
        let a = tree(&x.dir("a"))?;
        if a.len() >= 1192 {
            Ok(a)
        } else {
            bail!("{} files at a", a.len())
        }
    })?;
    assert!(
        a.contains_key("late.txt") && a.contains_key("bulk/1199.dat") && a.contains_key("seed.txt")
    );
    x.wait_same(secs(30))?;
    let (a, b) = (tree(&x.dir("a"))?, tree(&x.dir("b"))?);
    for n in deleted {
        assert!(
            !a.contains_key(n) && !b.contains_key(n),
            "{n}, deleted at b after it reached a, is back (at a: {}, at b: {})",
            a.contains_key(n),
            b.contains_key(n)
        );
    }
    assert_eq!((a.len(), b.len()), (1192, 1192));
    Ok(())
}

/// Issue test 6 (system level): a wrong rsync password → a clear error in
/// `warden status` without the secret; a failback whose resync cannot run
/// aborts before the switch and users stay on the standby.
#[test]
fn wrong_rsync_password_is_reported_and_the_failback_stops_before_the_switch() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-WRONG") else {
        return Ok(());
    };
    x.write("a", "seed.txt", "seed")?;
    x.start()?;
    let r = lab::eventually(secs(20), secs(0.25), || {
        let r = x.replication()?;
        if r["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            Ok(r)
        } else {
            bail!("no replication error yet: {r}")
        }
    })?;
    let err = r["errors"][0].as_str().unwrap().to_string();
    assert!(
        err.starts_with("a: ") && err.contains("auth failed"),
        "{err}"
    );
    let status = x.d.cli_ok(&["status"])?;
    assert!(status.contains("REPLICATION ERROR: a: "), "{status}");
    assert!(!status.contains("pw-b-WRONG"), "{status}");
    assert!(tree(&x.dir("b"))?.is_empty(), "nothing may reach b");

    // failover to b (the service at a dies), then a returns: the failback's
    // resync at a cannot log in to b's module → aborted, users stay on b.
    x.d.lab.kill("svc-a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.d.start_service("a")?;
    let ev = x.d.wait_event("failback_aborted", secs(60))?;
    assert!(
        ev["message"].as_str().unwrap().contains("users stay on b"),
        "{ev}"
    );
    let fb = runbook_of(&x.d.runbooks()?, "failback").cloned().unwrap();
    let detail = step(&fb, "resync")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("auth failed"), "{detail}");
    assert_eq!(step(&fb, "switch")["status"], "pending");
    assert_eq!(x.d.user_get()?, "b");
    let all = format!("{}{}", serde_json::to_string(&x.d.events()?)?, x.logs());
    assert!(!all.contains("pw-b-WRONG") && !all.contains("pw-b-right"));
    Ok(())
}

/// Planned switchover (`warden switchover web --to b`): every write made at
/// a up to its demote is at b when users arrive there (the final pass and the
/// checksum verification run between demote and promote), then replication
/// runs b → a; and back again.
#[test]
fn switchover_carries_every_write_and_reverses_replication() -> Result<()> {
    let Some(x) = Data::with_failback("keep", "pw-b-right", "manual") else {
        return Ok(());
    };
    x.write("a", "one.txt", "1")?;
    x.start()?;
    x.wait_same(secs(20))?;
    // Written right before the switchover: only the resync / final pass can carry them.
    for i in 0..300 {
        x.write("a", &format!("late/{i:03}.txt"), &format!("late write {i}"))?;
    }
    let out = x.d.cli_ok(&["switchover", "web", "--to", "b"])?;
    assert!(out.contains("switchover of web to b started"), "{out}");
    x.d.wait_users_on("b", secs(60))?;
    let rb = succeeded(&x, "switchover", secs(30))?;
    let fin = step(&rb, "final_sync")["detail"].as_str().unwrap_or("");
    assert!(fin.contains("verified b holds what a holds"), "{rb:#}");
    // The cut-over covered what a's change journal named, not the whole tree.
    assert!(fin.contains("names journaled at a"), "{rb:#}");
    // b was a's replica: its stale copies are replaced, never called divergent.
    assert_eq!(rb["replica"], true, "{rb:#}");
    let r = x.replication()?;
    assert_eq!(
        r["divergent"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "false divergent items: {r}"
    );
    let mut q = x.dir("b").into_os_string();
    q.push(".warden-quarantine");
    assert!(!Path::new(&q).exists(), "nothing quarantined at b");
    let b = tree(&x.dir("b"))?;
    assert_eq!(b.len(), 301, "every write at a is at b");
    assert_eq!(text(&b, "late/299.txt").as_deref(), Some("late write 299"));
    // replication now runs b → a
    x.write("b", "at-b.txt", "written at b after the switchover")?;
    x.wait_same(secs(30))?;
    let r = x.replication()?;
    assert_eq!(
        (r["source"].as_str(), r["target"].as_str()),
        (Some("b"), Some("a")),
        "{r}"
    );
    // and back to a
    x.d.cli_ok(&["switchover", "web", "--to", "a"])?;
    x.d.wait_users_on("a", secs(60))?;
    let a = lab::eventually(secs(30), secs(0.3), || {
        let a = tree(&x.dir("a"))?;
        if a.contains_key("at-b.txt") {
            Ok(a)
        } else {
            bail!("at-b.txt not at a yet")
        }
    })?;
    assert_eq!(a.len(), 302);
    lab::eventually(secs(30), secs(0.3), || {
        let rbs = x.d.runbooks()?;
        match runbook_of(&rbs, "switchover") {
            Some(rb) if rb["to"] == "a" && rb["status"] == "succeeded" => Ok(()),
            other => bail!("second switchover not done: {other:?}"),
        }
    })?;
    // refused: a switchover to the active site, or to a stranger
    let again = x.d.operator().cli(&["switchover", "web", "--to", "a"])?;
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already runs on a"), "{err}");
    let bad = x.d.operator().cli(&["switchover", "web", "--to", "zz"])?;
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not a site of group web"), "{err}");
    Ok(())
}

/// `GET` an operator API path from the ctl host: the parsed JSON.
fn api_get(x: &Data, path: &str) -> Result<Value> {
    let url = format!("http://{}:{}{path}", x.d.lab.ip("ctl"), deploy::API_PORT);
    let auth = x.d.lab.auth_header(&x.d.operator_token)?;
    let out =
        x.d.lab
            .run_ok("ctl", "curl", ["-s", "-m", "10", "-H", &auth, &url])?;
    serde_json::from_str(&out).with_context(|| format!("GET {path}: {out}"))
}

/// Issue 10, test 3: fail over a → b, write at b, lose the orchestrator's
/// store and restart it, bring a back → the new store adopts what the
/// routing layer shows (b at epoch 2), replication stays paused, a (which
/// still believes it is active) is demoted and never pushes; every file
/// written at b survives, and reaches a through the failback's resync.
#[test]
fn a_lost_orchestrator_store_adopts_the_routing_layer_and_keeps_every_write() -> Result<()> {
    let Some(x) = Data::with_failback("keep", "pw-b-right", "manual") else {
        return Ok(());
    };
    x.write("a", "before.txt", "written before warden started")?;
    x.start()?;
    x.wait_same(secs(20)).context("initial full pass a → b")?;
    std::thread::sleep(secs(1.5));
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    for i in 0..50 {
        x.write("b", &format!("at-b/{i}.txt"), &format!("written at b {i}"))?;
    }
    // The orchestrator's data dir is lost.
    x.d.lab.kill("orchestrator")?;
    std::fs::remove_dir_all(x.d.lab.dir().join("data"))?;
    x.d.lab.restart("orchestrator")?;
    let ev = x.d.wait_event("adopted", secs(20))?;
    let msg = ev["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("active b at epoch 2") && msg.contains("replication paused"),
        "{msg}"
    );
    let g = x.d.group()?;
    assert_eq!(
        (g["active"].as_str(), g["epoch"].as_u64()),
        (Some("b"), Some(2))
    );
    assert_eq!(x.replication()?["state"], "paused", "{g:#}");

    // a returns believing it is active at epoch 1: it is demoted, never pushes.
    x.restart_site("a")?;
    lab::eventually(secs(20), secs(0.25), || {
        if x.d.hook_log().lines().any(|l| l == "demote a 2") {
            Ok(())
        } else {
            bail!("a not demoted yet: {}", x.d.hook_log())
        }
    })?;
    std::thread::sleep(secs(3));
    let b = tree(&x.dir("b"))?;
    for i in 0..50 {
        assert_eq!(
            text(&b, &format!("at-b/{i}.txt")).as_deref(),
            Some(format!("written at b {i}").as_str()),
            "a write at b was undone"
        );
    }
    assert_eq!(x.replication()?["state"], "paused");
    assert_eq!(x.d.user_get()?, "b");

    // The failback resyncs a from b; then replication runs a → b again.
    lab::eventually(secs(30), secs(1), || {
        x.d.cli_ok(&["failback", "web"]).map(|_| ())
    })?;
    x.d.wait_users_on("a", secs(90)).context("failback to a")?;
    let a = lab::eventually(secs(30), secs(0.3), || {
        let a = tree(&x.dir("a"))?;
        if (0..50).all(|i| a.contains_key(&format!("at-b/{i}.txt"))) {
            Ok(a)
        } else {
            bail!("b's writes not at a yet")
        }
    })?;
    assert!(a.contains_key("before.txt"));
    x.write("a", "after.txt", "after the failback")?;
    x.wait_same(secs(30))?;
    Ok(())
}

/// Issue 10, test 6: 2,000 divergent items quarantined at the returning
/// site → reports keep flowing (no body over the limit), the failback
/// completes, and the full list is there through the API, paged.
#[test]
fn two_thousand_quarantined_items_do_not_stop_reports() -> Result<()> {
    let Some(x) = Data::new("quarantine", "pw-b-right") else {
        return Ok(());
    };
    x.write("a", "before.txt", "written before warden started")?;
    x.start()?;
    x.wait_same(secs(20))?;
    std::thread::sleep(secs(1.5));
    x.d.lab.kill("agent-a")?;
    for i in 0..2000 {
        x.write(
            "a",
            &format!("divergent/with-a-rather-long-name-to-fill-the-report-{i:05}.txt"),
            "never replicated",
        )?;
    }
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(120)).context("failback to a")?;
    lab::eventually(secs(30), secs(0.3), || {
        let rbs = x.d.runbooks()?;
        match runbook_of(&rbs, "failback") {
            Some(rb) if rb["status"] == "succeeded" => Ok(()),
            other => bail!("failback not done: {other:?}"),
        }
    })?;
    let page = lab::eventually(secs(30), secs(0.5), || {
        let v = api_get(&x, "/v1/groups/web/divergent?offset=0&limit=5000")?;
        if v["total"] == 2000 {
            Ok(v)
        } else {
            bail!("divergent total {}", v["total"])
        }
    })?;
    let names: std::collections::BTreeSet<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2000);
    assert!(names.contains("divergent/with-a-rather-long-name-to-fill-the-report-01999.txt"));
    let second = api_get(&x, "/v1/groups/web/divergent?offset=1990&limit=100")?;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(10));
    let r = x.replication()?;
    assert_eq!(r["divergent_total"], 2000, "{r}");
    assert!(r["divergent"].as_array().is_some_and(|d| d.len() <= 100));
    let log = x.d.lab.log("agent-a");
    assert!(!log.contains("status 413"), "a report was refused: {log}");
    // Reports still arrive: a's agent is fresh.
    x.d.wait_verdict("a", "healthy", secs(10))?;
    Ok(())
}

/// Issue 10, test 4: the source directory is emptied while replicating →
/// nothing is deleted at the peer, the mass-delete guard shows as an alert;
/// once the files are back, `warden clear` resumes replication.
/// The receiving side of the rsync plan refuses what only a deposed or
/// forged pusher would send: a push into the active site. Site b's host
/// pushes an almost empty directory into a's module with `--delete`, with
/// the right password, as a site failed away from whose replication still
/// ran would (or anyone holding a copy of the password): a's rsync daemon
/// runs `warden rsync-gate`, which refuses it and says why; nothing at a
/// changes. The same push dressed as a read (`--sender` passed as the value
/// of `--suffix`) is refused too, and so is a read that would remove what
/// it sends (`--remove-source-files`). The legitimate flows pass the same gate: the continuous
/// replication into the standby b (which states its order: group, site,
/// epoch), and reads of a's module. A push into b stating an older epoch
/// than b knows, or none, is refused.
#[test]
fn a_push_into_the_active_site_is_refused_by_its_gate() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    for i in 0..20 {
        x.write("a", &format!("files/{i}.txt"), &format!("file {i}"))?;
    }
    x.start()?;
    let before = x.wait_same(secs(30)).context("initial full pass a → b")?;
    let lab = &x.d.lab;
    let forged = lab.dir().join("forged");
    std::fs::create_dir_all(&forged)?;
    std::fs::write(forged.join("forged.txt"), "from a deposed site")?;
    let pw = lab.write_file("forged.pw", "pw-a-right")?;
    let target = format!("rsync://warden@{}:873/data/", lab.ip("a"));
    let push = |extra: &[&str]| {
        let mut args = vec![
            "-a".to_string(),
            "--delete".into(),
            format!("--password-file={}", pw.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(format!("{}/", forged.display()));
        args.push(target.clone());
        lab.run("b", "rsync", args)
    };
    // A plain push, then one that slips the word `--sender` in as the value
    // of another option (`--suffix`), so that the daemon's arguments name
    // it while the daemon still receives, `--delete` and all.
    for extra in [&[][..], &["-M--suffix", "-M--sender"][..]] {
        let out = push(extra)?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{extra:?}: the push must fail: {said}"
        );
        assert!(
            said.contains("site a is the active site of group web")
                && said.contains(&format!("from {}", lab.ip("b"))),
            "{extra:?}: the pusher is told why: {said}"
        );
        assert_eq!(
            tree(&x.dir("a"))?,
            before,
            "{extra:?}: nothing at the active site changed"
        );
    }
    // A read of a's module (a listing, as at a failback's pull) passes.
    let listing = lab.run_ok(
        "b",
        "rsync",
        [
            "--list-only".to_string(),
            format!("--password-file={}", pw.display()),
            format!("{target}files/"),
        ],
    )?;
    assert!(listing.contains("19.txt"), "{listing}");
    // A read that removes what it sends (`--remove-source-files`, or its
    // old name): the daemon would delete every file it sent from the
    // active site. Refused, and nothing at a changes.
    let taken = lab.dir().join("taken");
    for remove in ["--remove-source-files", "--remove-sent-files"] {
        let out = lab.run(
            "b",
            "rsync",
            [
                "-a".to_string(),
                remove.to_string(),
                format!("--password-file={}", pw.display()),
                format!("{target}files/"),
                format!("{}/", taken.display()),
            ],
        )?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            tree(&x.dir("a"))?,
            before,
            "{remove}: a read that removes what it sends deleted files at the active site \
             (rsync said: {said})"
        );
        assert!(
            !out.status.success() && said.contains("removes what it sends"),
            "{remove}: the reader is told why: {said}"
        );
    }
    // The continuous replication into the standby passes b's gate.
    x.write("a", "after.txt", "still replicated")?;
    let both = x.wait_same(secs(30))?;
    assert_eq!(
        text(&both, "after.txt").as_deref(),
        Some("still replicated")
    );
    assert!(!both.contains_key("forged.txt"));
    // That replication states its order to b's `early exec` (group, site
    // a, the epoch a knows). A push into the standby b stating an epoch
    // older than b knows — a site failed away from by a failover it never
    // heard of, in a group of more sites — is refused, saying so; so is
    // one that states no order. Nothing at b changes.
    let epoch = x.d.group()?["epoch"]
        .as_u64()
        .context("the group's epoch")?;
    let pw_b = lab.write_file("forged-b.pw", "pw-b-right")?;
    let stale = lab.write_file(
        "stale.order",
        format!("warden-push group=web site=a epoch={}\n", epoch - 1),
    )?;
    let into_b = format!("rsync://warden@{}:873/data/", lab.ip("b"));
    for (early, says) in [
        (
            Some(&stale),
            format!(
                "a push of group web from site a at epoch {}, but site b knows epoch {epoch}",
                epoch - 1
            ),
        ),
        (None, "it states no order".to_string()),
    ] {
        let mut args = vec![
            "-a".to_string(),
            "--delete".into(),
            format!("--password-file={}", pw_b.display()),
        ];
        args.extend(early.map(|f| format!("--early-input={}", f.display())));
        args.push(format!("{}/", forged.display()));
        args.push(into_b.clone());
        let out = lab.run("a", "rsync", args)?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success() && said.contains(&says),
            "a push into b stating {early:?}: refused, saying {says:?}: {said}"
        );
        assert_eq!(tree(&x.dir("b"))?, both, "nothing at the standby changed");
    }
    Ok(())
}

/// rsync over ssh (docs/rsyncd.md, "Over ssh"): each site runs a real
/// sshd whose one key for the peers is forced to `warden rsync-gate --ssh`.
/// Replication a → b, the failover, and the failback's resync and final
/// pass all go through it; and from the peer's host, with that very key,
/// the gate refuses a push into the active site (nothing there changes),
/// a path outside the group's directory, another program and an option
/// warden never sends, each with its reason.
#[test]
fn rsync_over_ssh_fails_over_and_back_behind_the_gate() -> Result<()> {
    let Some(x) = Data::over_ssh("keep") else {
        return Ok(());
    };
    x.write("a", "before.txt", "written before warden started")?;
    std::os::unix::fs::symlink("/etc/../outside", x.dir("a").join("link"))?;
    x.start()?;
    x.wait_same(secs(30))
        .context("initial full pass a → b over ssh")?;
    x.write("a", "docs/one.txt", "one")?;
    x.write("a", "docs/two.txt", "two")?;
    let synced = x.wait_same(secs(30)).context("changes at a reach b")?;
    assert_eq!(text(&synced, "docs/two.txt").as_deref(), Some("two"));
    assert_eq!(
        std::fs::read_link(x.dir("b").join("link"))?,
        Path::new("/etc/../outside"),
        "a symlink arrives byte for byte"
    );
    let r = x.replication()?;
    assert_eq!(r["state"], "replicating", "{r}");

    // The peers' key, used by hand from the other site's host.
    let lab = &x.d.lab;
    let rsh = format!(
        "ssh -F /dev/null -p {port} -i {key} -o IdentitiesOnly=yes -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}",
        port = site::ssh::SSH_PORT,
        key = lab.dir().join("ssh-client").display(),
        known = lab.dir().join("known_hosts").display(),
    );
    let forged = lab.dir().join("forged");
    std::fs::create_dir_all(&forged)?;
    std::fs::write(forged.join("forged.txt"), "from a deposed site")?;
    let said = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let push = |from: &str, to: &str, dest: &Path, extra: &[&str]| {
        let mut args: Vec<String> = vec!["-a".into(), "--delete".into(), "-e".into(), rsh.clone()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(format!("{}/", forged.display()));
        args.push(format!("root@{}:{}/", lab.ip(to), dest.display()));
        lab.run(from, "rsync", args)
    };
    let before = tree(&x.dir("a"))?;
    // 1. A push into the active site a, `--delete` and all.
    let out = push("b", "a", &x.dir("a"), &[])?;
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("warden rsync-gate: refused a push")
            && said(&out).contains("site a is the active site of group web"),
        "the pusher is told why: {}",
        said(&out)
    );
    assert_eq!(
        tree(&x.dir("a"))?,
        before,
        "nothing at the active site changed"
    );
    // 2. Into the standby b, but outside the group's directory.
    let elsewhere = lab.dir().join("elsewhere");
    let out = push("a", "b", &elsewhere, &[])?;
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("no group's rsync plan reaches site b over ssh"),
        "{}",
        said(&out)
    );
    assert!(!elsewhere.exists(), "nothing was written outside");
    // 2b. Through a symlink the pushers themselves left in b's directory
    // (replicated as it is), pointing out of it.
    let outside = lab.dir().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::os::unix::fs::symlink(&outside, x.dir("a").join("esc"))?;
    x.wait_same(secs(30)).context("the symlink reaches b")?;
    let out = push("a", "b", &x.dir("b").join("esc"), &[])?;
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("outside the group's directory"),
        "{}",
        said(&out)
    );
    assert_eq!(
        std::fs::read_dir(&outside)?.count(),
        0,
        "nothing written through it"
    );
    // 3. An option warden never sends, into the right directory.
    let out = push("a", "b", &x.dir("b"), &["-b", "--backup-dir=/tmp"])?;
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("option \"--backup-dir\""),
        "{}",
        said(&out)
    );
    // 4. Another program.
    let mut ssh: Vec<String> = rsh.split_whitespace().map(String::from).collect();
    ssh.push(format!("root@{}", lab.ip("b")));
    ssh.push("id".into());
    let out = lab.run("a", &ssh[0], &ssh[1..])?;
    assert!(!out.status.success(), "{}", said(&out));
    assert!(
        said(&out).contains("this key runs only rsync"),
        "{}",
        said(&out)
    );
    assert!(!said(&out).contains("uid="), "{}", said(&out));
    assert!(!tree(&x.dir("b"))?.contains_key("forged.txt"));

    // The whole site a dies; users and writes move to b.
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.write("b", "during.txt", "written at b during the disaster")?;
    std::fs::remove_file(x.dir("b").join("docs/one.txt"))?;
    // a returns → failback: a resync and a final pass pulled over ssh
    // (reads of the active b pass its gate), then a → b again.
    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(90)).context("failback to a")?;
    let fb = failback_succeeded(&x)?;
    for s in ["resync", "final_sync", "start_replication"] {
        assert_eq!(step(&fb, s)["status"], "done", "{s}: {fb:#}");
    }
    let a = tree(&x.dir("a"))?;
    assert_eq!(
        text(&a, "during.txt").as_deref(),
        Some("written at b during the disaster")
    );
    assert!(
        !a.contains_key("docs/one.txt"),
        "the delete at b is carried"
    );
    x.write("a", "after.txt", "replicated a → b again")?;
    let both = x
        .wait_same(secs(30))
        .context("a → b again after the failback")?;
    assert_eq!(
        text(&both, "after.txt").as_deref(),
        Some("replicated a → b again")
    );

    // An impostor now answers at b's address: b's sshd (and every session,
    // so the shared connection too) ends, and one with a's host key takes
    // its place. Nothing is sent to it, and status says which file holds
    // the key it should have shown.
    let known = lab.dir().join("known_hosts");
    x.restart_sshd_as("b", "a")?;
    x.write("a", "never.txt", "must not reach an unverified host")?;
    // A transfer cut by the end of the old sshd may fail first
    // ("unreachable"); the retries then meet the impostor.
    let err = lab::eventually(secs(45), secs(0.25), || {
        let r = x.replication()?;
        let err = r["errors"][0].as_str().unwrap_or("").to_string();
        if err.contains("ssh login to") {
            Ok(err)
        } else {
            bail!("no host-key error yet: {r}")
        }
    })?;
    assert!(err.contains(&known.display().to_string()), "{err}");
    assert!(!tree(&x.dir("b"))?.contains_key("never.txt"));
    let key = std::fs::read_to_string(lab.dir().join("ssh-client"))?;
    let secret_line = key.lines().nth(1).unwrap_or("no key line");
    let all = format!("{}{}", serde_json::to_string(&x.d.events()?)?, x.logs());
    assert!(
        !all.contains(secret_line),
        "the private key never reaches a log or an event"
    );
    Ok(())
}

#[test]
fn an_emptied_source_deletes_nothing_at_the_peer() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    for i in 0..300 {
        x.write("a", &format!("files/{i}.txt"), &format!("file {i}"))?;
    }
    x.start()?;
    x.wait_same(secs(30)).context("initial full pass a → b")?;
    // Someone empties a's data directory (or its volume is gone).
    std::fs::remove_dir_all(x.dir("a").join("files"))?;
    let alert = lab::eventually(secs(20), secs(0.25), || {
        let g = x.d.group()?;
        g["alerts"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|s| s.as_str().unwrap_or("").contains("mass-delete guard"))
            })
            .cloned()
            .with_context(|| format!("no guard alert yet: {}", g["alerts"]))
    })?;
    assert!(alert.as_str().unwrap().contains("warden clear"), "{alert}");
    std::thread::sleep(secs(2));
    let b = tree(&x.dir("b"))?;
    assert_eq!(
        b.keys().filter(|k| k.starts_with("files/")).count(),
        300,
        "nothing deleted at the peer"
    );
    // The operator restores the files, then clears.
    for i in 0..300 {
        x.write("a", &format!("files/{i}.txt"), &format!("file {i}"))?;
    }
    x.d.cli_ok(&["clear", "web"])?;
    x.write("a", "after-clear.txt", "replication resumed")?;
    let both = x.wait_same(secs(30))?;
    assert_eq!(
        text(&both, "after-clear.txt").as_deref(),
        Some("replication resumed")
    );
    lab::eventually(secs(20), secs(0.5), || {
        let g = x.d.group()?;
        let held = g["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().unwrap_or("").contains("mass-delete guard"))
        });
        if held {
            bail!("guard still shown: {}", g["alerts"])
        } else {
            Ok(())
        }
    })?;
    Ok(())
}

/// Every file under `root` whose name (last component) is exactly `name`, as bytes.
fn find_named(root: &Path, name: &[u8]) -> Vec<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name().as_bytes() == name {
                out.push(p);
            }
        }
    }
    out
}

/// Issue 10, test 8: a divergent file whose name is not UTF-8 (next to an
/// in-sync file whose lossy name would be the same) under `policy` → the
/// policy is applied to exactly that file, the failback succeeds.
fn non_utf8_divergent_name(policy: &str) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let Some(x) = Data::new(policy, "pw-b-right") else {
        return Ok(());
    };
    let odd = b"odd-\xff.txt".to_vec();
    let lossy = "odd-\u{FFFD}.txt";
    x.write("a", lossy, "in sync, lossy twin")?;
    x.start()?;
    x.wait_same(secs(20))?;
    std::thread::sleep(secs(1.5));
    x.d.lab.kill("agent-a")?;
    let odd_path = x.dir("a").join(std::ffi::OsStr::from_bytes(&odd));
    std::fs::write(&odd_path, "divergent, not UTF-8")?;
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(90)).context("failback to a")?;
    lab::eventually(secs(30), secs(0.3), || {
        let rbs = x.d.runbooks()?;
        match runbook_of(&rbs, "failback") {
            Some(rb) if rb["status"] == "succeeded" => Ok(()),
            other => bail!("failback not done: {other:?}"),
        }
    })?;
    // The twin is untouched whatever the policy.
    assert_eq!(
        std::fs::read_to_string(x.dir("a").join(lossy))?,
        "in sync, lossy twin"
    );
    let mut qdir = x.dir("a").into_os_string();
    qdir.push(".warden-quarantine");
    let in_quarantine = find_named(Path::new(&qdir), &odd);
    let at_a = odd_path.exists();
    match policy {
        "keep" => {
            assert!(at_a, "kept at a");
            assert_eq!(std::fs::read_to_string(&odd_path)?, "divergent, not UTF-8");
            assert!(in_quarantine.is_empty());
        }
        "quarantine" => {
            assert!(!at_a, "moved away from a");
            assert_eq!(in_quarantine.len(), 1, "{in_quarantine:?}");
            assert_eq!(
                std::fs::read_to_string(&in_quarantine[0])?,
                "divergent, not UTF-8"
            );
        }
        _ => {
            assert!(!at_a && in_quarantine.is_empty(), "discarded");
        }
    }
    let r = x.replication()?;
    let item = r["divergent"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|i| i["name"].as_str() == Some(r"odd-\xff.txt"))
        })
        .cloned()
        .with_context(|| format!("listed with its bytes escaped: {r}"))?;
    let want = match policy {
        "keep" => "kept",
        "quarantine" => "quarantined",
        _ => "discarded",
    };
    assert_eq!(item["action"], want, "{item}");
    Ok(())
}

#[test]
fn a_non_utf8_divergent_name_is_kept_exactly() -> Result<()> {
    non_utf8_divergent_name("keep")
}

#[test]
fn a_non_utf8_divergent_name_is_quarantined_exactly() -> Result<()> {
    non_utf8_divergent_name("quarantine")
}

#[test]
fn a_non_utf8_divergent_name_is_discarded_exactly() -> Result<()> {
    non_utf8_divergent_name("discard")
}

/// Issue 10, test 5: a failover during a slow initial pass (a's link to b
/// shaped to 4 Mbit/s, 24 MiB to push): the stop at a ends the pass at once
/// and no rsync pushing from a is left.
#[test]
fn a_failover_stops_a_slow_initial_pass_at_once() -> Result<()> {
    let Some(x) = Data::with_failback("keep", "pw-b-right", "manual") else {
        return Ok(());
    };
    x.write_blocks("a", "big", 24)?;
    x.shape("a", "4mbit")?;
    x.start()?;
    // The initial pass runs: an rsync client at a. A push names the peer's
    // module last.
    let clients = |x: &Data| {
        x.rsync_clients("a", |cmd| {
            cmd.split_whitespace()
                .last()
                .is_some_and(|a| a.starts_with("rsync://"))
        })
    };
    lab::eventually(secs(20), secs(0.1), || {
        if clients(&x).is_empty() {
            bail!("no rsync pushing from a yet")
        } else {
            Ok(())
        }
    })?;
    std::thread::sleep(secs(1));
    x.d.cli_ok(&["failover", "web", "--to", "b"])?;
    x.d.wait_users_on("b", secs(30))?;
    let rb = succeeded(&x, "failover", secs(30))?;
    let stop = step(&rb, "stop_replication");
    assert_eq!(stop["status"], "done", "{rb:#}");
    let took = stop["finished_unix_ms"].as_u64().unwrap_or(u64::MAX)
        - stop["started_unix_ms"].as_u64().unwrap_or(0);
    // The agent's rsync stop grace (1.5 s: SIGTERM, then SIGKILL) and the
    // order's way there and back, stretched on a slow machine.
    let bound = lab::patient(secs(3)).as_millis() as u64;
    assert!(
        took <= bound,
        "stop took {took} ms (bound {bound} ms): {stop}"
    );
    std::thread::sleep(secs(1));
    let left = clients(&x);
    assert!(left.is_empty(), "rsync pushes left at a: {left:?}");
    Ok(())
}

/// What a writer at the active site had acknowledged: the last content of
/// every name it wrote, and the names it deleted last.
#[derive(Debug, Default)]
struct Acked {
    written: std::collections::BTreeMap<String, String>,
    deleted: std::collections::BTreeSet<String>,
    ops: u64,
    /// The operation under way when the demote began: done at the site,
    /// but unknown whether before the cut-over (name, and the body written
    /// or `None` for a delete). Its name may end either way.
    in_doubt: Option<(String, Option<String>)>,
}

/// A writer at `site` (200 operations a second): creates, overwrites and
/// deletes files under `live/` and among `old` (files replicated before the
/// disaster), until the site's demote hook has run. An operation counts as
/// acknowledged only when the demote had not begun after it completed.
fn writer(
    x: &Data,
    site: &'static str,
    old: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Acked> {
    let dir = x.dir(site);
    let hooks = x.d.lab.dir().join("hooks.log");
    let demoted = move || {
        std::fs::read_to_string(&hooks)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("demote {site} ")))
    };
    std::thread::spawn(move || {
        let mut acked = Acked::default();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && !demoted() {
            let name = if next(4) == 0 && !old.is_empty() {
                old[next(old.len() as u64) as usize].clone()
            } else {
                format!("live/{:03}/{:04}.txt", next(8), next(400))
            };
            let path = dir.join(&name);
            let body = format!("{name} write {}", acked.ops);
            let delete = next(3) == 0;
            let done = if delete {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    r => Some(r.is_ok()),
                }
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                Some(std::fs::write(&path, &body).is_ok())
            };
            if demoted() {
                // Unknown whether it was done before the cut-over.
                if done == Some(true) {
                    acked.in_doubt = Some((name, (!delete).then_some(body)));
                }
                break;
            }
            if done == Some(true) {
                acked.ops += 1;
                if delete {
                    acked.written.remove(&name);
                    acked.deleted.insert(name);
                } else {
                    acked.deleted.remove(&name);
                    acked.written.insert(name, body);
                }
            }
            std::thread::sleep(secs(0.005));
        }
        acked
    })
}

/// Issue 11, test 1: a writer at the active site (b) deletes and overwrites
/// files, old and new, at 200 operations a second while the failback
/// resyncs a (policy `keep`): after the failback every acknowledged delete
/// is absent at both sites, every acknowledged write present, and nothing
/// is called divergent (a wrote nothing of its own).
#[test]
fn acknowledged_deletes_and_writes_survive_a_failback_under_load() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    // A rich tree: nested directories, empty ones, a symlink.
    let mut old = Vec::new();
    for i in 0..2000 {
        let name = format!("tree/{:02}/{:02}/f{i:04}.dat", i % 17, i % 5);
        x.write("a", &name, &format!("original {i} {}", "x".repeat(i % 300)))?;
        old.push(name);
    }
    std::fs::create_dir_all(x.dir("a").join("tree/empty/dir"))?;
    std::os::unix::fs::symlink("../tree/00/00/f0000.dat", x.dir("a").join("tree/link"))?;
    x.start()?;
    x.wait_same(secs(60)).context("initial full pass a → b")?;
    std::thread::sleep(secs(1.5));
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;

    // The writer runs from the disaster through the failback's resync.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = writer(&x, "b", old.clone(), stop.clone());
    std::thread::sleep(secs(2));
    x.restart_site("a")?;
    let waited = x.d.wait_users_on("a", secs(120)).context("failback to a");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = w.join().expect("writer");
    waited?;
    let fb = failback_succeeded(&x)?;
    let resync = step(&fb, "resync")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!(
        "writer: {} acknowledged operations, {} deletes; resync: {resync}",
        acked.ops,
        acked.deleted.len()
    );
    assert!(acked.ops > 200, "the writer hardly ran: {}", acked.ops);
    assert!(acked.deleted.len() > 50, "{}", acked.deleted.len());
    let fin = step(&fb, "final_sync")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!("final_sync: {fin}");
    assert!(
        !fin.contains("fetched 0 items") && !resync.contains("fetched 0 items"),
        "the writer's changes reached both the resync and the final pass: {resync} / {fin}"
    );

    // Forward replication a → b carries nothing back.
    x.write("a", "after.txt", "after the failback")?;
    let both = x
        .wait_same(secs(60))
        .context("forward replication after failback")?;
    // The operation in doubt may have been taken before the cut-over (then
    // it is at both sites) or not: its name may hold either outcome.
    let doubt = acked.in_doubt.clone();
    let either = |name: &str, now: Option<&str>| {
        doubt
            .as_ref()
            .is_some_and(|(n, body)| n == name && now == body.as_deref())
    };
    for name in &acked.deleted {
        assert!(
            !both.contains_key(name) || either(name, text(&both, name).as_deref()),
            "deleted at b, came back: {name}"
        );
    }
    for (name, body) in &acked.written {
        let now = text(&both, name);
        assert!(
            now.as_deref() == Some(body.as_str()) || either(name, now.as_deref()),
            "acknowledged write lost or undone: {name}: {now:?}, acknowledged {body:?} (in doubt: {doubt:?})"
        );
    }
    assert!(x.dir("a").join("tree/empty/dir").is_dir());
    let r = x.replication()?;
    assert_eq!(
        r["divergent"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "false divergent items: {r}"
    );
    let mut q = x.dir("a").into_os_string();
    q.push(".warden-quarantine");
    assert!(!Path::new(&q).exists(), "nothing quarantined");
    Ok(())
}

/// Issue 11, test 2: a file written at both sites within the same second to
/// the same size (the returning site's write never replicated) → detected,
/// and handled by the policy (quarantine): a's version set aside, b's in
/// place at both sites.
#[test]
fn a_same_second_same_size_conflict_is_quarantined_at_failback() -> Result<()> {
    let Some(x) = Data::new("quarantine", "pw-b-right") else {
        return Ok(());
    };
    x.write("a", "conflict.txt", "version 0")?;
    x.write("a", "other.txt", "unchanged")?;
    x.start()?;
    x.wait_same(secs(20))?;
    std::thread::sleep(secs(1.5));
    x.d.lab.kill("agent-a")?;
    // One second, 0.2 s into it, well in the past: both writes fall in it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let second = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs() - 60);
    let set = |site: &str, body: &str, ms: u64| -> Result<()> {
        x.write(site, "conflict.txt", body)?;
        std::fs::File::options()
            .write(true)
            .open(x.dir(site).join("conflict.txt"))?
            .set_modified(second + std::time::Duration::from_millis(ms))?;
        Ok(())
    };
    set("a", "version A", 200)?;
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    set("b", "version B", 700)?;

    x.restart_site("a")?;
    x.d.wait_users_on("a", secs(90)).context("failback to a")?;
    lab::eventually(secs(30), secs(0.3), || {
        let rbs = x.d.runbooks()?;
        match runbook_of(&rbs, "failback") {
            Some(fb) if fb["status"] == "succeeded" => Ok(()),
            other => bail!("failback not done: {other:?}"),
        }
    })?;
    let a = tree(&x.dir("a"))?;
    assert_eq!(text(&a, "conflict.txt").as_deref(), Some("version B"));
    assert_eq!(text(&a, "other.txt").as_deref(), Some("unchanged"));
    let mut qdir = x.dir("a").into_os_string();
    qdir.push(".warden-quarantine");
    let q = tree(Path::new(&qdir))?;
    assert!(
        q.iter()
            .any(|(k, v)| k.ends_with("conflict.txt") && v == b"version A"),
        "a's version set aside: {:?}",
        q.keys().collect::<Vec<_>>()
    );
    let r = x.replication()?;
    let div: Vec<(&str, &str)> = r["divergent"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or(""),
                d["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(div, vec![("conflict.txt", "quarantined")], "{r}");
    x.write("a", "after.txt", "after")?;
    let both = x.wait_same(secs(30))?;
    assert_eq!(text(&both, "conflict.txt").as_deref(), Some("version B"));
    Ok(())
}

/// Issue 15, test 6: `max_lag_on_failover`. b's rsync module is unreachable
/// from a, so a write at a waits and the replication lag grows; a's service
/// dies: the failover to the lagging b waits for approval (the lag in the
/// reason), nothing moves; `warden approve` moves users to b.
#[test]
fn a_lagging_standby_waits_for_approval() -> Result<()> {
    let Some(x) = Data::with_failback("keep", "pw-b-right", "manual") else {
        return Ok(());
    };
    let conf = std::fs::read_to_string(&x.d.config)?.replace(
        "resync_timeout = \"120s\"",
        "resync_timeout = \"120s\"\nmax_lag_on_failover = \"2s\"",
    );
    std::fs::write(&x.d.config, conf)?;
    x.start()?;
    x.write("a", "before.txt", "replicated")?;
    x.wait_same(secs(20))?;
    // a can no longer reach b's rsync daemon (everything else still works).
    let b = x.d.lab.ip("b").to_string();
    x.d.lab.run_ok(
        "a",
        "iptables",
        [
            "-w", "5", "-A", "OUTPUT", "-p", "tcp", "-d", &b, "--dport", "873", "-j", "REJECT",
        ],
    )?;
    x.write("a", "late.txt", "never reached b")?;
    lab::eventually(secs(30), secs(0.25), || {
        let r = x.replication()?;
        match r["lag_ms"].as_u64() {
            Some(ms) if ms > 3_000 => Ok(()),
            _ => bail!("lag not above 3 s yet: {r}"),
        }
    })?;
    x.d.lab.kill("svc-a")?;
    let g = lab::eventually(secs(30), secs(0.25), || {
        let g = x.d.group()?;
        if g["phase"] == "pending_approval" {
            Ok(g)
        } else {
            bail!("not pending yet: {}", g["phase"])
        }
    })?;
    let reason = g["pending"]["reason"].as_str().unwrap_or("").to_string();
    assert!(
        reason.contains("behind") && reason.contains("max_lag_on_failover"),
        "{reason}"
    );
    std::thread::sleep(secs(2));
    assert_eq!(
        x.d.group()?["active"],
        "a",
        "nothing moved without approval"
    );
    x.d.cli_ok(&["approve", "web"])?;
    x.d.wait_users_on("b", secs(30))?;
    // the failover records the writes it may have left behind: at least the
    // lag that held it, and says so when it ends
    let fo = succeeded(&x, "failover", secs(30))?;
    let rpo = fo["rpo_ms"].as_u64().unwrap_or(0);
    assert!(rpo > 3_000, "the failover's RPO: {fo:#}");
    let done = x.d.events_of("runbook_succeeded")?;
    assert!(
        done.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("RPO at most {rpo} ms")))),
        "{done:#?}"
    );
    Ok(())
}
