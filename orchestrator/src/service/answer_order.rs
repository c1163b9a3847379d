//! The order of this process's answers to agents ([`AnswerOrder`]): a
//! random maker tag drawn at start and a counter bumped for every answer
//! that hands out orders, under the state lock the answer is made under —
//! so a higher `n` read the ledger later, whichever channel (report,
//! report stream, command long-poll) carries it and however late.
//!
//! Why a random tag and a counter, not a clock: the agent must never judge
//! a restarted orchestrator's answers older than its previous life's, or
//! it would take none of its orders. A wall-clock start time can step back
//! across a restart (NTP, a VM restored from a snapshot) and a boot clock
//! starts again at a host's reboot; either would make the new life's
//! answers look older. A new tag is simply another maker: its answers are
//! compared only among themselves. The previous life's answers still in
//! transit at a restart are then ordered against the new life's by the
//! leader term alone, as every answer was before.

use warden_proto::agent::AnswerOrder;

/// This process's maker tag and the place of its last answer.
#[derive(Debug)]
pub(super) struct AnswerOrders {
    maker: String,
    last: u64,
}

impl AnswerOrders {
    /// A new maker: 128 random bits, so that no two processes share one.
    pub(super) fn new() -> AnswerOrders {
        AnswerOrders {
            maker: format!("{:032x}", rand::random::<u128>()),
            last: 0,
        }
    }

    /// The place of the answer being made now (call under the state lock).
    pub(super) fn next(&mut self) -> AnswerOrder {
        self.last += 1;
        AnswerOrder {
            maker: self.maker.clone(),
            n: self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted orchestrator (a new process, a new `AnswerOrders`) is
    /// another maker: its first answer is not compared with the last one
    /// of its previous life, whose count was far ahead.
    #[test]
    fn a_restarted_process_is_another_maker_and_each_counts_up() {
        let mut old = AnswerOrders::new();
        let first = old.next();
        let second = old.next();
        assert_eq!(first.maker, second.maker);
        assert!(second.n > first.n, "{first:?} then {second:?}");
        let mut new = AnswerOrders::new();
        assert_ne!(new.next().maker, first.maker, "a new life, a new maker");
    }
}
