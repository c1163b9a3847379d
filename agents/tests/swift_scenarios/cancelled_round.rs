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
