//! The Swift plans against two real Swift clusters on 127.0.0.1 (started once
//! for this binary by `swiftd`, stopped by PID at the end, also on failure).
//! Every scenario runs, each on its own containers; the test fails listing
//! the scenarios that failed.

#[path = "support/scenarios.rs"]
mod scenarios;
mod swiftd;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use scenarios::{eventually, Scenarios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use warden_agents::replicate::guard::DeleteGuard;
use warden_agents::replicate::swift::{quarantine_container, ORIGIN_TS_HEADER};
use warden_agents::replicate::{
    ContainerSyncSettings, DivergentPolicy, NoReplication, Replicator, Resyncer, SwiftClient,
    SwiftContainerSync, SwiftReplicator, SwiftReplicatorSettings, SwiftResyncer,
    SwiftResyncerSettings, SwiftSettings,
};
use warden_agents::AgentError;
use warden_config::Secret;

use swiftd::Clusters;

const PATIENCE: Duration = Duration::from_secs(30);
/// Container sync: the daemon's interval is 1 s, but it first sleeps a random part of it.
const SYNC_PATIENCE: Duration = Duration::from_secs(90);

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn put(c: &SwiftClient, cont: &str, obj: &str, body: &str) -> Result<String> {
    Ok(c.put_object(
        cont,
        obj,
        Bytes::from(body.to_string()),
        "text/plain",
        &BTreeMap::new(),
    )
    .await?)
}

async fn etags(c: &SwiftClient, cont: &str) -> Result<BTreeMap<String, String>> {
    Ok(c.list_objects(cont)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.hash))
        .collect())
}

async fn body(c: &SwiftClient, cont: &str, obj: &str) -> Result<Option<String>> {
    Ok(c.get_object(cont, obj)
        .await?
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned()))
}

/// One HTTP/1.1 request sent byte for byte as given, with no URL library in
/// between (dot segments and percent escapes reach Swift as written);
/// returns the status and the response headers.
async fn raw_request(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let host = base_url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .context("an http:// URL")?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut conn = tokio::net::TcpStream::connect(host).await?;
    conn.write_all(req.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status line")?;
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((status, head))
}

/// PUTs `body` at `storage_url/container/raw_object` without any path
/// normalisation (`raw_object` is sent as written: `a/../b`, `ctl%01x`).
async fn raw_put(
    cl: &swiftd::Cluster,
    container: &str,
    raw_object: &str,
    body: &str,
) -> Result<()> {
    let (status, head) = raw_request(
        &cl.auth_url,
        "GET",
        "/auth/v1.0",
        &[("X-Auth-User", swiftd::USER), ("X-Auth-Key", swiftd::KEY)],
        b"",
    )
    .await?;
    ensure!(status == 200, "auth: {status}");
    let token = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-auth-token")
                .then(|| v.trim().to_string())
        })
        .context("a token")?;
    let account = cl
        .storage_url
        .strip_prefix("http://")
        .and_then(|r| r.split_once('/'))
        .context("storage path")?
        .1;
    let path = format!("/{account}/{container}/{raw_object}");
    let (status, _) = raw_request(
        &cl.auth_url,
        "PUT",
        &path,
        &[("X-Auth-Token", &token)],
        body.as_bytes(),
    )
    .await?;
    ensure!(status == 201, "raw PUT {path}: {status}");
    Ok(())
}

/// Every container of the account but `skip`, with each object's ETag and
/// timestamp: a write anywhere else shows as a difference.
async fn snapshot(
    c: &SwiftClient,
    skip: &[&str],
) -> Result<BTreeMap<String, Vec<(String, String, String)>>> {
    let mut out = BTreeMap::new();
    for cont in c.list_containers().await? {
        if skip.contains(&cont.as_str()) {
            continue;
        }
        let objs = c
            .list_objects(&cont)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.hash, e.last_modified))
            .collect();
        out.insert(cont, objs);
    }
    Ok(out)
}

async fn names(c: &SwiftClient, cont: &str) -> Result<Vec<String>> {
    Ok(etags(c, cont).await?.into_keys().collect())
}

#[path = "swift_scenarios/broken_link.rs"]
mod broken_link;
#[path = "swift_scenarios/cancelled_round.rs"]
mod cancelled_round;
#[path = "swift_scenarios/container_sync_failback.rs"]
mod container_sync_failback;
#[path = "swift_scenarios/container_sync_fence.rs"]
mod container_sync_fence;
#[path = "swift_scenarios/copier_fence.rs"]
mod copier_fence;
#[path = "swift_scenarios/expired.rs"]
mod expired;
#[path = "swift_scenarios/fence_container.rs"]
mod fence_container;
#[path = "swift_scenarios/lagging_kinds.rs"]
mod lagging_kinds;
#[path = "swift_scenarios/peer_containers.rs"]
mod peer_containers;
#[path = "swift_scenarios/short_pages.rs"]
mod short_pages;
#[path = "swift_scenarios/unlisted_here.rs"]
mod unlisted_here;
#[path = "support/web.rs"]
mod web;
#[path = "swift_scenarios/whole_objects.rs"]
mod whole_objects;

struct Env<'a> {
    cl: &'a Clusters,
    a: SwiftClient,
    b: SwiftClient,
}

impl Env<'_> {
    fn replicator(&self, containers: &[&str], manifest: &str) -> SwiftReplicator {
        let s = SwiftReplicatorSettings::new(
            self.cl.a.settings(),
            self.cl.b.settings(),
            containers.iter().map(|c| c.to_string()).collect(),
            self.cl.scratch().join(manifest),
        );
        SwiftReplicator::new(s).unwrap()
    }

    fn guarded_replicator(
        &self,
        containers: &[&str],
        manifest: &str,
        guard: DeleteGuard,
    ) -> SwiftReplicator {
        let mut s = SwiftReplicatorSettings::new(
            self.cl.a.settings(),
            self.cl.b.settings(),
            containers.iter().map(|c| c.to_string()).collect(),
            self.cl.scratch().join(manifest),
        );
        s.guard = guard;
        SwiftReplicator::new(s).unwrap()
    }

    /// A resyncer bringing `here` to `peer`.
    fn resyncer(
        &self,
        here_is_a: bool,
        containers: &[&str],
        manifest: &str,
        guard: DeleteGuard,
    ) -> SwiftResyncer {
        let (here, peer) = if here_is_a {
            (&self.cl.a, &self.cl.b)
        } else {
            (&self.cl.b, &self.cl.a)
        };
        let mut s = SwiftResyncerSettings::new(
            here.settings(),
            peer.settings(),
            containers.iter().map(|c| c.to_string()).collect(),
            self.cl.scratch().join(manifest),
        );
        s.guard = guard;
        SwiftResyncer::new(s).unwrap()
    }
}

/// The names a URL would rewrite, as sent raw, and as the status shows them.
const UNSAFE: [(&str, &str); 7] = [
    ("a/../b", "a/../b"),
    ("x/./y", "x/./y"),
    ("../names-nb/evil", "../names-nb/evil"),
    ("%2e%2e/names-nb/e2", "../names-nb/e2"),
    ("ctl%01x", "ctl\\u{1}x"),
    ("nl%0Ax", "nl\\nx"),
    ("del%7Fx", "del\\u{7f}x"),
];

fn check_refused(refused: &[String], c: &str) -> Result<()> {
    for (_, shown) in UNSAFE {
        let want = format!("{c}/{shown} (");
        ensure!(
            refused.iter().any(|r| r.starts_with(&want)),
            "{want:?} not listed as refused: {refused:?}"
        );
    }
    ensure!(refused.len() == UNSAFE.len(), "{refused:?}");
    ensure!(
        refused.iter().all(|r| !r.chars().any(char::is_control)),
        "escaped: {refused:?}"
    );
    Ok(())
}

/// Objects whose names a URL layer would resolve into another path (`a/../b`,
/// `../names-nb/evil`) or that hold control characters, created at A with a
/// raw HTTP client: replication and a resync under quarantine and under
/// discard refuse them and list them; nothing outside the container changes
/// at either cluster; ordinary and awkward-but-safe names still replicate.
async fn unsafe_names(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "names";
    let nb = "names-nb";
    let qc = quarantine_container(c);
    for (cl, who) in [(a, "A"), (b, "B")] {
        cl.put_container(c, &BTreeMap::new()).await?;
        cl.put_container(nb, &BTreeMap::new()).await?;
        // what an escaped copy, delete or quarantine would hit
        put(cl, nb, "evil", &format!("neighbour at {who}")).await?;
        put(cl, nb, "e2", &format!("neighbour 2 at {who}")).await?;
    }
    let safe = [
        "ok1",
        "b",
        "x/y",
        "back\\slash",
        "h#x",
        "q?x",
        "p%2e%2e/z",
        "e//x",
        "/lead",
        "trail/",
    ];
    for o in safe {
        put(a, c, o, &format!("{o} at A")).await?;
    }
    for (raw, _) in UNSAFE {
        raw_put(&env.cl.a, c, raw, "unsafe at A").await?;
    }
    ensure!(
        names(a, c).await?.len() == safe.len() + UNSAFE.len(),
        "the raw names exist at A: {:?}",
        names(a, c).await?
    );
    let skip = [c, qc.as_str()];
    let (before_a, before_b) = (snapshot(a, &skip).await?, snapshot(b, &skip).await?);

    // 1. replication A → B
    let repl = env.replicator(&[c], "names.json");
    repl.start(CancellationToken::new()).await?;
    let mut want: Vec<String> = safe.iter().map(|s| s.to_string()).collect();
    want.sort();
    eventually("the safe names at B", PATIENCE, || async {
        Ok(names(b, c).await? == want)
    })
    .await?;
    for o in safe {
        ensure!(
            body(b, c, o).await?.as_deref() == Some(&*format!("{o} at A")),
            "{o} at B"
        );
    }
    // deletes still flow
    a.delete_object(c, "ok1").await?;
    eventually("delete carried", PATIENCE, || async {
        Ok(!names(b, c).await?.contains(&"ok1".to_string()))
    })
    .await?;
    repl.stop().await;
    ensure!(
        snapshot(a, &skip).await? == before_a,
        "nothing outside {c} changed at A"
    );
    ensure!(
        snapshot(b, &skip).await? == before_b,
        "nothing outside {c} changed at B"
    );
    check_refused(&repl.refused(), c)?;
    ensure!(
        repl.verify().await?.is_empty(),
        "refused names are not differences"
    );

    // 2. failback: B is stale and holds the same unsafe names, plus a divergent write
    for (raw, _) in UNSAFE {
        raw_put(&env.cl.b, c, raw, "unsafe at B").await?;
    }
    put(a, c, "b", "b changed at A").await?;
    for (policy, div) in [
        (DivergentPolicy::Quarantine, "div-q"),
        (DivergentPolicy::Discard, "div-d"),
    ] {
        put(b, c, div, "divergent at B").await?;
        let res = env.resyncer(false, &[c], "names.json", DeleteGuard::default());
        let report = res.pass(policy, CancellationToken::new(), None).await?;
        let d: Vec<_> = report
            .divergent
            .iter()
            .map(|d| (d.name.as_str(), d.action.as_str()))
            .collect();
        let action = if policy == DivergentPolicy::Quarantine {
            "quarantined"
        } else {
            "discarded"
        };
        ensure!(
            d == [(&*format!("{c}/{div}"), action)],
            "{policy:?}: only the ordinary divergent item: {d:?}"
        );
        ensure!(
            body(b, c, "b").await?.as_deref() == Some("b changed at A"),
            "fetches still work"
        );
        let at_b = names(b, c).await?;
        ensure!(!at_b.contains(&div.to_string()), "{at_b:?}");
        ensure!(
            at_b.len() == safe.len() - 1 + UNSAFE.len(),
            "the unsafe names stay at B, untouched: {at_b:?}"
        );
        let q = names(b, &qc).await?;
        ensure!(
            q.iter().all(|n| n.starts_with("div-q@")),
            "only the ordinary item in quarantine: {q:?}"
        );
        ensure!(res.verify(&[]).await?.differences.is_empty());
        ensure!(
            snapshot(a, &skip).await? == before_a,
            "{policy:?}: nothing outside {c} changed at A"
        );
        ensure!(
            snapshot(b, &skip).await? == before_b,
            "{policy:?}: nothing outside {c} changed at B"
        );
        check_refused(&res.refused(), c)?;
    }
    ensure!(body(b, nb, "evil").await?.as_deref() == Some("neighbour at B"));
    Ok(())
}

/// The guard of the guard scenarios: more than 3 deletions and over 50 %.
const GUARD: DeleteGuard = DeleteGuard {
    max_share: 0.5,
    max_count: 3,
};

/// Ten objects `PREFIX0..9` at A in container `c`, replicated to B by a
/// running replicator under [`GUARD`] (manifest `manifest`).
async fn ten_replicated_under_guard(
    env: &Env<'_>,
    c: &str,
    prefix: &str,
    manifest: &str,
) -> Result<(SwiftReplicator, Vec<String>)> {
    let (a, b) = (&env.a, &env.b);
    a.put_container(c, &BTreeMap::new()).await?;
    let all: Vec<String> = (0..10).map(|i| format!("{prefix}{i}")).collect();
    for o in &all {
        put(a, c, o, o).await?;
    }
    let repl = env.guarded_replicator(&[c], manifest, GUARD);
    repl.start(CancellationToken::new()).await?;
    eventually("ten objects at B", PATIENCE, || async {
        Ok(names(b, c).await?.len() == 10)
    })
    .await?;
    Ok((repl, all))
}

/// Most of a source container deleted: the copier deletes nothing at the
/// peer and says why; the source restored, replication goes on by itself;
/// a held round goes ahead after `clear_guard`. The same for the resyncer.
async fn delete_guard(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "guard";
    let (repl, all) = ten_replicated_under_guard(env, c, "o", "guard.json").await?;
    ensure!(repl.guard().is_none());
    // the source loses most of its objects between two rounds (the
    // replicator stopped meanwhile, so no round sees only a part)
    repl.stop().await;
    for o in &all[..8] {
        a.delete_object(c, o).await?;
    }
    repl.start(CancellationToken::new()).await?;
    eventually("the guard holds", PATIENCE, || async {
        Ok(repl.guard().is_some())
    })
    .await?;
    let msg = repl.guard().context("guard message")?;
    ensure!(
        msg.contains("8 of 10") && msg.contains("warden clear"),
        "{msg}"
    );
    ensure!(!msg.contains(swiftd::KEY), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        names(b, c).await?.len() == 10,
        "nothing deleted at B while held"
    );
    ensure!(repl.guard().is_some(), "still held");
    let r = repl.resync(CancellationToken::new(), None).await;
    ensure!(matches!(r, Err(AgentError::DeleteGuard(_))), "{r:?}");
    // the source restored: replication goes on by itself (a round during
    // the restore would carry the deletions it still sees, if few enough)
    repl.stop().await;
    for o in &all[..8] {
        put(a, c, o, o).await?;
    }
    repl.start(CancellationToken::new()).await?;
    eventually("released after the restore", PATIENCE, || async {
        Ok(repl.guard().is_none() && repl.verify().await?.is_empty())
    })
    .await?;
    // deletes within the limits flow
    a.delete_object(c, "o9").await?;
    a.delete_object(c, "o8").await?;
    eventually("two deletes carried", PATIENCE, || async {
        Ok(names(b, c).await?.len() == 8)
    })
    .await?;
    // held again (six more, with the two of a moment ago: 8 of 10), then
    // cleared by the operator
    repl.stop().await;
    for o in &all[..6] {
        a.delete_object(c, o).await?;
    }
    repl.start(CancellationToken::new()).await?;
    eventually("held again", PATIENCE, || async {
        Ok(repl.guard().is_some())
    })
    .await?;
    let msg = repl.guard().context("guard message")?;
    ensure!(
        msg.contains("6 of 8 items") && msg.contains("after 2 deleted") && msg.contains("8 of 10"),
        "{msg}"
    );
    ensure!(names(b, c).await?.len() == 8);
    ensure!(repl.clear_guard(), "a round was held");
    eventually("the cleared round deletes", PATIENCE, || async {
        Ok(names(b, c).await? == ["o6", "o7"] && repl.guard().is_none())
    })
    .await?;
    ensure!(!repl.clear_guard(), "nothing held any more");
    repl.stop().await;

    // the resyncer: A (stale) from B, where most objects were deleted
    for o in &all {
        put(a, c, o, o).await?;
    }
    repl.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.len() == 10);
    for o in &all[..8] {
        b.delete_object(c, o).await?;
    }
    let res = env.resyncer(true, &[c], "guard.json", GUARD);
    let r = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    let Err(AgentError::DeleteGuard(msg)) = r else {
        bail!("the resync pass is held: {r:?}");
    };
    ensure!(msg.contains("8 of 10"), "{msg}");
    ensure!(res.guard().as_deref() == Some(msg.as_str()));
    ensure!(names(a, c).await?.len() == 10, "nothing deleted at A");
    for o in &all[..8] {
        put(b, c, o, o).await?;
    }
    let p = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(p.deleted == 0 && res.guard().is_none(), "{p:?}");
    for o in &all[..8] {
        b.delete_object(c, o).await?;
    }
    ensure!(res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .is_err());
    ensure!(res.clear_guard());
    let p = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(p.deleted == 8, "{p:?}");
    ensure!(names(a, c).await? == ["o8", "o9"]);
    Ok(())
}

/// A source that lists nothing while the destination holds objects the
/// manifest says are in sync (every object deleted there, or the wrong
/// account): the round is held whatever the counts — a small group's few
/// objects are below them — until the operator clears it. The same for a
/// resync pass whose peer lists nothing.
async fn delete_guard_empty_source(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let all = ["e0", "e1", "e2"];
    let c = "guardempty";
    a.put_container(c, &BTreeMap::new()).await?;
    for o in all {
        put(a, c, o, o).await?;
    }
    let repl = env.replicator(&[c], "guardempty.json");
    repl.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await? == all);
    for o in all {
        a.delete_object(c, o).await?;
    }
    let r = repl.resync(CancellationToken::new(), None).await;
    let Err(AgentError::DeleteGuard(msg)) = r else {
        bail!(
            "an emptied source's round was not held: {r:?}; at B now {:?}",
            names(b, c).await?
        );
    };
    ensure!(
        msg.contains("lists no object in any placement container")
            && msg.contains("would delete 3 of 3 objects")
            && msg.contains("warden clear"),
        "{msg}"
    );
    ensure!(names(b, c).await? == all, "nothing deleted at B while held");
    ensure!(repl.clear_guard(), "a round was held");
    repl.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.is_empty(), "the cleared round deletes");

    // the resyncer: A (stale) from B, whose objects are all gone
    let c = "guardemptypeer";
    a.put_container(c, &BTreeMap::new()).await?;
    for o in all {
        put(a, c, o, o).await?;
    }
    env.replicator(&[c], "guardemptypeer.json")
        .resync(CancellationToken::new(), None)
        .await?;
    for o in all {
        b.delete_object(c, o).await?;
    }
    let res = env.resyncer(true, &[c], "guardemptypeer.json", DeleteGuard::default());
    let r = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    let Err(AgentError::DeleteGuard(msg)) = r else {
        bail!(
            "a resync from an empty peer was not held: {r:?}; here now {:?}",
            names(a, c).await?
        );
    };
    ensure!(
        msg.contains("the peer") && msg.contains("lists no object"),
        "{msg}"
    );
    ensure!(names(a, c).await? == all, "nothing deleted at A while held");
    ensure!(res.clear_guard());
    let p = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(p.deleted == 3 && names(a, c).await?.is_empty(), "{p:?}");

    // A site that was never a source (no manifest), resynced under the
    // discard policy — as a switchover's replica pass always is — from a
    // peer that lists nothing: what it holds is divergent and the peer
    // lacks it, so the pass would discard it all. Held the same way.
    let c = "guardemptydiscard";
    a.put_container(c, &BTreeMap::new()).await?;
    b.put_container(c, &BTreeMap::new()).await?;
    for o in all {
        put(a, c, o, o).await?;
    }
    let res = env.resyncer(true, &[c], "guardemptydiscard.json", DeleteGuard::default());
    let r = res
        .pass(DivergentPolicy::Discard, CancellationToken::new(), None)
        .await;
    let Err(AgentError::DeleteGuard(msg)) = r else {
        bail!(
            "discards against an empty peer were not held: {r:?}; here now {:?}",
            names(a, c).await?
        );
    };
    ensure!(
        msg.contains("lists no object") && msg.contains("3 the peer lacks"),
        "{msg}"
    );
    ensure!(
        names(a, c).await? == all,
        "nothing discarded at A while held"
    );
    Ok(())
}

/// A source emptied slowly, one object a round (a `swift delete` of a
/// whole container runs for minutes): each round's one deletion is within
/// the limits, but those of the last minute count together, so the round
/// that takes the total over them is held; nothing more is deleted at B.
/// The same for the passes of a resync.
async fn delete_guard_window(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "guard-slow";
    let (repl, all) = ten_replicated_under_guard(env, c, "s", "guard-slow.json").await?;
    // five, one at a time, each carried before the next: 5 of 10 is 50 %
    for (i, o) in all[..5].iter().enumerate() {
        a.delete_object(c, o).await?;
        eventually("the deletion carried", PATIENCE, || async {
            Ok(names(b, c).await?.len() == 9 - i)
        })
        .await?;
        ensure!(repl.guard().is_none(), "{i}: {:?}", repl.guard());
    }
    a.delete_object(c, &all[5]).await?;
    eventually("the sixth is held", PATIENCE, || async {
        Ok(repl.guard().is_some())
    })
    .await?;
    let msg = repl.guard().context("guard message")?;
    ensure!(
        msg.contains("1 of 5 items") && msg.contains("after 5 deleted") && msg.contains("6 of 10"),
        "{msg}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        names(b, c).await? == all[5..],
        "nothing more deleted at B while held"
    );
    ensure!(repl.clear_guard());
    eventually("the cleared round deletes", PATIENCE, || async {
        Ok(names(b, c).await? == all[6..] && repl.guard().is_none())
    })
    .await?;
    repl.stop().await;

    // the resyncer (A brought to B's content): a peer emptied while the
    // passes run, two objects, then four (4 of 8 alone is 50 %, not over)
    for o in &all {
        put(a, c, o, o).await?;
    }
    repl.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.len() == 10);
    let res = env.resyncer(true, &[c], "guard-slow.json", GUARD);
    for o in &all[..2] {
        b.delete_object(c, o).await?;
    }
    let p = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(p.deleted == 2, "{p:?}");
    for o in &all[2..6] {
        b.delete_object(c, o).await?;
    }
    let r = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    let Err(AgentError::DeleteGuard(msg)) = r else {
        bail!("the second pass is held: {r:?}");
    };
    ensure!(
        msg.contains("4 of 8 items") && msg.contains("after 2 deleted") && msg.contains("6 of 10"),
        "{msg}"
    );
    ensure!(names(a, c).await?.len() == 8, "nothing more deleted at A");
    Ok(())
}

/// Deletions the peer refuses are not counted against the guard: a
/// replicator whose user at B may read the container but not delete in it
/// (Swift's own ACLs: `X-Container-Read` only) retries its round of three
/// deletions again and again; were the failed deletions counted, the third
/// try would make them 9 of 16 and hold replication for nothing.
async fn delete_guard_refused_deletes(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "guard-ro";
    a.put_container(c, &BTreeMap::new()).await?;
    let all: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for o in &all {
        put(a, c, o, o).await?;
    }
    let admin = env.guarded_replicator(&[c], "guard-ro.json", GUARD);
    admin.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.len() == 10);
    // at B only (a reader does not see a container's ACLs, so the
    // container's headers look the same from both sides)
    let acl: BTreeMap<String, String> =
        [("x-container-read".to_string(), "test:tester2".to_string())].into();
    b.post_container(c, &acl).await?;
    let mut settings = SwiftReplicatorSettings::new(
        env.cl.a.settings(),
        SwiftSettings::new(&env.cl.b.auth_url, "test:tester2", Secret::new("testing2")),
        vec![c.to_string()],
        env.cl.scratch().join("guard-ro.json"),
    );
    settings.guard = GUARD;
    let reader = SwiftReplicator::new(settings)?;
    for o in &all[..3] {
        a.delete_object(c, o).await?;
    }
    reader.start(CancellationToken::new()).await?;
    // rounds retried at 0.2, 0.4, 0.8, 1.6 and 3.2 s: five in six seconds
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(
        names(b, c).await?.len() == 10,
        "the deletions were refused at B"
    );
    ensure!(
        reader.guard().is_none(),
        "refused deletions counted: {:?}",
        reader.guard()
    );
    reader.stop().await;
    // the same deletions by a user who may make them: carried, not held
    let r = admin.resync(CancellationToken::new(), None).await?;
    ensure!(r.done.items == 3, "{r:?}");
    ensure!(names(b, c).await? == all[3..]);
    Ok(())
}

/// Removes `object`'s row from `cluster`'s container database of
/// `container` (sqlite, through python3's module): the listing no longer
/// shows it while the object servers still hold it, as a container replica
/// that lost the row, or an update left pending while the container server
/// was down, would list it.
fn drop_listing_row(env: &Env<'_>, cluster: &str, container: &str, object: &str) -> Result<()> {
    let root = env.cl.scratch().join("swift").join(cluster).join("srv");
    let script = r#"
import glob, sqlite3, sys
from swift.common.db import chexor
root, container, name = sys.argv[1:4]
hit = 0
for db in glob.glob(root + "/*/containers/**/*.db", recursive=True):
    c = sqlite3.connect(db)
    c.create_function("chexor", 3, chexor)
    if c.execute("SELECT container FROM container_stat").fetchone()[0] == container:
        hit += c.execute("DELETE FROM object WHERE name = ?", (name,)).rowcount
        c.commit()
    c.close()
sys.exit(0 if hit else 3)
"#;
    // Swift's own interpreter (its modules are installed for it)
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&root)
        .arg(container)
        .arg(object)
        .output()
        .context("run /usr/bin/python3")?;
    ensure!(
        out.status.success(),
        "no listing row {container}/{object} under {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A listing that lags behind the objects never makes a delete undo an
/// acknowledged write: an object A no longer lists but still holds is not
/// deleted at B by the copier, and one B no longer lists but holds is not
/// deleted at A by the failback's resync; objects really gone are.
async fn lagging_listing(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "lagging";
    a.put_container(c, &BTreeMap::new()).await?;
    for o in ["held", "gone", "held-b", "gone-b"] {
        put(a, c, o, o).await?;
    }
    let copier = env.replicator(&[c], "lagging.json");
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.len() == 4, "all four at B");
    // A: "gone" really deleted, "held" only missing from the listing
    a.delete_object(c, "gone").await?;
    drop_listing_row(env, "a", c, "held")?;
    ensure!(
        !names(a, c).await?.iter().any(|n| n == "held"),
        "A no longer lists held"
    );
    ensure!(
        body(a, c, "held").await?.as_deref() == Some("held"),
        "A still holds held"
    );
    copier.resync(CancellationToken::new(), None).await?;
    let at_b = names(b, c).await?;
    ensure!(
        at_b.iter().any(|n| n == "held") && !at_b.iter().any(|n| n == "gone"),
        "B keeps what A still holds and drops what A deleted: {at_b:?}"
    );
    // B's listing lags: an object copied to B that B does not list yet is
    // deleted at A. The round asks B's object servers, deletes it there,
    // and does not forget it while the listing lags (it would stay at B for
    // good, and a failback would bring it back to A).
    put(a, c, "lag-at-b", "copied, then deleted at A").await?;
    copier.resync(CancellationToken::new(), None).await?;
    // (Listed once, so that the row is in the database, not only pending.)
    ensure!(
        names(b, c).await?.iter().any(|n| n == "lag-at-b"),
        "lag-at-b was copied to B"
    );
    drop_listing_row(env, "b", c, "lag-at-b")?;
    a.delete_object(c, "lag-at-b").await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(
        body(b, c, "lag-at-b").await?.is_none(),
        "a delete at A did not reach B while B's listing did not show the object"
    );
    // The failback direction: A brought to B, whose listing lags.
    let res = env.resyncer(true, &[c], "lagging-back.json", DeleteGuard::default());
    res.pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    b.delete_object(c, "gone-b").await?;
    drop_listing_row(env, "b", c, "held-b")?;
    res.pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    let at_a = names(a, c).await?;
    ensure!(
        at_a.iter().any(|n| n == "held-b") && !at_a.iter().any(|n| n == "gone-b"),
        "A keeps what B still holds and drops what B deleted: {at_a:?}"
    );
    // What A kept, B holds: the failback's verification does not call it
    // extra at A while B's listing lags (it would fail every failback).
    let v = res.verify(&[]).await?;
    ensure!(
        v.differences.is_empty(),
        "A holds what B holds: {:?}",
        v.differences
    );
    Ok(())
}

/// The clusters' clocks disagree: B's copy of an object carries an origin
/// time far ahead of A's clock (B's clock ran ahead while it served writes
/// during a failover). A write at A after that is still copied to B — the
/// source's own listing timestamp moved on since both were seen equal —
/// instead of B's copy being taken for the newer one (and the lag shown as
/// 0) for as long as the clocks disagree.
async fn clock_skew(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "skewed";
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "x", "first version, written at A").await?;
    let copier = env.replicator(&[c], "skewed.json");
    copier.resync(CancellationToken::new(), None).await?;
    // Seen equal on both sides (the round after the copy records it).
    copier.resync(CancellationToken::new(), None).await?;
    // B's version, stamped an hour ahead of A's clock.
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64()
        + 3600.0;
    let mut meta = BTreeMap::new();
    meta.insert(
        warden_agents::replicate::swift::ORIGIN_TS_HEADER.to_string(),
        format!("{ahead:.5}"),
    );
    b.put_object(
        c,
        "x",
        Bytes::from_static(b"written at B, clock ahead"),
        "text/plain",
        &meta,
    )
    .await?;
    // Then A's users write x again: later in truth, earlier by B's clock.
    put(a, c, "x", "second version, written at A later").await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(
        body(b, c, "x").await?.as_deref() == Some("second version, written at A later"),
        "A's later write did not reach B (B's copy claimed a later time): {:?}",
        body(b, c, "x").await?
    );
    Ok(())
}

/// An object written at B (the destination) after the copier made it
/// equal — a write at the standby after a failback's cut-over, a hand
/// edit — is newer there than A's: the copier leaves it (A's older version
/// must not overwrite it), and says so (`drift`, a group alert) until the
/// sites agree again. Before, it was left with a debug line only, the lag
/// shown as 0, and the sites differed for good with nothing said.
async fn newer_at_destination(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "newer-there";
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "x", "written at A").await?;
    let copier = env.replicator(&[c], "newer-there.json");
    copier.resync(CancellationToken::new(), None).await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(copier.drift().is_none(), "{:?}", copier.drift());
    // Written at B later, by someone else than replication.
    tokio::time::sleep(Duration::from_millis(50)).await;
    put(b, c, "x", "written at B afterwards").await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(
        body(b, c, "x").await?.as_deref() == Some("written at B afterwards"),
        "A's older version overwrote B's newer one"
    );
    let said = copier.drift().unwrap_or_default();
    ensure!(
        said.contains("1 object(s)") && said.contains("newer-there/x"),
        "the copier says nothing of B's newer version: {said:?}"
    );
    // A writes x again: the newer version is A's, copied; nothing to say.
    put(a, c, "x", "written at A again").await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(
        body(b, c, "x").await?.as_deref() == Some("written at A again"),
        "A's new write reached B"
    );
    ensure!(copier.drift().is_none(), "{:?}", copier.drift());
    Ok(())
}

/// Objects created, overwritten, renamed (copy + delete) and deleted at A
/// show up at B with the same ETag, content type and metadata.
async fn continuous_replication(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "repl";
    let repl = env.replicator(&[c], "repl.json");
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await?;
    eventually("container at A", PATIENCE, || async {
        Ok(a.head_container(c).await?.is_some())
    })
    .await?;
    let e1 = a
        .put_object(
            c,
            "dir/one.txt",
            Bytes::from_static(b"one v1"),
            "text/x-one",
            &meta(&[("x-object-meta-color", "blue")]),
        )
        .await?;
    put(a, c, "two", "two").await?;
    put(a, c, "old name", "renamed content").await?;
    put(a, c, "doomed", "to be deleted").await?;
    eventually("four objects at B", PATIENCE, || async {
        Ok(etags(b, c).await? == etags(a, c).await? && etags(b, c).await?.len() == 4)
    })
    .await?;
    let (info, got) = b.get_object(c, "dir/one.txt").await?.context("one at B")?;
    ensure!(info.etag == e1 && &got[..] == b"one v1", "{info:?}");
    ensure!(info.content_type == "text/x-one", "{info:?}");
    ensure!(info.meta.get("x-object-meta-color").map(String::as_str) == Some("blue"));
    let origin = a.head_object(c, "dir/one.txt").await?.context("one at A")?;
    ensure!(
        info.origin_us() == origin.timestamp_us,
        "the copy carries A's X-Timestamp in {ORIGIN_TS_HEADER}: {info:?} vs {origin:?}"
    );

    // overwrite (new content, type, metadata), rename, delete
    let e1b = a
        .put_object(
            c,
            "dir/one.txt",
            Bytes::from_static(b"one v2, longer"),
            "application/x-two",
            &meta(&[("x-object-meta-color", "red"), ("x-object-meta-size", "L")]),
        )
        .await?;
    a.copy_object(c, "old name", c, "new name").await?;
    a.delete_object(c, "old name").await?;
    a.delete_object(c, "doomed").await?;
    eventually("changes at B", PATIENCE, || async {
        let at_b = etags(b, c).await?;
        Ok(at_b == etags(a, c).await? && at_b.get("dir/one.txt") == Some(&e1b))
    })
    .await?;
    let at_b = etags(b, c).await?;
    ensure!(
        at_b.keys().collect::<Vec<_>>() == ["dir/one.txt", "new name", "two"],
        "{at_b:?}"
    );
    let info = b.head_object(c, "dir/one.txt").await?.context("one at B")?;
    ensure!(info.content_type == "application/x-two", "{info:?}");
    ensure!(info.meta.get("x-object-meta-color").map(String::as_str) == Some("red"));
    ensure!(info.meta.get("x-object-meta-size").map(String::as_str) == Some("L"));
    ensure!(body(b, c, "new name").await?.as_deref() == Some("renamed content"));

    // a rewrite with the same content but new metadata is carried too
    a.put_object(
        c,
        "two",
        Bytes::from_static(b"two"),
        "text/x-retyped",
        &BTreeMap::new(),
    )
    .await?;
    eventually("retyped object at B", PATIENCE, || async {
        Ok(b.head_object(c, "two").await?.map(|i| i.content_type) == Some("text/x-retyped".into()))
    })
    .await?;

    eventually("lag back to zero", PATIENCE, || async {
        Ok(repl.lag().is_zero())
    })
    .await?;
    let diffs = repl.verify().await?;
    ensure!(diffs.is_empty(), "verify: {diffs:?}");
    // the manifest names every replicated object as ETAG@TIMESTAMP
    let m = warden_agents::replicate::Manifest::load(&env.cl.scratch().join("repl.json"))?;
    let v = &m
        .items
        .get("repl/dir/one.txt")
        .context("manifest entry")?
        .version;
    ensure!(v.starts_with(&format!("{e1b}@")), "{v}");
    repl.stop().await;
    // stopped: nothing flows any more
    put(a, c, "after-stop", "x").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        b.head_object(c, "after-stop").await?.is_none(),
        "replicated after stop()"
    );
    shutdown.cancel();
    Ok(())
}

/// A change that keeps the ETag — a metadata-only POST, the same body
/// written again with new metadata — is copied while the replicator runs,
/// and also when it was made while the agent was down: a new replicator on
/// the same manifest (a restarted agent) still knows the listing timestamp
/// it last confirmed, sees the newer one, and copies the object again.
async fn metadata_changes(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "metapost";
    let http_a = Http::new(&env.cl.a).await?;
    let meta_at_b = |obj: &'static str| async move {
        Ok::<_, anyhow::Error>(
            b.head_object(c, obj)
                .await?
                .and_then(|i| i.meta.get("x-object-meta-color").cloned()),
        )
    };
    let post = |obj: &'static str, color: &'static str| {
        let http_a = &http_a;
        async move {
            let (status, _, text) = http_a
                .send(
                    reqwest::Method::POST,
                    &format!("{c}/{obj}"),
                    &[("X-Object-Meta-Color", color)],
                    Vec::new(),
                )
                .await?;
            ensure!(
                status == 202,
                "POST {obj}: {status} {}",
                String::from_utf8_lossy(&text)
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    let repl = env.replicator(&[c], "metapost.json");
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await?;
    eventually("container at A", PATIENCE, || async {
        Ok(a.head_container(c).await?.is_some())
    })
    .await?;
    for obj in ["live", "offline"] {
        a.put_object(
            c,
            obj,
            Bytes::from_static(b"same body"),
            "text/plain",
            &meta(&[("x-object-meta-color", "red")]),
        )
        .await?;
    }
    eventually("both red at B", PATIENCE, || async {
        Ok(meta_at_b("live").await?.as_deref() == Some("red")
            && meta_at_b("offline").await?.as_deref() == Some("red"))
    })
    .await?;
    settled(&repl).await?;

    // While it runs: a POST is copied.
    post("live", "blue").await?;
    eventually("live blue at B", PATIENCE, || async {
        Ok(meta_at_b("live").await?.as_deref() == Some("blue"))
    })
    .await?;

    // While the agent is down: a POST, then a new replicator (a restart).
    repl.stop().await;
    shutdown.cancel();
    drop(repl);
    post("offline", "green").await?;
    let repl = env.replicator(&[c], "metapost.json");
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await?;
    eventually("offline green at B after a restart", PATIENCE, || async {
        Ok(meta_at_b("offline").await?.as_deref() == Some("green"))
    })
    .await?;
    ensure!(meta_at_b("live").await?.as_deref() == Some("blue"));
    let origin = a.head_object(c, "offline").await?.context("offline at A")?;
    let copy = b.head_object(c, "offline").await?.context("offline at B")?;
    ensure!(
        copy.origin_us() == origin.timestamp_us,
        "the copy carries the POST's timestamp: {copy:?} vs {origin:?}"
    );
    // Settled, nothing more is copied round after round.
    settled(&repl).await?;
    let before = copy.timestamp_us;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = b.head_object(c, "offline").await?.context("offline at B")?;
    ensure!(
        again.timestamp_us == before,
        "copied again without a change: {again:?}"
    );
    repl.stop().await;
    shutdown.cancel();

    // Failback: B was active. A POST there changed "live" (keeping every
    // other metadata header, warden's origin header included, as clients
    // that merge metadata do); "offline" was changed at A before the
    // disaster and never copied (a POST at A while the copier was down).
    // A resyncs from B on the same manifest: "live" is fetched with B's
    // metadata, "offline" is divergent (quarantined, then B's version).
    let http_b = Http::new(&env.cl.b).await?;
    let (_, live_b, _) = http_b
        .send(reqwest::Method::HEAD, &format!("{c}/live"), &[], Vec::new())
        .await?;
    let mut keep: Vec<(String, String)> = live_b
        .iter()
        .filter(|(k, _)| k.starts_with("x-object-meta-") && *k != "x-object-meta-color")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ensure!(
        keep.iter().any(|(k, _)| k.contains("warden")),
        "B's copy carries warden's origin header: {live_b:?}"
    );
    keep.push(("x-object-meta-color".into(), "purple".into()));
    let headers: Vec<(&str, &str)> = keep.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, _) = http_b
        .send(
            reqwest::Method::POST,
            &format!("{c}/live"),
            &headers,
            Vec::new(),
        )
        .await?;
    ensure!(status == 202, "POST live at B: {status}");
    post("offline", "white").await?;
    let meta_at_a = |obj: &'static str| async move {
        Ok::<_, anyhow::Error>(
            a.head_object(c, obj)
                .await?
                .and_then(|i| i.meta.get("x-object-meta-color").cloned()),
        )
    };
    let res = SwiftResyncer::new(SwiftResyncerSettings::new(
        env.cl.a.settings(),
        env.cl.b.settings(),
        vec![c.to_string()],
        env.cl.scratch().join("metapost.json"),
    ))?;
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        report.deleted == 0 && report.divergent.len() == 1,
        "offline divergent: {report:?}"
    );
    ensure!(
        report.divergent[0].name == format!("{c}/offline"),
        "{report:?}"
    );
    ensure!(report.divergent[0].action == "quarantined", "{report:?}");
    ensure!(
        meta_at_a("live").await?.as_deref() == Some("purple"),
        "B's POST reached A"
    );
    ensure!(
        meta_at_a("offline").await?.as_deref() == Some("green"),
        "B's version at A"
    );
    let again = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        again.fetched.items == 0 && again.divergent.is_empty(),
        "nothing left: {again:?}"
    );

    // A active again: its copier does not copy back what the resync fetched.
    let b_live = b.head_object(c, "live").await?.context("live at B")?;
    let repl = env.replicator(&[c], "metapost.json");
    let shutdown = CancellationToken::new();
    repl.start(shutdown.clone()).await?;
    settled(&repl).await?;
    let b_live_after = b.head_object(c, "live").await?.context("live at B")?;
    ensure!(
        b_live_after.timestamp_us == b_live.timestamp_us,
        "copied back after the failback: {b_live_after:?}"
    );
    repl.stop().await;
    shutdown.cancel();
    Ok(())
}

/// The destination site down: start() still succeeds, the lag grows while
/// A is written, and everything arrives once B is back (retried in the background).
async fn peer_down_and_back(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "outage";
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "before", "written before the outage").await?;
    env.cl.stop_one("b");
    let repl = env.replicator(&[c], "outage.json");
    let started = Instant::now();
    let r = repl.start(CancellationToken::new()).await;
    ensure!(
        r.is_ok(),
        "an unreachable peer is retried, not fatal: {r:?}"
    );
    ensure!(started.elapsed() < Duration::from_secs(10));
    put(a, c, "during", "written while B is down").await?;
    eventually("lag grows while B is down", PATIENCE, || async {
        Ok(repl.lag() > Duration::from_secs(2))
    })
    .await?;
    env.cl.start_one("b");
    eventually(
        "everything at B after it is back",
        Duration::from_secs(60),
        || async { Ok(etags(b, c).await?.len() == 2 && repl.verify().await?.is_empty()) },
    )
    .await?;
    eventually("lag back to zero", PATIENCE, || async {
        Ok(repl.lag().is_zero())
    })
    .await?;
    repl.stop().await;
    Ok(())
}

/// Containers of the placement list created at either site appear at every
/// site with their metadata and ACLs.
async fn placement_containers(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let at_a = meta(&[
        ("x-container-meta-owner", "alice"),
        ("x-container-read", ".r:*,.rlistings"),
        ("x-container-write", "test:tester2"),
    ]);
    a.put_container("place-a", &at_a).await?;
    b.put_container("place-b", &meta(&[("x-container-meta-owner", "bob")]))
        .await?;
    let repl = env.replicator(&["place-a", "place-b", "place-new"], "place.json");
    repl.start(CancellationToken::new()).await?;
    eventually("all containers on both sites", PATIENCE, || async {
        for c in ["place-a", "place-b", "place-new"] {
            if a.head_container(c).await?.is_none() || b.head_container(c).await?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    let pa = b.head_container("place-a").await?.context("place-a at B")?;
    ensure!(
        pa.replicated() == at_a,
        "place-a at B: {:?}",
        pa.replicated()
    );
    let pb = a.head_container("place-b").await?.context("place-b at A")?;
    ensure!(pb.get("x-container-meta-owner") == Some("bob"), "{pb:?}");
    // a change at A follows; a removed ACL is removed at B
    a.post_container(
        "place-a",
        &meta(&[
            ("x-container-meta-owner", "carol"),
            ("x-remove-container-write", "x"),
        ]),
    )
    .await?;
    eventually("metadata change at B", PATIENCE, || async {
        let h = b.head_container("place-a").await?.unwrap_or_default();
        Ok(
            h.get("x-container-meta-owner") == Some("carol")
                && h.get("x-container-write").is_none(),
        )
    })
    .await?;
    repl.stop().await;
    Ok(())
}

/// B active while A was stale: B's writes and deletes reach A, A's own
/// writes are handled by `policy`, nothing B holds is missing afterwards.
async fn resync_after_disaster(env: &Env<'_>, policy: DivergentPolicy) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = format!("dis-{}", policy.as_str());
    let c = c.as_str();
    let manifest = format!("dis-{}.json", policy.as_str());
    // 1. normal times: A → B
    let repl = env.replicator(&[c], &manifest);
    repl.start(CancellationToken::new()).await?;
    eventually("container", PATIENCE, || async {
        Ok(a.head_container(c).await?.is_some())
    })
    .await?;
    for (o, v) in [
        ("same", "s"),
        ("gone-at-b", "g"),
        ("changed-at-b", "c1"),
        ("conflict", "k1"),
    ] {
        put(a, c, o, v).await?;
    }
    eventually("replicated before the disaster", PATIENCE, || async {
        Ok(etags(b, c).await?.len() == 4 && repl.verify().await?.is_empty())
    })
    .await?;
    repl.resync(CancellationToken::new(), None).await?; // one more confirmed round: manifest saved
    repl.stop().await;

    // 2. disaster: B active and written; A stale with writes of its own
    put(b, c, "new-at-b", "from b").await?;
    put(b, c, "changed-at-b", "c2 from b").await?;
    b.delete_object(c, "gone-at-b").await?;
    let conflict_b = put(b, c, "conflict", "k2 from b").await?;
    let div_a = put(a, c, "div-new", "only on a").await?;
    put(a, c, "conflict", "k3 from a").await?;

    // 3. failback: A resyncs from B
    let res = SwiftResyncer::new(SwiftResyncerSettings::new(
        env.cl.a.settings(),
        env.cl.b.settings(),
        vec![c.to_string()],
        env.cl.scratch().join(&manifest),
    ))?;
    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let report = res.pass(policy, CancellationToken::new(), Some(tx)).await?;
    let p = *rx.borrow();
    ensure!(
        p.items_left == 0 && p.bytes_left == 0 && p.items_done >= 4,
        "{p:?}"
    );
    ensure!(report.deleted == 1, "{report:?}");
    ensure!(
        report.fetched.items == 3,
        "new-at-b, changed-at-b, conflict: {report:?}"
    );
    ensure!(report.peer_items == 4, "{report:?}");
    let at_a = etags(a, c).await?;
    let at_b = etags(b, c).await?;
    for (name, etag) in &at_b {
        ensure!(
            at_a.get(name) == Some(etag),
            "{name} not at A as at B: {at_a:?}"
        );
    }
    ensure!(!at_a.contains_key("gone-at-b"), "{at_a:?}");
    ensure!(at_a.get("conflict") == Some(&conflict_b));
    let div: BTreeMap<&str, &warden_agents::replicate::DivergentItem> = report
        .divergent
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    ensure!(div.len() == 2, "{:?}", report.divergent);
    let dn = div
        .get(&*format!("{c}/div-new"))
        .context("div-new reported")?;
    let dc = div
        .get(&*format!("{c}/conflict"))
        .context("conflict reported")?;
    let qc = quarantine_container(c);
    let in_quarantine = |d: &warden_agents::replicate::DivergentItem| {
        let to = d.moved_to.clone();
        let qc = qc.clone();
        async move {
            let to = to.context("moved_to")?;
            let obj = to
                .strip_prefix(&format!("{qc}/"))
                .context("in the quarantine container")?;
            body(a, &qc, obj).await
        }
    };
    let mut except = Vec::new();
    match policy {
        DivergentPolicy::Keep => {
            ensure!(
                dn.action == "kept" && at_a.get("div-new") == Some(&div_a),
                "{dn:?}"
            );
            ensure!(dc.action == "quarantined", "a conflict cannot stay: {dc:?}");
            ensure!(in_quarantine(dc).await?.as_deref() == Some("k3 from a"));
            except.push(format!("{c}/div-new"));
        }
        DivergentPolicy::Quarantine => {
            ensure!(
                dn.action == "quarantined" && !at_a.contains_key("div-new"),
                "{dn:?}"
            );
            ensure!(in_quarantine(dn).await?.as_deref() == Some("only on a"));
            ensure!(dc.action == "quarantined");
            ensure!(in_quarantine(dc).await?.as_deref() == Some("k3 from a"));
        }
        DivergentPolicy::Discard => {
            ensure!(
                dn.action == "discarded" && !at_a.contains_key("div-new"),
                "{dn:?}"
            );
            ensure!(dc.action == "discarded" && dc.moved_to.is_none(), "{dc:?}");
            ensure!(
                a.head_container(&qc).await?.is_none(),
                "nothing quarantined"
            );
        }
    }
    let v = res.verify(&except).await?;
    ensure!(v.differences.is_empty(), "{v:?}");
    ensure!(v.items == 4 && v.excepted == except.len() as u64, "{v:?}");
    // without the exception a kept item is a difference
    if !except.is_empty() {
        ensure!(res.verify(&[]).await?.differences.len() == 1);
    }
    // a second pass has nothing left to do
    let again = res.pass(policy, CancellationToken::new(), None).await?;
    ensure!(again.fetched.items == 0 && again.deleted == 0, "{again:?}");
    ensure!(again.divergent.len() == except.len(), "{again:?}");
    Ok(())
}

/// Swift's own container sync, direction A → B, then flipped to B → A.
async fn container_sync(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "csync";
    let key = Secret::new("sync-key-123");
    let plan = |here: &swiftd::Cluster, peer: &swiftd::Cluster, epoch| {
        SwiftContainerSync::new(
            ContainerSyncSettings::new(
                here.settings(),
                peer.settings(),
                swiftd::REALM,
                &here.name,
                &peer.name,
                key.clone(),
                vec![c.to_string()],
            )
            .at_epoch("web", epoch),
        )
    };
    let from_a = plan(&env.cl.a, &env.cl.b, 1)?;
    let from_b = plan(&env.cl.b, &env.cl.a, 2)?;
    from_a.start(CancellationToken::new()).await?;
    let ha = a.head_container(c).await?.context("at A")?;
    let hb = b.head_container(c).await?.context("at B")?;
    ensure!(
        ha.get("x-container-sync-to") == Some("//realm1/clusterb/AUTH_test/csync"),
        "{ha:?}"
    );
    ensure!(hb.get("x-container-sync-to").is_none(), "{hb:?}");
    // the epoch's key, derived from the configured one, on both sides
    let k1 = from_a.sync_key().expose();
    ensure!(k1 != "sync-key-123" && k1.len() == 64);
    ensure!(
        hb.get("x-container-sync-key") == Some(k1) && ha.get("x-container-sync-key") == Some(k1),
        "{hb:?}"
    );
    let e = put(a, c, "from-a", "a to b").await?;
    eventually("A → B by container sync", SYNC_PATIENCE, || async {
        Ok(etags(b, c).await?.get("from-a") == Some(&e))
    })
    .await?;
    eventually("container-sync lag 0", PATIENCE, || async {
        Ok(from_a.lag().is_zero())
    })
    .await?;
    ensure!(from_a.verify().await?.is_empty());

    // failover: B becomes the source
    from_a.stop().await;
    from_b.start(CancellationToken::new()).await?;
    let ha = a.head_container(c).await?.context("at A")?;
    let hb = b.head_container(c).await?.context("at B")?;
    ensure!(
        hb.get("x-container-sync-to") == Some("//realm1/clustera/AUTH_test/csync"),
        "{hb:?}"
    );
    ensure!(ha.get("x-container-sync-to").is_none(), "{ha:?}");
    let e = put(b, c, "from-b", "b to a").await?;
    // while it is not there, verify says so
    let d = from_b.verify().await?;
    ensure!(
        d.is_empty() || d.iter().any(|d| d.path.ends_with("from-b")),
        "{d:?}"
    );
    eventually("B → A by container sync", SYNC_PATIENCE, || async {
        Ok(etags(a, c).await?.get("from-b") == Some(&e))
    })
    .await?;
    eventually("verify after the flip", PATIENCE, || async {
        Ok(from_b.verify().await?.is_empty())
    })
    .await?;
    from_b.stop().await;
    let hb = b.head_container(c).await?.context("at B")?;
    ensure!(
        hb.get("x-container-sync-to").is_none(),
        "stop removes Sync-To: {hb:?}"
    );

    // the `none` plan does nothing and reports nothing
    let none = NoReplication;
    none.start(CancellationToken::new()).await?;
    ensure!(none.lag().is_zero() && none.verify().await?.is_empty());
    Ok(())
}

/// A wrong key: a clear error naming the URL and user, never the key; start() fails.
async fn wrong_key(env: &Env<'_>) -> Result<()> {
    let bad = "Not-The-Key-91";
    let s = SwiftReplicatorSettings::new(
        env.cl.a.settings_with_key(bad),
        env.cl.b.settings(),
        vec!["wrong".into()],
        env.cl.scratch().join("wrong.json"),
    );
    let repl = SwiftReplicator::new(s)?;
    let t0 = Instant::now();
    let err = repl
        .start(CancellationToken::new())
        .await
        .err()
        .context("start() with a wrong key must fail")?;
    ensure!(t0.elapsed() < Duration::from_secs(10), "not right away");
    let msg = err.to_string();
    ensure!(
        matches!(err, AgentError::SwiftAuth { status: 401, .. }),
        "{err:?}"
    );
    ensure!(!err.is_retryable());
    ensure!(
        msg.contains(&env.cl.a.auth_url) && msg.contains("test:tester") && msg.contains("key"),
        "{msg}"
    );
    ensure!(
        !msg.contains(bad) && !format!("{err:?}").contains(bad),
        "{msg}"
    );
    ensure!(!format!("{:?}", repl.settings()).contains(bad));
    // nothing was created at B
    ensure!(env.b.head_container("wrong").await?.is_none());
    // same for the resyncer and the container-sync plan
    let res = SwiftResyncer::new(SwiftResyncerSettings::new(
        env.cl.a.settings_with_key(bad),
        env.cl.b.settings(),
        vec!["wrong".into()],
        env.cl.scratch().join("wrong.json"),
    ))?;
    let e = res
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .err()
        .context("pass with a wrong key")?;
    ensure!(
        matches!(e, AgentError::SwiftAuth { .. }) && !e.to_string().contains(bad),
        "{e}"
    );
    Ok(())
}

/// A token lost by the cluster (restart: tokens live in memcached) is renewed.
async fn token_renewal(env: &Env<'_>) -> Result<()> {
    let a = &env.a;
    put(a, "renew", "x", "before").await.ok();
    a.put_container("renew", &BTreeMap::new()).await?;
    put(a, "renew", "x", "before").await?;
    env.cl.stop_one("a");
    env.cl.start_one("a");
    // the same client, its old token unknown to the restarted memcached
    eventually("call after restart", PATIENCE, || async {
        Ok(body(a, "renew", "x").await?.as_deref() == Some("before"))
    })
    .await?;
    Ok(())
}

/// Plain HTTP to one cluster as `test:tester`, for what [`SwiftClient`]
/// does not send itself: manifests, symlinks, query strings.
struct Http {
    http: reqwest::Client,
    token: String,
    storage_url: String,
}

/// Status, headers (lower-case names) and body of one answer.
type Answer = (u16, BTreeMap<String, String>, Bytes);

impl Http {
    async fn new(cl: &swiftd::Cluster) -> Result<Http> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let resp = http
            .get(&cl.auth_url)
            .header("X-Auth-User", swiftd::USER)
            .header("X-Auth-Key", swiftd::KEY)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "auth: {}", resp.status());
        let token = resp
            .headers()
            .get("x-auth-token")
            .context("a token")?
            .to_str()?
            .to_string();
        Ok(Http {
            http,
            token,
            storage_url: cl.storage_url.clone(),
        })
    }

    /// `method` on `storage_url/path` (`path` may carry a query).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer> {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.storage_url))
            .header("X-Auth-Token", &self.token)
            .header("Content-Length", body.len().to_string())
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        // UTF-8 values too (Swift answers metadata as it was sent)
        let h = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = std::str::from_utf8(v.as_bytes()).ok()?;
                Some((k.as_str().to_string(), v.to_string()))
            })
            .collect();
        Ok((status, h, resp.bytes().await?))
    }

    async fn get(&self, path: &str) -> Result<Answer> {
        self.send(reqwest::Method::GET, path, &[], Vec::new()).await
    }

    async fn put(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<()> {
        let (status, _, text) = self.send(reqwest::Method::PUT, path, headers, body).await?;
        ensure!(
            status == 201,
            "PUT {path}: {status} {}",
            String::from_utf8_lossy(&text)
        );
        Ok(())
    }
}

/// `n` bytes of a pattern that differs with `seed`.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// Writes an SLO at `path` (in `http`'s cluster) over `segments`
/// (`container/object`, content); returns the concatenated content.
async fn put_slo(
    http: &Http,
    path: &str,
    segments: &[(&str, Vec<u8>)],
    headers: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut manifest = Vec::new();
    let mut all = Vec::new();
    for (seg, data) in segments {
        http.put(seg, &[], data.clone()).await?;
        let (_, h, _) = http
            .send(reqwest::Method::HEAD, seg, &[], Vec::new())
            .await?;
        manifest.push(serde_json::json!({
            "path": format!("/{seg}"),
            "etag": h.get("etag").context("segment etag")?,
            "size_bytes": data.len(),
        }));
        all.extend_from_slice(data);
    }
    http.put(
        &format!("{path}?multipart-manifest=put"),
        headers,
        serde_json::to_vec(&manifest)?,
    )
    .await?;
    Ok(all)
}

/// What a user checks of a replicated SLO at `http`'s cluster: the content,
/// the header, and that the object is a manifest (not a plain copy).
async fn check_slo(http: &Http, path: &str, want: &[u8], segments: &[&str]) -> Result<()> {
    let (status, h, got) = http.get(path).await?;
    ensure!(status == 200, "GET {path}: {status}");
    ensure!(
        got.len() == want.len() && &got[..] == want,
        "{path}: content differs ({} bytes, want {})",
        got.len(),
        want.len()
    );
    ensure!(
        h.get("x-static-large-object").map(String::as_str) == Some("True"),
        "{path} is not an SLO: {h:?}"
    );
    let (status, h, raw) = http.get(&format!("{path}?multipart-manifest=get")).await?;
    ensure!(status == 200, "GET {path}?multipart-manifest=get: {status}");
    let listed: serde_json::Value = serde_json::from_slice(&raw)
        .with_context(|| format!("{path}?multipart-manifest=get is not a manifest ({h:?})"))?;
    let names: Vec<&str> = listed
        .as_array()
        .context("a JSON list")?
        .iter()
        .filter_map(|s| s.get("name")?.as_str())
        .collect();
    let want_names: Vec<String> = segments.iter().map(|s| format!("/{s}")).collect();
    ensure!(
        names == want_names,
        "{path}: the manifest names {names:?}, want {want_names:?}"
    );
    Ok(())
}

/// Runs rounds (the replicator stopped) until one copies nothing, then
/// two more that must copy nothing either.
async fn settled(repl: &SwiftReplicator) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        let done = repl.resync(CancellationToken::new(), None).await?;
        if done.done.items == 0 {
            for i in 0..2 {
                let again = repl.resync(CancellationToken::new(), None).await?;
                ensure!(
                    again.done.items == 0,
                    "round {i} after settling copied again: {:?}",
                    again.done
                );
            }
            return Ok(());
        }
        last = Some(done.done);
    }
    bail!("every round copies something again: {last:?}")
}

/// Static and dynamic large objects and symlinks at A, their segments in a
/// container the plan also replicates: B gets the manifests and links
/// themselves (not their content as plain objects), a user reads the same
/// content at both sites, an SLO whose segments are not at B is never
/// copied as a plain object and follows once they are, and further rounds
/// copy nothing. Then the failback direction: the same kinds written at B
/// reach A through the resyncer.
async fn large_objects(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let (segs, c, outside) = ("lo-segs", "lo", "lo-outside");
    for cont in [segs, c, outside] {
        a.put_container(cont, &BTreeMap::new()).await?;
        b.put_container(cont, &BTreeMap::new()).await?;
    }
    let slo_segs = ["lo-segs/big/s1", "lo-segs/big/s2", "lo-segs/big/s3"];
    let slo = put_slo(
        &ha,
        "lo/slo",
        &[
            (slo_segs[0], pattern(300_000, 1)),
            (slo_segs[1], pattern(300_000, 2)),
            (slo_segs[2], pattern(1_000, 3)),
        ],
        &[
            ("Content-Type", "application/x-slo"),
            ("X-Object-Meta-Color", "green"),
        ],
    )
    .await?;
    // a DLO over lo-segs/dlo/*
    let mut dlo = pattern(200_000, 4);
    ha.put("lo-segs/dlo/1", &[], dlo.clone()).await?;
    let d2 = pattern(5_000, 5);
    ha.put("lo-segs/dlo/2", &[], d2.clone()).await?;
    dlo.extend_from_slice(&d2);
    ha.put(
        "lo/dlo",
        &[
            ("X-Object-Manifest", "lo-segs/dlo/"),
            ("Content-Type", "application/x-dlo"),
        ],
        Vec::new(),
    )
    .await?;
    // symlinks: to a plain object, and to the SLO naming the account
    put(a, c, "plain", "the plain target").await?;
    ha.put(
        "lo/link",
        &[
            ("X-Symlink-Target", "lo/plain"),
            ("Content-Type", "text/x-link"),
        ],
        Vec::new(),
    )
    .await?;
    let account = a.account().await?;
    ha.put(
        "lo/link-acct",
        &[
            ("X-Symlink-Target", "lo/slo"),
            ("X-Symlink-Target-Account", &account),
        ],
        Vec::new(),
    )
    .await?;
    // an SLO whose segment lives outside the plan: B cannot take it yet
    let late = put_slo(
        &ha,
        "lo/slo-late",
        &[("lo-outside/seg", pattern(2_000, 6))],
        &[],
    )
    .await?;

    let repl = env.replicator(&[segs, c], "lo.json");
    repl.start(CancellationToken::new()).await?;
    eventually("segments, manifests and links at B", PATIENCE, || async {
        let at_b = names(b, c).await?;
        Ok(names(b, segs).await? == names(a, segs).await?
            && ["dlo", "link", "link-acct", "plain", "slo"]
                .iter()
                .all(|n| at_b.contains(&n.to_string())))
    })
    .await?;
    repl.stop().await;
    check_slo(&hb, "lo/slo", &slo, &slo_segs).await?;
    let (_, h, _) = hb
        .send(reqwest::Method::HEAD, "lo/slo", &[], Vec::new())
        .await?;
    ensure!(
        h.get("content-type").map(String::as_str) == Some("application/x-slo")
            && h.get("x-object-meta-color").map(String::as_str) == Some("green"),
        "SLO headers at B: {h:?}"
    );
    let (_, h_a, _) = ha
        .send(reqwest::Method::HEAD, "lo/slo", &[], Vec::new())
        .await?;
    ensure!(
        h.get("etag") == h_a.get("etag"),
        "the SLO's ETag: A {h_a:?}, B {h:?}"
    );
    // the DLO
    let (status, h, got) = hb.get("lo/dlo").await?;
    ensure!(
        status == 200 && got[..] == dlo[..],
        "DLO content at B ({} bytes)",
        got.len()
    );
    ensure!(
        h.get("x-object-manifest").map(String::as_str) == Some("lo-segs/dlo/"),
        "DLO headers at B: {h:?}"
    );
    let (_, h, raw) = hb.get("lo/dlo?multipart-manifest=get").await?;
    ensure!(
        raw.is_empty(),
        "the DLO at B is a manifest, not {} bytes of data ({h:?})",
        raw.len()
    );
    // the symlinks
    let (status, _, got) = hb.get("lo/link").await?;
    ensure!(
        status == 200 && &got[..] == b"the plain target",
        "link at B"
    );
    let (_, h, raw) = hb.get("lo/link?symlink=get").await?;
    ensure!(
        raw.is_empty() && h.get("x-symlink-target").map(String::as_str) == Some("lo/plain"),
        "the link at B is a link: {h:?} ({} bytes)",
        raw.len()
    );
    ensure!(
        hb.get("lo/link-acct").await?.2[..] == slo[..],
        "link-acct at B reads the SLO"
    );
    let (_, h, _) = hb.get("lo/link-acct?symlink=get").await?;
    ensure!(
        h.get("x-symlink-target").map(String::as_str) == Some("lo/slo")
            && h.get("x-symlink-target-account") == Some(&b.account().await?),
        "link-acct at B: {h:?}"
    );
    // the late SLO: never a plain copy
    ensure!(
        b.head_object(c, "slo-late").await?.is_none(),
        "an SLO whose segments are not at B is not copied"
    );
    let err = repl
        .resync(CancellationToken::new(), None)
        .await
        .err()
        .context("a round with an SLO whose segment is missing at B fails")?;
    ensure!(
        err.to_string()
            .contains("static large object manifest refused")
            && err.to_string().contains("lo-outside/seg"),
        "the error says why: {err}"
    );
    ensure!(
        b.head_object(c, "slo-late").await?.is_none(),
        "still not copied"
    );
    hb.put("lo-outside/seg", &[], pattern(2_000, 6)).await?;
    repl.start(CancellationToken::new()).await?;
    eventually("the late SLO at B", PATIENCE, || async {
        Ok(b.head_object(c, "slo-late").await?.is_some())
    })
    .await?;
    repl.stop().await;
    check_slo(&hb, "lo/slo-late", &late, &["lo-outside/seg"]).await?;
    // nothing is copied again
    settled(&repl).await?;
    let diffs = repl.verify().await?;
    ensure!(diffs.is_empty(), "verify: {diffs:?}");
    // a plain copy of the SLO with its origin timestamp (what an older
    // warden wrote) is replaced by the manifest
    let origin = a.head_object(c, "slo").await?.context("slo at A")?;
    let ts = origin.timestamp_us;
    let ts = format!("{}.{:05}", ts / 1_000_000, (ts % 1_000_000) / 10);
    hb.put("lo/slo", &[(ORIGIN_TS_HEADER, &ts)], slo.clone())
        .await?;
    ensure!(!hb
        .get("lo/slo")
        .await?
        .1
        .contains_key("x-static-large-object"));
    settled(&repl).await?;
    check_slo(&hb, "lo/slo", &slo, &slo_segs).await?;

    // failback: B active, written with the same kinds; A resyncs from B
    let slo_b_segs = ["lo-segs/b/1", "lo-segs/b/2"];
    let slo_b = put_slo(
        &hb,
        "lo/slo-b",
        &[
            (slo_b_segs[0], pattern(100_000, 7)),
            (slo_b_segs[1], pattern(100_000, 8)),
        ],
        &[],
    )
    .await?;
    hb.put("lo/link-b", &[("X-Symlink-Target", "lo/slo-b")], Vec::new())
        .await?;
    hb.put(
        "lo/dlo-b",
        &[("X-Object-Manifest", "lo-segs/b/")],
        Vec::new(),
    )
    .await?;
    let res = env.resyncer(true, &[segs, c], "lo.json", DeleteGuard::default());
    let mut report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    // the SLO may be tried before its segments arrived: the next pass takes it
    if report.is_err() {
        report = res
            .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
            .await;
    }
    let report = report?;
    ensure!(report.divergent.is_empty(), "{report:?}");
    check_slo(&ha, "lo/slo-b", &slo_b, &slo_b_segs).await?;
    let (_, h, raw) = ha.get("lo/link-b?symlink=get").await?;
    ensure!(
        raw.is_empty() && h.get("x-symlink-target").map(String::as_str) == Some("lo/slo-b"),
        "link-b at A: {h:?}"
    );
    ensure!(
        ha.get("lo/link-b").await?.2[..] == slo_b[..],
        "link-b reads the SLO"
    );
    let (_, h, raw) = ha.get("lo/dlo-b?multipart-manifest=get").await?;
    ensure!(
        raw.is_empty() && h.get("x-object-manifest").map(String::as_str) == Some("lo-segs/b/"),
        "dlo-b at A: {h:?}"
    );
    ensure!(
        ha.get("lo/dlo-b").await?.2[..] == slo_b[..],
        "dlo-b reads the segments"
    );
    let again = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        again.fetched.items == 0 && again.deleted == 0 && again.divergent.is_empty(),
        "a second pass has nothing to do: {again:?}"
    );
    let v = res.verify(&[]).await?;
    ensure!(v.differences.is_empty(), "{v:?}");
    Ok(())
}

/// The target of the symlink `path` at `http`'s cluster (read as a link).
async fn link_target(http: &Http, path: &str) -> Result<Option<String>> {
    let (status, h, _) = http.get(&format!("{path}?symlink=get")).await?;
    ensure!(status == 200, "GET {path}?symlink=get: {status}");
    Ok(h.get("x-symlink-target").cloned())
}

/// Objects whose listing ETag does not tell what they are: every symlink
/// and an empty object show the zero-byte MD5, and a DLO manifest may have
/// a body of its own. A link retargeted (or an empty object turned into a
/// link) at the active site reaches the peer also after an agent restart
/// (a new replicator on the same manifest) and through the failback
/// resync; a DLO manifest's own body arrives whole, so verify is clean.
async fn same_etag_kinds(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let c = "sk";
    a.put_container(c, &BTreeMap::new()).await?;
    b.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "t1", "target one").await?;
    put(a, c, "t2", "target two").await?;
    put(a, c, "empty", "").await?;
    ha.put("sk/link", &[("X-Symlink-Target", "sk/t1")], Vec::new())
        .await?;
    ha.put(
        "sk/dlo",
        &[("X-Object-Manifest", "sk/t")],
        b"manifest body".to_vec(),
    )
    .await?;
    let repl = env.replicator(&[c], "sk.json");
    settled(&repl).await?;
    let (_, h, raw) = hb.get("sk/dlo?multipart-manifest=get").await?;
    ensure!(
        &raw[..] == b"manifest body"
            && h.get("x-object-manifest").map(String::as_str) == Some("sk/t"),
        "the DLO manifest at B: {h:?}, body {:?}",
        String::from_utf8_lossy(&raw)
    );
    let diffs = repl.verify().await?;
    ensure!(diffs.is_empty(), "verify after the first rounds: {diffs:?}");
    drop(repl);

    // at A, while no agent runs: the link retargeted, the empty object a link
    ha.put("sk/link", &[("X-Symlink-Target", "sk/t2")], Vec::new())
        .await?;
    ha.put("sk/empty", &[("X-Symlink-Target", "sk/t1")], Vec::new())
        .await?;
    let repl = env.replicator(&[c], "sk.json");
    settled(&repl).await?;
    ensure!(
        link_target(&hb, "sk/link").await?.as_deref() == Some("sk/t2"),
        "the retargeted link at B: {:?}",
        link_target(&hb, "sk/link").await?
    );
    ensure!(
        link_target(&hb, "sk/empty").await?.as_deref() == Some("sk/t1"),
        "the empty object turned link at B: {:?}",
        hb.get("sk/empty?symlink=get").await?.1
    );
    let diffs = repl.verify().await?;
    ensure!(diffs.is_empty(), "verify after the restart: {diffs:?}");

    // failback: B active retargets the link; A resyncs from B
    hb.put("sk/link", &[("X-Symlink-Target", "sk/t1")], Vec::new())
        .await?;
    let res = env.resyncer(true, &[c], "sk.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(report.divergent.is_empty(), "{report:?}");
    ensure!(
        link_target(&ha, "sk/link").await?.as_deref() == Some("sk/t1"),
        "the link at A after the resync: {:?} ({report:?})",
        link_target(&ha, "sk/link").await?
    );
    let v = res.verify(&[]).await?;
    ensure!(v.differences.is_empty(), "{v:?}");
    Ok(())
}

/// Written only at the stale site (A) while B was active: an SLO, its
/// segments (in a placement container too) and a static symlink to one of
/// them. The failback pass quarantines all four and succeeds; the
/// quarantined SLO and link still read their content (they name the
/// quarantined segments), and a second pass has nothing to do.
/// Objects a copy round sent and never saw confirmed, one of them the
/// segment of an SLO manifest the round never reached (it is a write
/// here): under `keep` the manifest stays in place, and so must its
/// segments — moved aside as `sent_unconfirmed`, they would leave it
/// unreadable. With a kept SLO or symlink the objects in doubt all stay.
async fn sent_kept_slo(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::DivergentReason;
    let ha = Http::new(&env.cl.a).await?;
    let (c, segs) = ("sk", "sk-segs");
    for cont in [c, segs] {
        env.a.put_container(cont, &BTreeMap::new()).await?;
        env.b.put_container(cont, &BTreeMap::new()).await?;
    }
    let want = put_slo(
        &ha,
        "sk/slo",
        &[
            ("sk-segs/1", pattern(30_000, 3)),
            ("sk-segs/2", pattern(10_000, 4)),
        ],
        &[],
    )
    .await?;
    put(&env.a, c, "plain", "sent, never confirmed").await?;
    let manifest = env.cl.scratch().join("sk.json");
    warden_agents::replicate::sent::note_beside(&manifest, ["sk-segs/1", "sk-segs/2", "sk/plain"]);
    let report = env
        .resyncer(true, &[segs, c], "sk.json", DeleteGuard::default())
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await?;
    ensure!(
        report
            .divergent
            .iter()
            .all(|d| d.action == "kept" && d.reason != DivergentReason::SentUnconfirmed),
        "{:?}",
        report.divergent
    );
    check_slo(&ha, "sk/slo", &want, &["sk-segs/1", "sk-segs/2"]).await?;
    Ok(())
}

/// The same with a DLO manifest (`X-Object-Manifest`), which a listing
/// does not show: moving a segment aside would leave it reading short,
/// with no error.
async fn sent_kept_dlo(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::DivergentReason;
    let ha = Http::new(&env.cl.a).await?;
    let (c, segs) = ("dk", "dk-segs");
    for cont in [c, segs] {
        env.a.put_container(cont, &BTreeMap::new()).await?;
        env.b.put_container(cont, &BTreeMap::new()).await?;
    }
    let (s1, s2) = (pattern(20_000, 5), pattern(7_000, 6));
    ha.put("dk-segs/dlo/1", &[], s1.clone()).await?;
    ha.put("dk-segs/dlo/2", &[], s2.clone()).await?;
    ha.put(
        "dk/dlo",
        &[("X-Object-Manifest", "dk-segs/dlo/")],
        Vec::new(),
    )
    .await?;
    let manifest = env.cl.scratch().join("dk.json");
    warden_agents::replicate::sent::note_beside(&manifest, ["dk-segs/dlo/2"]);
    let report = env
        .resyncer(true, &[segs, c], "dk.json", DeleteGuard::default())
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await?;
    ensure!(
        report
            .divergent
            .iter()
            .all(|d| d.action == "kept" && d.reason != DivergentReason::SentUnconfirmed),
        "{:?}",
        report.divergent
    );
    let (status, _, got) = ha.get("dk/dlo").await?;
    ensure!(status == 200, "GET dk/dlo: {status}");
    let want: Vec<u8> = s1.into_iter().chain(s2).collect();
    ensure!(
        got == want,
        "the DLO reads {} bytes, want {}",
        got.len(),
        want.len()
    );
    Ok(())
}

async fn quarantine_large(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let ha = Http::new(&env.cl.a).await?;
    let (c, segs) = ("ql", "ql-segs");
    for cont in [c, segs] {
        a.put_container(cont, &BTreeMap::new()).await?;
        b.put_container(cont, &BTreeMap::new()).await?;
    }
    let s1 = pattern(50_000, 9);
    let slo = put_slo(
        &ha,
        "ql/slo",
        &[
            ("ql-segs/1", s1.clone()),
            ("ql-segs/2", pattern(20_000, 10)),
        ],
        &[("X-Object-Meta-Color", "red")],
    )
    .await?;
    let (_, h, _) = ha
        .send(reqwest::Method::HEAD, "ql-segs/1", &[], Vec::new())
        .await?;
    let s1_etag = h.get("etag").context("segment etag")?.clone();
    ha.put(
        "ql/link",
        &[
            ("X-Symlink-Target", "ql-segs/1"),
            ("X-Symlink-Target-Etag", &s1_etag),
        ],
        Vec::new(),
    )
    .await?;
    let res = env.resyncer(true, &[segs, c], "ql.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        report.divergent.len() == 4 && report.divergent.iter().all(|d| d.action == "quarantined"),
        "{report:?}"
    );
    let moved = |name: &str| {
        report
            .divergent
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.moved_to.clone())
            .with_context(|| format!("{name} quarantined: {report:?}"))
    };
    let q_slo = moved("ql/slo")?;
    let (status, h, got) = ha.get(&q_slo).await?;
    ensure!(
        status == 200 && got[..] == slo[..],
        "the quarantined SLO {q_slo} reads its content: {status}, {} bytes, {h:?}",
        got.len()
    );
    ensure!(
        h.get("x-object-meta-color").map(String::as_str) == Some("red"),
        "{h:?}"
    );
    let q_link = moved("ql/link")?;
    let (status, _, got) = ha.get(&q_link).await?;
    ensure!(
        status == 200 && got[..] == s1[..],
        "the quarantined link {q_link} reads its target: {status}, {} bytes",
        got.len()
    );
    for cont in [c, segs] {
        ensure!(names(a, cont).await?.is_empty(), "{cont} at A emptied");
    }
    let again = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        again.fetched.items == 0 && again.deleted == 0 && again.divergent.is_empty(),
        "a second pass has nothing to do: {again:?}"
    );
    Ok(())
}

/// This process's peak and current resident set (kB), from /proc.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A 64 MiB object (written at A by curl from a file, so this process never
/// holds it) copied to B: B's ETag (Swift's MD5 of what arrived) is A's, the
/// content reads back equal, later rounds copy nothing; the peak memory the
/// copy added is printed (not asserted: too many other things allocate).
async fn streaming_copy(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "stream";
    a.put_container(c, &BTreeMap::new()).await?;
    const SIZE: usize = 64 << 20;
    let file = env.cl.scratch().join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..(SIZE >> 20) {
            f.write_all(&pattern(1 << 20, i as u8))?;
        }
        f.flush()?;
    }
    let http = Http::new(&env.cl.a).await?;
    let url = format!("{}/{c}/big", http.storage_url);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-T"])
        .arg(&file)
        .args(["-H", &format!("X-Auth-Token: {}", http.token), &url])
        .output()?;
    ensure!(out.status.success(), "curl upload: {:?}", out);
    std::fs::remove_file(&file)?;
    let at_a = a.head_object(c, "big").await?.context("big at A")?;
    ensure!(at_a.length == SIZE as u64, "{at_a:?}");

    let repl = env.replicator(&[c], "stream.json");
    // peak resident set from now on (Linux: "5" resets VmHWM)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (_, rss_before) = rss_kb();
    let t0 = Instant::now();
    let done = repl.resync(CancellationToken::new(), None).await?;
    let (peak, _) = rss_kb();
    eprintln!(
        "streaming_copy: {} MiB copied in {:.1?}, peak resident set grew by {} MiB",
        SIZE >> 20,
        t0.elapsed(),
        peak.saturating_sub(rss_before) >> 10
    );
    ensure!(
        done.done.items == 1 && done.done.bytes == SIZE as u64,
        "{done:?}"
    );
    let at_b = b.head_object(c, "big").await?.context("big at B")?;
    ensure!(
        at_b.etag == at_a.etag && at_b.length == at_a.length,
        "B {at_b:?} vs A {at_a:?}"
    );
    settled(&repl).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_plans_against_two_real_clusters() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(cl) = Clusters::start() else { return };
    let env = Env {
        a: SwiftClient::new(cl.a.settings()).unwrap(),
        b: SwiftClient::new(cl.b.settings()).unwrap(),
        cl: &cl,
    };
    let mut run = Scenarios::new("WARDEN_SWIFT_SCENARIOS");
    run.run("wrong_key", wrong_key(&env)).await;
    run.run("streaming_copy", streaming_copy(&env)).await;
    run.run("large_objects", large_objects(&env)).await;
    run.run("same_etag_kinds", same_etag_kinds(&env)).await;
    run.run("object_headers", whole_objects::object_headers(&env))
        .await;
    run.run("long_names", whole_objects::long_names(&env)).await;
    run.run("crowded_metadata", whole_objects::crowded_metadata(&env))
        .await;
    run.run("broken_static_link", broken_link::broken_static_link(&env))
        .await;
    run.run("quarantine_large", quarantine_large(&env)).await;
    run.run("sent_kept_slo", sent_kept_slo(&env)).await;
    run.run("sent_kept_dlo", sent_kept_dlo(&env)).await;
    run.run("continuous_replication", continuous_replication(&env))
        .await;
    run.run("lagging_listing", lagging_listing(&env)).await;
    run.run("lagging_links", lagging_kinds::lagging_links(&env))
        .await;
    run.run("unlisted_here", unlisted_here::unlisted_here(&env))
        .await;
    run.run("short_pages", short_pages::short_pages(&env)).await;
    run.run("expired_objects", expired::expired_objects(&env))
        .await;
    run.run(
        "resync_writes_nothing_at_the_peer",
        peer_containers::resync_writes_nothing_at_the_peer(&env),
    )
    .await;
    run.run("clock_skew", clock_skew(&env)).await;
    run.run("newer_at_destination", newer_at_destination(&env))
        .await;
    run.run("metadata_changes", metadata_changes(&env)).await;
    run.run("placement_containers", placement_containers(&env))
        .await;
    run.run(
        "resync_keep",
        resync_after_disaster(&env, DivergentPolicy::Keep),
    )
    .await;
    run.run(
        "resync_quarantine",
        resync_after_disaster(&env, DivergentPolicy::Quarantine),
    )
    .await;
    run.run(
        "resync_discard",
        resync_after_disaster(&env, DivergentPolicy::Discard),
    )
    .await;
    run.run("unsafe_names", unsafe_names(&env)).await;
    run.run("delete_guard", delete_guard(&env)).await;
    run.run("delete_guard_window", delete_guard_window(&env))
        .await;
    run.run("delete_guard_empty_source", delete_guard_empty_source(&env))
        .await;
    run.run(
        "delete_guard_refused_deletes",
        delete_guard_refused_deletes(&env),
    )
    .await;
    run.run("container_sync", container_sync(&env)).await;
    run.run(
        "container_sync_failback",
        container_sync_failback::container_sync_failback(&env),
    )
    .await;
    run.run(
        "container_sync_fence",
        container_sync_fence::container_sync_fence(&env),
    )
    .await;
    run.run(
        "container_sync_stale_retry",
        container_sync_fence::container_sync_stale_retry(&env),
    )
    .await;
    run.run("copier_fence", copier_fence::copier_fence(&env))
        .await;
    run.run(
        "copier_fence_mid_round",
        copier_fence::copier_fence_mid_round(&env),
    )
    .await;
    run.run(
        "copier_fence_deleted_container",
        fence_container::deleted_container(&env),
    )
    .await;
    run.run(
        "copier_cancelled_round",
        cancelled_round::cancelled_round(&env),
    )
    .await;
    run.run("copier_killed_round", cancelled_round::killed_round(&env))
        .await;
    run.run(
        "copier_sent_unconfirmed",
        cancelled_round::sent_unconfirmed(&env),
    )
    .await;
    run.run("resync_killed_pass", cancelled_round::killed_resync(&env))
        .await;
    run.run("copier_fence_third_site", fence_container::third_site(&env))
        .await;
    run.run("peer_down_and_back", peer_down_and_back(&env))
        .await;
    run.run("token_renewal", token_renewal(&env)).await;
    drop(env);
    drop(cl);
    run.finish();
}
