//! A static symlink whose target was deleted (or changed) at the source
//! after the link was made: Swift lets it dangle there, and refuses to
//! create it anywhere else (it checks a static link's target).

use super::*;

/// At A, a static link to `t`, then `t` deleted. A round copies everything
/// else and succeeds: the link is listed as refused with the reason, and
/// the lag does not grow because of it (before, every round failed on it
/// and the whole group's lag grew without bound). Mended at the source
/// (`t` back with its ETag), the link follows. The failback's resync does
/// the same with such a link at B, and its verification passes.
pub(super) async fn broken_static_link(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let c = "bl";
    a.put_container(c, &BTreeMap::new()).await?;
    b.put_container(c, &BTreeMap::new()).await?;
    let etag = put(a, c, "t", "target").await?;
    ha.put(
        "bl/link",
        &[
            ("X-Symlink-Target", "bl/t"),
            ("X-Symlink-Target-Etag", &etag),
        ],
        Vec::new(),
    )
    .await?;
    a.delete_object(c, "t").await?;
    // and one whose target was overwritten since (another ETag)
    let etag3 = put(a, c, "t3", "first").await?;
    ha.put(
        "bl/link3",
        &[
            ("X-Symlink-Target", "bl/t3"),
            ("X-Symlink-Target-Etag", &etag3),
        ],
        Vec::new(),
    )
    .await?;
    put(a, c, "t3", "second").await?;
    put(a, c, "plain", "plain at a").await?;
    let repl = env.replicator(&[c], "bl.json");
    let round = repl.resync(CancellationToken::new(), None).await;
    ensure!(
        round.is_ok(),
        "a round with a dangling static link at the source: {round:?}"
    );
    ensure!(
        body(b, c, "plain").await?.as_deref() == Some("plain at a"),
        "the rest was copied"
    );
    let refused = repl.refused();
    ensure!(
        refused
            .iter()
            .any(|r| r.starts_with("bl/link ") && r.contains("gone at the source")),
        "the link is listed as refused, with why: {refused:?}"
    );
    ensure!(
        refused
            .iter()
            .any(|r| r.contains("bl/link3") && r.contains("which has ETag")),
        "{refused:?}"
    );
    ensure!(
        body(b, c, "t3").await?.as_deref() == Some("second"),
        "the overwritten target itself was copied"
    );
    ensure!(
        repl.lag() < Duration::from_secs(1),
        "the lag after a round that did all it could: {:?}",
        repl.lag()
    );
    // Mended at A: the target back, the same ETag.
    put(a, c, "t", "target").await?;
    settled(&repl).await?;
    ensure!(
        link_target(&hb, "bl/link").await?.as_deref() == Some("bl/t"),
        "the mended link at B"
    );
    ensure!(
        !repl.refused().iter().any(|r| r.starts_with("bl/link ")),
        "no longer refused: {:?}",
        repl.refused()
    );
    drop(repl);

    // Failback: at B (active), a static link to `u`, then `u` deleted.
    let etag = put(b, c, "u", "u at b").await?;
    hb.put(
        "bl/link2",
        &[
            ("X-Symlink-Target", "bl/u"),
            ("X-Symlink-Target-Etag", &etag),
        ],
        Vec::new(),
    )
    .await?;
    b.delete_object(c, "u").await?;
    put(b, c, "plain", "plain at b").await?;
    let res = env.resyncer(true, &[c], "bl.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await;
    ensure!(report.is_ok(), "the resync pass: {report:?}");
    ensure!(
        body(a, c, "plain").await?.as_deref() == Some("plain at b"),
        "the rest was fetched"
    );
    let refused = res.refused();
    ensure!(
        refused
            .iter()
            .any(|r| r.contains("bl/link2") && r.contains("gone at the source")),
        "{refused:?}"
    );
    // link3, broken at A and never at B, was moved aside like any
    // divergent write: as a dynamic link to the same target, its ETag pin
    // in its metadata.
    let div: Vec<&str> = report
        .as_ref()
        .map(|r| r.divergent.iter().map(|d| d.name.as_str()).collect())
        .unwrap_or_default();
    ensure!(div.contains(&"bl/link3"), "{div:?}");
    let q = names(a, "bl.warden-quarantine").await?;
    let moved = q
        .iter()
        .find(|n| n.starts_with("link3@"))
        .with_context(|| format!("link3 in the quarantine: {q:?}"))?;
    let (_, h, _) = ha
        .get(&format!("bl.warden-quarantine/{moved}?symlink=get"))
        .await?;
    ensure!(
        h.get("x-symlink-target").map(String::as_str) == Some("bl/t3")
            && h.get("x-object-meta-warden-static-link-etag") == Some(&etag3),
        "the quarantined link3: {h:?}"
    );
    let v = res.verify(&[]).await?;
    ensure!(
        v.differences.is_empty(),
        "the failback's verification: {v:?}"
    );
    Ok(())
}
