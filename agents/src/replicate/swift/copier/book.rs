//! The copier's memory between rounds: the manifest and the listing
//! timestamps beside it (loaded once, saved when changed), and the changes
//! not yet confirmed at the destination while it is away (the lag).

use super::*;

impl Shared {
    /// After a failed round (destination down): the source alone tells which
    /// changes are not confirmed yet (written after the last good round
    /// started, or unknown to the manifest before any), so the lag keeps
    /// growing while the peer is away.
    pub(super) async fn note_unconfirmed(&self) {
        let last_ok = self.state.lock().unwrap().last_ok_start_us;
        let manifest = self
            .state
            .lock()
            .unwrap()
            .manifest
            .clone()
            .unwrap_or_default();
        let mut oldest: Option<u64> = None;
        for c in &self.settings.containers {
            let Ok(Some(list)) = self.src.list_objects(c).await else {
                return;
            };
            for e in list {
                let ts = e.timestamp_us();
                let pending = match last_ok {
                    Some(t) => ts >= t,
                    None => manifest
                        .items
                        .get(&format!("{c}/{}", e.name))
                        .and_then(|i| parse_version(&i.version))
                        .is_none_or(|(etag, _)| etag != e.hash),
                };
                if pending {
                    oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
                }
            }
        }
        if let Some(o) = oldest {
            let mut st = self.state.lock().unwrap();
            let t = us_to_system(o);
            st.oldest_pending = Some(st.oldest_pending.map_or(t, |p| p.min(t)));
        }
    }

    pub(super) fn manifest(&self) -> Result<Manifest, AgentError> {
        if let Some(m) = self.state.lock().unwrap().manifest.clone() {
            return Ok(m);
        }
        let m = Manifest::load(&self.settings.manifest)?;
        let s = &self.settings;
        let seen = seen::load(
            &s.manifest,
            &cluster_label(&s.source),
            &cluster_label(&s.destination),
        );
        let mut st = self.state.lock().unwrap();
        st.manifest = Some(m.clone());
        st.seen = seen;
        st.seen_changed = false;
        Ok(m)
    }

    /// Keep the listing timestamps beside the manifest when they changed.
    pub(super) fn save_seen(&self) -> Result<(), AgentError> {
        let snapshot = {
            let mut st = self.state.lock().unwrap();
            if !std::mem::take(&mut st.seen_changed) {
                return Ok(());
            }
            st.seen.clone()
        };
        let s = &self.settings;
        seen::save(
            &s.manifest,
            &cluster_label(&s.source),
            &cluster_label(&s.destination),
            &snapshot,
        )
        .inspect_err(|_| {
            self.state.lock().unwrap().seen_changed = true;
        })
    }
}
