//! [`apply`]: a round's or a pass's copies and deletes run `concurrency`
//! at a time (plain objects and deletes first, manifests and links last),
//! with the check the copier asks again while they run ([`Recheck`], kept
//! by a `Gate`), and what each op did ([`Done`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::*;

/// One change a round or pass carries from `from` to `to`.
#[derive(Clone)]
pub(crate) enum Op {
    Copy(String),
    /// Gone from `from`'s listing: deleted at `to` ([`delete_if_gone`]).
    Delete(String),
}

/// What one [`Op`] did.
pub(crate) enum Done {
    /// Copied (its version), or not: gone at `from` meanwhile.
    Copied(Option<Item>),
    Deleted,
    /// Not listed at `from` but still there ([`delete_if_gone`]).
    Kept,
}

/// A check asked again while [`apply`] runs (the copier's fence,
/// `fence.rs`): before the first delete, before an op once `ops` ops
/// started since the last check, and once `every` passed since it (also
/// while no op starts: a long copy in flight). An `Err` ends the work at
/// once: no op starts after it, and those in flight are dropped (a PUT
/// whose body was not all sent is not stored).
pub(crate) struct Recheck<'a> {
    /// At most this many ops start between two checks.
    pub ops: usize,
    /// At most this long between two checks while ops run.
    pub every: Duration,
    /// The check: `Err` stops the work, said by [`apply`].
    pub check: &'a (dyn Fn() -> BoxFuture<'a, Result<(), AgentError>> + Send + Sync),
}

/// [`Recheck`]'s bookkeeping, shared by the ops and the ticker of one
/// [`apply`]; its lock is held during a check, so no op starts meanwhile.
struct Gate<'r, 'a> {
    recheck: &'r Recheck<'a>,
    state: tokio::sync::Mutex<GateState>,
    /// The check's answer that ended the work, taken by [`apply`] (apart
    /// from `state`: the ops dropped, whoever held that lock).
    stopped: std::sync::Mutex<Option<AgentError>>,
}

struct GateState {
    /// When the last check ended (or the work began).
    last: tokio::time::Instant,
    /// Ops started since the last check.
    started: usize,
    /// A delete started since the work began: checked right before the first.
    deleting: bool,
    /// The work ended: nothing more starts.
    ended: bool,
}

impl Gate<'_, '_> {
    /// Before an op starts: checks when due; `false` when the work ends.
    async fn before(&self, delete: bool) -> bool {
        let mut st = self.state.lock().await;
        if st.ended {
            return false;
        }
        let due = st.started >= self.recheck.ops
            || st.last.elapsed() >= self.recheck.every
            || (delete && !st.deleting);
        if due && !self.check(&mut st).await {
            return false;
        }
        st.deleting |= delete;
        st.started += 1;
        true
    }

    /// The check, with the lock held; `false` (the answer kept) when it
    /// ends the work.
    async fn check(&self, st: &mut GateState) -> bool {
        match (self.recheck.check)().await {
            Ok(()) => {
                st.last = tokio::time::Instant::now();
                st.started = 0;
                true
            }
            Err(e) => {
                *self.stopped.lock().unwrap() = Some(e);
                st.ended = true;
                false
            }
        }
    }

    /// Checks every `every` while the work runs; returns once a check
    /// ended it.
    async fn ticker(&self) {
        loop {
            let due = self.state.lock().await.last + self.recheck.every;
            tokio::time::sleep_until(due).await;
            let mut st = self.state.lock().await;
            if st.ended {
                return;
            }
            if st.last.elapsed() >= self.recheck.every && !self.check(&mut st).await {
                return;
            }
        }
    }

    fn stopped(&self) -> AgentError {
        let taken = self.stopped.lock().unwrap().take();
        taken.unwrap_or(AgentError::ReplicationCancelled)
    }
}

/// How [`apply`] runs: ops at once, its cancel token, the check asked
/// again while it runs (`None`: none).
pub(crate) struct Pace<'r, 'a> {
    pub concurrency: usize,
    pub cancel: &'r CancellationToken,
    pub recheck: Option<&'r Recheck<'a>>,
    /// Told each part of the ops (at most [`ANNOUNCE_EVERY`]) before the
    /// first of it starts: the copier records what it is about to send.
    pub announce: Option<&'r Announce<'r>>,
}

/// What [`Pace::announce`] calls.
pub(crate) type Announce<'r> = dyn Fn(&[Op]) + Sync + 'r;

/// How many ops [`Pace::announce`] is told at a time: a site lost mid-round
/// leaves at most this many names recorded that were never sent.
pub(crate) const ANNOUNCE_EVERY: usize = 256;

/// Carries `ops` from `from` to `to`, `concurrency` at a time: plain
/// objects and deletes first, then SLO manifests and symlinks (by `from`'s
/// `listing`: their segments and targets are usually copied in the same
/// batch of work). Each result goes to `each` as it arrives; `Err` only
/// when `cancel` fires or `recheck` said to stop (its answer), the ops in
/// flight then dropped (the round's copier and the failback's resync
/// share this; only the copier rechecks).
pub(crate) async fn apply(
    from: &SwiftClient,
    to: &SwiftClient,
    ops: Vec<Op>,
    listing: &BTreeMap<String, ObjectEntry>,
    pace: Pace<'_, '_>,
    mut each: impl FnMut(String, Result<Done, AgentError>),
) -> Result<(), AgentError> {
    let Pace {
        concurrency,
        cancel,
        recheck,
        announce,
    } = pace;
    let gate = recheck.map(|recheck| Gate {
        recheck,
        state: tokio::sync::Mutex::new(GateState {
            last: tokio::time::Instant::now(),
            started: 0,
            deleting: false,
            ended: false,
        }),
        stopped: std::sync::Mutex::new(None),
    });
    let gate = gate.as_ref();
    let ticker = async {
        match gate {
            Some(g) => g.ticker().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(ticker);
    let (later, first): (Vec<Op>, Vec<Op>) = ops.into_iter().partition(
        |op| matches!(op, Op::Copy(n) if listing.get(n).is_some_and(ObjectEntry::needs_others)),
    );
    for batch in [first, later] {
        // Told a part at a time, as the stream takes its first op: no
        // op waits for another part to end.
        let mut at = 0;
        let ops = std::iter::from_fn(|| {
            let op = batch.get(at)?.clone();
            if at % ANNOUNCE_EVERY == 0 {
                if let Some(announce) = announce {
                    announce(&batch[at..batch.len().min(at + ANNOUNCE_EVERY)]);
                }
            }
            at += 1;
            Some(op)
        });
        let mut results = futures::stream::iter(ops)
            .map(|op| async move {
                if let Some(g) = gate {
                    if !g.before(matches!(op, Op::Delete(_))).await {
                        return None;
                    }
                }
                Some(match op {
                    Op::Copy(name) => {
                        let (c, o) = split_name(&name);
                        let r = copy_object(from, to, c, o).await;
                        (name, r.map(Done::Copied))
                    }
                    Op::Delete(name) => {
                        let (c, o) = split_name(&name);
                        let r = delete_if_gone(from, to, c, o).await;
                        let done = |gone| if gone { Done::Deleted } else { Done::Kept };
                        (name, r.map(done))
                    }
                })
            })
            .buffer_unordered(concurrency);
        loop {
            let next = tokio::select! {
                n = results.next() => n,
                () = &mut ticker => Some(None),
                _ = cancel.cancelled() => return Err(AgentError::ReplicationCancelled),
            };
            match next {
                None => break,
                Some(Some((name, r))) => each(name, r),
                // the check said to stop: the ops in flight are dropped
                Some(None) => {
                    return Err(gate.map_or(AgentError::ReplicationCancelled, Gate::stopped));
                }
            }
        }
    }
    Ok(())
}
