//! The `swift` plan's fence survives the deletion of a placement container
//! at the new active site: the promote marks the group's fence container
//! there too, so a deposed copier (the old active site, which never heard
//! its demote) neither re-creates the container users deleted nor copies
//! its stale objects back into it.

use super::copier_fence::{agent_in, fence};
use super::*;

pub(crate) async fn deleted_container(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "fencegone";
    let dir = "fence-container-agent";
    // its own group: no earlier scenario's promote fences it
    const GROUP: &str = "webgone";
    // Epoch 1: a is promoted and its copier (run by hand, one round at a
    // time) copies to b.
    let at_a = agent_in(env, GROUP, "a", c, dir)?;
    ensure!(at_a.promoted(GROUP, 1).await.is_some());
    let old = SwiftReplicator::new(
        SwiftReplicatorSettings::new(
            env.cl.a.settings(),
            env.cl.b.settings(),
            vec![c.to_string()],
            env.cl.scratch().join(dir).join("old.manifest.json"),
        )
        .order(GROUP, "a", "b", 1),
    )?;
    put(a, c, "x", "written at a at epoch 1").await?;
    put(a, c, "y", "written at a at epoch 1").await?;
    old.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await? == ["x", "y"]);

    // a is cut off (from the orchestrator and, for now, from b's Swift).
    // The failover promotes b at epoch 2; users at b then delete the
    // group's only container (its objects first), acknowledged there.
    let at_b = agent_in(env, GROUP, "b", c, dir)?;
    let said = at_b.promoted(GROUP, 2).await.context("b's promote")?;
    ensure!(said.contains("fenced as active at epoch 2"), "{said}");
    ensure!(fence(b, c).await?.as_deref() == Some("epoch=2 site=b"));
    b.delete_object(c, "x").await?;
    b.delete_object(c, "y").await?;
    b.delete_container(c).await?;
    ensure!(b.head_container(c).await?.is_none());
    // users at a go on writing there
    put(a, c, "stale", "written at a after the failover").await?;

    // a reaches b's Swift again: its copier's next round is refused, and
    // the container users deleted at b stays deleted.
    match old.resync(CancellationToken::new(), None).await {
        Err(AgentError::Fenced(why)) => ensure!(
            why.contains("the destination b is active at epoch 2"),
            "{why}"
        ),
        other => bail!("the deposed copier's round was not refused: {other:?}"),
    }
    ensure!(
        b.head_container(c).await?.is_none(),
        "the deposed copier re-created {c} at b: {:?}",
        names(b, c).await
    );
    ensure!(old
        .failing()
        .is_some_and(|f| f.contains("the copier of site a (epoch 1) stops")));

    // A later order is not held by it: a promoted again at epoch 4 (a
    // failback), its copier of that epoch re-creates the container at b
    // with a's objects, as any start from a does.
    ensure!(at_a.promoted(GROUP, 4).await.is_some());
    let again = SwiftReplicator::new(
        SwiftReplicatorSettings::new(
            env.cl.a.settings(),
            env.cl.b.settings(),
            vec![c.to_string()],
            env.cl.scratch().join(dir).join("again.manifest.json"),
        )
        .order(GROUP, "a", "b", 4),
    )?;
    again
        .resync(CancellationToken::new(), None)
        .await
        .context("a's copier at epoch 4")?;
    ensure!(names(b, c).await?.iter().any(|n| n == "stale"));
    at_a.shutdown().await;
    at_b.shutdown().await;
    Ok(())
}

/// Three sites: a's copier at epoch 1 copies into b, a standby that no
/// promote marks. The failover to a third site (c) at epoch 2 reaches a's
/// agent (an answer) before its stop does: a's copier writes nothing more
/// into b — b's containers carry no fence newer than its order, so only
/// a's own word can stop it — and says why. Before, it went on copying
/// a's writes (and deletes) after the failover into b.
pub(crate) async fn third_site(env: &Env<'_>) -> Result<()> {
    use std::sync::Arc;
    use warden_agents::authority::Authority;
    use warden_agents::replicate::OrderCheck;
    use warden_agents::wire::{Command, CommandKind};
    let (a, b) = (&env.a, &env.b);
    let c = "fencethird";
    const GROUP: &str = "webthird";
    let state = env.cl.scratch().join("fence-third-authority");
    std::fs::create_dir_all(&state)?;
    let groups = vec![(GROUP.to_string(), "a".to_string())];
    let at_a = Arc::new(Authority::open(&state, "a", &groups)?);
    let promote = Command::new(GROUP, 1, CommandKind::Promote).to_site("a");
    at_a.admit(&promote).map_err(anyhow::Error::msg)?;
    at_a.record(&promote).map_err(anyhow::Error::msg)?;
    let judged = at_a.clone();
    let mut settings = SwiftReplicatorSettings::new(
        env.cl.a.settings(),
        env.cl.b.settings(),
        vec![c.to_string()],
        env.cl.scratch().join("fence-third.manifest.json"),
    )
    .order(GROUP, "a", "b", 1);
    settings.order_stands = Some(OrderCheck::new(1, move |e| judged.still_active(GROUP, e)));
    let copier = SwiftReplicator::new(settings)?;
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "x", "written at a at epoch 1").await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await? == ["x"]);

    // The failover to c at epoch 2, heard at a; users at a (cut off from
    // its users' new site, not from b's Swift) go on writing there.
    at_a.observe(&BTreeMap::from([(GROUP.to_string(), 2)]));
    put(a, c, "stale", "written at a after the failover").await?;
    match copier.resync(CancellationToken::new(), None).await {
        Err(AgentError::Fenced(why)) => ensure!(
            why.contains("epoch 2 of group webthird is known at site a")
                && why.contains("nothing more written"),
            "{why}"
        ),
        other => bail!("the deposed copier's round was not refused: {other:?}"),
    }
    ensure!(
        names(b, c).await? == ["x"],
        "the deposed copier wrote into the third site: {:?}",
        names(b, c).await
    );
    ensure!(copier
        .failing()
        .is_some_and(|f| f.contains("known at site a")));
    Ok(())
}
