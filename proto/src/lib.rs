//! warden's wire types: every body that crosses a process boundary between
//! warden's own parts, in one small crate with no behaviour (serde only), so
//! that each side depends on the protocol and not on the other side's code
//! (plus [`require_object`], the one check every receiver makes first, and
//! [`cluster::judge`], the one rule every receiver applies to a leader
//! term's etcd cluster).
//!
//! - [`agent`]: agent ⇄ orchestrator (`/v1/reports`, `/v1/agents/commands`);
//! - [`frontend`]: the built-in frontend's control API (`/v1/routes`);
//! - [`cluster`]: the etcd cluster a leader term belongs to.
//!
//! Compatibility rule: fields are only ever added, each with
//! `#[serde(default)]`, and never renamed or removed. Bodies that an *older*
//! peer may receive from a newer one ignore unknown fields (no
//! `deny_unknown_fields` on them), so a newer agent's report is accepted by an
//! older orchestrator; what the new field means is then simply not used.

pub mod agent;
pub mod cluster;
pub mod frontend;

/// The highest epoch an order may carry: `u64::MAX` less 2^32. An
/// orchestrator never decides one above it (one epoch per decision; its
/// store refuses a group above it at load and its adoptions do not take
/// one), so an order above it is forged or corrupt, and a receiver that
/// kept it would refuse every later order (no epoch above is left).
/// Receivers refuse it instead, with [`epoch_beyond_reach`]'s words.
pub const EPOCH_CEILING: u64 = u64::MAX - (1 << 32);

/// `Some(why)` when `epoch` is above [`EPOCH_CEILING`]: the refusal's text.
pub fn epoch_beyond_reach(epoch: u64) -> Option<String> {
    (epoch > EPOCH_CEILING).then(|| {
        format!(
            "epoch {epoch} is {} below the largest there is: no orchestrator decides an epoch that near \
             it (forged or corrupt); refused, nothing kept",
            u64::MAX - epoch
        )
    })
}

/// Every body of these APIs is a JSON object. serde would also build a
/// struct from a JSON array of its fields (`[true]` as `{"on": true}`), so
/// receivers check this first: `Err` says what is wrong.
pub fn require_object(body: &[u8]) -> Result<(), &'static str> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => Err("the body must be a JSON object ({...})"),
        None => Err("the body is empty; a JSON object ({...}) is expected"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_epoch_near_the_largest_is_beyond_reach() {
        assert_eq!(super::epoch_beyond_reach(super::EPOCH_CEILING), None);
        assert_eq!(super::epoch_beyond_reach(1_000_000_000_000_000_000), None);
        let why = super::epoch_beyond_reach(u64::MAX).expect("refused");
        assert!(why.contains("is 0 below the largest"), "{why}");
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert!(super::require_object(b" \n{\"on\": true}").is_ok());
        for bad in [&b"[true]"[..], b"[\"b\"]", b"\"b\"", b"true", b"", b"  "] {
            assert!(super::require_object(bad).is_err(), "{bad:?}");
        }
    }
}
