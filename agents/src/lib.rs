//! The site agent (`warden agent`): runs a site's local checks, probes its
//! peer sites' public endpoints, reports both to the orchestrator, and runs
//! the promote/demote hooks the orchestrator asks for. Agents only connect
//! outward.
//!
//! Layout:
//! - [`wire`]: agent ⇄ orchestrator JSON types, a compatibility boundary;
//! - [`checks`]: one http/tcp/command check or probe → one [`wire::CheckResult`];
//! - [`hooks`]: a promote/demote hook list → one [`wire::CommandOutcome`];
//! - [`hook_groups`]: each hook recorded in the `state_dir` before it
//!   starts and while it runs, those the agent's previous process left
//!   running ended at start (a group's hooks held while one SIGKILL did
//!   not end lives);
//! - [`leftovers`]: everything else the agent's previous process left
//!   running (rsync, replication commands, command checks, what they
//!   started; not what a run that ended kept), found by the mark bound to
//!   the `state_dir` and ended at start;
//! - [`settings`]: [`AgentSettings`], resolved from the config;
//! - [`agent`]: the [`run`] loop (reports, command long-poll, command
//!   execution), with `book` (delivery idempotent by command id, outcomes
//!   until acked);
//! - [`replicate`]: the [`replicate::Replicator`] trait and its plans
//!   (`rsync`: inotify-driven mirroring to an rsync daemon module), the pair
//!   manifest, and `replicate::plan` (a plan built from the config);
//! - [`replication`]: this site's replication role per group (source,
//!   resync, idle): what the replication commands do, and its status report;
//! - `state_lock`: one agent per state directory (a kernel lock held while
//!   it runs);
//! - [`gate`]: `warden rsync-gate`, the receiving rsync module's check that
//!   no push lands in a site while it is active;
//! - [`volumes`]: which of the site's rsync directories were seen as mount
//!   points (the gate refuses pushes into one that is not any more);
//! - [`error`]: [`AgentError`], what went wrong and whose move it is.

pub mod agent;
pub mod authority;
mod book;
pub mod checks;
pub mod error;
pub mod gate;
pub mod hook_groups;
pub mod hooks;
pub mod leftovers;
mod peers;
pub mod replicate;
pub mod settings;
mod state_lock;
pub mod volumes;
/// The agent's replication role per group (in `replicate/`, next to the plans it drives).
pub use replicate::replication;
/// The one-group config the integration tests start from, for unit tests too.
#[cfg(test)]
#[path = "../tests/support/web.rs"]
mod test_web;
pub mod wire;

pub use agent::{run, AgentSettings, PeerEndpoints};
pub use error::AgentError;
