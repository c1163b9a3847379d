//! A `swift` copier stopped mid-round (a demote, the agent's shutdown)
//! keeps in its manifest what that round copied: the failback's resync
//! reads that manifest, and an object copied but missing from it — then
//! deleted at the peer by its users — would be taken for a write here
//! that never reached the peer, and kept (the default `divergent`).

use super::copier_fence::put_many;
use super::*;

pub(crate) async fn cancelled_round(env: &Env<'_>) -> Result<()> {
    use warden_agents::replicate::{Manifest, Progress};
    let b = &env.b;
    let c = "cancelledround";
    const MANY: usize = 600;
    let manifest = env.cl.scratch().join("cancelled-round.manifest.json");
    let repl = SwiftReplicator::new(
        SwiftReplicatorSettings::new(
            env.cl.a.settings(),
            env.cl.b.settings(),
            vec![c.to_string()],
            manifest.clone(),
        )
        .order("webcancel", "a", "b", 1),
    )?;
    env.a.put_container(c, &BTreeMap::new()).await?;
    put_many(&env.a, c, "obj-", MANY).await?;
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
