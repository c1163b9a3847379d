//! Symlinks and DLO manifests deleted at the active site while the peer's
//! listing does not show them (a container update still pending there):
//! the copier asks the peer's object servers, and a HEAD that follows a
//! link (to its target, or to nothing) or reads a DLO as its segments
//! does not tell the object the copier wrote.

use super::*;

/// At A: a target, a link to it, a link to nothing, a static link and a
/// DLO manifest, all copied to B. B's listing then loses their rows, and
/// A deletes the links and the manifest. The next round deletes each at
/// B all the same (before, the links and the manifest stayed at B for
/// good: the round took the target's ETag, or the 404 of a dangling
/// link, for a change at B, and forgot the names; a failover then brought
/// back at B what A's users had deleted).
pub(super) async fn lagging_links(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let c = "lagging-kinds";
    a.put_container(c, &BTreeMap::new()).await?;
    let etag = put(a, c, "t", "the target").await?;
    ha.put(
        &format!("{c}/link"),
        &[("X-Symlink-Target", &format!("{c}/t"))],
        Vec::new(),
    )
    .await?;
    ha.put(
        &format!("{c}/dangling"),
        &[("X-Symlink-Target", &format!("{c}/nothing-here"))],
        Vec::new(),
    )
    .await?;
    ha.put(
        &format!("{c}/static"),
        &[
            ("X-Symlink-Target", &format!("{c}/t")),
            ("X-Symlink-Target-Etag", &etag),
        ],
        Vec::new(),
    )
    .await?;
    put(a, c, "seg-1", "dlo segment").await?;
    ha.put(
        &format!("{c}/dlo"),
        &[("X-Object-Manifest", &format!("{c}/seg-"))],
        Vec::new(),
    )
    .await?;
    let copier = env.replicator(&[c], "lagging-kinds.json");
    settled(&copier).await?;
    let gone = ["link", "dangling", "static", "dlo"];
    let listed = names(b, c).await?;
    for o in gone {
        ensure!(listed.iter().any(|n| n == o), "{o} copied to B: {listed:?}");
        drop_listing_row(env, "b", c, o)?;
    }
    ensure!(
        !names(b, c)
            .await?
            .iter()
            .any(|n| gone.contains(&n.as_str())),
        "B no longer lists them"
    );
    for o in gone {
        a.delete_object(c, o).await?;
    }
    copier.resync(CancellationToken::new(), None).await?;
    for o in gone {
        let (status, h, _) = hb
            .send(
                reqwest::Method::HEAD,
                &format!("{c}/{o}?symlink=get&multipart-manifest=get"),
                &[],
                Vec::new(),
            )
            .await?;
        ensure!(
            status == 404,
            "{o}, deleted at A, is still at B ({status}, {h:?}): the delete did not reach B \
             while B's listing did not show it"
        );
    }
    ensure!(
        body(b, c, "t").await?.as_deref() == Some("the target"),
        "the target stays"
    );
    Ok(())
}
