//! The identity of the orchestrators' etcd data: a random id under the
//! prefix (`P identity`, 16 hex digits), made once by the first node that
//! campaigns (create-if-absent) and read with every campaign's answer. It
//! is the `cluster` a leader term is told with (`warden_proto::cluster`):
//! terms are revisions of this data, and start over when it is rebuilt.
//!
//! Not etcd's own `cluster_id`: etcd derives that from its members' peer
//! URLs and `--initial-cluster-token` (a hash, no time in it at the first
//! start), so a cluster rebuilt empty on the same hosts and flags has the
//! very id of the one it replaces — which every receiver that moved away
//! from it keeps as left, and would refuse for good. The key is gone with
//! the data: a rebuilt cluster gets a new id. A snapshot restored
//! (`etcdutl snapshot restore --bump-revision`) keeps the key, and its
//! revisions go on: the same terms, rightly the same id.

use etcd_client::{TxnOpResponse, TxnResponse};

use super::*;

/// The key's name under the prefix.
pub(super) const IDENTITY: &str = "identity";

impl Election {
    /// Make the identity key if there is none (one txn: create-if-absent,
    /// so concurrent nodes agree on the first one written).
    pub(super) async fn ensure_identity(&self, client: &Client) -> Result<(), String> {
        let key = self.store.key(IDENTITY);
        let id = loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        };
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, format!("{id:016x}"), None)]);
        retrying(self.timeout, client.clone(), |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// The identity in a campaign's answer (a get of the key among its
/// operations): `None` when absent or not 16 hex digits (said at warn by
/// the caller: terms are then told without a cluster, judged by term).
pub(super) fn identity_in(resp: &TxnResponse, key: &[u8]) -> Result<u64, String> {
    let kv = resp
        .op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().iter().find(|kv| kv.key() == key).cloned(),
            _ => None,
        })
        .ok_or_else(|| "it is missing".to_string())?;
    let text = String::from_utf8_lossy(kv.value());
    match u64::from_str_radix(&text, 16) {
        Ok(id) if text.len() == 16 && id != 0 => Ok(id),
        _ => Err(format!(
            "it holds {:?}, not 16 hex digits",
            crate::text::printable(&text.chars().take(40).collect::<String>())
        )),
    }
}
