//! Stand-ins for services outside warden that its tests cannot reach, and
//! what the benchmarks may conclude from their rounds.
//!
//! Layout:
//! - [`noip`]: [`noip::FakeNoip`], a strict fake of No-IP's dynamic DNS update
//!   server (and of the dyndns2 family it belongs to), usable in-process
//!   ([`noip::start`], [`noip::serve`]) or as a process (`warden fake-noip`).
//! - [`net`]: loopback addresses that refuse connections, and ports for the
//!   daemons tests start (below the ephemeral range, never reused within a
//!   process).
//! - [`stats`]: paired per-round ratios, their bootstrap interval and a
//!   met / not met / not shown verdict on a 1.0× goal (the proxy bench).
//!
//! Nothing here is part of the product; it is published nowhere.

pub mod net;
pub mod noip;
pub mod stats;
