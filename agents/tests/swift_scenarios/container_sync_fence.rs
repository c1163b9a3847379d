//! The `swift-container-sync` plan's fence, with Swift's own daemons: a
//! site failed away from whose containers still point at the new active
//! site (its agent restarted and remembers no role; it never heard a
//! demote) pushes nothing into it, because the new active site's containers
//! are keyed for the newer epoch; its agent's demote, with no memory of a
//! role, removes its `X-Container-Sync-To`; the new active site's
//! replication then flows back, and a start at a newer epoch re-keys both
//! sides.

use std::sync::Arc;

use warden_agents::replicate::swift::epoch_key;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind};

use super::*;

const GROUP: &str = "web";
const SECRET_ENV: &str = "WARDEN_SWIFT_FENCE_TEST_SECRET";
const SYNC_KEY: &str = "fence-sync-key-1";

/// The agent's replication at `site` (a fresh one: an agent just started),
/// group `web` on container `c` with the `swift-container-sync` plan.
fn agent(env: &Env<'_>, site: &str, c: &str) -> Result<Replication> {
    std::env::set_var(SECRET_ENV, SYNC_KEY);
    let key_env = format!("{SECRET_ENV}_SWIFT");
    std::env::set_var(&key_env, swiftd::CONFIG_KEY);
    let dir = env.cl.scratch().join("fence-agent");
    let table = format!(
        r#"plan = "swift-container-sync"
containers = ["{c}"]
realm = "{realm}"
sync_key = {{ env = "{SECRET_ENV}" }}
[groups.web.replication.sites.a]
auth_url = "{a_url}"
user = "{user}"
key = {{ env = "{key_env}" }}
cluster = "{a_name}"
manifest = "{dir}/a.swift-manifest.json"
[groups.web.replication.sites.b]
auth_url = "{b_url}"
user = "{user}"
key = {{ env = "{key_env}" }}
cluster = "{b_name}"
manifest = "{dir}/b.swift-manifest.json"
"#,
        realm = swiftd::REALM,
        a_url = env.cl.a.auth_url,
        b_url = env.cl.b.auth_url,
        a_name = env.cl.a.name,
        b_name = env.cl.b.name,
        user = swiftd::CONFIG_USER,
        dir = dir.display(),
    );
    let text = web::config_text(SECRET_ENV, &dir.display().to_string(), &table);
    let config = warden_config::parse(&text, std::path::Path::new("fence.conf"))?;
    Replication::from_config(&config, site).context("group web replicates")
}

fn start(site: &str, peer: &str, epoch: u64) -> Command {
    let mut c = Command::new(GROUP, epoch, CommandKind::StartReplication).to_site(site);
    c.peer = Some(peer.into());
    c
}

/// `(X-Container-Sync-To, X-Container-Sync-Key)` of `c` at `cl`.
async fn sync_headers(cl: &SwiftClient, c: &str) -> Result<(Option<String>, Option<String>)> {
    let h = cl.head_container(c).await?.context("container")?;
    Ok((
        h.get("x-container-sync-to").map(str::to_string),
        h.get("x-container-sync-key").map(str::to_string),
    ))
}

/// Whether `cluster`'s proxy answered 401 to a request for `c/object`
/// (the container-sync middleware refusing another cluster's daemon).
fn refused(env: &Env<'_>, cluster: &str, c: &str, object: &str) -> bool {
    let path = format!("/{c}/{object} ");
    env.cl
        .log(cluster, "proxy")
        .lines()
        .any(|l| l.contains(&path) && l.contains(" 401 "))
}

pub(crate) async fn container_sync_fence(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "csfence";
    let key = Secret::new(SYNC_KEY);
    let sync_to_b = format!("//{}/{}/AUTH_test/{c}", swiftd::REALM, env.cl.b.name);
    let sync_to_a = format!("//{}/{}/AUTH_test/{c}", swiftd::REALM, env.cl.a.name);
    let k = |epoch| epoch_key(&key, GROUP, epoch).expose().to_string();
    let shutdown = CancellationToken::new();

    // Epoch 1: a is active and pushes to b; both sides keyed for epoch 1.
    let at_a = agent(env, "a", c)?;
    let o = at_a.run(&start("a", "b", 1), &shutdown).await;
    ensure!(o.ok, "start at a: {}", o.detail);
    ensure!(
        sync_headers(a, c).await? == (Some(sync_to_b.clone()), Some(k(1))),
        "a after the start: {:?}",
        sync_headers(a, c).await?
    );
    ensure!(sync_headers(b, c).await? == (None, Some(k(1))));
    ensure!(k(1) != SYNC_KEY, "the key on the containers is derived");
    let e = put(a, c, "before", "written at a at epoch 1").await?;
    eventually("a → b at epoch 1", SYNC_PATIENCE, || async {
        Ok(etags(b, c).await?.get("before") == Some(&e))
    })
    .await?;

    // a loses power: its agent's memory is gone (its containers still
    // point at b, with epoch 1's key), it hears no demote. The failover
    // promotes b at epoch 2 (replication paused: b pushes nothing yet).
    drop(at_a);
    let at_b = agent(env, "b", c)?;
    let said = at_b
        .promoted(GROUP, 2)
        .await
        .context("a container-sync promote says what it did")?;
    ensure!(said.contains("keyed for epoch 2"), "{said}");
    ensure!(sync_headers(b, c).await? == (None, Some(k(2))));
    ensure!(sync_headers(a, c).await? == (Some(sync_to_b.clone()), Some(k(1))));

    // a's Swift comes back with its daemon; something writes there. b's
    // Swift refuses the push (401 in its proxy log), nothing arrives.
    put(a, c, "stale", "written at a after the failover").await?;
    let deadline = Instant::now() + SYNC_PATIENCE;
    while !refused(env, "b", c, "stale") {
        ensure!(
            body(b, c, "stale").await?.is_none(),
            "a's daemon pushed into the new active site"
        );
        ensure!(
            Instant::now() < deadline,
            "no sign of a's daemon trying within {SYNC_PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // a few more sweeps of a's daemon (interval 1 s): still refused
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        body(b, c, "stale").await?.is_none(),
        "a's daemon pushed into the new active site"
    );

    // a's agent (started afresh: role idle) hears its demote: Sync-To goes.
    let at_a = Arc::new(agent(env, "a", c)?);
    ensure!(at_a.status()[0].role == "idle");
    let said = at_a
        .demoted(GROUP)
        .await
        .context("a container-sync demote always acts")?;
    ensure!(
        said.contains("X-Container-Sync-To removed from this site's containers"),
        "{said}"
    );
    ensure!(sync_headers(a, c).await?.0.is_none());
    ensure!(at_a.status()[0].error.is_none());

    // b starts replicating to a at epoch 2 (the failback's resync would
    // come first; here: b's writes flow to a).
    let o = at_b.run(&start("b", "a", 2), &shutdown).await;
    ensure!(o.ok, "start at b: {}", o.detail);
    ensure!(sync_headers(b, c).await? == (Some(sync_to_a.clone()), Some(k(2))));
    ensure!(sync_headers(a, c).await? == (None, Some(k(2))));
    let e = put(b, c, "from-b", "written at b at epoch 2").await?;
    eventually("b → a at epoch 2", SYNC_PATIENCE, || async {
        Ok(etags(a, c).await?.get("from-b") == Some(&e))
    })
    .await?;

    // A start at epoch 3 toward the same peer re-keys both sides (Sync-To
    // kept), and writes keep flowing.
    let o = at_b.run(&start("b", "a", 3), &shutdown).await;
    ensure!(
        o.ok && o.detail.contains("re-keyed from epoch 2 to 3"),
        "{}",
        o.detail
    );
    ensure!(sync_headers(b, c).await? == (Some(sync_to_a.clone()), Some(k(3))));
    ensure!(sync_headers(a, c).await? == (None, Some(k(3))));
    let e = put(b, c, "from-b-3", "written at b at epoch 3").await?;
    eventually("b → a at epoch 3", SYNC_PATIENCE, || async {
        Ok(etags(a, c).await?.get("from-b-3") == Some(&e))
    })
    .await?;
    ensure!(
        body(b, c, "stale").await?.is_none(),
        "a's stale write never reached b"
    );

    // A start whose peer cannot be reached keys its own side first.
    let dead = SwiftSettings::new(
        "http://127.0.0.1:1/auth/v1.0",
        swiftd::USER,
        Secret::new(swiftd::KEY),
    );
    let blind = SwiftContainerSync::new(
        ContainerSyncSettings::new(
            env.cl.a.settings(),
            dead,
            swiftd::REALM,
            &env.cl.a.name,
            &env.cl.b.name,
            key.clone(),
            vec![c.to_string()],
        )
        .at_epoch(GROUP, 4),
    )?;
    blind.start(CancellationToken::new()).await?;
    ensure!(sync_headers(a, c).await? == (None, Some(k(4))));
    blind.stop().await;

    // b's demote stops its push.
    let said = at_b.demoted(GROUP).await.context("b was pushing")?;
    ensure!(said.contains("replication b → a stopped"), "{said}");
    ensure!(sync_headers(b, c).await?.0.is_none());
    at_a.shutdown().await;
    at_b.shutdown().await;
    Ok(())
}

/// A start whose first setting of the headers is still retried (the peer's
/// Swift down) when the site is failed away from: once the agent knows a
/// newer epoch (the orchestrator's answer says it; no demote arrived), the
/// retry gives up, saying why, and never keys the peer with the old
/// epoch's key nor points this site's containers at it — the new active
/// site's own key and direction stay as its promote and start set them.
pub(crate) async fn container_sync_stale_retry(env: &Env<'_>) -> Result<()> {
    use warden_agents::authority::Authority;

    let (a, b) = (&env.a, &env.b);
    let c = "csretry";
    let key = Secret::new(SYNC_KEY);
    let sync_to_a = format!("//{}/{}/AUTH_test/{c}", swiftd::REALM, env.cl.a.name);
    let k = |epoch| epoch_key(&key, GROUP, epoch).expose().to_string();
    let shutdown = CancellationToken::new();
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "at-a", "written at a at epoch 1").await?;

    // a's agent, with its authority: active (the group's primary).
    let state = env.cl.scratch().join("cs-retry-authority-a");
    let authority = Arc::new(Authority::open(
        &state,
        "a",
        &[(GROUP.to_string(), "a".to_string())],
    )?);
    let at_a = agent(env, "a", c)?;
    at_a.attach_authority(authority.clone());

    // b's Swift is down: a's start at epoch 1 keys its own side and
    // retries the rest in the background.
    env.cl.stop_one("b");
    let go = start("a", "b", 1);
    authority.admit(&go).map_err(anyhow::Error::msg)?;
    let o = at_a.run(&go, &shutdown).await;
    ensure!(o.ok, "start at a: {}", o.detail);
    ensure!(sync_headers(a, c).await? == (None, Some(k(1))));

    // The failover: the orchestrator's answers now carry epoch 2 (b is
    // promoted there); a's demote never arrives.
    authority.observe(&[(GROUP.to_string(), 2)].into());
    env.cl.start_one("b");
    // (replicated there long ago)
    eventually("b's Swift back", PATIENCE, || async {
        Ok(b.put_container(c, &BTreeMap::new()).await.is_ok())
    })
    .await?;
    let at_b = agent(env, "b", c)?;
    let said = at_b.promoted(GROUP, 2).await.context("b's promote")?;
    ensure!(said.contains("keyed for epoch 2"), "{said}");

    // a's retry gives up and says why; meanwhile b's key stays epoch 2's
    // and a's containers point nowhere.
    let given_up = || {
        at_a.status()[0].error.as_deref().is_some_and(|e| {
            e.contains("is given up") && e.contains("epoch 2 of group web is known")
        })
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (to_a, _) = sync_headers(a, c).await?;
        let (_, key_b) = sync_headers(b, c).await?;
        ensure!(
            to_a.is_none() && key_b == Some(k(2)),
            "a's stale start acted after epoch 2 was known: a points at {to_a:?}, b keyed for epoch {}",
            if key_b == Some(k(1)) { "1" } else { "?" }
        );
        if given_up() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "a's retry neither gave up nor acted within {PATIENCE:?}: {:?}",
            at_a.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // b replicates to a at epoch 2; nothing of a's old start undoes it.
    let o = at_b.run(&start("b", "a", 2), &shutdown).await;
    ensure!(o.ok, "start at b: {}", o.detail);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(sync_headers(b, c).await? == (Some(sync_to_a.clone()), Some(k(2))));
    ensure!(sync_headers(a, c).await? == (None, Some(k(2))));
    at_a.shutdown().await;
    at_b.shutdown().await;
    Ok(())
}
