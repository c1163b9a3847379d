//! A group's replication as `warden status` shows it: its state, the
//! divergent items (at most [`DIVERGENT_IN_STATUS`]) and the last pass.

use super::*;

/// A group's replication, as `warden status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicationView {
    pub plan: String,
    /// The group's divergent policy.
    pub divergent_policy: String,
    /// `replicating` (active → standby runs), `paused` (after a failover,
    /// until the failback's resync), `resync` (a returning site fetches),
    /// `starting`, or `not running`.
    pub state: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// The active site's reported lag, ms.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// What losing the active site now would lose, ms (lag + report age, or
    /// the time since replication was paused).
    #[serde(default)]
    pub rpo_ms: Option<u64>,
    /// A resync that runs now: items/bytes done and left, passes.
    #[serde(default)]
    pub progress: Option<warden_proto::agent::ResyncProgressWire>,
    #[serde(default)]
    pub passes: u32,
    /// `SITE: error` for every site whose last replication attempt failed.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Divergent items found by the last resync: the first
    /// [`DIVERGENT_IN_STATUS`]; all of them through
    /// `GET /v1/groups/{group}/divergent`.
    #[serde(default)]
    pub divergent: Vec<warden_proto::agent::DivergentWire>,
    /// How many divergent items there are in all.
    #[serde(default)]
    pub divergent_total: usize,
    /// Of those, how many the store could not keep (etcd's request limit;
    /// see `GroupState::divergent_not_stored`): not listed here, still at
    /// the site.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub divergent_not_stored: u64,
    /// Per site: the pass its mass-delete guard holds, as the site said
    /// it (what `warden clear --deletions SITE` releases, naming it back).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, String>,
}

/// Divergent items shown in a status view.
pub const DIVERGENT_IN_STATUS: usize = 100;

pub(crate) fn replication_view(s: &Shared, g: &GroupState) -> Option<ReplicationView> {
    let rc = s.cfg.groups.get(&g.name)?.replication()?;
    let st = s.lock();
    let sites = s.cfg.groups.get(&g.name)?.site_names();
    let mut v = ReplicationView {
        plan: rc.plan.as_str().to_string(),
        divergent_policy: rc.divergent.as_str().to_string(),
        state: "not running".into(),
        source: None,
        target: None,
        lag_ms: None,
        rpo_ms: s.rpo_ms(&st, &g.name, s.clock.now_ms()),
        progress: None,
        passes: 0,
        errors: Vec::new(),
        divergent: g
            .divergent
            .iter()
            .take(DIVERGENT_IN_STATUS)
            .map(|d| d.known.clone())
            .collect(),
        divergent_total: g
            .divergent
            .len()
            .saturating_add(usize::try_from(g.divergent_not_stored).unwrap_or(usize::MAX)),
        divergent_not_stored: g.divergent_not_stored,
        held: BTreeMap::new(),
    };
    for site in &sites {
        let Some((_, r)) = Shared::replication_status(&st, site, &g.name) else {
            continue;
        };
        if let Some(e) = &r.error {
            v.errors.push(format!("{site}: {e}"));
        }
        if let Some(held) = &r.guard {
            v.held.insert(site.clone(), held.clone());
        }
        match r.role.as_str() {
            // While replication is paused (a failover stopped it), a
            // "source" report is the old active site's last word, not
            // replication running: the state stays "paused" (before, it
            // read "replicating a → b" until the failover's runbook ended,
            // with a confirmed down).
            "source" if *site == g.active && g.replication_paused_since_unix_ms.is_none() => {
                v.state = "replicating".into();
                v.source = Some(site.clone());
                v.target = r.peer.clone();
                v.lag_ms = r.lag_ms;
            }
            "resync" => {
                v.state = "resync".into();
                v.source = r.peer.clone();
                v.target = Some(site.clone());
                v.progress = r.progress;
                v.passes = r.passes;
            }
            _ => {}
        }
    }
    if v.state == "not running" && g.replication_paused_since_unix_ms.is_some() {
        v.state = "paused".into();
    }
    Some(v)
}
