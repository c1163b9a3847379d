//! warden's wire types: every body that crosses a process boundary between
//! warden's own parts, in one small crate with no behaviour (serde only), so
//! that each side depends on the protocol and not on the other side's code
//! (plus [`require_object`], the one check every receiver makes first).
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
    fn only_an_object_is_a_body() {
        assert!(super::require_object(b" \n{\"on\": true}").is_ok());
        for bad in [&b"[true]"[..], b"[\"b\"]", b"\"b\"", b"true", b"", b"  "] {
            assert!(super::require_object(bad).is_err(), "{bad:?}");
        }
    }
}
