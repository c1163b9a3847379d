//! How the orchestrator holds a group's routing: one strategy, or the
//! `hybrid` scheme's two layers (a site layer that is an ordinary strategy,
//! and a DNS layer over frontends that the orchestrator moves on its own).
//! The difference is a type here, not a question asked of the trait.

use std::sync::Arc;

use warden_strategies::hybrid::HybridStrategy;
use warden_strategies::Strategy;

/// A group's routing.
#[derive(Clone)]
pub enum Routing {
    /// `frontend` and `dns` schemes: one strategy moves traffic between sites.
    Single(Arc<dyn Strategy>),
    /// `hybrid`: frontends route to sites (the site layer, a [`Strategy`]),
    /// DNS points at a frontend (the frontend layer).
    Hybrid(Arc<HybridStrategy>),
}

impl Routing {
    /// The two layers of a hybrid group; `None` for the other schemes.
    pub fn hybrid(&self) -> Option<&HybridStrategy> {
        match self {
            Routing::Single(_) => None,
            Routing::Hybrid(h) => Some(h),
        }
    }
}

impl std::ops::Deref for Routing {
    type Target = dyn Strategy;

    /// The strategy that moves traffic between sites (for hybrid: the site layer).
    fn deref(&self) -> &Self::Target {
        match self {
            Routing::Single(s) => s.as_ref(),
            Routing::Hybrid(h) => h.as_ref(),
        }
    }
}
