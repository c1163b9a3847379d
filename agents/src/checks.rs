//! Health checks and endpoint probes, defined in `warden-checks` (shared with
//! the orchestrator's own probes).

pub use warden_checks::*;
