//! The runbook state machine against a simulated world ([`sim`]), on
//! paused time, one file per subject: a failover's steps, fencing and holds
//! (`failover`), the promote and its checks (`promote`), resuming after a
//! crash in every step (`resume`), the failback's journal and replicas
//! (`handover`), moves given up or stopped before users move
//! (`given_up`), what a failed cut-over undoes or carries forward
//! (`rollback`), and a group's third site taking the epoch before a
//! promote (`bystanders`).
use super::*;
use crate::store::MemStore;
use async_trait::async_trait;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use warden_config::Fencing;
use warden_proto::agent::Command;
use warden_proto::agent::CommandKind;
use warden_strategies::{Observed, SiteRoute, StrategyError};

mod bystanders;
mod failover;
mod given_up;
mod handover;
mod promote;
mod resume;
mod rollback;
mod sim;

use sim::{CrashStore, SwitchFault, World};

fn policy(fencing: Fencing, fence_command: Option<Vec<String>>) -> Policy {
    Policy {
        fencing,
        fence_command,
        step_timeout: Duration::from_secs(5),
        resync_timeout: Duration::from_secs(5),
    }
}

fn world_on(site: &str, epoch: u64) -> World {
    let w = World::default();
    *w.route.lock().unwrap() = (Some(site.into()), epoch, 0);
    w
}

/// [`failover_rb`] run to its end in `w` under `p`, on a fresh store.
async fn failover(w: &World, p: Policy) -> Runbook {
    execute(failover_rb(), w, &MemStore::default(), &p).await
}

fn failover_rb() -> Runbook {
    Runbook::new(
        1,
        "web",
        RunbookKind::Failover,
        "a",
        "b",
        2,
        "detector",
        1_000_000,
        999_000,
    )
}

/// The failback b → a at epoch 3, run to its end in `w` on a fresh store
/// (best-effort fencing).
async fn failback(w: &World) -> Runbook {
    run(w, failback_rb()).await
}

/// The failback b → a at epoch 3.
fn failback_rb() -> Runbook {
    runbook(RunbookKind::Failback, "b", "a", 3)
}

/// Runbook 1 of group web, `kind` from → to at `epoch`, decided now.
fn runbook(kind: RunbookKind, from: &str, to: &str, epoch: u64) -> Runbook {
    Runbook::new(
        1, "web", kind, from, to, epoch, "test", 1_000_000, 1_000_000,
    )
}

/// `rb` run to its end in `w` on a fresh store (best-effort fencing).
async fn run(w: &World, rb: Runbook) -> Runbook {
    execute(
        rb,
        w,
        &MemStore::default(),
        &policy(Fencing::BestEffort, None),
    )
    .await
}

fn statuses(rb: &Runbook) -> Vec<(StepName, StepStatus)> {
    rb.steps.iter().map(|s| (s.name, s.status)).collect()
}
