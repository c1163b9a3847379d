//! What the agent reports about each group's replication: its role here
//! (idle, source, resync), the peer and epoch, the lag or the resync's
//! progress, errors (a container header not yet set among them), the
//! guard's hold, refused and divergent names.

use super::*;

impl Replication {
    /// What to put in the next report.
    pub fn status(&self) -> Vec<ReplicationStatus> {
        self.groups
            .iter()
            .map(|(name, g)| {
                let run = g.run.lock().unwrap_or_else(|p| p.into_inner());
                let mut s = ReplicationStatus {
                    group: name.clone(),
                    role: "idle".into(),
                    passes: run.passes,
                    error: run.error.clone(),
                    guard: g.hold.held(),
                    divergent: run.divergent.iter().map(divergent_wire).collect(),
                    ..Default::default()
                };
                if s.error.is_none() {
                    // Container headers a demote, stop or promote could not set yet.
                    s.error = lock(&g.headers).clone();
                }
                match &run.role {
                    Role::Idle => {}
                    Role::Source {
                        peer,
                        epoch,
                        replicator,
                        ..
                    } => {
                        s.role = "source".into();
                        s.peer = Some(peer.clone());
                        s.epoch = *epoch;
                        s.lag_ms = replicator
                            .lag_known()
                            .then(|| replicator.lag().as_millis() as u64);
                        // The command that started it may have succeeded
                        // while its transfers fail since.
                        if s.error.is_none() {
                            s.error = replicator.failing();
                        }
                        s.drift = replicator.drift();
                        // Plans that hold their own guard or refuse names (Swift).
                        if s.guard.is_none() {
                            s.guard = replicator.guard();
                        }
                        let refused = replicator.refused();
                        s.refused_total = refused.len() as u64;
                        s.refused = refused.into_iter().take(REFUSED_SHOWN).collect();
                    }
                    Role::Resync {
                        peer,
                        epoch,
                        progress,
                    } => {
                        let p = *progress.borrow();
                        s.role = "resync".into();
                        s.peer = Some(peer.clone());
                        s.epoch = *epoch;
                        s.progress = Some(ResyncProgressWire {
                            items_done: p.items_done,
                            bytes_done: p.bytes_done,
                            items_left: p.items_left,
                            bytes_left: p.bytes_left,
                        });
                    }
                }
                s
            })
            .collect()
    }
}

fn divergent_wire(d: &DivergentItem) -> DivergentWire {
    DivergentWire {
        name: d.name.clone(),
        reason: match d.reason {
            crate::replicate::DivergentReason::NotInManifest => "not_in_manifest".into(),
            crate::replicate::DivergentReason::ChangedSinceSync => "changed_since_sync".into(),
            crate::replicate::DivergentReason::SentUnconfirmed => "sent_unconfirmed".into(),
            crate::replicate::DivergentReason::FetchedUnconfirmed => "fetched_unconfirmed".into(),
        },
        action: d.action.clone(),
        moved_to: d.moved_to.clone(),
    }
}
