//! The `swift` plan's fence: the copier of a site failed away from that
//! never heard its demote (cut off from the orchestrator, still reaching
//! the new active site's Swift with its credentials) writes and deletes
//! nothing there once the new active site's promote marked its containers
//! active at the newer epoch; it says why in its status. The new active
//! site's copier back to it, at a later epoch, is not held by the older
//! fence the other site set long ago; no fence travels between sites. A
//! move rolled back before its switch (both sites promoted at its epoch)
//! leaves the old active site's copier of that epoch free to go on.

use warden_agents::replicate::swift::ACTIVE_HEADER;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind};

use super::*;

pub(super) const GROUP: &str = "web";
const SECRET_ENV: &str = "WARDEN_SWIFT_COPIER_FENCE_SECRET";

/// The agent's replication at `site` (a fresh one: an agent just started),
/// group `web` on container `c` with the `swift` plan; each site's manifest
/// in the scratch directory.
pub(super) fn agent(env: &Env<'_>, site: &str, c: &str) -> Result<Replication> {
    agent_in(env, GROUP, site, c, "copier-fence-agent")
}

/// [`agent`] for the group `group` (its fence container is the group's
/// own: each scenario promotes its own group), with its manifests in the
/// scratch directory `dir`.
pub(super) fn agent_in(
    env: &Env<'_>,
    group: &str,
    site: &str,
    c: &str,
    dir: &str,
) -> Result<Replication> {
    std::env::set_var(SECRET_ENV, "copier-fence-token");
    let key_env = format!("{SECRET_ENV}_SWIFT");
    std::env::set_var(&key_env, swiftd::CONFIG_KEY);
    let dir = env.cl.scratch().join(dir);
    let manifest = |s: &str| dir.join(format!("{s}.manifest.json")).display().to_string();
    let table = format!(
        r#"plan = "swift"
containers = ["{c}"]
interval = "200ms"
[groups.web.replication.sites.a]
auth_url = "{a_url}"
user = "{user}"
key = {{ env = "{key_env}" }}
manifest = "{ma}"
[groups.web.replication.sites.b]
auth_url = "{b_url}"
user = "{user}"
key = {{ env = "{key_env}" }}
manifest = "{mb}"
"#,
        a_url = env.cl.a.auth_url,
        b_url = env.cl.b.auth_url,
        user = swiftd::CONFIG_USER,
        ma = manifest("a"),
        mb = manifest("b"),
    );
    let text = web::config_text(SECRET_ENV, &dir.display().to_string(), &table)
        .replace("[groups.web", &format!("[groups.{group}"));
    let config = warden_config::parse(&text, std::path::Path::new("copier-fence.conf"))?;
    Replication::from_config(&config, site).context("group web replicates")
}

pub(super) fn start(site: &str, peer: &str, epoch: u64) -> Command {
    let mut c = Command::new(GROUP, epoch, CommandKind::StartReplication).to_site(site);
    c.peer = Some(peer.into());
    c
}

/// The fence on `c` at `cl`, as stored.
pub(super) async fn fence(cl: &SwiftClient, c: &str) -> Result<Option<String>> {
    let h = cl.head_container(c).await?.context("container")?;
    Ok(h.get(ACTIVE_HEADER).map(str::to_string))
}

/// The body of every object of `c` at `cl`, by name.
pub(super) async fn contents(cl: &SwiftClient, c: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for n in names(cl, c).await? {
        out.insert(n.clone(), body(cl, c, &n).await?.unwrap_or_default());
    }
    Ok(out)
}

pub(crate) async fn copier_fence(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "copierfence";
    let shutdown = CancellationToken::new();

    // Epoch 1: a is promoted (its containers marked active at 1) and
    // copies to b.
    let at_a = agent(env, "a", c)?;
    let said = at_a
        .promoted(GROUP, 1)
        .await
        .context("a swift promote says what it did")?;
    ensure!(said.contains("fenced as active at epoch 1"), "{said}");
    ensure!(fence(a, c).await?.as_deref() == Some("epoch=1 site=a"));
    let o = at_a.run(&start("a", "b", 1), &shutdown).await;
    ensure!(o.ok, "start at a: {}", o.detail);
    put(a, c, "kept", "written at a at epoch 1").await?;
    put(
        a,
        c,
        "doomed",
        "written at a at epoch 1, deleted there later",
    )
    .await?;
    eventually("a → b at epoch 1", PATIENCE, || async {
        Ok(names(b, c).await? == ["doomed", "kept"])
    })
    .await?;
    // the copier copies no fence: b's container carries none
    ensure!(
        fence(b, c).await?.is_none(),
        "a's fence travelled to b: {:?}",
        fence(b, c).await?
    );

    // a is cut off from the orchestrator (no demote arrives) but still
    // reaches b's Swift. The failover promotes b at epoch 2.
    let at_b = agent(env, "b", c)?;
    let said = at_b
        .promoted(GROUP, 2)
        .await
        .context("a swift promote says what it did")?;
    ensure!(said.contains("fenced as active at epoch 2"), "{said}");
    ensure!(fence(b, c).await?.as_deref() == Some("epoch=2 site=b"));
    ensure!(fence(a, c).await?.as_deref() == Some("epoch=1 site=a"));
    ensure!(at_b.status()[0].error.is_none(), "{:?}", at_b.status());
    // users now write at b
    put(b, c, "users-at-b", "written at b, the active site").await?;
    let at_b_before = contents(b, c).await?;

    // Meanwhile at a: a rewrite, a new object, a delete.
    put(a, c, "kept", "rewritten at a after the failover").await?;
    put(a, c, "stale", "written at a after the failover").await?;
    a.delete_object(c, "doomed").await?;

    // a's copier stops at the fence and says why, in a's status; nothing
    // of a's reaches b meanwhile, nor a few intervals later.
    let fenced = || {
        at_a.status()[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("the destination b is active at epoch 2"))
    };
    eventually(
        "a's copier reports the fence or writes",
        PATIENCE,
        || async { Ok(fenced() || contents(b, c).await? != at_b_before) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        contents(b, c).await? == at_b_before,
        "a's copier wrote into b after its promote: {:?} (before: {at_b_before:?})",
        contents(b, c).await?
    );
    let error = at_a.status()[0].error.clone().unwrap_or_default();
    ensure!(
        fenced()
            && error.contains("the copier of site a (epoch 1) stops")
            && error.contains("nothing copied or deleted"),
        "{error}"
    );
    ensure!(at_a.status()[0].role == "source");

    // A round of the old order run by hand (its manifest, which knows
    // `doomed`): refused before anything is written.
    let dir = env.cl.scratch().join("copier-fence-agent");
    let old = SwiftReplicator::new(
        SwiftReplicatorSettings::new(
            env.cl.a.settings(),
            env.cl.b.settings(),
            vec![c.to_string()],
            dir.join("a.manifest.json"),
        )
        .order(GROUP, "a", "b", 1),
    )?;
    match old.resync(CancellationToken::new(), None).await {
        Err(AgentError::Fenced(why)) => ensure!(
            why.contains("the destination b is active at epoch 2 (promoted; container copierfence"),
            "{why}"
        ),
        other => bail!("the old order's round was not refused: {other:?}"),
    }
    ensure!(old
        .failing()
        .is_some_and(|f| f.contains("the copier of site a (epoch 1) stops")));
    ensure!(
        contents(b, c).await? == at_b_before,
        "the old order's round wrote into b: {:?}",
        contents(b, c).await?
    );
    ensure!(
        body(b, c, "doomed").await?.is_some(),
        "deleted at b by a's copier"
    );

    // The failback side: b copies to a at epoch 3; a's own fence (epoch 1,
    // its promote long ago) holds nothing back.
    let o = at_b.run(&start("b", "a", 3), &shutdown).await;
    ensure!(o.ok, "start at b: {}", o.detail);
    put(b, c, "from-b-3", "written at b at epoch 3").await?;
    eventually("b → a at epoch 3", PATIENCE, || async {
        let at_a = names(a, c).await?;
        Ok(at_a.iter().any(|n| n == "from-b-3") && at_a.iter().any(|n| n == "users-at-b"))
    })
    .await?;
    ensure!(at_b.status()[0].error.is_none(), "{:?}", at_b.status());
    // each site keeps its own fence; none crossed over
    ensure!(fence(a, c).await?.as_deref() == Some("epoch=1 site=a"));
    ensure!(fence(b, c).await?.as_deref() == Some("epoch=2 site=b"));

    // A start at a newer epoch toward the same peer builds a new copier
    // (the old one stopped only for an older epoch than the fence's).
    let o = at_b.run(&start("b", "a", 4), &shutdown).await;
    ensure!(
        o.ok && o
            .detail
            .contains("restarted for epoch 4 (its copier was for epoch 3)"),
        "{}",
        o.detail
    );
    put(b, c, "from-b-4", "written at b at epoch 4").await?;
    eventually("b → a at epoch 4", PATIENCE, || async {
        Ok(names(a, c).await?.iter().any(|n| n == "from-b-4"))
    })
    .await?;

    // a hears its demote at last; its stopped copier goes.
    let said = at_a.demoted(GROUP).await.context("a had a copier")?;
    ensure!(said.contains("replication a → b stopped"), "{said}");
    at_a.shutdown().await;
    at_b.shutdown().await;
    ensure!(fence(a, c).await?.as_deref() == Some("epoch=1 site=a"));
    ensure!(fence(b, c).await?.as_deref() == Some("epoch=2 site=b"));

    // A move to b at epoch 5 rolled back before its switch: b was promoted
    // at 5, then a again at 5 (the old active site). a's copier of epoch 5
    // goes ahead; one of epoch 4 does not.
    let (at_a, at_b) = (agent(env, "a", c)?, agent(env, "b", c)?);
    ensure!(at_b
        .promoted(GROUP, 5)
        .await
        .is_some_and(|s| s.contains("epoch 5")));
    ensure!(at_a
        .promoted(GROUP, 5)
        .await
        .is_some_and(|s| s.contains("epoch 5")));
    let copier = |epoch| {
        SwiftReplicator::new(
            SwiftReplicatorSettings::new(
                env.cl.a.settings(),
                env.cl.b.settings(),
                vec![c.to_string()],
                dir.join(format!("rollback-{epoch}.manifest.json")),
            )
            .order(GROUP, "a", "b", epoch),
        )
    };
    put(
        a,
        c,
        "after-rollback",
        "written at a, active again at epoch 5",
    )
    .await?;
    match copier(4)?.resync(CancellationToken::new(), None).await {
        Err(AgentError::Fenced(why)) => ensure!(
            why.contains("the destination b is active at epoch 5"),
            "{why}"
        ),
        other => bail!("a copier of epoch 4 was not refused: {other:?}"),
    }
    ensure!(body(b, c, "after-rollback").await?.is_none());
    copier(5)?
        .resync(CancellationToken::new(), None)
        .await
        .context("a's copier after the rollback")?;
    ensure!(body(b, c, "after-rollback").await?.is_some());
    ensure!(fence(a, c).await?.as_deref() == Some("epoch=5 site=a"));
    ensure!(fence(b, c).await?.as_deref() == Some("epoch=5 site=b"));
    at_a.shutdown().await;
    at_b.shutdown().await;
    Ok(())
}

/// `n` objects `{prefix}{i}` written at `cl` in `c`, 16 at a time.
pub(crate) async fn put_many(cl: &SwiftClient, c: &str, prefix: &str, n: usize) -> Result<()> {
    use futures::StreamExt;
    let mut puts =
        futures::stream::iter(0..n)
            .map(|i| async move {
                put(cl, c, &format!("{prefix}{i:04}"), &format!("{prefix} {i}")).await
            })
            .buffer_unordered(16);
    while let Some(r) = puts.next().await {
        r?;
    }
    Ok(())
}

/// A promote of the destination during a round's copies and deletes ends
/// the round: at most `fence_recheck_ops` more ops start after the mark
/// appears (plus those already in flight), and none of the round's
/// deletes runs once it is there (the fence is read again before the
/// first delete, whatever the count or the time).
pub(crate) async fn copier_fence_mid_round(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::swift::FENCE_RECHECK_OPS;
    use warden_agents::replicate::Progress;

    let (a, b) = (&env.a, &env.b);
    let dir = env.cl.scratch().join("copier-fence-agent");
    // each part its own group: the first part's promote fences its whole
    // group at b (the group's fence container)
    const MID: &str = "webmid";
    let copier =
        |group: &str, c: &str, manifest: &str, tune: &dyn Fn(&mut SwiftReplicatorSettings)| {
            let mut s = SwiftReplicatorSettings::new(
                env.cl.a.settings(),
                env.cl.b.settings(),
                vec![c.to_string()],
                dir.join(manifest),
            )
            .order(group, "a", "b", 1);
            tune(&mut s);
            SwiftReplicator::new(s)
        };

    // A long round: many objects, the destination promoted once a few
    // are copied.
    let c = "copierfencemid";
    const MANY: usize = 600;
    let at_a = agent_in(env, MID, "a", c, "copier-fence-mid")?;
    ensure!(at_a.promoted(MID, 1).await.is_some());
    put_many(a, c, "obj-", MANY).await?;
    let repl = copier(MID, c, "mid.manifest.json", &|_| {})?;
    let concurrency = repl.settings().concurrency as u64;
    let at_b = agent_in(env, MID, "b", c, "copier-fence-mid")?;
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let round = repl.resync(CancellationToken::new(), Some(tx));
    let promote = async {
        rx.wait_for(|p| p.items >= 30)
            .await
            .map_err(|_| anyhow::anyhow!("the round ended before 30 copies"))?;
        let said = at_b.promoted(MID, 2).await.context("b's promote")?;
        ensure!(said.contains("fenced as active at epoch 2"), "{said}");
        Ok::<_, anyhow::Error>(rx.borrow().items)
    };
    let (r, at_mark) = tokio::join!(round, promote);
    let at_mark = at_mark?;
    let last = rx.borrow().items;
    match r {
        Err(AgentError::Fenced(why)) => ensure!(
            why.contains("the destination b is active at epoch 2")
                && why.contains("seen while a round was copying and deleting"),
            "{why}"
        ),
        other => bail!(
            "the round went on after b's promote ({at_mark} copies then, {last} at the end): {other:?}"
        ),
    }
    ensure!(
        last - at_mark <= FENCE_RECHECK_OPS as u64 + concurrency,
        "{} copies after the mark appeared (at most {FENCE_RECHECK_OPS} + {concurrency})",
        last - at_mark
    );
    // (the PUTs in flight when the round stopped may still land)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let copied = names(b, c).await?.len();
    ensure!(copied < MANY, "every object reached b: {copied}");
    ensure!(repl
        .failing()
        .is_some_and(|f| f.contains("the copier of site a (epoch 1) stops")));
    // the next round of that order is refused before anything is written
    ensure!(matches!(
        repl.resync(CancellationToken::new(), None).await,
        Err(AgentError::Fenced(_))
    ));
    ensure!(names(b, c).await?.len() == copied);

    // Deletes: a round whose copies run while the destination is promoted
    // deletes nothing there, even before any count or time is reached.
    let c = "copierfencedel";
    a.put_container(c, &BTreeMap::new()).await?;
    put_many(a, c, "doomed-", 20).await?;
    let slow = |s: &mut SwiftReplicatorSettings| {
        s.concurrency = 2;
        s.fence_recheck_ops = 100_000;
        s.fence_recheck_every = Duration::from_secs(3600);
    };
    let repl = copier("webdel", c, "del.manifest.json", &slow)?;
    repl.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await?.len() == 20);
    for i in 0..20 {
        a.delete_object(c, &format!("doomed-{i:04}")).await?;
    }
    put_many(a, c, "fresh-", 80).await?;
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let round = repl.resync(CancellationToken::new(), Some(tx));
    let promote = async {
        rx.wait_for(|p| p.items >= 5)
            .await
            .map_err(|_| anyhow::anyhow!("the round ended before 5 copies"))?;
        let h = meta(&[(ACTIVE_HEADER, "epoch=2 site=b")]);
        b.post_container(c, &h).await?;
        Ok::<_, anyhow::Error>(())
    };
    let (r, promoted) = tokio::join!(round, promote);
    promoted?;
    ensure!(
        matches!(&r, Err(AgentError::Fenced(why)) if why.contains("active at epoch 2")),
        "{r:?}"
    );
    let doomed = names(b, c)
        .await?
        .iter()
        .filter(|n| n.starts_with("doomed-"))
        .count();
    ensure!(
        doomed == 20,
        "the round deleted at b after its promote: {doomed} of 20 left"
    );
    at_a.shutdown().await;
    at_b.shutdown().await;
    Ok(())
}
