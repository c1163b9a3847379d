//! The `hybrid` scheme across network-namespace hosts: sites `a` and `b`
//! (echo service + agent), two built-in frontends `fe1` and `fe2`, a real
//! BIND9 on `dns` whose name points at the active frontend, the orchestrator
//! on `ctl`, and users on `cli` who resolve the name through BIND and connect
//! to the answer. A site failure moves the frontends (DNS unchanged); a
//! frontend failure moves DNS (the frontends keep routing).

#[path = "../lab/mod.rs"]
mod lab;

#[path = "../dnsd/mod.rs"]
mod dnsd;

#[allow(dead_code)]
mod deploy;

use anyhow::{ensure, Context, Result};
use deploy::{Dep, CONTROL_PORT};
use lab::secs;
use lab::Deploy;

const TTL_S: u64 = 2;

fn run(f: impl FnOnce(&Dep) -> Result<()>) {
    let Some(d) = Dep::new(TTL_S) else {
        return;
    };
    run_on(&d, f);
}

/// Start `d`, run `f` on it, show the events; panic with the logs' tails
/// when `f` failed.
fn run_on(d: &Dep, f: impl FnOnce(&Dep) -> Result<()>) {
    let r = d.start_all().and_then(|()| f(d));
    // The events tell which layer moved and why: shown for every run.
    if let Ok(evs) = d.events() {
        for e in evs {
            eprintln!("event {} {}: {}", e["kind"], e["site"], e["message"]);
        }
    }
    if let Err(e) = r {
        d.lab.print_log_tails();
        panic!("{e:#}");
    }
}

/// Case 1: site a dies → both frontends route to b; DNS stays on fe1.
#[test]
fn site_down_moves_both_frontends_dns_unchanged() {
    run(|d| {
        d.kill_site("a")?;
        d.wait_users_on("b", secs(30)).context("users reach b")?;
        lab::eventually(secs(15), secs(0.25), || {
            let r1 = d.frontend_route("fe1")?;
            let r2 = d.frontend_route("fe2")?;
            ensure!(r1.0 == "b" && r1 == r2, "fe1 {r1:?}, fe2 {r2:?}");
            Ok(())
        })
        .context("both frontends on b at one epoch")?;
        assert_eq!(d.dns_frontend()?, "fe1", "DNS unchanged by a site failure");
        assert!(
            !d.has_event("frontend_moved", "")?,
            "no frontend-layer move for a site failure"
        );
        assert!(d.has_event("runbook_started", "site layer")?);
        assert_eq!(d.group()?["active"], "b");
        Ok(())
    });
}

/// Case 2: fe1's host dies → DNS moves to fe2; users keep reaching a.
#[test]
fn frontend_host_down_moves_dns() {
    run(|d| {
        d.kill_frontend_host("fe1")?;
        d.wait_dns_on("fe2", secs(30)).context("DNS moved to fe2")?;
        d.wait_users_on("a", secs(15))
            .context("users reach a through fe2")?;
        assert_eq!(d.group()?["active"], "a", "no site move");
        assert!(d.has_event("frontend_confirmed_down", "fe1")?);
        assert!(d.has_event("frontend_moved", "frontend layer: fe1 confirmed down")?);
        assert!(d.has_event("frontend_moved", "points at fe2")?);
        assert!(!d.has_event("runbook_started", "")?, "no site runbook");
        Ok(())
    });
}

/// Case 3: site a and fe1 die together → users reach b through fe2.
#[test]
fn site_and_frontend_down_together() {
    run(|d| {
        d.kill_frontend_host("fe1")?;
        d.kill_site("a")?;
        d.wait_users_on("b", secs(45))
            .context("users reach b through fe2")?;
        assert_eq!(d.dns_frontend()?, "fe2");
        assert_eq!(d.frontend_route("fe2")?.0, "b");
        assert!(d.has_event("frontend_moved", "fe1 confirmed down")?);
        assert!(d.has_event("runbook_started", "site layer")?);
        Ok(())
    });
}

/// Case 4: a frontend restarted empty gets its route back by
/// reconciliation, and the correction is an event.
#[test]
fn restarted_frontend_is_reconciled() {
    run(|d| {
        let before = d.frontend_route("fe2")?;
        d.lab.kill("frontend-fe2")?;
        d.start_frontend("fe2")?;
        lab::eventually(secs(15), secs(0.25), || {
            let r = d.frontend_route("fe2")?;
            ensure!(r == before, "fe2 holds {r:?}, want {before:?}");
            Ok(())
        })
        .context("fe2's route restored")?;
        lab::eventually(secs(5), secs(0.25), || {
            ensure!(
                d.has_event("reconciled", "fe2")?,
                "no reconciled event for fe2"
            );
            Ok(())
        })?;
        // fe2 serves users again: point a user straight at it.
        let (status, body) = d.lab.http_get(
            "cli",
            &format!("http://{}:{}/", d.lab.ip("fe2"), deploy::ENTRY_PORT),
            secs(2),
        )?;
        assert_eq!((status, body.trim()), (200, "a"));
        Ok(())
    });
}

/// The DNS layer cannot be read (a hidden primary whose public servers are
/// cut off from the orchestrator: its reads fail, its signed updates still
/// reach the primary): the name is re-pointed at the group's frontend as a
/// precaution — the update really applied (the zone's serial moves) — and
/// that is one event, however many passes stay blind.
#[test]
fn unreadable_dns_is_re_pointed_as_a_precaution_and_said_once() {
    let Some(d) = Dep::new_hidden_primary(TTL_S) else {
        return;
    };
    run_on(&d, |d| {
        let precaution = |e: &serde_json::Value| {
            e["kind"] == "reconciled"
                && e["message"].as_str().is_some_and(|m| {
                    m.contains("cannot observe DNS") && m.contains("pointed the name at fe1")
                })
        };
        // Readable: a few passes, no precaution.
        std::thread::sleep(secs(3));
        ensure!(
            !d.events()?.iter().any(precaution),
            "a precaution while the DNS could be read"
        );
        let serial = d.soa_serial()?;
        // The read path goes: the verify port refuses the orchestrator.
        for proto in ["udp", "tcp"] {
            d.lab.run_ok(
                "dns",
                "iptables",
                [
                    "-w",
                    "5",
                    "-A",
                    "INPUT",
                    "-p",
                    proto,
                    "--dport",
                    &deploy::VERIFY_PORT.to_string(),
                    "-j",
                    "REJECT",
                ],
            )?;
        }
        lab::eventually(secs(15), secs(0.25), || {
            ensure!(
                d.events()?.iter().any(precaution),
                "no precautionary re-point yet"
            );
            Ok(())
        })
        .context("the unreadable DNS re-pointed as a precaution")?;
        // Two more blind passes, each re-pointing the name again: BIND logs
        // every update it applies, once per update the marker's new TXT.
        // (A blind pass waits out its DNS queries first: about 6 s a pass
        // here.) Recording each pass fails here with 3 events.
        let approved = || {
            d.lab
                .log("bind")
                .matches("adding an RR at '_warden.")
                .count()
        };
        let first = approved();
        lab::eventually(secs(40), secs(0.5), || {
            let n = approved();
            ensure!(
                n >= first + 2,
                "{} more updates approved, want 2",
                n - first
            );
            Ok(())
        })
        .context("two more blind passes")?;
        let said = d.events()?.into_iter().filter(|e| precaution(e)).count();
        ensure!(said == 1, "the precaution was recorded {said} times");
        let now = d.soa_serial()?;
        ensure!(
            now > serial,
            "no update reached the zone (serial {serial} → {now})"
        );
        ensure!(d.dns_frontend()? == "fe1", "the name moved off fe1");
        Ok(())
    });
}

/// Case 5: a route command with a stale epoch is refused by a frontend of the pair.
#[test]
fn stale_epoch_is_refused_by_a_frontend() {
    run(|d| {
        // Move the site once so the frontends hold epoch ≥ 2.
        d.kill_site("a")?;
        d.wait_users_on("b", secs(30))?;
        let (_, epoch) = d.frontend_route("fe2")?;
        ensure!(epoch >= 2, "epoch {epoch}");
        let url = format!("http://{}:{CONTROL_PORT}/v1/routes/web", d.lab.ip("fe2"));
        let auth = d.lab.auth_header(&d.fe_tokens[1])?;
        let body = format!(r#"{{"site":"a","epoch":{}}}"#, epoch - 1);
        let out = d.lab.run_ok(
            "ctl",
            "curl",
            [
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
                &url,
            ],
        )?;
        assert_eq!(out.trim(), "409", "stale epoch refused");
        assert_eq!(d.frontend_route("fe2")?, ("b".to_string(), epoch));
        d.wait_users_on("b", secs(5))?;
        Ok(())
    });
}

/// Issue 15, test 7 (hybrid): the same scheme over two real HAProxy
/// frontends (driver "haproxy", each probed at its public address on the
/// group's listen port): the first HAProxy host dies → DNS moves to the
/// second, which already routes to a.
#[test]
fn hybrid_over_two_haproxy_frontends_moves_dns_off_a_dead_one() {
    let Some(d) = Dep::new_with(TTL_S, true) else {
        return;
    };
    let r = d.start_all().and_then(|()| {
        assert_eq!(d.dns_frontend()?, "fe1");
        d.kill_frontend_host("fe1")?;
        d.wait_dns_on("fe2", secs(30))
            .context("DNS moves to the second HAProxy")?;
        d.wait_users_on("a", secs(15))
            .context("users reach a through fe2")?;
        assert!(
            d.has_event("frontend_moved", "")?,
            "the frontend layer moved"
        );
        assert!(
            !d.has_event("runbook_started", "site layer")?,
            "no site-layer failover for a frontend failure"
        );
        assert_eq!(d.group()?["active"], "a");
        Ok(())
    });
    if let Err(e) = r {
        d.lab.print_log_tails();
        panic!("{e:#}");
    }
}
