//! The frontend control API's wire types, defined in `warden-proto` (the
//! compatibility boundary shared with the orchestrator's driver).

pub use warden_proto::frontend::*;
