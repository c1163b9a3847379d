//! Applying a route order to a group: fenced by its epoch, a switch to a
//! new generation (the old one cut at once or drained), and what was done
//! ([`Applied`]) or why not ([`Refused`]).

use super::*;

/// What a successful [`GroupRoute::set`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The routed site changed (from `from`).
    Switched { from: Option<String> },
    /// Same site, higher epoch: only the fence moved.
    EpochRaised { from: u64 },
    /// Same site and epoch: a repeat, nothing changed.
    Unchanged,
    /// Same site, an `immediate` order while older generations still
    /// drain: those are cut now (the order asks that no old connection
    /// stays, as HAProxy's driver does); `from` is the epoch before.
    DrainsCut { generations: usize, from: u64 },
}

/// Why a [`GroupRoute::set`] was refused; the route is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The site has no backend in this group.
    UnknownSite { site: String, allowed: Vec<String> },
    /// A higher epoch was already accepted.
    Stale { sent: u64, seen: u64 },
    /// The same epoch was already accepted for another site.
    Conflict {
        epoch: u64,
        routed: String,
        requested: String,
    },
}

impl GroupRoute {
    /// Why a route command would be refused now, if it would: what
    /// [`GroupRoute::set`] judges before it changes anything. (The caller
    /// holds the group's ordering lock, so no other order of the group
    /// comes between this and its `set`.)
    pub(crate) fn refusal(&self, req: &SetRoute) -> Option<Refused> {
        self.judge(&self.lock(), req).err()
    }

    /// The route command's judgement by its site and epoch (see
    /// [`GroupRoute::set`]); nothing changes.
    fn judge(&self, inner: &Inner, req: &SetRoute) -> Result<(), Refused> {
        if !self.backends.contains_key(&req.site) {
            return Err(Refused::UnknownSite {
                site: req.site.clone(),
                allowed: self.allowed_sites(),
            });
        }
        // A hold order's epoch fences routes too: an order at epoch e says
        // an orchestrator acts at e (a runbook holds before it switches),
        // so a route below e comes from an older authority.
        let seen = inner.epoch.max(inner.holds.epoch);
        if req.epoch < seen {
            return Err(Refused::Stale {
                sent: req.epoch,
                seen,
            });
        }
        let routed = inner
            .current
            .as_ref()
            .map(|g| &g.site)
            .or(inner.kept_site.as_ref());
        match routed {
            Some(site) if req.epoch == inner.epoch && *site != req.site => Err(Refused::Conflict {
                epoch: req.epoch,
                routed: site.clone(),
                requested: req.site.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Apply a route command, fenced by its epoch (see [`crate::api`]).
    pub(crate) fn set(&self, req: &SetRoute) -> Result<(Applied, RouteState), Refused> {
        let mut inner = self.lock();
        inner.draining.retain(|g| !g.cancel.is_cancelled());
        self.judge(&inner, req)?;
        let Some(backend) = self.backends.get(&req.site) else {
            unreachable!("judged: the site has a backend");
        };
        let routed = inner.current.as_ref().map(|g| g.site.clone());
        let applied = match routed {
            Some(site) if site == req.site => {
                let from = inner.epoch;
                inner.epoch = req.epoch;
                // Connections waiting on a cut-over at this epoch go to the
                // routed site now: no other switch is coming for it.
                if req.epoch > from && inner.holds.end_at(req.epoch) {
                    self.orders.send_modify(|n| *n += 1);
                }
                let cut = if req.mode == RouteMode::Immediate {
                    let cut: Vec<Generation> = inner.draining.drain(..).collect();
                    for g in &cut {
                        g.cancel.cancel();
                    }
                    cut.len()
                } else {
                    0
                };
                if cut > 0 {
                    Applied::DrainsCut {
                        generations: cut,
                        from,
                    }
                } else if req.epoch == from {
                    Applied::Unchanged
                } else {
                    Applied::EpochRaised { from }
                }
            }
            from => {
                let next = Generation(Arc::new(GenerationData {
                    number: inner.switches + 1,
                    site: req.site.clone(),
                    backend: backend.clone(),
                    backend_ip: backend.parse().ok(),
                    cancel: self.shutdown.child_token(),
                    active: AtomicU64::new(0),
                }));
                let old = inner.current.replace(next);
                inner.epoch = req.epoch;
                inner.kept_site = None;
                inner.switches += 1;
                // The switch the order announced has come: held connections go to the new site.
                inner.holds.end();
                self.switch_count.store(inner.switches, Ordering::Release);
                self.switched.send_replace(inner.switches);
                match req.mode {
                    RouteMode::Immediate => {
                        let mut cut: Vec<Generation> = inner.draining.drain(..).collect();
                        cut.extend(old);
                        for g in &cut {
                            g.cancel.cancel();
                        }
                    }
                    RouteMode::Drain => {
                        if let Some(old) = old {
                            self.drain(old.clone());
                            inner.draining.push(old);
                        }
                    }
                }
                Applied::Switched { from }
            }
        };
        Ok((applied, self.state_of(&inner)))
    }

    /// Close `old`'s connections once the drain timeout is over.
    fn drain(&self, old: Generation) {
        let timeout = self.drain_timeout;
        let group = self.name.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {
                    let left = old.active.load(Ordering::Relaxed);
                    if left > 0 {
                        tracing::info!(group = %group, site = %old.site, backend = %old.backend, connections = left, "drain timeout over; closing remaining connections");
                    }
                    old.cancel.cancel();
                }
                // Cut early by an immediate switch or by shutdown.
                _ = old.cancel.cancelled() => {}
            }
        });
    }
}
