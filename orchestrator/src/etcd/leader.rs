//! The leader lease: one orchestrator of an etcd deployment holds the key
//! `P leader`, attached to its lease, and only it may act (DESIGN §7).
//!
//! Each node grants itself a lease of `lease_ttl` and tries, every poll,
//! a transaction "create `P leader` = my name with my lease if it does not
//! exist". The one that succeeds leads; its term is the key's create
//! revision, which guards every write ([`super::EtcdStore::set_guard`]).
//! A leader key on no lease (written by hand with `etcdctl put`) is no
//! node's and would never expire: a campaigning node removes it (only
//! while it is still that key) and the election goes on.
//!
//! The leader keeps its lease alive every third of the TTL. Its own deadline
//! is the send time of the last keep-alive etcd answered plus the TTL, less a
//! tenth: etcd expires the lease no earlier than the TTL after it *received*
//! that keep-alive, so the leader stops acting before anyone else can win.
//! The deadline is counted on the monotonic clock and on the boot clock
//! ([`Deadline`]): a host suspended past it (the monotonic clock stands
//! still meanwhile) finds it passed when it wakes.
//! At the deadline (etcd unreachable, a partition, a pause), or when the key
//! is no longer its own (seen at once by a watch on the key — an operator
//! who deletes it, revokes its lease or rewrites it, even on its lease
//! naming another node —, else at the next renewal), it
//! steps down at once: the licence is revoked, which
//! cancels the step in progress. The service is told the deadline too
//! ([`Role::lease_until`]): its licence lapses there by itself, so a paused
//! process that resumes past it acts on nothing before this loop runs. On
//! shutdown it resigns (deletes the key and revokes the lease) so a
//! follower takes over within one poll.
//!
//! Here: the [`Role`] the service plays, the [`Leadership`] view and the
//! election loop ([`Election::run`]); `leader/campaign.rs` the campaign
//! for the key; `leader/term.rs` the held term.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{retrying, EtcdStore};
use crate::licence::{Asked, Deadline};

mod campaign;
mod identity;
mod term;

/// What the service does when this node wins or loses the lease.
#[async_trait]
pub trait Role: Send + Sync {
    /// This node won `term` (the leader key's create revision) in etcd
    /// cluster `cluster` (its data's identity, `identity`, read with the answer that made it
    /// leader; `None` when etcd's answer had no header): load the state
    /// from the store, then take the licence. An error gives the lease
    /// back.
    async fn take_over(&self, term: i64, cluster: Option<u64>) -> Result<(), String>;
    /// This node lost the lease (or shuts down): stop acting now.
    fn step_down(&self, why: &str);
    /// This node's lease runs (by its own count) until `deadline`, on the
    /// monotonic and the boot clock: called before [`Role::take_over`] and
    /// at every renewal. Nothing may act past it on either clock, whether
    /// or not this loop got to run and step down (a paused process, a
    /// starved runtime, a suspended host). False when the licence has
    /// lapsed already (the renewal came back after the deadline): the
    /// term ends.
    fn lease_until(&self, _deadline: Deadline) -> bool {
        true
    }
    /// etcd answered (`None`) or failed (`Some(cause)`).
    fn etcd_health(&self, trouble: Option<&str>);
}

/// This node's view of the leadership, for status and `/v1/leader`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leadership {
    /// This node.
    pub node: String,
    /// Who holds the leader key, as last read (`None`: nobody, or unknown).
    pub leader: Option<String>,
    /// Whether this node holds the licence to act.
    pub is_leader: bool,
    /// The leader key's create revision while this node leads.
    pub term: Option<i64>,
    /// The etcd cluster `term` is a revision of (its data's identity, `identity`), while
    /// this node leads: terms start over in a new cluster, and receivers
    /// compare terms within one (`warden_proto::cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
    /// The lease's time to live.
    pub lease_ttl_ms: u64,
    /// Time left of the leader's lease, as last seen (the leader's own
    /// deadline on the leader; etcd's count on the others).
    pub lease_remaining_ms: Option<u64>,
    /// Whether etcd answered the last request.
    pub etcd_ok: bool,
    /// The last etcd failure while it does not answer.
    pub etcd_trouble: Option<String>,
    /// Why this node's last take-over failed (it won the lease but could
    /// not load the state), until it takes over.
    #[serde(default)]
    pub take_over_failed: Option<String>,
    #[serde(skip)]
    pub seen_at: Option<Instant>,
}

impl Leadership {
    pub fn new(node: &str, ttl: Duration) -> Self {
        Leadership {
            node: node.to_string(),
            leader: None,
            is_leader: false,
            term: None,
            cluster: None,
            lease_ttl_ms: ttl.as_millis() as u64,
            lease_remaining_ms: None,
            etcd_ok: false,
            etcd_trouble: Some("not contacted yet".into()),
            take_over_failed: None,
            seen_at: None,
        }
    }

    /// The lease time left now (counted down since it was seen).
    pub fn remaining_now(&self) -> Option<u64> {
        let r = self.lease_remaining_ms?;
        let gone = self.seen_at.map(|t| t.elapsed().as_millis() as u64)?;
        Some(r.saturating_sub(gone))
    }
}

/// The election loop of one node.
pub struct Election {
    pub store: EtcdStore,
    pub node: String,
    pub ttl: Duration,
    pub timeout: Duration,
    pub role: Arc<dyn Role>,
    pub view: watch::Sender<Leadership>,
}

/// What a keep-alive found.
enum Renewal {
    /// Renewed for this TTL.
    Renewed(Duration),
    /// etcd says the lease no longer exists.
    Expired,
    /// No answer (timeout, no member, no quorum): the lease may still run.
    Failed(String),
}

enum Outcome {
    /// Lost or gave back the lease; try again.
    Lost(String),
    /// Won the lease but could not take over (the state did not load): the
    /// lease is given back, and this node waits longer after each failure in
    /// a row (up to four lease TTLs), so it does not win, fail and win again
    /// many times a second while another node could take over.
    Refused(String),
    /// Shutdown.
    Stop,
}

impl Election {
    fn poll(&self) -> Duration {
        (self.ttl / 10).clamp(Duration::from_millis(100), Duration::from_millis(500))
    }

    fn trouble(&self, cause: &str) {
        if self.view.borrow().etcd_ok {
            warn!(node = %self.node, cause, "etcd does not answer");
        }
        self.role.etcd_health(Some(cause));
        self.view.send_modify(|v| {
            v.etcd_ok = false;
            v.etcd_trouble = Some(cause.to_string());
        });
    }

    fn healthy(&self) {
        if !self.view.borrow().etcd_ok {
            info!(node = %self.node, "etcd answers");
        }
        self.role.etcd_health(None);
        self.view.send_modify(|v| {
            v.etcd_ok = true;
            v.etcd_trouble = None;
        });
    }

    async fn pause(&self, stop: &CancellationToken) -> bool {
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(self.poll()) => true,
        }
    }

    /// Run until `stop`: follow, campaign, lead, step down, again.
    pub async fn run(self, stop: CancellationToken) {
        let mut client = self.store.client();
        let ttl_s = i64::try_from(self.ttl.as_secs()).unwrap_or(60).max(1);
        let mut refusals: u32 = 0;
        while !stop.is_cancelled() {
            // The lease runs from its grant: counted from before it was asked.
            let asked = Asked::now();
            let grant = retrying(self.timeout, client.clone(), |mut c| async move {
                c.lease_grant(ttl_s, None).await
            })
            .await;
            let lease = match grant {
                Ok(r) => r,
                Err(e) => {
                    self.trouble(&format!("cannot grant a lease: {e}"));
                    if !self.pause(&stop).await {
                        break;
                    }
                    continue;
                }
            };
            let granted = Duration::from_secs(u64::try_from(lease.ttl()).unwrap_or(1).max(1));
            match self
                .campaign(&mut client, lease.id(), granted, asked, &stop)
                .await
            {
                Outcome::Stop => {
                    self.revoke(&client, lease.id()).await;
                    break;
                }
                Outcome::Lost(why) => {
                    refusals = 0;
                    info!(node = %self.node, cause = %why, "leader lease given up; campaigning again");
                    self.revoke(&client, lease.id()).await;
                    if !self.pause(&stop).await {
                        break;
                    }
                }
                Outcome::Refused(why) => {
                    refusals = refusals.saturating_add(1);
                    // The usual pause after the first; then one lease TTL,
                    // doubling with each failure in a row, at most four.
                    let wait = if refusals <= 1 {
                        self.poll()
                    } else {
                        self.ttl.saturating_mul(1 << (refusals.min(4) - 2))
                    };
                    warn!(node = %self.node, cause = %why, failures = refusals, wait = ?wait,
                          "won the leader lease but could not take over; lease given back");
                    self.view
                        .send_modify(|v| v.take_over_failed = Some(why.clone()));
                    self.revoke(&client, lease.id()).await;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        self.view.send_modify(|v| {
            v.is_leader = false;
            v.term = None;
            v.cluster = None;
        });
    }

    async fn revoke(&self, client: &Client, lease: i64) {
        let _ = retrying(self.timeout, client.clone(), |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
    }

    /// One keep-alive round trip.
    async fn keep_alive(&self, client: &mut Client, lease: i64) -> Renewal {
        let answer = retrying(self.timeout, client.clone(), |mut c| async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match answer {
            Ok(Some(r)) if r.ttl() > 0 => Renewal::Renewed(Duration::from_secs(r.ttl() as u64)),
            // etcd answered: this lease is gone.
            Ok(Some(_)) => Renewal::Expired,
            Ok(None) => Renewal::Failed("etcd closed the keep-alive stream".to_string()),
            Err(e) if e.lease_gone() => Renewal::Expired,
            Err(e) => Renewal::Failed(e.to_string()),
        }
    }
}
