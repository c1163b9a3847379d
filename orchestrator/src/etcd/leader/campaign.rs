//! The campaign: follow the leader key (keeping this node's lease alive)
//! until it is free, then put it on this node's lease and lead. A key
//! already on this very lease (an answer lost) is this node's term; a key
//! on no lease (written by hand) is removed, while it is still that key.
//! The term is told with the data's identity, read in the same answer
//! (`identity`).

use super::*;

impl Election {
    /// Follow until the leader key is free, then take it and lead.
    /// `granted_at`: when the lease was asked for (it runs from then).
    pub(super) async fn campaign(
        &self,
        client: &mut Client,
        lease: i64,
        ttl: Duration,
        granted_at: Asked,
        stop: &CancellationToken,
    ) -> Outcome {
        let key = self.store.leader_key();
        let id_key = self.store.key(identity::IDENTITY);
        // The data's identity, told with the term (`identity`): made once.
        if let Err(e) = self.ensure_identity(client).await {
            self.trouble(&format!("cannot make the identity key: {e}"));
        }
        // The lease must outlive the campaign: keep it alive while following.
        // When the last renewal etcd answered was sent (the lease runs from
        // there, not from when the answer came).
        let mut last_alive = granted_at;
        // The lease of a leader key naming this node that was said last: said
        // once per such key, not at every poll.
        let mut said_own: Option<i64> = None;
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put(
                        key.clone(),
                        self.node.clone(),
                        Some(PutOptions::new().with_lease(lease)),
                    ),
                    TxnOp::get(id_key.clone(), None),
                ])
                .or_else([
                    TxnOp::get(key.clone(), None),
                    TxnOp::get(id_key.clone(), None),
                ]);
            let answer = retrying(self.timeout, client.clone(), |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await;
            match answer {
                Ok(resp) if resp.succeeded() => {
                    self.healthy();
                    let term = resp.header().map(|h| h.revision()).unwrap_or(0);
                    // The data the term is a revision of: terms start
                    // over when it is rebuilt (`identity`).
                    let cluster = self.identity(&resp, &id_key);
                    // Putting the key on the lease did not renew it: it runs
                    // from its last renewal, up to a third of the TTL and a
                    // poll ago. Renew now, so that the first term (and the
                    // take-over it allows) counts from a renewal known to be
                    // sent now; if etcd does not answer, from the last one.
                    let renewing = Asked::now();
                    let from = match self.keep_alive(client, lease).await {
                        Renewal::Renewed(_) => renewing,
                        Renewal::Expired => return Outcome::Lost("own lease expired".into()),
                        Renewal::Failed(e) => {
                            self.trouble(&format!("keep-alive of own lease: {e}"));
                            last_alive
                        }
                    };
                    return self
                        .lead(client, lease, ttl, (term, cluster), from, stop)
                        .await;
                }
                Ok(resp) => {
                    self.healthy();
                    let holder = resp.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(g) => g
                            .kvs()
                            .iter()
                            .find(|kv| kv.key() == key.as_slice())
                            .map(|kv| {
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
                            let (term, sent) = (*created, Asked::now());
                            let cluster = self.identity(&resp, &id_key);
                            match self.keep_alive(client, lease).await {
                                Renewal::Renewed(_) => {
                                    self.healthy();
                                    info!(node = %self.node, term, "the leader key is already on this node's lease (an answer was lost): leading");
                                    return self
                                        .lead(client, lease, ttl, (term, cluster), sent, stop)
                                        .await;
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
                    if let Some((_, held_by, _)) =
                        holder.as_ref().filter(|(n, _, _)| n == &self.node)
                    {
                        // A key naming this node on another lease: this
                        // node's previous process (a restart within its
                        // TTL), or another process started with the same
                        // `--node` elsewhere (which leads then). Waited for
                        // like anyone else's; said once per key.
                        if said_own != Some(*held_by) {
                            said_own = Some(*held_by);
                            warn!(node = %self.node, lease = held_by, "the leader key names this node but is held on another lease: this node's previous process (until its lease runs out) or another process started as the same node; following it");
                        }
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
            if last_alive.at.elapsed() >= ttl / 3 {
                let renewing = Asked::now();
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

    /// The identity read with a campaign's answer (`identity`): `None`
    /// (terms told without a cluster, judged by term by every receiver)
    /// when it is missing or unreadable, said at warn.
    fn identity(&self, resp: &etcd_client::TxnResponse, id_key: &[u8]) -> Option<u64> {
        match identity::identity_in(resp, id_key) {
            Ok(id) => Some(id),
            Err(why) => {
                warn!(node = %self.node, "the orchestrators' identity key in etcd cannot be read ({why}): this term is told without it, and agents and frontends judge it by its term alone");
                None
            }
        }
    }
}
