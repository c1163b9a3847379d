//! warden's wire types: every body that crosses a process boundary between
//! warden's own parts, in one small crate with no behaviour (serde only), so
//! that each side depends on the protocol and not on the other side's code.
//!
//! - [`agent`]: agent ⇄ orchestrator (`/v1/reports`, `/v1/agents/commands`);
//! - [`frontend`]: the built-in frontend's control API (`/v1/routes`).
//!
//! Compatibility rule: fields are only ever added, each with
//! `#[serde(default)]`, and never renamed or removed. Bodies that an *older*
//! peer may receive from a newer one ignore unknown fields (no
//! `deny_unknown_fields` on them), so a newer agent's report is accepted by an
//! older orchestrator; what the new field means is then simply not used.

pub mod agent;
pub mod frontend;
