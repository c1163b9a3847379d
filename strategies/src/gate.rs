//! The caller's licence to act, asked at the moment an order leaves.
//!
//! A strategy's call may read before it writes (the DNS strategy asks the
//! authoritative servers, the rfc2136 provider reads the zone, the HAProxy
//! driver reads its fence and servers): a caller that checked its licence
//! before the call may have lost it by the time the write is sent — a
//! leader paused (SIGSTOP, a frozen VM) in the middle of a read, resumed
//! after another leader acted. Receivers that keep an epoch fence refuse
//! such a late order; a dyndns2 server keeps none, and HAProxy's fence is
//! no compare-and-set.
//!
//! So a caller runs the call [`under`] a [`Gate`], and every write a
//! strategy sends — a route or hold order to a frontend, a Runtime API
//! command that changes HAProxy, a DNS UPDATE, a dyndns2 update — asks it
//! first ([`check`]): a closed gate sends nothing and the call ends with
//! [`StrategyError::Unlicensed`]. A call made outside any gate (a tool, a
//! test) sends as before. A task a strategy spawns to send later (the end
//! of an HAProxy drain) runs under the gate of the call that spawned it.

use std::future::Future;
use std::sync::Arc;

use crate::StrategyError;

/// Whether the caller may still give orders (true) or not: asked right
/// before each write, so it must answer at once (no I/O).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

tokio::task_local! {
    static GATE: Gate;
}

/// Run `call` with every write it sends asked of `gate` first.
pub async fn under<F: Future>(gate: Gate, call: F) -> F::Output {
    GATE.scope(gate, call).await
}

/// The gate of the running call, if it runs under one.
pub fn current() -> Option<Gate> {
    GATE.try_with(Arc::clone).ok()
}

/// Right before `element` is sent an order: `Ok` when the running call's
/// gate is open (or it has none), [`StrategyError::Unlicensed`] when it is
/// closed (nothing may be sent).
pub fn check(element: &str) -> Result<(), StrategyError> {
    match current() {
        Some(g) if !g() => Err(StrategyError::Unlicensed {
            element: element.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Run `work` under `gate` when there is one (a task spawned by a call
/// made under it), as it is otherwise.
pub(crate) async fn under_opt<F: Future>(gate: Option<Gate>, work: F) -> F::Output {
    match gate {
        Some(g) => under(g, work).await,
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_closed_gate_refuses_and_no_gate_allows() {
        assert!(check("fe1").is_ok(), "outside any gate");
        let open = Arc::new(AtomicBool::new(true));
        let o = open.clone();
        let gate: Gate = Arc::new(move || o.load(Ordering::SeqCst));
        under(gate, async {
            assert!(check("fe1").is_ok());
            open.store(false, Ordering::SeqCst);
            let e = check("fe1").expect_err("closed");
            assert!(matches!(e, StrategyError::Unlicensed { .. }), "{e:?}");
            assert!(e.to_string().contains("fe1"), "{e}");
        })
        .await;
        assert!(check("fe1").is_ok(), "the gate ends with its call");
    }
}
