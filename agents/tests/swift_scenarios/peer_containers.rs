//! The failback's resync reads the active peer and writes only at the
//! returning site: never into the peer, not even a container.

use super::*;

/// A placement container the users deleted at B (the active site), after
/// emptying it, while A (returning) still holds it with a public-read ACL
/// from before the disaster. After A's resync pass (held here by the
/// mass-delete guard: B lists nothing), B still has no such container
/// (before, the pass created
/// it again at B with A's stale ACL and metadata: a delete acknowledged
/// at the active site undone by the returning site, and whatever users
/// then put into a container of that name at B was public).
pub(super) async fn resync_writes_nothing_at_the_peer(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "res-gone";
    let acl: BTreeMap<String, String> = [
        ("x-container-read".to_string(), ".r:*".to_string()),
        ("x-container-meta-owner".to_string(), "stale".to_string()),
    ]
    .into();
    a.put_container(c, &acl).await?;
    put(a, c, "o", "was at both sites").await?;
    let copier = env.replicator(&[c], "res-gone.json");
    settled(&copier).await?;
    drop(copier);
    ensure!(
        body(b, c, "o").await?.as_deref() == Some("was at both sites"),
        "copied to B"
    );
    // failover: B's users empty and delete the container
    b.delete_object(c, "o").await?;
    b.delete_container(c).await?;
    ensure!(b.head_container(c).await?.is_none(), "deleted at B");

    let res = env.resyncer(true, &[c], "res-gone.json", DeleteGuard::default());
    let _ = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    let at_b = b.head_container(c).await?;
    ensure!(
        at_b.is_none(),
        "the returning site's resync created the container again at the active site B: {:?}",
        at_b.map(|i| i.headers)
    );
    Ok(())
}
