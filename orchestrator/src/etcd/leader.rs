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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
    WatchStream,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{retrying, EtcdStore};

/// What the service does when this node wins or loses the lease.
#[async_trait]
pub trait Role: Send + Sync {
    /// This node won: load the state from the store, then take the licence.
    /// An error gives the lease back.
    async fn take_over(&self, term: i64) -> Result<(), String>;
    /// This node lost the lease (or shuts down): stop acting now.
    fn step_down(&self, why: &str);
    /// This node's lease runs (by its own count) until `deadline`: called
    /// before [`Role::take_over`] and at every renewal. Nothing may act
    /// past it, whether or not this loop got to run and step down (a
    /// paused process, a starved runtime). False when the licence has
    /// lapsed already (the renewal came back after the deadline): the
    /// term ends.
    fn lease_until(&self, _deadline: Instant) -> bool {
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
            let asked = Instant::now();
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
        });
    }

    async fn revoke(&self, client: &Client, lease: i64) {
        let _ = retrying(self.timeout, client.clone(), |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
    }

    /// Follow until the leader key is free, then take it and lead.
    /// `granted_at`: when the lease was asked for (it runs from then).
    async fn campaign(
        &self,
        client: &mut Client,
        lease: i64,
        ttl: Duration,
        granted_at: Instant,
        stop: &CancellationToken,
    ) -> Outcome {
        let key = self.store.leader_key();
        // The lease must outlive the campaign: keep it alive while following.
        // When the last renewal etcd answered was sent (the lease runs from
        // there, not from when the answer came).
        let mut last_alive = granted_at;
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    self.node.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            let answer = retrying(self.timeout, client.clone(), |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
            match answer {
                Ok(resp) if resp.succeeded() => {
                    self.healthy();
                    let term = resp.header().map(|h| h.revision()).unwrap_or(0);
                    // Putting the key on the lease did not renew it: it runs
                    // from its last renewal, up to a third of the TTL and a
                    // poll ago. Renew now, so that the first term (and the
                    // take-over it allows) counts from a renewal known to be
                    // sent now; if etcd does not answer, from the last one.
                    let renewing = Instant::now();
                    let from = match self.keep_alive(client, lease).await {
                        Renewal::Renewed(_) => renewing,
                        Renewal::Expired => return Outcome::Lost("own lease expired".into()),
                        Renewal::Failed(e) => {
                            self.trouble(&format!("keep-alive of own lease: {e}"));
                            last_alive
                        }
                    };
                    return self.lead(client, lease, ttl, term, from, stop).await;
                }
                Ok(resp) => {
                    self.healthy();
                    let holder = resp.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                            (
                                String::from_utf8_lossy(kv.value()).into_owned(),
                                kv.lease(),
                                kv.create_revision(),
                            )
                        }),
                        _ => None,
                    });
                    if let Some((_, held_by, created)) = &holder {
                        if *held_by == lease {
                            // The key is on this very lease: an earlier try
                            // of this campaign was applied but its answer was
                            // lost (etcd paused, a member failed over, the
                            // request retried). It is our term; we keep this
                            // lease alive, so waiting for it to expire would
                            // wait forever. Renew first, so the deadline
                            // counts from a renewal we know was sent now.
                            let (term, sent) = (*created, Instant::now());
                            match self.keep_alive(client, lease).await {
                                Renewal::Renewed(_) => {
                                    self.healthy();
                                    info!(node = %self.node, term, "the leader key is already on this node's lease (an answer was lost): leading");
                                    return self.lead(client, lease, ttl, term, sent, stop).await;
                                }
                                Renewal::Expired => {
                                    return Outcome::Lost("own lease expired".into())
                                }
                                Renewal::Failed(e) => {
                                    self.trouble(&format!("keep-alive of own lease: {e}"))
                                }
                            }
                        }
                    }
                    if let Some((name, 0, created)) = &holder {
                        // A leader key on no lease never expires, and is no
                        // orchestrator's: each puts it on its own lease, and
                        // a leader whose key is rewritten steps down at once.
                        // Written by hand (`etcdctl put` without `--lease`),
                        // it would keep every node from leading for good;
                        // it is removed — only while it is still that very
                        // key — and the election goes on as if it were gone.
                        warn!(node = %self.node, holder = %name, "the leader key is on no lease (written by hand?): no orchestrator holds it, and it would never expire; removing it");
                        if self.remove_stray(client, *created).await {
                            continue;
                        }
                    }
                    let remaining = match &holder {
                        Some((_, l, _)) => client
                            .lease_time_to_live(*l, None)
                            .await
                            .ok()
                            .and_then(|r| u64::try_from(r.ttl()).ok())
                            .map(|s| s * 1000),
                        None => None,
                    };
                    if holder.as_ref().is_some_and(|(n, _, _)| n == &self.node) {
                        // Our own key from an earlier life (a restart within
                        // its TTL, another lease): wait for it to expire like
                        // anyone else.
                        info!(node = %self.node, "the leader key still names this node from before; waiting for it to expire");
                    }
                    self.view.send_modify(|v| {
                        v.leader = holder.map(|(n, _, _)| n);
                        v.is_leader = false;
                        v.lease_remaining_ms = remaining;
                        v.seen_at = Some(Instant::now());
                    });
                }
                // Our lease expired while etcd was out of reach: grant a new one.
                Err(e) if e.lease_gone() => return Outcome::Lost("own lease expired".into()),
                Err(e) => self.trouble(&format!("campaign: {e}")),
            }
            if last_alive.elapsed() >= ttl / 3 {
                let renewing = Instant::now();
                match self.keep_alive(client, lease).await {
                    Renewal::Renewed(_) => last_alive = renewing,
                    Renewal::Expired => return Outcome::Lost("own lease expired".into()),
                    // Not answered: try again next time (the grant is redone
                    // if etcd later says the lease is gone).
                    Renewal::Failed(e) => self.trouble(&format!("keep-alive of own lease: {e}")),
                }
            }
            if !self.pause(stop).await {
                return Outcome::Stop;
            }
        }
    }

    /// Delete the leader key if it is still the one created at `created`
    /// on no lease (see `campaign`). Whether it is gone now.
    async fn remove_stray(&self, client: &Client, created: i64) -> bool {
        let key = self.store.leader_key();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Equal, created),
                Compare::lease(key.clone(), CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::delete(key, None)]);
        let answer = retrying(self.timeout, client.clone(), |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await;
        match answer {
            Ok(r) => r.succeeded(),
            Err(e) => {
                self.trouble(&format!("removing a leader key on no lease: {e}"));
                false
            }
        }
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

    async fn lead(
        &self,
        client: &mut Client,
        lease: i64,
        ttl: Duration,
        term: i64,
        sent: Instant,
        stop: &CancellationToken,
    ) -> Outcome {
        let margin = ttl / 10;
        let mut deadline = sent + ttl - margin;
        self.role.lease_until(deadline);
        self.store.set_guard(Some((term, lease)));
        self.view.send_modify(|v| {
            v.leader = Some(self.node.clone());
            v.term = Some(term);
            v.lease_remaining_ms = Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64,
            );
            v.seen_at = Some(Instant::now());
        });
        info!(node = %self.node, term, "won the leader lease; loading the state from etcd");
        let take_over = tokio::select! {
            r = self.role.take_over(term) => r,
            _ = tokio::time::sleep_until(deadline) => Err("the state could not be loaded within the lease".into()),
            _ = stop.cancelled() => Err("shutdown".into()),
        };
        if let Err(e) = take_over {
            self.end_term(client, &format!("cannot take over: {e}"))
                .await;
            return if stop.is_cancelled() {
                Outcome::Stop
            } else {
                Outcome::Refused(e)
            };
        }
        self.view.send_modify(|v| {
            v.is_leader = true;
            v.take_over_failed = None;
        });
        let period = ttl / 3;
        let key = self.store.leader_key();
        // The leader key watched from its creation: an operator who deletes
        // it, or revokes its lease (which deletes it), ends the term at
        // once, not at the next renewal a third of the TTL later. Without
        // a watch (refused, compacted, broken) the renewals still check.
        let watching = client.watch(
            key.clone(),
            Some(WatchOptions::new().with_start_revision(term)),
        );
        let mut watch = match tokio::time::timeout(self.timeout, watching).await {
            Ok(Ok(w)) => Some(w),
            Ok(Err(e)) => {
                warn!(node = %self.node, cause = %e, "cannot watch the leader key; its loss is seen at the next renewal");
                None
            }
            Err(_) => None,
        };
        // Renew at once: the take-over may have used part of the lease.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.end_term(client, "shutdown: resigning").await;
                    return Outcome::Stop;
                }
                gone = key_gone(&mut watch, (term, lease), self.node.as_bytes()) => match gone {
                    Some(true) => {
                        self.end_term(client, "the leader key was deleted or taken (seen by its watch)")
                            .await;
                        return Outcome::Lost("leader key gone".into());
                    }
                    Some(false) => continue,
                    None => {
                        watch = None;
                        continue;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.trouble("the leader lease could not be renewed in time");
                    self.end_term(client, "the lease could not be renewed before its deadline").await;
                    return Outcome::Lost("lease deadline".into());
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + period;
            let sent = Instant::now();
            let alive = tokio::select! {
                r = self.keep_alive(client, lease) => r,
                _ = tokio::time::sleep_until(deadline) => Renewal::Failed("the lease deadline passed during the keep-alive".into()),
            };
            match alive {
                Renewal::Renewed(granted) => {
                    // Still our key? (An operator may have deleted it.)
                    let ours = retrying(self.timeout, client.clone(), |mut c| {
                        let key = key.clone();
                        async move { c.get(key, None).await }
                    })
                    .await
                    .map(|r| {
                        r.kvs()
                            .first()
                            .map(|kv| (kv.create_revision(), kv.lease(), kv.value()))
                            == Some((term, lease, self.node.as_bytes()))
                    });
                    match ours {
                        Ok(true) => {
                            self.healthy();
                            deadline = sent + granted - granted / 10;
                            if !self.role.lease_until(deadline) {
                                self.end_term(
                                    client,
                                    "the licence lapsed at the lease deadline before the renewal came back",
                                )
                                .await;
                                return Outcome::Lost("licence lapsed".into());
                            }
                            self.view.send_modify(|v| {
                                v.lease_remaining_ms = Some(
                                    deadline
                                        .saturating_duration_since(Instant::now())
                                        .as_millis() as u64,
                                );
                                v.seen_at = Some(Instant::now());
                            });
                        }
                        Ok(false) => {
                            self.end_term(client, "the leader key is no longer this node's")
                                .await;
                            return Outcome::Lost("leader key gone".into());
                        }
                        Err(e) => self.trouble(&format!("leader check: {e}")),
                    }
                }
                Renewal::Expired => {
                    self.end_term(client, "etcd says the lease has expired")
                        .await;
                    return Outcome::Lost("lease expired".into());
                }
                Renewal::Failed(e) => {
                    // The deadline above ends the term if this goes on.
                    warn!(node = %self.node, cause = %e, "leader lease keep-alive failed");
                    self.trouble(&format!("keep-alive: {e}"));
                }
            }
        }
    }

    /// Stop acting, then give the key back if etcd still lets us.
    async fn end_term(&self, client: &mut Client, why: &str) {
        self.role.step_down(why);
        let term = self
            .store
            .guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.view.send_modify(|v| {
            v.is_leader = false;
            v.term = None;
            v.leader = None;
            v.lease_remaining_ms = None;
        });
        if let Some(held) = term {
            let txn = Txn::new()
                .when(self.store.held(held))
                .and_then([TxnOp::delete(self.store.leader_key(), None)]);
            let _ = retrying(self.timeout, client.clone(), |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
        }
    }
}

/// The next news of the leader key's watch: `Some(true)` when the key is
/// gone, no longer `held` (its creation revision and lease) or names
/// another node than `node` (rewritten by hand on this lease: the other
/// nodes would take it for that node's), `Some(false)`
/// for news that changes nothing (its own creation, a progress note),
/// `None` when the watch ended or failed (the caller stops watching).
/// Never resolves without a watch.
async fn key_gone(watch: &mut Option<WatchStream>, held: (i64, i64), node: &[u8]) -> Option<bool> {
    let Some(w) = watch.as_mut() else {
        return std::future::pending().await;
    };
    let resp = w.message().await.ok().flatten()?;
    if resp.canceled() {
        return None;
    }
    Some(resp.events().iter().any(|e| {
        match e.event_type() {
            EventType::Delete => true,
            EventType::Put => e
                .kv()
                .is_some_and(|kv| (kv.create_revision(), kv.lease()) != held || kv.value() != node),
        }
    }))
}
