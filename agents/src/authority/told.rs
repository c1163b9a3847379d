//! Whether this site's agent has heard the orchestrator's epochs since it
//! started: the `untold` marker in the site's `state_dir`, written at the
//! agent's start ([`Authority::untold`]) and removed once a leader's answer
//! carrying the group epochs was taken and its epochs are on disk
//! ([`Authority::observe`]); [`untold`] for the rsync gate.
//!
//! With three or more sites a standby that was down or cut off during a
//! failover still holds the old epoch when it comes back, and a deposed
//! site whose replication still runs (it never heard its demote) states
//! that very epoch in its push: judged by the epoch alone, the push would
//! land. While the marker is there the gate refuses every push into the
//! site; the orchestrator's first answer (within a report interval when it
//! is reachable) raises the epochs and removes it. Nothing a pusher states
//! raises an epoch or removes the marker: only the orchestrator's answers
//! do, as they are authenticated today.
//!
//! A marker that cannot be written at start is said in the log and the
//! agent starts all the same (the gate then judges by the epoch on disk,
//! as before); one that cannot be removed keeps pushes refused (the safe
//! side) until a later answer removes it.
//!
//! Only a current leader's answer ends the wait ([`Authority::answered`]).
//! With several orchestrators each answer carries its leader term, and the
//! agent keeps the highest term whose answer it took, on disk with the
//! epochs (a restart must not make a deposed leader look current). An
//! answer of a lower term is a deposed orchestrator's (a leader paused or
//! cut off past its lease that still believes it leads): nothing of it is
//! taken — no epoch, no order, no withdrawal — and the wait goes on. An
//! answer that states an epoch below one on disk (a leader behind this
//! site: deposed, confused, or with a replaced store) raises what it may,
//! lowers nothing, ends no wait and is not kept as the term. Terms start
//! over with a new etcd cluster (or one orchestrator after several): an
//! answer of a lower term that states an epoch above one on disk cannot be
//! a deposed leader's (no leader tells an epoch before it is stored, and a
//! deposed one stores none after its successor won), so it is taken and
//! its term kept — the agent follows the new terms from the group's next
//! epoch on (the fallback for an orchestrator that does not say its
//! cluster).
//!
//! Terms are compared within one etcd cluster only: each answer says the
//! cluster of its term ([`ReportResponse::cluster`]), and the agent keeps
//! the cluster with the term and the clusters this site left
//! (`authority.json` "cluster" and "retired"), by the rule of
//! [`warden_proto::cluster`]. An answer of a cluster this site left is a
//! deposed leader's, whatever its term (a leader of the old cluster still
//! speaking after the orchestrators moved: a paused process, an answer
//! delayed in transit — it carries the old id, so it cannot pass for the
//! new cluster; before the move it was plain term order). An answer of a
//! cluster neither kept nor left (a new etcd cluster whose revisions
//! started over) is the orchestrators' move: taken at the groups' current
//! epochs, its term and cluster kept, the cluster left retired, said once
//! at warn ("orchestrators moved from etcd cluster X to Y: terms start
//! over at T"). A move is not taken from an answer behind this site. An
//! answer without a cluster (an older orchestrator with etcd, or one
//! orchestrator alone, term 0) is judged by its term as before — never a
//! move: a lone orchestrator left running after the move to etcd must not
//! take the site off the cluster.

use std::path::Path;
use std::sync::atomic::Ordering;

use tracing::{debug, info, warn};

use warden_proto::cluster::{self, Judged};

use super::rules::FINAL_EPOCH;
use super::Authority;
use crate::wire::ReportResponse;

/// How the authority took an orchestrator's answer ([`Authority::answered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// No epochs (a follower's answer, a long-poll's): it says nothing of
    /// them; its orders, if any, are taken (a current leader's long-poll).
    Nothing,
    /// A current leader's: its epochs are on disk, the wait is over.
    Leader,
    /// Made under a leader term below `known`, the highest one taken here:
    /// a deposed orchestrator's. None of its epochs, orders or withdrawals
    /// are taken.
    Deposed { known: u64 },
    /// Epochs below those on disk, or that could not be written: higher
    /// ones are taken, nothing is lowered, the wait goes on; its orders
    /// are judged by their epochs as ever.
    Unsettled,
}

/// The marker's name in the site's `state_dir`.
const UNTOLD_NAME: &str = "untold";

/// Does the agent of the site whose `state_dir` is `dir` still wait for the
/// orchestrator's first answer since it started? (The rsync gate.)
pub fn untold(dir: &Path) -> bool {
    dir.join(UNTOLD_NAME).exists()
}

impl Authority {
    fn untold_path(&self) -> std::path::PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(UNTOLD_NAME)
    }

    /// At the agent's start: pushes into this site are refused until the
    /// orchestrator has said the groups' epochs (see the module docs).
    pub fn untold(&self) {
        let path = self.untold_path();
        let body = format!("{}\n", self.site);
        match warden_config::durable::mark(&path, body.as_bytes()) {
            Ok(()) => self.untold.store(true, Ordering::SeqCst),
            Err(e) => {
                warn!(path = %path.display(), cause = %e, "cannot write the marker that keeps pushes into this site refused until the orchestrator has said the groups' epochs; the rsync gate judges by the epochs on disk meanwhile")
            }
        }
    }

    /// Whether a cluster was left (the orchestrators moved to a new etcd
    /// cluster, whose terms start over) since the last call: the command
    /// book's terms, of the cluster left, then compare with nothing
    /// (`crate::book::CommandBook::clusters_moved`).
    pub fn take_cluster_left(&self) -> bool {
        self.left_cluster.swap(false, Ordering::SeqCst)
    }

    /// Take an orchestrator's answer, made by `from`: its epochs and term
    /// (see the module docs). The caller takes no order or withdrawal of
    /// one [`Heard::Deposed`].
    pub fn answered(&self, resp: &ReportResponse, from: &str) -> Heard {
        if resp.epochs.is_empty() && resp.commands.is_empty() && resp.withdrawn.is_empty() {
            return Heard::Nothing;
        }
        let mut g = self.lock();
        let known = self.term.load(Ordering::SeqCst);
        let kept = self.clusters();
        let judged = cluster::judge(kept.cluster, &kept.retired, resp.cluster);
        // A term kept of no known cluster (taken from an orchestrator older
        // than clusters, with etcd) may be of the very cluster this answer
        // names (a rolling upgrade on one etcd cluster): judged by its term,
        // its cluster kept if it is taken — not a move, which would take a
        // deposed upgraded leader whatever its term. (A new cluster after
        // such a term is then taken from a group's next epoch, as before
        // clusters.)
        let unknown_term = judged == Judged::Moved && kept.cluster.is_none() && known > 0;
        let by_term = judged == Judged::Kept || unknown_term;
        if let Judged::Retired { left_for } = judged {
            drop(g);
            self.say(format!(
                "the orchestrator at {from} answers under leader term {} of {}, which this site \
                 left for {}: a deposed leader's answer, none of its epochs, orders or \
                 withdrawals taken",
                resp.term,
                cluster::name(resp.cluster),
                cluster::name(left_for)
            ));
            return Heard::Deposed { known };
        }
        let mut next = g.clone();
        let (mut raised, mut below) = (false, None);
        for (group, &epoch) in &resp.epochs {
            if epoch > FINAL_EPOCH {
                warn!(group = %group, epoch, from, "the orchestrator says group {group} is at epoch {epoch}, within 2^32 of the largest there is: not raised (no leader can have set it)");
                continue;
            }
            if let Some(a) = next.get_mut(group) {
                if epoch > a.epoch {
                    a.epoch = epoch;
                    raised = true;
                } else if epoch < a.epoch && below.is_none() {
                    below = Some((group.clone(), epoch, a.epoch));
                }
            }
        }
        // A deposed leader stores no epoch after its successor won: one
        // of a lower term states none above this site's, unless the
        // terms started over (see the module docs). Terms are compared
        // within one etcd cluster only.
        // An answer of a cluster this site has not followed that is behind
        // it proves nothing (a deposed leader of it, or one with a replaced
        // store): not the orchestrators' move, and with no term to judge it
        // by against this site's, none of it is taken.
        if judged == Judged::Moved && !unknown_term {
            // An answer that states no epochs (a command poll's) cannot
            // be judged "not behind": no move is taken from it, and none
            // of its orders (the same orders come again in the report
            // answers, which carry the epochs). Else an orchestrator of a
            // cluster behind this site, refused on the report channel,
            // moved the site through the poll and had the real leader
            // refused for good.
            if resp.epochs.is_empty() {
                let why = format!(
                    "the orchestrator at {from} answers a command poll under leader term {} of {}, which this site has not followed, without the groups' epochs: a move is taken only from an answer that says them (its report answer); none of its orders or withdrawals taken",
                    resp.term,
                    cluster::name(resp.cluster)
                );
                drop(g);
                if kept.cluster.is_some() {
                    self.say(why);
                } else {
                    debug!("{why}");
                }
                return Heard::Deposed { known };
            }
            if let Some((group, epoch, own)) = &below {
                let why = format!(
                    "the orchestrator at {from} answers under leader term {} of {}, which this \
                     site has not followed, and says group {group} is at epoch {epoch}, below \
                     epoch {own} this site holds: an answer behind this site is not taken as \
                     the orchestrators' move; none of its epochs, orders or withdrawals taken",
                    resp.term,
                    cluster::name(resp.cluster)
                );
                drop(g);
                self.say(why);
                return Heard::Deposed { known };
            }
        }
        if by_term && resp.term < known && (!raised || below.is_some()) {
            drop(g);
            self.say(format!(
                "the orchestrator at {from} answers under leader term {}, below term {known} this \
                 agent has taken: a deposed leader's answer, none of its epochs, orders or \
                 withdrawals taken (if the orchestrators' etcd cluster was replaced by an older \
                 orchestrator that does not say its cluster, their terms started over: its \
                 answers are taken from the group's next epoch on)",
                resp.term
            ));
            return Heard::Deposed { known };
        }
        // The orchestrators moved to another etcd cluster: kept with its
        // term, the cluster left retired —
        // unless the answer is behind this site (it proves nothing).
        let moved = (judged == Judged::Moved && below.is_none()).then(|| {
            let mut m = kept.clone();
            cluster::retire(&mut m.retired, kept.cluster);
            m.cluster = resp.cluster;
            m
        });
        if resp.epochs.is_empty() && moved.is_none() {
            return Heard::Nothing;
        }
        // Kept only with epochs no lower than this site's (a term stated
        // by an answer behind it proves nothing).
        let mut term = if below.is_none() { resp.term } else { known };
        let mut moved_to = None;
        if raised || term != known || moved.is_some() {
            let clusters = moved.as_ref().unwrap_or(&kept);
            match self.save_with(&next, term, clusters) {
                Ok(()) => {
                    *g = next;
                    self.term.store(term, Ordering::SeqCst);
                    if let Some(m) = moved {
                        *self.clusters_lock() = m;
                        moved_to = Some(resp.cluster);
                        if kept.cluster.is_some() {
                            self.left_cluster.store(true, Ordering::SeqCst);
                        }
                    }
                }
                Err(e) if raised => {
                    warn!(path = %self.path.display(), cause = %e, "cannot persist the highest epochs seen; not raised");
                    return Heard::Unsettled;
                }
                // The epochs on disk are the answer's: it is the word all
                // the same; its term is taken once it can be written.
                Err(e) => {
                    warn!(path = %self.path.display(), cause = %e, term, "cannot persist the leader term of the orchestrator's answer; not taken");
                    term = known;
                }
            }
        }
        drop(g);
        if let (Some(to), None) = (moved_to, kept.cluster) {
            // No cluster kept before: a first start, an older file, or one
            // orchestrator before etcd — nothing was left.
            info!(
                from,
                "the orchestrators' leader terms are of {}: followed from term {term}",
                cluster::name(to)
            );
        } else if let Some(to) = moved_to {
            warn!(
                from,
                "orchestrators moved from {} to {}: leader terms are of the new one from term {term} on",
                cluster::name(kept.cluster),
                cluster::name(to)
            );
        } else if term < known {
            warn!(from, term, known, "an answer of leader term {term}, below term {known} taken before, states a newer epoch than this site's: the orchestrators' terms started over (an etcd cluster replaced under an orchestrator that does not say its cluster); its term is followed from now on");
        }
        if let Some((group, epoch, own)) = below {
            self.say(format!(
                "the orchestrator at {from} (leader term {}) says group {group} is at epoch {epoch}, \
                 below epoch {own} this site holds: an orchestrator behind this site (deposed, or its \
                 store replaced); nothing is lowered, and pushes into this site stay refused until a \
                 leader states the current epochs",
                resp.term
            ));
            return Heard::Unsettled;
        }
        if resp.epochs.is_empty() {
            return Heard::Nothing;
        }
        self.told();
        Heard::Leader
    }

    /// A refusal, said at warn level when it is not the one said last
    /// (the same answer comes every report interval), else at debug.
    fn say(&self, refusal: String) {
        let mut last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref() == Some(&refusal) {
            debug!("{refusal}");
            return;
        }
        warn!("{refusal}");
        *last = Some(refusal);
    }

    /// The refusal said last (tests: what the log says).
    #[cfg(test)]
    pub(crate) fn last_refusal(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The orchestrator's epochs are on disk (or were not newer): the
    /// marker goes, and the gate judges pushes by them again.
    pub(super) fn told(&self) {
        if !self.untold.load(Ordering::SeqCst) {
            return;
        }
        let path = self.untold_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %path.display(), cause = %e, "cannot remove the marker: pushes into this site stay refused");
                return;
            }
        }
        self.untold.store(false, Ordering::SeqCst);
        info!("the orchestrator's epochs are on disk: pushes into this site are judged by them");
    }
}
