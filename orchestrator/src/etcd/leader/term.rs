//! The held term: from a won lease to its end. `lead` loads the state
//! (`Role::take_over`, the lease renewed meanwhile: `take_over_renewing`),
//! keeps the lease alive every third of the TTL, watches
//! the leader key (`key_gone`) and steps down at the deadline, on the key's
//! loss or at shutdown; `end_term` stops acting first, then gives the key
//! back if etcd still lets it.

use etcd_client::{EventType, WatchOptions, WatchStream};

use super::*;

impl Election {
    pub(super) async fn lead(
        &self,
        client: &mut Client,
        lease: i64,
        ttl: Duration,
        won: (i64, Option<u64>),
        sent: Asked,
        stop: &CancellationToken,
    ) -> Outcome {
        // The term, and the etcd cluster it is a revision of.
        let (term, cluster) = won;
        let margin = ttl / 10;
        let mut deadline = sent.deadline(ttl - margin);
        self.role.lease_until(deadline);
        self.store.set_guard(Some((term, lease)));
        self.view.send_modify(|v| {
            v.leader = Some(self.node.clone());
            v.term = Some(term);
            v.cluster = cluster;
            v.lease_remaining_ms = Some(
                deadline
                    .at
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64,
            );
            v.seen_at = Some(Instant::now());
        });
        info!(node = %self.node, term, "won the leader lease; loading the state from etcd");
        let period = ttl / 3;
        let take_over = self
            .take_over_renewing(client, lease, (term, cluster), &mut deadline, period, stop)
            .await;
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
                // On the monotonic clock only: after a suspension past the
                // deadline the licence has lapsed by itself (the boot
                // clock), and the next renewal ends the term — etcd says
                // the lease expired, or `lease_until` that it lapsed.
                _ = tokio::time::sleep_until(deadline.at) => {
                    self.trouble("the leader lease could not be renewed in time");
                    self.end_term(client, "the lease could not be renewed before its deadline").await;
                    return Outcome::Lost("lease deadline".into());
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + period;
            let sent = Asked::now();
            let alive = tokio::select! {
                r = self.keep_alive(client, lease) => r,
                _ = tokio::time::sleep_until(deadline.at) => Renewal::Failed("the lease deadline passed during the keep-alive".into()),
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
                            deadline = sent.deadline(granted - granted / 10);
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
                                        .at
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

    /// [`Role::take_over`], with the lease renewed every `period` while it
    /// runs (`deadline` moved with each renewal): loading a large state
    /// (up to `runbooks_keep` runbooks per group) page by page from members across sites
    /// may take longer than one lease, and a take-over bounded by the
    /// lease it won would fail at every win — no node could ever lead.
    /// An error when the take-over fails, when no renewal comes back
    /// before the deadline, when etcd says the lease is gone, or at
    /// shutdown.
    async fn take_over_renewing(
        &self,
        client: &mut Client,
        lease: i64,
        won: (i64, Option<u64>),
        deadline: &mut Deadline,
        period: Duration,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let until = std::sync::Mutex::new(*deadline);
        let until_now = || *until.lock().unwrap_or_else(|p| p.into_inner());
        let renewing = async {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until_now().at) => {
                        return "the lease could not be renewed while the state was loaded".to_string();
                    }
                    _ = tokio::time::sleep(period) => {}
                }
                let sent = Asked::now();
                let alive = tokio::select! {
                    r = self.keep_alive(client, lease) => r,
                    _ = tokio::time::sleep_until(until_now().at) => Renewal::Failed("the lease deadline passed during the keep-alive".into()),
                };
                match alive {
                    Renewal::Renewed(granted) => {
                        self.healthy();
                        let next = sent.deadline(granted - granted / 10);
                        *until.lock().unwrap_or_else(|p| p.into_inner()) = next;
                        // The licence is not granted yet: what it says of
                        // an earlier term's lapse does not matter here.
                        let _ = self.role.lease_until(next);
                        self.view.send_modify(|v| {
                            v.lease_remaining_ms = Some(
                                next.at
                                    .saturating_duration_since(Instant::now())
                                    .as_millis() as u64,
                            );
                            v.seen_at = Some(Instant::now());
                        });
                    }
                    Renewal::Expired => return "etcd says the lease has expired".to_string(),
                    Renewal::Failed(e) => self.trouble(&format!("keep-alive: {e}")),
                }
            }
        };
        let out = tokio::select! {
            r = self.role.take_over(won.0, won.1) => r,
            why = renewing => Err(why),
            _ = stop.cancelled() => Err("shutdown".into()),
        };
        *deadline = until_now();
        out
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
            v.cluster = None;
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
