//! A `swift` copier stopped mid-round (a demote, the agent's shutdown)
//! keeps in its manifest what that round copied: the failback's resync
//! reads that manifest, and an object copied but missing from it — then
//! deleted at the peer by its users — would be taken for a write here
//! that never reached the peer, and kept (the default `divergent`).

use super::copier_fence::put_many;
use super::*;

/// A copier a → b of container `c` (group `group`, epoch 1) with a
/// manifest of its own, and `many` objects at a to copy: the copier and
/// its manifest's path.
async fn round_of(
    env: &Env<'_>,
    c: &str,
    group: &str,
    many: usize,
) -> Result<(SwiftReplicator, std::path::PathBuf)> {
    let manifest = env.cl.scratch().join(format!("{c}.manifest.json"));
    let repl = SwiftReplicator::new(
        SwiftReplicatorSettings::new(
            env.cl.a.settings(),
            env.cl.b.settings(),
            vec![c.to_string()],
            manifest.clone(),
        )
        .order(group, "a", "b", 1),
    )?;
    env.a.put_container(c, &BTreeMap::new()).await?;
    put_many(&env.a, c, "obj-", many).await?;
    Ok((repl, manifest))
}

pub(crate) async fn cancelled_round(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::{Manifest, Progress};
    let b = &env.b;
    let c = "cancelledround";
    const MANY: usize = 600;
    let (repl, manifest) = round_of(env, c, "webcancel", MANY).await?;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let round = repl.resync(cancel.clone(), Some(tx));
    let stop = async {
        rx.wait_for(|p| p.items >= 30)
            .await
            .map_err(|_| anyhow::anyhow!("the round ended before 30 copies"))?;
        cancel.cancel();
        Ok::<_, anyhow::Error>(())
    };
    let (r, stopped) = tokio::join!(round, stop);
    stopped?;
    ensure!(
        matches!(r, Err(AgentError::ReplicationCancelled)),
        "the round was not cancelled: {r:?}"
    );
    // (the PUTs in flight when the round stopped may still land)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_b = names(b, c).await?;
    ensure!(at_b.len() >= 30 && at_b.len() < MANY, "{} at b", at_b.len());
    let kept = Manifest::load(&manifest)
        .map(|m| m.items.len())
        .unwrap_or(0);
    let concurrency = repl.settings().concurrency;
    ensure!(
        kept + concurrency >= at_b.len(),
        "the manifest keeps {kept} of the {} objects the stopped round copied to b",
        at_b.len()
    );
    Ok(())
}

/// A `swift` copier whose agent dies mid-round (the round's future is
/// dropped: no cancel path runs, as with a SIGKILL or a power loss) has
/// saved what the round confirmed up to about a second before: the
/// manifest is saved while a round runs, not only at its end. Before, a
/// long round's copies were all missing from the manifest (the failback
/// then kept, as writes here, objects the peer's users deleted since).
pub(crate) async fn killed_round(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::{Manifest, Progress};
    let b = &env.b;
    let c = "killedround";
    const MANY: usize = 1500;
    let (repl, manifest) = round_of(env, c, "webkilled", MANY).await?;
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let copied_then = {
        let round = repl.resync(CancellationToken::new(), Some(tx));
        tokio::pin!(round);
        let seen = tokio::select! {
            r = &mut round => anyhow::bail!("the round ended before it was killed (the test proves nothing): {r:?}"),
            w = async {
                rx.wait_for(|p| p.items >= 30).await.map(|p| p.items)
            } => w.map_err(|_| anyhow::anyhow!("no progress"))?,
        };
        // A second and a half more of copies, then the agent dies.
        tokio::select! {
            r = &mut round => anyhow::bail!("the round ended before it was killed (the test proves nothing): {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
        }
        seen
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_b = names(b, c).await?;
    ensure!(
        at_b.len() < MANY,
        "every object reached b: the round was not cut short"
    );
    let kept = Manifest::load(&manifest)
        .map(|m| m.items.len())
        .unwrap_or(0);
    ensure!(
        kept as u64 >= copied_then,
        "the manifest keeps {kept} objects after the round was killed; {copied_then} were copied more than a second before ({} at b)",
        at_b.len()
    );
    Ok(())
}

/// The failback's resync killed in the middle of its fetches (the pass's
/// future dropped, as with a SIGKILL), then the active site's users
/// delete objects that had already reached the returning site: the next
/// pass deletes them here too. Before, the resync saved its manifest only
/// at the pass's end: every object the killed pass fetched was unknown to
/// the manifest, and one deleted at the peer since was kept as a write
/// here (the default `divergent`), then pushed back after the cut-over.
/// The objects were in sync before the disaster and overwritten at the
/// peer during it: the next pass must not take the fetched ones for
/// changes here either (their listing timestamps here moved with the
/// copy; the stamps remembered from before are forgotten with each save).
pub(crate) async fn killed_resync(env: &Env<'_>) -> Result<()> {
    use futures::StreamExt;
    use warden_agents::replicate::{DivergentPolicy, ResyncProgress};
    let (a, b) = (&env.a, &env.b);
    let c = "killedresync";
    const MANY: usize = 1500;
    a.put_container(c, &BTreeMap::new()).await?;
    put_many(a, c, "obj-", MANY).await?;
    // In sync before the disaster: a replicated to b.
    env.replicator(&[c], "killedresync.json")
        .resync(CancellationToken::new(), None)
        .await?;
    ensure!(
        names(b, c).await?.len() == MANY,
        "the copier copied them all"
    );
    // During the disaster, b's users write every object again.
    let mut puts = futures::stream::iter(0..MANY)
        .map(|i| async move { put(b, c, &format!("obj-{i:04}"), &format!("v2 {i}")).await })
        .buffer_unordered(16);
    while let Some(r) = puts.next().await {
        r?;
    }
    let at_b = etags(b, c).await?;
    let guard = DeleteGuard::default();
    let res = env.resyncer(true, &[c], "killedresync.json", guard);
    let (tx, mut rx) = tokio::sync::watch::channel(ResyncProgress::default());
    let early = {
        let pass = res.pass(DivergentPolicy::Keep, CancellationToken::new(), Some(tx));
        tokio::pin!(pass);
        tokio::select! {
            r = &mut pass => anyhow::bail!("the pass ended before it was killed (the test proves nothing): {r:?}"),
            w = rx.wait_for(|p| p.items_done >= 30) => {
                w.map_err(|_| anyhow::anyhow!("no progress"))?;
            }
        }
        // What had arrived by then (the pass paused while this lists).
        let early: Vec<String> = etags(a, c)
            .await?
            .into_iter()
            .filter(|(n, e)| at_b.get(n) == Some(e))
            .map(|(n, _)| n)
            .collect();
        // A second and a half more of fetches, then the agent dies.
        tokio::select! {
            r = &mut pass => anyhow::bail!("the pass ended before it was killed (the test proves nothing): {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
        }
        early
    };
    drop(res);
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        early.len() >= 20,
        "{} fetched before the last 1.5 s",
        early.len()
    );
    // The active site's users delete 20 objects that had reached a.
    let gone: Vec<String> = early.iter().take(20).cloned().collect();
    for o in &gone {
        b.delete_object(c, o).await?;
    }
    // The agent's next process: a new resyncer on the same manifest.
    let res = env.resyncer(true, &[c], "killedresync.json", guard);
    let p = res
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await?;
    ensure!(
        p.divergent.is_empty(),
        "fetched from the peer, then taken for writes here: {:?}",
        p.divergent
            .iter()
            .take(5)
            .map(|d| (&d.name, &d.action))
            .collect::<Vec<_>>()
    );
    let here = names(a, c).await?;
    ensure!(
        gone.iter().all(|o| !here.contains(o)),
        "deleted at the peer after they arrived, still here: {:?}",
        gone.iter().filter(|o| here.contains(o)).collect::<Vec<_>>()
    );
    ensure!(here.len() == MANY - 20, "{} here", here.len());
    Ok(())
}

/// A copier whose site is lost mid-round, before a save confirmed what
/// the round had copied (its future dropped within the first second);
/// the active site's users then delete what had arrived. The failback's
/// resync under `keep` moves those objects to the quarantine
/// (`sent_unconfirmed`) instead of keeping them in place, where the next
/// round would copy them back: a delete acknowledged at the active site,
/// undone. What the round had not announced yet, and a write made after,
/// stay in place as writes here.
pub(crate) async fn sent_unconfirmed(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::sent::Sent;
    use warden_agents::replicate::{DivergentPolicy, DivergentReason, Manifest, Progress};
    let (a, b) = (&env.a, &env.b);
    let c = "sentunconfirmed";
    const MANY: usize = 600;
    let file = "sentunconfirmed.json";
    a.put_container(c, &BTreeMap::new()).await?;
    put_many(a, c, "obj-", MANY).await?;
    let manifest = env.cl.scratch().join(file);
    {
        let repl = env.replicator(&[c], file);
        let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
        let round = repl.resync(CancellationToken::new(), Some(tx));
        tokio::pin!(round);
        tokio::select! {
            r = &mut round => anyhow::bail!("the round ended before it was killed (the test proves nothing): {r:?}"),
            w = rx.wait_for(|p| p.items >= 10) => { w.map_err(|_| anyhow::anyhow!("no progress"))?; }
        }
        // the site is lost: the round's future dropped, no cancel path runs
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let booked = Manifest::load(&manifest)
        .map(|m| m.items)
        .unwrap_or_default();
    let arrived: Vec<String> = names(b, c)
        .await?
        .into_iter()
        .filter(|n| !booked.contains_key(&format!("{c}/{n}")))
        .collect();
    ensure!(
        !arrived.is_empty(),
        "every copied object was confirmed before the loss (the test proves nothing): {} booked",
        booked.len()
    );
    let record = Sent::load(&Sent::beside(&manifest));
    ensure!(
        arrived
            .iter()
            .all(|n| record.covers_object(&format!("{c}/{n}"))),
        "recorded before the copies started: {} names recorded",
        record.names.len()
    );
    // The peer is active: its users delete what had arrived; a is written
    // once more after the loss (never sent).
    for o in &arrived {
        b.delete_object(c, o).await?;
    }
    put(a, c, "written-after", "never left a").await?;

    let res = env.resyncer(true, &[c], file, DeleteGuard::default());
    let p = res
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await?;
    let by_name: BTreeMap<&str, (&DivergentReason, &str)> = p
        .divergent
        .iter()
        .map(|d| (d.name.as_str(), (&d.reason, d.action.as_str())))
        .collect();
    for o in &arrived {
        let name = format!("{c}/{o}");
        ensure!(
            by_name.get(name.as_str()) == Some(&(&DivergentReason::SentUnconfirmed, "quarantined")),
            "{name}: {:?}",
            by_name.get(name.as_str())
        );
    }
    ensure!(
        by_name.get(format!("{c}/written-after").as_str())
            == Some(&(&DivergentReason::NotInManifest, "kept")),
        "a write that never left a stays in place: {:?}",
        by_name.get(format!("{c}/written-after").as_str())
    );
    let unconfirmed = by_name
        .values()
        .filter(|(r, _)| **r == DivergentReason::SentUnconfirmed)
        .count();
    ensure!(
        unconfirmed <= 256,
        "only the part announced before the loss is in doubt: {unconfirmed}"
    );
    let here = names(a, c).await?;
    ensure!(
        arrived.iter().all(|o| !here.contains(o)),
        "deleted at the active site, back at the returning one"
    );
    let moved = names(a, &format!("{c}.warden-quarantine")).await?;
    ensure!(
        moved.len() >= arrived.len(),
        "the returning site's copies are kept aside: {} of {}",
        moved.len(),
        arrived.len()
    );
    ensure!(
        !Sent::beside(&manifest).exists(),
        "a resync pass that completed ends the record"
    );
    Ok(())
}
