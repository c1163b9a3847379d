//! The service's side of high availability on etcd (DESIGN §7): what a node
//! does when it wins the leader lease ([`HaRole::take_over`]: load the
//! state from etcd, then take the licence and resume runbooks), when it
//! loses it ([`HaRole::step_down`]: revoke the licence, withdraw every
//! command it queued, drop writes it had not made), and, while it follows,
//! keeping its view of groups and runbooks current from etcd
//! ([`Shared::mirror_store`]) so that status and reads on any node are true.
//!
//! Evidence is never loaded: every node keeps its own, warm, from the
//! agents that report to all of them. A node elected before it has been up
//! for one evidence window (agent timeout plus `fall` rounds) decides
//! nothing automatically until then: no blind failover after an election.

use std::time::Duration;

use super::*;
use crate::etcd::leader::{Leadership, Role};

/// The store trouble key of a follower's mirror that cannot be read
/// ([`Shared::mirror_store`]): its alert says the node's view may be stale.
pub(crate) const MIRROR: &str = "mirror";

/// This node's leadership as the election loop last saw it.
pub(crate) struct Ha {
    view: watch::Receiver<Leadership>,
    /// Automatic decisions wait until this instant (evidence window).
    warm_at: Instant,
    /// The store's state version at the last mirror (nothing to read while
    /// it stays).
    mirrored: Mutex<Option<i64>>,
    /// Counts take-overs (raised under the state lock as a take-over puts
    /// the state it loaded): a mirror read that began before a take-over
    /// may be older than what the take-over loaded and is not applied.
    takeovers: std::sync::atomic::AtomicU64,
    /// The term this node leads in (the etcd revision its leader key was
    /// created at), set under the state lock with the ledger of that term;
    /// told in every answer to an agent ([`ReportResponse::term`]).
    term: std::sync::atomic::AtomicU64,
    /// The etcd cluster `term` is a revision of (its data's identity), set with
    /// it; told with it ([`ReportResponse::cluster`], a hold order's
    /// place): terms start over in a new cluster.
    cluster: Mutex<Option<u64>>,
}

impl Ha {
    pub(crate) fn new(view: watch::Receiver<Leadership>) -> Self {
        Ha {
            view,
            warm_at: Instant::now(),
            mirrored: Mutex::new(None),
            takeovers: std::sync::atomic::AtomicU64::new(0),
            term: std::sync::atomic::AtomicU64::new(0),
            cluster: Mutex::new(None),
        }
    }

    /// The term of this node's current (or last) leadership.
    pub(crate) fn term(&self) -> u64 {
        self.term.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The etcd cluster of [`Ha::term`].
    pub(crate) fn cluster(&self) -> Option<u64> {
        *self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The service as the election loop drives it.
pub struct HaRole(pub Arc<Shared>);

#[async_trait]
impl Role for HaRole {
    async fn take_over(&self, term: i64, cluster: Option<u64>) -> Result<(), String> {
        let s = self.0.clone();
        let store = s.store.clone();
        let cfg = s.cfg.clone();
        let (mut loaded, newest) = tokio::task::spawn_blocking(move || {
            load_state(&cfg, store.as_ref()).map(|l| {
                let newest = super::history::newest_recorded(&l, store.as_ref());
                (l, newest)
            })
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        s.history.set(newest);
        super::skew::times_ahead(&mut loaded, &s.cfg, s.clock.now_ms());
        {
            let mut st = s.lock();
            if let Some(ha) = &s.ha {
                ha.takeovers
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            s.writer.loaded(loaded.groups.values());
            st.groups = loaded.groups;
            st.fresh = loaded.fresh;
            st.runbooks = loaded.runbooks.into();
            st.untouched = loaded.untouched;
            st.next_runbook = loaded.next_runbook.max(st.next_runbook);
            // Never below ids this process already gave (and notified).
            st.next_event = loaded.next_event.max(st.next_event);
            st.ledger = Ledger::default();
            if let Some(ha) = &s.ha {
                // A revision is never negative.
                ha.term
                    .store(term.max(0) as u64, std::sync::atomic::Ordering::SeqCst);
                *ha.cluster.lock().unwrap_or_else(|p| p.into_inner()) = cluster;
            }
            st.dns_moving.clear();
            st.recorded = Default::default();
            st.epoch_ahead.clear();
        }
        // What a follower recorded is not the leader's to write.
        s.unsaved.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // The state is loaded: no copy of it is stale any more.
        s.store_ok(MIRROR);
        for g in &loaded.to_write {
            s.persist(g);
        }
        // What a strategy remembers of its layer from an earlier term of
        // this process may have been undone by the leaders between: it is
        // forgotten before this term sends anything (`Strategy::term_began`).
        // And this term's place, which route orders state to the frontends
        // (a frontend that left a cluster refuses its deposed leader's).
        let (term_now, cluster_now) = (s.hold_term(), s.hold_cluster());
        for strategy in s.strategies.values() {
            strategy.term_began();
            strategy.leads_under(term_now, cluster_now);
        }
        s.licence.grant();
        s.restore_provider_stops();
        let node =
            s.ha.as_ref()
                .map(|h| h.view.borrow().node.clone())
                .unwrap_or_default();
        s.event(
            EventKind::Started,
            None,
            None,
            format!(
                "orchestrator {node} leads (term {term}): state loaded from etcd, runbooks resume"
            ),
            vec![],
            None,
        );
        s.announce_untouched();
        // Under the licence, not in the take-over the lease renewal waits
        // for: the runbooks it loaded resume first (a move under way —
        // users may be down — never waits for the adoption of groups new
        // to the store, each of which may wait for its routing layer up to
        // its timeout); then the adoption; then the routing layer is
        // compared with the state just loaded at once, not a reconcile
        // interval later (a deposed leader may have left it behind). All
        // of it this term's only: what outlives its term (the adoption's
        // wait) does nothing under a later one this node won since, whose
        // own take-over does it.
        let me = s.clone();
        s.licence.spawn(move |term| async move {
            // First run after this node already won a later term (a
            // starved scheduler): that term's own take-over resumes.
            if !me.licence.holds(&term) {
                return;
            }
            me.resume();
            me.adopt_fresh_groups().await;
            if !me.licence.holds(&term) {
                return;
            }
            me.reconcile_once().await;
        });
        Ok(())
    }

    fn step_down(&self, why: &str) {
        let s = &self.0;
        s.licence.revoke(why);
        {
            let mut st = s.lock();
            st.ledger = Ledger::default();
            st.dns_moving.clear();
        }
        s.writer.discard();
        if let Some(ha) = &s.ha {
            // Memory may hold changes that never reached etcd: mirror at once.
            *ha.mirrored.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        s.unsaved.lock().unwrap_or_else(|p| p.into_inner()).clear();
        s.command_tick.send_modify(|v| *v += 1);
        warn!(cause = %why, "stepped down: not acting until elected again");
    }

    fn lease_until(&self, deadline: crate::licence::Deadline) -> bool {
        // The licence lapses at the lease's deadline by itself: a process
        // paused past it (or whose election loop is late), or a host woken
        // from suspension past it (the boot clock), answers no report with
        // an order and takes no action once it resumes, before the
        // election loop steps down.
        self.0.licence.lapse_at(deadline)
    }

    fn etcd_health(&self, trouble: Option<&str>) {
        match trouble {
            Some(cause) => self.0.store_trouble("etcd", cause),
            None => self.0.store_ok("etcd"),
        }
    }
}

impl Shared {
    /// With etcd: the leadership as this node sees it.
    pub fn leadership(&self) -> Option<Leadership> {
        self.ha.as_ref().map(|h| {
            let mut l = h.view.borrow().clone();
            l.lease_remaining_ms = l.remaining_now();
            l.is_leader = l.is_leader && self.licence.is_held();
            l
        })
    }

    /// The base URL of node `name` (from the config).
    pub fn node_url(&self, name: &str) -> Option<String> {
        let o = &self.cfg.orchestrator;
        o.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| o.node_url(n))
    }

    /// Whether automatic decisions may be made yet (a node elected right
    /// after it started waits for one evidence window).
    pub(crate) fn evidence_warm(&self) -> bool {
        let Some(ha) = &self.ha else { return true };
        let d = &self.cfg.detection;
        let window = d.agent_timeout + d.interval * d.fall;
        ha.warm_at.elapsed() >= window
    }

    /// While following: replace the view of groups and runbooks with etcd's.
    /// Applied under the state lock only while this node still follows and
    /// no take-over happened since the read began: a read from before a
    /// take-over may predate what the take-over loaded (a deposed leader's
    /// last write), and must not put the older state back under the new
    /// leader.
    pub async fn mirror_store(&self) {
        let Some(ha) = &self.ha else { return };
        let takeovers = ha.takeovers.load(std::sync::atomic::Ordering::SeqCst);
        if self.licence.is_held() {
            return;
        }
        let store = self.store.clone();
        let last = *ha.mirrored.lock().unwrap_or_else(|p| p.into_inner());
        let read = tokio::task::spawn_blocking(move || {
            let version = store.state_version();
            if version.is_some() && version == last {
                return Ok(None);
            }
            Ok::<_, OrchestratorError>(Some((
                version,
                store.groups_read()?,
                store.runbooks_read()?,
            )))
        })
        .await;
        let (version, groups, runbooks) = match read {
            Ok(Ok(Some(read))) => read,
            Ok(Ok(None)) => return self.store_ok(MIRROR),
            // Said, not left silent: what this node shows (status, reads)
            // would be an older state as if it were the current one — a
            // record it cannot read (written by a newer version) would
            // keep it so for good.
            Ok(Err(e)) => return self.store_trouble(MIRROR, &e.to_string()),
            Err(e) => return self.store_trouble(MIRROR, &e.to_string()),
        };
        let mut st = self.lock();
        if self.licence.is_held()
            || ha.takeovers.load(std::sync::atomic::Ordering::SeqCst) != takeovers
        {
            return;
        }
        *ha.mirrored.lock().unwrap_or_else(|p| p.into_inner()) = version;
        // Records this version cannot read (a newer leader's) are said;
        // the others are mirrored all the same.
        let unreadable: Vec<String> = groups
            .unreadable
            .iter()
            .map(|u| format!("group {}", u.key))
            .chain(
                runbooks
                    .unreadable
                    .iter()
                    .map(|u| match u.key.parse::<u64>() {
                        Ok(id) => format!("runbook {id}"),
                        Err(_) => format!("runbook {}", u.key),
                    }),
            )
            .collect();
        if unreadable.is_empty() {
            self.store_ok(MIRROR);
        } else {
            self.store_trouble(
                MIRROR,
                &format!(
                    "{} cannot be read by this version of warden (written by a newer one): \
                     shown as last read, the rest as stored",
                    unreadable.join(", ")
                ),
            );
        }
        for g in groups.read {
            if self.cfg.groups.contains_key(&g.name) {
                st.groups.insert(g.name.clone(), g);
            }
        }
        st.runbooks = runbooks.read.into_iter().map(|r| (r.id, r)).collect();
    }

    /// How often a follower mirrors the store.
    pub fn mirror_period(&self) -> Duration {
        self.cfg.detection.interval.max(Duration::from_millis(500))
    }
}
