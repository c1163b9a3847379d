//! The records as etcd keeps them: JSON encoding and decoding (a group's
//! record cut to [`GROUP_RECORD_BYTES`]), the size limits every request
//! stays under (operations and bytes per transaction, records per page and
//! the largest answer decoded), and the key helpers (a put with its size,
//! the range end of a prefix, the error for a record under another's key).

use etcd_client::TxnOp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use crate::model::GroupState;
use crate::OrchestratorError;

/// At most this many operations in one transaction (etcd's default limit is 128).
pub(super) const TXN_OPS: usize = 100;

/// At most this many bytes of values in one transaction: etcd refuses a
/// request over `--max-request-bytes` (1.5 MiB by default), and a refused
/// write retried for ever would hold every later decision.
pub(super) const TXN_BYTES: usize = 1_280 * 1024;

/// A group's record is kept under this size (its divergent list cut to
/// fit, [`GroupState::divergent_not_stored`] saying how many were left
/// out), so that it fits one transaction with its decision's runbook.
pub(super) const GROUP_RECORD_BYTES: usize = 1024 * 1024;

/// Records per answer when a table is read (a few KiB each, most of the
/// time; a group record may reach [`GROUP_RECORD_BYTES`]).
pub(super) const LIST_PAGE: i64 = 64;

/// The largest answer a page may be decoded from: a page of group records
/// at their largest ([`GROUP_RECORD_BYTES`]) — the client's default of
/// 4 MiB would refuse a page of a few large records, and a new leader could
/// not load the state.
pub(super) const LIST_DECODE_BYTES: usize = LIST_PAGE as usize * (GROUP_RECORD_BYTES + 64 * 1024);

/// Events read at most per request while pruning.
pub(super) const PRUNE_PAGE: usize = 100;

pub(super) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, OrchestratorError> {
    serde_json::to_vec(v).map_err(|e| OrchestratorError::store("encode", e))
}

/// A group's record, at most [`GROUP_RECORD_BYTES`] when its divergent list
/// is what makes it longer: the list is cut to the items that fit (in
/// order), and the record says how many were left out. The leader that
/// assembled the list keeps it whole in memory; a leader that loads the
/// record shows what was kept and the count of the rest.
pub(super) fn enc_group(g: &GroupState) -> Result<Vec<u8>, OrchestratorError> {
    let whole = enc(g)?;
    if whole.len() <= GROUP_RECORD_BYTES || g.divergent.is_empty() {
        return Ok(whole);
    }
    let mut cut = g.clone();
    cut.divergent.clear();
    let mut room = GROUP_RECORD_BYTES.saturating_sub(enc(&cut)?.len() + 32);
    let mut kept = 0;
    for d in &g.divergent {
        let n = enc(d)?.len() + 1;
        if n > room {
            break;
        }
        room -= n;
        kept += 1;
    }
    cut.divergent = g.divergent[..kept].to_vec();
    let left = (g.divergent.len() - kept) as u64;
    cut.divergent_not_stored = g.divergent_not_stored.saturating_add(left);
    warn!(
        group = %g.name,
        kept,
        left_out = left,
        "the group's divergent list is longer than one etcd record holds: the stored copy keeps the first items and the count of the rest"
    );
    enc(&cut)
}

pub(super) fn dec<T: DeserializeOwned>(key: &[u8], b: &[u8]) -> Result<T, OrchestratorError> {
    serde_json::from_slice(b).map_err(|e| {
        OrchestratorError::store(
            format!("decode {}", String::from_utf8_lossy(key).escape_debug()),
            e,
        )
    })
}

/// A put of `value` under `key`, with its size (for [`super::EtcdStore::write`]).
pub(super) fn put(key: Vec<u8>, value: Vec<u8>) -> (TxnOp, usize) {
    let n = key.len() + value.len();
    (TxnOp::put(key, value, None), n)
}

/// A record whose key does not name it (a copy made by hand under another key).
pub(super) fn mismatch(key: &[u8], record: &str) -> OrchestratorError {
    OrchestratorError::store(
        format!("read {}", String::from_utf8_lossy(key).escape_debug()),
        format!(
            "the record under this key is {record}, which belongs under its own key: \
             a copy or a tampered key; remove it (etcdctl del) or put it back where it belongs"
        ),
    )
}

/// The first key after every key starting with `prefix` (etcd's range end).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/w/events/"), b"/w/events0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
