//! The lag that outlives the agent. While the oldest change not yet at the
//! peer is older than [`NOTE_AFTER`], its wall-clock time and the start
//! order's epoch are kept beside the manifest (`MANIFEST.behind`); once in
//! sync again the file is removed. A replicator started again under an
//! order of the same epoch — the agent restarted while its pushes kept
//! failing — counts its lag from that time, not from its own start: its
//! report would otherwise say seconds, and `max_lag_on_failover` and
//! `rpo_max` would trust a standby hours behind. A file of another epoch
//! (a failover and a failback since, which made the sites equal) is
//! dropped. Without a manifest, nothing is kept.
//!
//! Written on the two transitions only (behind for [`NOTE_AFTER`], in sync
//! again), never per batch: a busy tree whose batches keep up writes
//! nothing. Wall-clock times of this host only, read back by this host.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::Shared;

/// How old the oldest change not at the peer must be before it is kept.
pub(super) const NOTE_AFTER: Duration = Duration::from_secs(1);

/// What this replicator knows of the file.
#[derive(Debug, Default)]
pub(super) struct BehindState {
    /// The file says behind (written by this process or taken up at start).
    noted: bool,
    /// The time taken up at start, until in sync again.
    kept_since: Option<SystemTime>,
}

/// What the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Behind {
    epoch: u64,
    since_unix_ms: u64,
}

/// `MANIFEST.behind`.
fn path(manifest: &Path) -> PathBuf {
    let mut p = manifest.as_os_str().to_owned();
    p.push(".behind");
    PathBuf::from(p)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The kept time, when the file is of `epoch`; a file of another epoch is
/// removed.
pub(super) fn load(manifest: &Path, epoch: u64) -> Option<SystemTime> {
    let file = path(manifest);
    let body = std::fs::read(&file).ok()?;
    let kept: Behind = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            warn!(path = %file.display(), cause = %e, "unreadable record of the replication lag, ignored");
            return None;
        }
    };
    if kept.epoch != epoch {
        let _ = std::fs::remove_file(&file);
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_millis(kept.since_unix_ms))
}

impl Shared {
    /// The epoch the lag is kept under: the start order's (0 when the
    /// pushes state none).
    fn behind_epoch(&self) -> u64 {
        self.settings.stated.as_ref().map_or(0, |s| s.order.epoch)
    }

    /// At start: takes up the kept time this replicator is behind since,
    /// if any (its lag counts from it until it is in sync again).
    pub(super) fn take_up_behind(&self) {
        let since = self
            .settings
            .manifest
            .as_ref()
            .and_then(|m| load(m, self.behind_epoch()));
        let mut b = self.behind.lock().unwrap();
        b.noted = since.is_some();
        b.kept_since = since;
    }

    /// The lag counted from the kept time (zero when none): what a
    /// replicator started again still owes from before its start.
    pub(super) fn kept_lag(&self) -> Duration {
        let since = self.behind.lock().unwrap().kept_since;
        since.map_or(Duration::ZERO, |t| {
            SystemTime::now().duration_since(t).unwrap_or_default()
        })
    }

    /// Keeps or removes the file on a transition (see the module docs).
    pub(super) async fn note_behind(&self) {
        let Some(manifest) = self.settings.manifest.clone() else {
            return;
        };
        let oldest = self.state.lock().unwrap().oldest();
        let (noted, kept) = {
            let b = self.behind.lock().unwrap();
            (b.noted, b.kept_since.is_some())
        };
        // A lag taken up at start is owed until in sync: a first pass that
        // fails at once leaves this start's own lag young, which is no
        // sign of being in sync again.
        if kept && oldest.is_some() {
            return;
        }
        let behind = oldest.filter(|t| t.elapsed() >= NOTE_AFTER);
        if behind.is_some() == noted {
            return;
        }
        let epoch = self.behind_epoch();
        let file = path(&manifest);
        let since = behind.map(|t| {
            unix_ms(SystemTime::now())
                .saturating_sub(u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
        });
        let written = tokio::task::spawn_blocking(move || match since {
            Some(since_unix_ms) => {
                let body = serde_json::to_vec(&Behind {
                    epoch,
                    since_unix_ms,
                })
                .map_err(std::io::Error::other)?;
                warden_config::durable::replace(&file, &body)
            }
            None => warden_config::durable::remove(&file),
        })
        .await;
        match written {
            Ok(Ok(())) => {
                let mut b = self.behind.lock().unwrap();
                b.noted = behind.is_some();
                if behind.is_none() {
                    b.kept_since = None;
                }
            }
            Ok(Err(e)) => {
                warn!(cause = %e, "cannot keep the replication lag beside the manifest, retrying later")
            }
            Err(e) => warn!(cause = %e, "keeping the replication lag failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_time_of_the_same_epoch_is_read_back_another_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.json");
        let since = unix_ms(SystemTime::now()) - 3_600_000;
        let body = serde_json::to_vec(&Behind {
            epoch: 7,
            since_unix_ms: since,
        })
        .unwrap();
        std::fs::write(path(&manifest), &body).unwrap();
        let at = load(&manifest, 7).expect("kept");
        let ago = at.elapsed().unwrap();
        assert!(
            ago >= Duration::from_secs(3_599) && ago < Duration::from_secs(3_700),
            "{ago:?}"
        );
        assert!(load(&manifest, 8).is_none());
        assert!(!path(&manifest).exists(), "another epoch's file is removed");
        std::fs::write(path(&manifest), b"{not json").unwrap();
        assert!(load(&manifest, 7).is_none());
    }
}
