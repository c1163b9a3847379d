//! The `swift-container-sync` plan's failback: a delete made at the active
//! site during the failover reaches the returning site, as under the
//! `swift` plan.

use warden_agents::replicate::Manifest;

use super::*;

/// Objects A and B both held while A was active (container sync had
/// carried them; put on both sides here), then a failover: B's users
/// delete one. A's failback resync, with the default policy (keep), must
/// delete it at A too: the plan's poll recorded it as held alike on both
/// sides. Before, the plan recorded nothing, so the resync found it in no
/// manifest and kept it at A as divergent — and A's container sync, once
/// A was active again, pushed it back to B: a delete acknowledged at the
/// active site undone by the failback.
pub(super) async fn container_sync_failback(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "csync-fb";
    let manifest = env.cl.scratch().join("csync-fb.json");
    for side in [a, b] {
        side.put_container(c, &BTreeMap::new()).await?;
        put(side, c, "kept", "at both sites").await?;
        put(side, c, "deleted-at-b", "at both sites").await?;
    }
    let mut s = ContainerSyncSettings::new(
        env.cl.a.settings(),
        env.cl.b.settings(),
        swiftd::REALM,
        &env.cl.a.name,
        &env.cl.b.name,
        Secret::new("sync-key-fb"),
        vec![c.to_string()],
    )
    .at_epoch("web", 1);
    s.poll = Duration::from_millis(100);
    s.manifest = Some(manifest.clone());
    let from_a = SwiftContainerSync::new(s)?;
    from_a.start(CancellationToken::new()).await?;
    // what the plan's poll records (waited for; without it the failback
    // below says what went wrong)
    let recorded = || async {
        let m = Manifest::load(&manifest)?;
        Ok(m.items.contains_key("csync-fb/deleted-at-b"))
    };
    let _ = eventually("the poll records what both hold alike", PATIENCE, recorded).await;
    // failover: A stops, B's users delete an object
    from_a.stop().await;
    b.delete_object(c, "deleted-at-b").await?;

    let res = env.resyncer(true, &[c], "csync-fb.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await?;
    let at_a = names(a, c).await?;
    ensure!(
        !at_a.iter().any(|n| n == "deleted-at-b"),
        "the delete made at the active site B is undone at A (kept as divergent: {:?}); A holds {at_a:?}",
        report.divergent
    );
    ensure!(
        report.divergent.is_empty() && report.deleted == 1,
        "{report:?}"
    );
    ensure!(at_a == ["kept"], "what B holds stays at A: {at_a:?}");
    ensure!(res.verify(&[]).await?.differences.is_empty());
    Ok(())
}
