//! A static symlink whose target was deleted at the source after the link
//! was made: Swift lets it dangle there, and refuses to create it anywhere
//! else (it checks a static link's target).

use super::*;

/// At A, a static link to `t`, then `t` deleted. A round copies everything
/// else and succeeds: the link is listed as refused with the reason, and
/// the lag does not grow because of it (before, every round failed on it
/// and the whole group's lag grew without bound). Mended at the source
/// (`t` back), the link follows. A link whose target *is* at the source
/// (here outside the plan, its name percent-encoded) is never called
/// broken: the round fails as it always did. The failback's resync skips
/// such a link at B and its verification passes; one broken at A (a
/// divergent write there) is quarantined as a dynamic link, its ETag pin
/// kept in metadata.
/// PUTs a static symlink at `path` to `target` (as Swift keeps it,
/// percent-encoded), pinned to `etag`.
async fn static_link(http: &Http, path: &str, target: &str, etag: &str) -> Result<()> {
    http.put(
        path,
        &[
            ("X-Symlink-Target", target),
            ("X-Symlink-Target-Etag", etag),
        ],
        Vec::new(),
    )
    .await
}

pub(super) async fn broken_static_link(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let c = "bl";
    for cont in [c, "bo", "bo-out"] {
        a.put_container(cont, &BTreeMap::new()).await?;
        b.put_container(cont, &BTreeMap::new()).await?;
    }
    let etag = put(a, c, "t", "target").await?;
    static_link(&ha, "bl/link", "bl/t", &etag).await?;
    a.delete_object(c, "t").await?;
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
        repl.lag() < Duration::from_secs(1),
        "the lag after a round that did all it could: {:?}",
        repl.lag()
    );
    // Mended at A: the target back, the same content (the same ETag).
    put(a, c, "t", "target").await?;
    settled(&repl).await?;
    ensure!(
        link_target(&hb, "bl/link").await?.as_deref() == Some("bl/t"),
        "the mended link at B"
    );
    ensure!(repl.refused().is_empty(), "{:?}", repl.refused());
    drop(repl);

    // A link whose target is at the source but outside the plan, with a
    // space in its name: refused at B, never called broken.
    let etag = put(a, "bo-out", "a b", "outside").await?;
    static_link(&ha, "bo/l", "bo-out/a%20b", &etag).await?;
    let repl = env.replicator(&["bo"], "bo.json");
    let round = repl.resync(CancellationToken::new(), None).await;
    ensure!(
        round.is_err(),
        "a link to a target the plan does not carry: {round:?}"
    );
    ensure!(repl.refused().is_empty(), "{:?}", repl.refused());
    drop(repl);

    // Failback: at B (active), a static link to `u`, then `u` deleted; at A
    // (returning), a divergent static link to `qt`, then `qt` deleted.
    let etag = put(b, c, "u", "u at b").await?;
    static_link(&hb, "bl/link2", "bl/u", &etag).await?;
    b.delete_object(c, "u").await?;
    put(b, c, "plain", "plain at b").await?;
    let qetag = put(a, c, "qt", "qt at a").await?;
    static_link(&ha, "bl/qlink", "bl/qt", &qetag).await?;
    a.delete_object(c, "qt").await?;
    let res = env.resyncer(true, &[c], "bl.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .context("the resync pass")?;
    ensure!(
        body(a, c, "plain").await?.as_deref() == Some("plain at b"),
        "the rest was fetched"
    );
    let refused = res.refused();
    ensure!(
        refused
            .iter()
            .any(|r| r.starts_with("bl/link2 ") && r.contains("gone at the source")),
        "{refused:?}"
    );
    let div: Vec<&str> = report.divergent.iter().map(|d| d.name.as_str()).collect();
    ensure!(div.contains(&"bl/qlink"), "{div:?}");
    let q = names(a, "bl.warden-quarantine").await?;
    let moved = q
        .iter()
        .find(|n| n.starts_with("qlink@"))
        .with_context(|| format!("qlink in the quarantine: {q:?}"))?;
    let (_, h, _) = ha
        .get(&format!("bl.warden-quarantine/{moved}?symlink=get"))
        .await?;
    ensure!(
        h.get("x-symlink-target").map(String::as_str) == Some("bl/qt")
            && h.get("x-object-meta-warden-static-link-etag") == Some(&qetag),
        "the quarantined qlink: {h:?}"
    );
    let v = res.verify(&[]).await?;
    ensure!(
        v.differences.is_empty(),
        "the failback's verification: {v:?}"
    );
    Ok(())
}
