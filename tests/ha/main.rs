//! Highly available orchestrators on a real three-member etcd cluster
//! (Debian's `etcd-server`), one member and one orchestrator node at site
//! a, at site b and at a witness host, with the real `warden` binaries,
//! client traffic through the frontend and the operator's CLI on `ctl`
//! (see `deploy.rs`). Each test builds its own lab and tears it down.

#[path = "../lab/mod.rs"]
mod lab;

mod deploy;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use deploy::{Ha, LEASE_TTL, NODES};
use lab::{secs, Deploy};

/// Users reached `site` on every answer from the first answer by `site`
/// after `t` on: never a, then b, then a again.
fn never_alternate(samples: &[lab::Sample], t: Instant, site: &str) {
    let bodies: Vec<String> = lab::bodies_after(samples, t)
        .iter()
        .map(|b| b.trim().to_string())
        .collect();
    let first = bodies
        .iter()
        .position(|b| b == site)
        .unwrap_or_else(|| panic!("no answer from {site} after the fault: {bodies:?}"));
    assert!(
        bodies[first..].iter().all(|b| b == site),
        "users went back and forth: {bodies:?}"
    );
}

fn wait_hook(d: &Ha, prefix: &str, limit: Duration) -> Result<()> {
    lab::eventually(limit, secs(0.1), || {
        if d.hook_runs(prefix).is_empty() {
            bail!("no {prefix:?} hook run yet")
        }
        Ok(())
    })
}

/// Test 1 and 7: an operator's failover sent to a follower is performed by
/// the leader (the follower redirects; the CLI follows to a known node),
/// once; the leader is SIGKILLed while b's promote hook is running, and
/// another orchestrator finishes the runbook: one promote hook run, one
/// switch at the frontend.
#[test]
fn leader_killed_in_a_slow_promote_the_next_one_finishes_it_once() -> Result<()> {
    let Some(d) = Ha::new("sleep 4") else {
        return Ok(());
    };
    d.start_all("a")?;
    let (_, epoch0, switches0) = d.frontend_route()?;

    // A follower answers an action with a redirect to the leader and starts nothing.
    let url = format!("{}/v1/groups/web/failover", d.api("b"));
    let out = d.send(
        "POST",
        &d.operator_token,
        &url,
        r#"{"to":"b"}"#,
        "%{http_code} %{redirect_url}",
    )?;
    assert_eq!(
        out,
        format!("307 {}/v1/groups/web/failover", d.api("a")),
        "a follower redirects actions to the leader"
    );
    assert!(
        d.runbooks_at("a")?.is_empty(),
        "a redirect starts nothing by itself"
    );

    // The CLI, given the follower first, follows the redirect to the leader.
    let urls = format!("{},{}", d.api("b"), d.api("a"));
    let out = d
        .operator()
        .cli_ok(&["--url", &urls, "failover", "web", "--to", "b"])?;
    assert!(out.contains("started (runbook"), "{out}");

    wait_hook(&d, "promote b", secs(20))?;
    d.lab.kill("orch-a")?;
    let killed = Instant::now();
    let next = d.wait_leader(&["b", "w"], secs(15))?;
    eprintln!(
        "leader o-a killed mid-promote; o-{next} leads after {:?}",
        killed.elapsed()
    );
    d.wait_users_on("b", secs(40))?;
    d.wait_group("failover finished", secs(30), |g| {
        g["active"] == "b" && g["phase"] == "steady"
    })?;

    let runs = d.hook_runs("promote b");
    assert_eq!(
        runs.len(),
        1,
        "one promote hook run for the epoch: {runs:?}"
    );
    let rbs = d.runbooks_at(&next)?;
    assert_eq!(rbs.len(), 1, "one runbook: {rbs:#?}");
    assert_eq!(rbs[0]["status"], "succeeded", "{:#}", rbs[0]);
    assert!(
        rbs[0]["resumes"].as_u64().unwrap_or(0) >= 1,
        "the next leader resumed it: {:#}",
        rbs[0]
    );
    let (site, epoch, switches) = d.frontend_route()?;
    assert_eq!(site, "b");
    assert_eq!(epoch, epoch0 + 1, "one new epoch");
    assert_eq!(
        switches,
        switches0 + 1,
        "exactly one switch at the frontend"
    );
    Ok(())
}

/// The leader is frozen (SIGSTOP) while b's promote hook runs, for
/// longer than its lease: another orchestrator finishes the failover, and
/// the operator moves users back to a through it (a newer epoch). Then the
/// frozen leader runs again, with its runbook still waiting for b's
/// promote: nothing it had under way or queued takes effect — no route,
/// no second promote of b, users stay on a — and it follows the new leader.
#[test]
fn a_leader_frozen_past_its_lease_changes_nothing_when_it_runs_again() -> Result<()> {
    let Some(d) = Ha::new("sleep 4") else {
        return Ok(());
    };
    d.start_all("a")?;
    d.operator()
        .cli_ok(&["--url", &d.api("a"), "failover", "web", "--to", "b"])?;
    wait_hook(&d, "promote b", secs(20))?;
    d.lab.pause("orch-a")?;
    let next = d.wait_leader(&["b", "w"], secs(15))?;
    let steady_on = |site: &'static str, what: &str| {
        lab::eventually(secs(40), secs(0.2), || {
            let g = d.group_at(&next)?;
            if g["active"] == site && g["phase"] == "steady" {
                return Ok(());
            }
            bail!("{what}: not yet: {g}")
        })
    };
    steady_on("b", "the failover finished by the new leader")?;
    d.wait_users_on("b", secs(30))?;

    d.operator()
        .cli_ok(&["--url", &d.api(&next), "failback", "web"])?;
    steady_on("a", "the failback")?;
    d.wait_users_on("a", secs(30))?;
    let route = d.frontend_route()?;
    let promotes_b = d.hook_runs("promote b");
    let client = d
        .lab
        .client_loop("ctl", &d.entry_url(), secs(0.1), secs(1))?;
    let resumed = Instant::now();
    d.lab.resume("orch-a")?;
    lab::eventually(secs(10), secs(0.1), || match d.leader_view("a") {
        Ok((503, _)) => Ok(()),
        other => bail!("o-a does not answer as a follower yet: {other:?}"),
    })?;
    // Long enough for anything it had under way: a step's timeout is 30 s,
    // but its licence lapsed at its first look.
    std::thread::sleep(LEASE_TTL + secs(4));
    let samples = client.stop();
    never_alternate(&samples, resumed, "a");
    assert_eq!(
        d.frontend_route()?,
        route,
        "the frozen leader wrote a route after it ran again"
    );
    assert_eq!(
        d.hook_runs("promote b"),
        promotes_b,
        "b was promoted again by the frozen leader"
    );
    assert_eq!(d.leaders_now(NODES), vec![next.clone()], "one leader");
    let (_, view) = d.leader_view(&next)?;
    assert!(
        view["cluster"].is_u64() && view["term"].is_i64(),
        "the leader's /v1/leader names its term and etcd cluster (warden status shows them): {view}"
    );
    let g = d.group_at(&next)?;
    assert_eq!(
        (g["active"].as_str(), g["phase"].as_str()),
        (Some("a"), Some("steady")),
        "{g}"
    );
    Ok(())
}

/// The leader key as etcd holds it: its value and the lease it is on (0:
/// none).
fn leader_key(d: &Ha) -> Result<(String, i64)> {
    let key = format!("/warden-{}/leader", d.lab.prefix());
    let v: serde_json::Value =
        serde_json::from_str(&d.etcdctl(&d.endpoints(), &["get", &key, "-w", "json"])?)?;
    let kv = &v["kvs"][0];
    if kv.is_null() {
        bail!("no leader key");
    }
    let value = d.etcdctl(&d.endpoints(), &["get", &key, "--print-value-only"])?;
    Ok((value.trim().to_string(), kv["lease"].as_i64().unwrap_or(0)))
}

/// The leader key rewritten by hand. On no lease (`etcdctl put` without
/// `--lease`), naming another node: the leader steps down at once, and the
/// key — which would never expire, so that no node could ever lead again —
/// is removed by the next campaign: a node leads, on its own lease, and
/// acts. Then on the leader's own lease, naming a node that does not
/// exist: the leader steps down (the others would take the key for that
/// node's) and the key names the node that leads again.
#[test]
fn a_leader_key_rewritten_by_hand_does_not_leave_the_deployment_leaderless() -> Result<()> {
    let Some(d) = Ha::new("true") else {
        return Ok(());
    };
    d.start_all("a")?;
    let key = format!("/warden-{}/leader", d.lab.prefix());
    d.etcdctl(&d.endpoints(), &["put", &key, "o-b"])?;
    // The node that leads once the key is on a lease again, as the one
    // leader answering. (Not the first to answer as a leader: the leader
    // of a moment ago still does until it reads the put, a few hundred
    // milliseconds, then steps down.)
    let next = lab::eventually(secs(25), secs(0.1), || {
        let (name, lease) = leader_key(&d)?;
        let leaders = d.leaders_now(NODES);
        if lease != 0 && leaders.len() == 1 && name == format!("o-{}", leaders[0]) {
            return Ok(leaders[0].clone());
        }
        bail!("the leader key is {name:?} on lease {lease}; leaders: {leaders:?}")
    })?;
    d.operator()
        .cli_ok(&["--url", &d.api(&next), "failover", "web", "--to", "b"])?;
    d.wait_users_on("b", secs(30))?;

    let (_, lease) = leader_key(&d)?;
    d.etcdctl(
        &d.endpoints(),
        &["put", &key, "o-nobody", &format!("--lease={lease:x}")],
    )?;
    lab::eventually(secs(15), secs(0.1), || {
        let (name, lease) = leader_key(&d)?;
        let leaders = d.leaders_now(NODES);
        if lease != 0 && leaders.len() == 1 && name == format!("o-{}", leaders[0]) {
            return Ok(());
        }
        bail!("the leader key is {name:?} on lease {lease}; leaders: {leaders:?}")
    })?;
    Ok(())
}

/// Test 2: site a dies entirely — its service, agent, orchestrator (the
/// leader) and etcd member — and the survivors elect a leader and fail a
/// over to b.
#[test]
fn site_a_lost_with_the_leader_the_survivors_fail_over() -> Result<()> {
    let Some(d) = Ha::new("true") else {
        return Ok(());
    };
    d.start_all("a")?;
    let client = d
        .lab
        .client_loop("ctl", &d.entry_url(), secs(0.1), secs(1))?;
    std::thread::sleep(secs(1));
    d.lab.link_down("a")?;
    let lost = Instant::now();
    let next = d.wait_leader(&["b", "w"], secs(20))?;
    let elected = lost.elapsed();
    d.wait_users_on("b", secs(40))?;
    // The client loop's own next answer comes from b too (its request in
    // flight at the switch may have been a failure, and stopping right
    // after it left no answer after the loss to judge).
    lab::eventually(secs(10), secs(0.1), || {
        let from_b = client
            .samples()
            .iter()
            .any(|s| s.at >= lost && s.result.as_deref().map(str::trim) == Ok("b"));
        if from_b {
            Ok(())
        } else {
            bail!("the client loop has no answer from b yet")
        }
    })?;
    let samples = client.stop();
    let first_b = samples
        .iter()
        .find(|s| s.at >= lost && s.result.as_deref().map(str::trim) == Ok("b"))
        .map(|s| s.at.duration_since(lost));
    eprintln!(
        "site a lost with the leader: o-{next} leads after {elected:?}; users reach b {first_b:?} after the loss"
    );
    never_alternate(&samples, lost, "b");
    let g = d.group()?;
    assert_eq!(g["active"], "b");
    Ok(())
}

/// Test 3: the leader is cut off from etcd but still reaches agents and the
/// frontend: it stops acting within the lease TTL; a late route order at
/// its epoch is refused by the frontend; users never alternate.
#[test]
fn leader_cut_off_from_etcd_stops_acting_within_the_lease() -> Result<()> {
    let Some(d) = Ha::new("true") else {
        return Ok(());
    };
    d.start_all("a")?;
    let client = d
        .lab
        .client_loop("ctl", &d.entry_url(), secs(0.1), secs(1))?;
    let (_, epoch0, _) = d.frontend_route()?;
    // Host a's processes reach no etcd member (its own included); etcd's
    // peer traffic, the agents and the frontend are untouched.
    d.lab.run_ok(
        "a",
        "iptables",
        [
            "-w", "5", "-A", "OUTPUT", "-p", "tcp", "--dport", "2379", "-j", "DROP",
        ],
    )?;
    let cut = Instant::now();
    lab::eventually(LEASE_TTL + secs(2), secs(0.05), || {
        match d.leader_view("a") {
            Ok((503, _)) => Ok(()),
            other => bail!("o-a still leads: {other:?}"),
        }
    })?;
    let stopped = cut.elapsed();
    eprintln!("o-a cut off from etcd stopped leading after {stopped:?} (lease TTL {LEASE_TTL:?})");
    assert!(
        stopped <= LEASE_TTL + secs(1),
        "a leader cut off from etcd stops within the lease TTL (took {stopped:?})"
    );
    let next = d.wait_leader(&["b", "w"], secs(15))?;

    // The deposed node performs nothing: its answer to an action is a
    // redirect or "no leader", never a runbook.
    let url = format!("{}/v1/groups/web/failover", d.api("a"));
    let out = d.send(
        "POST",
        &d.operator_token,
        &url,
        r#"{"to":"b"}"#,
        "%{http_code}",
    )?;
    assert!(out == "307" || out == "503", "deposed node answered {out}");
    // Nor does it lift anything on the operator's word (`warden clear`):
    // the same answer.
    let url = format!("{}/v1/groups/web/clear", d.api("a"));
    let out = d.send("POST", &d.operator_token, &url, "", "%{http_code}")?;
    assert!(
        out == "307" || out == "503",
        "deposed node answered a clear with {out}"
    );

    // The new leader moves users to b.
    d.operator()
        .cli_ok(&["--url", &d.api(&next), "failover", "web", "--to", "b"])?;
    let moved = Instant::now();
    d.wait_users_on("b", secs(30))?;
    // The routing layer refuses the deposed leader's epoch.
    let route = format!(
        "http://{}:{}/v1/routes/web",
        d.lab.ip("fe"),
        deploy::CONTROL_PORT
    );
    let body = format!(r#"{{"site":"a","epoch":{epoch0}}}"#);
    let out = d.send("PUT", &d.frontend_token, &route, &body, "%{http_code}")?;
    assert_eq!(out, "409", "a late activate at the old epoch is refused");
    std::thread::sleep(secs(3));
    let samples = client.stop();
    never_alternate(&samples, moved, "b");
    let (site, epoch, _) = d.frontend_route()?;
    assert_eq!(site, "b");
    assert_eq!(epoch, epoch0 + 1);
    let log = d.lab.log("orch-a");
    assert!(
        log.contains("stepped down"),
        "the deposed node says it stepped down"
    );
    Ok(())
}

/// Test 5: two of three etcd members down → no orchestrator acts (a dead
/// service at a is not failed over), routes stay, the alert shows on every
/// orchestrator; members back → a leader, and the failover happens.
#[test]
fn etcd_quorum_lost_nobody_acts_until_it_returns() -> Result<()> {
    let Some(d) = Ha::new("true") else {
        return Ok(());
    };
    d.start_all("a")?;
    let (_, epoch0, switches0) = d.frontend_route()?;
    d.lab.kill("etcd-b")?;
    d.lab.kill("etcd-w")?;
    lab::eventually(LEASE_TTL + secs(5), secs(0.1), || {
        let l = d.leaders_now(NODES);
        if l.is_empty() {
            Ok(())
        } else {
            bail!("still leading: {l:?}")
        }
    })?;
    for h in NODES {
        lab::eventually(secs(10), secs(0.2), || {
            let g = d.group_at(h)?;
            let alerts = g["alerts"].to_string();
            if alerts.contains("etcd") {
                Ok(())
            } else {
                bail!("no etcd alert on o-{h}: {alerts}")
            }
        })?;
    }
    d.lab.kill("svc-a")?;
    std::thread::sleep(secs(5));
    let (site, epoch, switches) = d.frontend_route()?;
    assert_eq!(
        (site.as_str(), epoch, switches),
        (Some("a"), epoch0, switches0),
        "routes unchanged without quorum"
    );
    assert!(d.hook_runs("promote b").is_empty(), "nobody acted");

    d.start_member("b")?;
    d.start_member("w")?;
    let next = d.wait_leader(NODES, secs(30))?;
    eprintln!("quorum back: o-{next} leads");
    d.wait_users_on("b", secs(40))?;
    assert_eq!(d.hook_runs("promote b").len(), 1);
    Ok(())
}

/// Test 4 and 6: etcd's raft leader is killed mid-runbook and the runbook
/// completes; then a follower restarted with an empty data directory
/// rejoins from etcd with nothing lost.
#[test]
fn etcd_leader_killed_mid_runbook_and_an_empty_follower_rejoins() -> Result<()> {
    let Some(d) = Ha::new("sleep 3") else {
        return Ok(());
    };
    d.start_all("a")?;
    d.operator().cli_ok(&["failover", "web", "--to", "b"])?;
    wait_hook(&d, "promote b", secs(20))?;
    let raft = d.etcd_raft_leader()?;
    d.lab.kill(&format!("etcd-{raft}"))?;
    eprintln!("etcd raft leader e-{raft} killed mid-runbook");
    d.wait_users_on("b", secs(40))?;
    let g = d.wait_group("failover finished", secs(30), |g| {
        g["active"] == "b" && g["phase"] == "steady"
    })?;
    assert_eq!(d.hook_runs("promote b").len(), 1);
    d.start_member(&raft)?;

    // A follower (not the leader) loses its local directory and restarts.
    let leader = d.wait_leader(NODES, secs(15))?;
    let follower = NODES.iter().find(|h| **h != leader).expect("a follower");
    d.lab.kill(&format!("orch-{follower}"))?;
    let _ = std::fs::remove_dir_all(d.lab.dir().join("data"));
    d.start_orchestrator(follower)?;
    lab::eventually(secs(15), secs(0.2), || {
        let mine = d.group_at(follower)?;
        if mine["active"] == g["active"] && mine["epoch"] == g["epoch"] {
            Ok(())
        } else {
            bail!("o-{follower} says {mine}, the leader {g}")
        }
    })?;
    let rbs = d.runbooks_at(follower)?;
    assert_eq!(rbs.len(), 1, "the runbook is known to the rejoined node");
    assert_eq!(rbs[0]["status"], "succeeded");
    Ok(())
}

/// A site cut off for longer than the lease and back: its orchestrator (a
/// follower, whose own lease expired meanwhile) talks to etcd again by
/// itself and can be elected (nothing to restart).
#[test]
fn a_site_that_returns_rejoins_and_can_lead_again() -> Result<()> {
    let Some(d) = Ha::new("true") else {
        return Ok(());
    };
    d.start_all("w")?;
    d.lab.link_down("a")?;
    std::thread::sleep(LEASE_TTL * 3);
    d.lab.link_up("a")?;
    lab::eventually(secs(20), secs(0.2), || match d.leader_view("a") {
        Ok((_, v)) if v["etcd_ok"] == true && v["leader"].is_string() => Ok(()),
        other => bail!("o-a not back with etcd: {other:?}"),
    })?;
    // The others go: o-a must be able to lead.
    d.lab.kill("orch-b")?;
    d.lab.kill("orch-w")?;
    d.wait_leader(&["a"], LEASE_TTL + secs(10))?;
    Ok(())
}
