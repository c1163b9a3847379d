//! Objects past their `X-Delete-At`: Swift answers 404 for them at once,
//! while its listing keeps them until the object-expirer reaps them
//! (minutes later, or never where no expirer runs).

use super::*;

/// Waits until `cl` answers 404 for `c/o` (its `X-Delete-At` passed)
/// while its listing still shows it.
async fn expired_but_listed(cl: &SwiftClient, c: &str, o: &str) -> Result<()> {
    eventually(&format!("{c}/{o} expired"), PATIENCE, || async {
        Ok(body(cl, c, o).await?.is_none())
    })
    .await?;
    ensure!(
        names(cl, c).await?.iter().any(|n| n == o),
        "{c}/{o} is no longer listed: the scenario needs a listing that still shows an expired \
         object (no object-expirer running)"
    );
    Ok(())
}

/// A failback while expired objects are still listed: one written at B
/// (the active site) during the failover, one written only at A (the
/// returning site, divergent). The pass quarantines nothing of what is
/// gone (before, the quarantine's copy of the expired object answered 404
/// and failed every pass), and the verification does not count either
/// (before, B's expired object was "missing at A" and A's "extra at A"
/// for as long as the listings showed them: no failback could pass).
pub(super) async fn expired_objects(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let (ha, hb) = (Http::new(&env.cl.a).await?, Http::new(&env.cl.b).await?);
    let c = "expiring";
    for cl in [a, b] {
        cl.put_container(c, &BTreeMap::new()).await?;
    }
    put(b, c, "kept", "written at B").await?;
    let expiring = [("X-Delete-After", "1")];
    hb.put(
        &format!("{c}/gone-at-b"),
        &expiring,
        b"written at B, expires".to_vec(),
    )
    .await?;
    ha.put(
        &format!("{c}/gone-at-a"),
        &expiring,
        b"written only at A, expires".to_vec(),
    )
    .await?;
    expired_but_listed(b, c, "gone-at-b").await?;
    expired_but_listed(a, c, "gone-at-a").await?;

    let res = env.resyncer(true, &[c], "expiring.json", DeleteGuard::default());
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await
        .context("a pass while an expired object is still listed here")?;
    ensure!(
        body(a, c, "kept").await?.as_deref() == Some("written at B"),
        "B's write reached A ({report:?})"
    );
    ensure!(
        report
            .divergent
            .iter()
            .all(|d| d.name != "expiring/gone-at-a"),
        "nothing of the expired object to set aside: {:?}",
        report.divergent
    );
    let v = res.verify(&[]).await?;
    ensure!(
        v.differences.is_empty(),
        "expired objects still listed are not differences: {:?}",
        v.differences
    );
    Ok(())
}
