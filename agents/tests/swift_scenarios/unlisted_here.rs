//! The returning site holds writes its own listing does not show: the
//! container updates of objects written there just before the failure were
//! left pending (its container servers were down), so its listing lags
//! behind its object servers when the failback's resync runs.

use super::*;

/// A failback whose returning site (A) holds two writes of its own that
/// A's listing does not show: `x`, in sync before the failure and then
/// rewritten at A, and `z`, new at A; B, the active site, wrote both names
/// during the failover. The pass quarantines A's versions before it
/// fetches B's (before, it fetched B's over them unseen: no divergent item,
/// A's writes gone for good).
pub(super) async fn unlisted_here(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "unlisted-here";
    let manifest = "unlisted-here.json";
    a.put_container(c, &BTreeMap::new()).await?;
    put(a, c, "x", "x as both sites had it").await?;
    let copier = env.replicator(&[c], manifest);
    copier.resync(CancellationToken::new(), None).await?;
    copier.resync(CancellationToken::new(), None).await?;
    ensure!(names(b, c).await? == ["x"], "x at B before the failure");

    // A's last writes before the failure, their listing rows still pending
    put(a, c, "x", "x rewritten at A, unlisted").await?;
    put(a, c, "z", "z written at A, unlisted").await?;
    // (listed once, so that the rows are in the database, not only pending)
    ensure!(names(a, c).await? == ["x", "z"], "A lists both");
    drop_listing_row(env, "a", c, "x")?;
    drop_listing_row(env, "a", c, "z")?;
    ensure!(names(a, c).await?.is_empty(), "A lists neither");
    // the failover: B writes both names
    put(b, c, "x", "x written at B").await?;
    put(b, c, "z", "z written at B").await?;

    let res = env.resyncer(true, &[c], manifest, DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    let mut moved = BTreeMap::new();
    for d in &report.divergent {
        let to = d.moved_to.clone().context("moved_to")?;
        let (qc, qo) = to.split_once('/').context("container/object")?;
        moved.insert(d.name.clone(), body(a, qc, qo).await?);
    }
    ensure!(
        moved.get(&format!("{c}/x")) == Some(&Some("x rewritten at A, unlisted".into()))
            && moved.get(&format!("{c}/z")) == Some(&Some("z written at A, unlisted".into())),
        "A's own writes set aside before B's were fetched: divergent {:?}",
        report.divergent
    );
    for (o, want) in [("x", "x written at B"), ("z", "z written at B")] {
        ensure!(
            body(a, c, o).await?.as_deref() == Some(want),
            "{o} at A as at B"
        );
    }
    ensure!(
        names(a, &quarantine_container(c)).await?.len() == 2,
        "two set aside"
    );
    Ok(())
}
