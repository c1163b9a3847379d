//! The agent ⇄ orchestrator wire types, defined in `warden-proto` (the
//! compatibility boundary; see its `agent` module).

pub use warden_proto::agent::*;
