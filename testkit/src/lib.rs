//! Stand-ins for services outside warden that its tests cannot reach.
//!
//! Layout:
//! - [`noip`]: [`noip::FakeNoip`], a strict fake of No-IP's dynamic DNS update
//!   server (and of the dyndns2 family it belongs to), usable in-process
//!   ([`noip::start`], [`noip::serve`]) or as a process (`warden fake-noip`).
//!
//! Nothing here is part of the product; it is published nowhere.

pub mod noip;
