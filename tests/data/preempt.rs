//! The site users are on fails while a failback resyncs: with the real
//! binaries, rsync daemons and a shaped link on network-namespace hosts.
//! The failback is given up at once and users fail over, instead of
//! waiting for a resync that may be allowed an hour; and the given-up
//! resync stops pulling into the site before users write there. Then
//! `warden resync` resumes replication toward b without moving users and
//! without losing what b's users wrote.

use std::time::Instant;

use anyhow::{bail, Result};

use crate::lab::{self, secs, Deploy};
use crate::site::Data;
use crate::{runbook_of, step};

/// a is lost, users move to b, 24 MiB are written at b. a returns and the
/// automatic failback's resync pulls them over b's link shaped to 4 Mbit/s
/// (about 50 s). Then b's service dies (its agent and rsync daemon stay):
/// users are on a within seconds, the failback given up with the reason,
/// no rsync pulls into a any more, and what users write at a stays.
#[test]
fn the_active_site_failing_during_a_failback_resync_fails_over_at_once() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    // rsync at a talking to a daemon (b's module, during the pull).
    let pulls = |x: &Data| x.rsync_clients("a", |cmd| cmd.contains("rsync://"));
    x.write("a", "seed.txt", "seed")?;
    x.start()?;
    x.wait_same(secs(20))?;
    std::thread::sleep(secs(1.5));
    x.kill_site("a")?;
    x.d.wait_users_on("b", secs(30))?;
    x.write_blocks("b", "big", 24)?;
    x.shape("b", "4mbit")?;
    x.restart_site("a")?;
    crate::failback_resyncing(&x)?;
    // Let the pull get going (its rsync client at a), then b's service dies.
    lab::eventually(secs(20), secs(0.1), || {
        if pulls(&x).is_empty() {
            bail!("no rsync pulling at a yet")
        }
        Ok(())
    })?;
    let lost = Instant::now();
    x.d.lab.kill("svc-b")?;
    // Far less than the ~50 s the resync needs.
    x.d.wait_users_on("a", secs(25))?;
    let took = lost.elapsed();
    let ev = x.d.wait_event("failback_aborted", secs(10))?;
    let msg = ev["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("given up before its cut-over: b was confirmed down"),
        "{ev}"
    );
    let rbs = x.d.runbooks()?;
    let fb = rbs
        .iter()
        .find(|r| r["kind"] == "failback")
        .expect("the failback");
    let resync = step(fb, "resync");
    assert_eq!(resync["status"], "failed", "{fb:#}");
    assert!(
        resync["detail"]
            .as_str()
            .is_some_and(|d| d.contains("b, where users are, was confirmed down")),
        "{fb:#}"
    );
    for s in ["demote", "switch"] {
        assert_eq!(step(fb, s)["status"], "pending", "{s}: {fb:#}");
    }
    let fo = runbook_of(&rbs, "failover").expect("the failover to a");
    assert_eq!(
        (fo["to"].as_str(), fo["status"].as_str()),
        (Some("a"), Some("succeeded")),
        "{fo:#}"
    );
    // The given-up pull stopped before a was promoted.
    let left = pulls(&x);
    assert!(
        left.is_empty(),
        "rsync still pulling into a after its promote: {left:?}"
    );
    // Users write at a; nothing from b's old copy comes over it.
    x.write("a", "seed.txt", "written at a after the failover")?;
    x.write("a", "after.txt", "new at a")?;
    std::thread::sleep(secs(3));
    let a = crate::site::tree(&x.dir("a"))?;
    assert_eq!(
        crate::site::text(&a, "seed.txt").as_deref(),
        Some("written at a after the failover")
    );
    assert!(a.contains_key("after.txt"));
    eprintln!(
        "b's service killed → users on a in {:.1} s",
        took.as_secs_f64()
    );

    // b's service is back. Replication from a stays paused (b holds what
    // users wrote there while it was active) until the operator's resync.
    x.d.lab
        .run_ok("b", "tc", ["qdisc", "del", "dev", "eth0", "root"])?;
    x.d.start_service("b")?;
    let g = x.d.group()?;
    assert_eq!(g["replication"]["state"], "paused", "{g:#}");
    let b_before = crate::site::tree(&x.dir("b"))?;
    let out = lab::eventually(secs(30), secs(0.5), || x.d.cli_ok(&["resync", "web"]))?;
    assert!(out.contains("resync of web started"), "{out}");
    let rb = crate::succeeded(&x, "resync", secs(60))?;
    assert_eq!(
        (rb["from"].as_str(), rb["to"].as_str()),
        (Some("a"), Some("b")),
        "{rb:#}"
    );
    assert_eq!(x.d.user_get()?, "a", "users stayed on a");
    // b says it is a's target again, not resyncing.
    lab::eventually(secs(10), secs(0.3), || {
        let r = x.d.group()?["replication"].clone();
        if r["state"] == "replicating" && r["target"] == "b" {
            Ok(())
        } else {
            bail!("replication: {r}")
        }
    })?;
    // Replication a → b runs again: a new write at a reaches b.
    x.write("a", "post-resync.txt", "replicated again")?;
    lab::eventually(secs(30), secs(0.3), || {
        let b = crate::site::tree(&x.dir("b"))?;
        match crate::site::text(&b, "post-resync.txt") {
            Some(t) if t == "replicated again" => Ok(()),
            _ => bail!("post-resync.txt not at b yet"),
        }
    })?;
    let b = crate::site::tree(&x.dir("b"))?;
    assert_eq!(
        crate::site::text(&b, "seed.txt").as_deref(),
        Some("written at a after the failover"),
        "a's version won"
    );
    // What b's users wrote while b was active is still at b (kept there or
    // quarantined beside it), byte for byte.
    let quarantine =
        crate::site::tree(&x.dir("b").with_extension("warden-quarantine")).unwrap_or_default();
    for i in 0..24 {
        let name = format!("big/{i}.bin");
        let want = &b_before[&name];
        let kept = b.get(&name) == Some(want)
            || quarantine
                .iter()
                .any(|(k, v)| k.ends_with(&name) && v == want);
        assert!(
            kept,
            "{name} written at b was lost; b now has {} names",
            b.len()
        );
    }
    Ok(())
}
