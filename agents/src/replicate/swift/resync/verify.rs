//! The verification of a resync ([`Resyncer::verify`]): both clusters
//! listed and compared, each listed difference asked of the object servers
//! (a HEAD as stored) so an object past its `X-Delete-At`, or one the
//! peer's listing has not caught up with, is no difference.

use super::*;

impl SwiftResyncer {
    /// [`Resyncer::verify`] of a [`SwiftResyncer`].
    pub(super) async fn verify_listings(
        &self,
        except: &[String],
    ) -> Result<VerifyReport, AgentError> {
        let s = &self.settings;
        let (peer, here) = list_pair(&self.peer, &self.here, &s.containers).await?;
        let mut report = VerifyReport {
            items: peer.len() as u64,
            bytes: peer.values().map(|e| e.bytes).sum(),
            ..Default::default()
        };
        let broken = self.broken.lock().unwrap().clone();
        for (name, e) in &peer {
            if broken.contains_key(name) && !here.contains_key(name) {
                // broken at the peer: it cannot exist here (listed as refused)
                report.excepted += 1;
                continue;
            }
            match here.get(name) {
                // listed at the peer but gone there (past its X-Delete-At,
                // not reaped yet): nothing here to miss — said, as Swift
                // answers the same 404 when its object servers do not
                // serve an object they should hold
                None if !self.holds(&self.peer, name).await? => {
                    warn!(object = %name, peer = %cluster_label(&s.peer), "listed at the peer, which answers 404 for it (past its X-Delete-At and not reaped yet, or its object servers do not serve it): not counted as missing here");
                }
                None => report.differences.push(Difference {
                    path: name.into(),
                    kind: DifferenceKind::MissingAtTarget,
                }),
                Some(h) if h.hash != e.hash || h.bytes != e.bytes => {
                    report.differences.push(Difference {
                        path: name.into(),
                        kind: DifferenceKind::Changed,
                    })
                }
                Some(_) => {}
            }
        }
        for (name, h) in here.iter().filter(|(n, _)| !peer.contains_key(*n)) {
            if except.iter().any(|x| x == name) {
                report.excepted += 1;
            } else if !self.peer_holds_unlisted(name, h).await?
                && self.holds(&self.here, name).await?
            {
                report.differences.push(Difference {
                    path: name.into(),
                    kind: DifferenceKind::ExtraAtTarget,
                });
            }
        }
        Ok(report)
    }

    /// Whether `cluster` holds `name` (`container/object`) itself, asked of
    /// its object servers (a HEAD as stored): an object past its
    /// `X-Delete-At` answers 404 at once while the listing shows it until
    /// the object-expirer reaps it (minutes, or never where none runs) —
    /// not a difference for a verification to fail on.
    async fn holds(&self, cluster: &SwiftClient, name: &str) -> Result<bool, AgentError> {
        let (c, o) = split_name(name);
        cluster.exists_as_stored(c, o).await
    }

    /// Whether a plain object here that the peer's listing does not show
    /// is still at the peer, the same (its ETag): what a pass keeps when
    /// the peer's listing lags ([`delete_if_gone`]), and not a difference.
    /// A manifest or link is not compared this way (its listed hash is not
    /// its ETag): it stays a difference.
    async fn peer_holds_unlisted(&self, name: &str, h: &ObjectEntry) -> Result<bool, AgentError> {
        if h.slo_etag.is_some() || h.symlink_path.is_some() {
            return Ok(false);
        }
        let (c, o) = split_name(name);
        Ok(self
            .peer
            .head_object(c, o)
            .await?
            .is_some_and(|i| i.etag.trim_matches('"') == h.hash))
    }
}
