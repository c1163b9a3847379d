//! The [`Store`] implementation of [`EtcdStore`]: groups, runbooks and
//! events as keys under the prefix (a record under another key than its own
//! is an error), read in pages at one revision, written through the guarded
//! write path of `mod.rs`, the event log pruned from its oldest end.

use etcd_client::{DeleteOptions, GetOptions, SortOrder, SortTarget, TxnOp};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::codec::{
    dec, enc, enc_group, mismatch, prefix_end, put, LIST_DECODE_BYTES, LIST_PAGE, PRUNE_PAGE,
};
use super::EtcdStore;
use crate::model::{Event, GroupState, Runbook};
use crate::store::{Records, Store, Unreadable};
use crate::OrchestratorError;

/// Records with their keys.
type Keyed<T> = Vec<(Vec<u8>, T)>;

/// The key the runbook retention writes with each delete (see
/// [`Store::delete_runbooks`]): its revision is part of the state version.
const PRUNED_MARK: &str = "runbooks-pruned";

impl EtcdStore {
    fn id_key(&self, table: &str, id: u64) -> Vec<u8> {
        self.key(&format!("{table}/{id:020}"))
    }

    /// Every record of `table` with its key; those this version's types
    /// refuse (JSON of another version) set aside, named by their key
    /// past `table/`.
    fn list_read<T: DeserializeOwned>(
        &self,
        what: &'static str,
        table: &str,
    ) -> Result<Records<(Vec<u8>, T)>, OrchestratorError> {
        let prefix = self.key(&format!("{table}/")).len();
        let mut read = Vec::new();
        let mut aside = Vec::new();
        for (k, v) in self.list_raw(what, table)? {
            match serde_json::from_slice::<T>(&v) {
                Ok(t) => read.push((k, t)),
                Err(e) => {
                    let name = String::from_utf8_lossy(&k[prefix.min(k.len())..]).to_string();
                    match Unreadable::of(name, &v, &e) {
                        Some(u) => aside.push(u),
                        None => {
                            let key = String::from_utf8_lossy(&k).escape_debug().to_string();
                            return Err(OrchestratorError::store(format!("decode {key}"), e));
                        }
                    }
                }
            }
        }
        Ok(Records {
            read,
            unreadable: aside,
        })
    }

    /// Every record of `table`, with its key, as stored.
    fn list_raw(
        &self,
        what: &'static str,
        table: &str,
    ) -> Result<Keyed<Vec<u8>>, OrchestratorError> {
        // In pages, all at the first page's revision (one snapshot): the
        // runbooks kept (`runbooks_keep` per group, for `runbooks_max_age`)
        // can be many, and a table read whole would be too large an answer
        // and stop the orchestrator from starting.
        let prefix = self.key(&format!("{table}/"));
        let end = prefix_end(&prefix);
        let mut from = prefix;
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let (f, e) = (from.clone(), end.clone());
            let resp = self.call(what, move |c| {
                let (f, e) = (f.clone(), e.clone());
                async move {
                    let mut o = GetOptions::new().with_range(e).with_limit(LIST_PAGE);
                    if revision > 0 {
                        o = o.with_revision(revision);
                    }
                    let mut kv = c.kv_client().max_decoding_message_size(LIST_DECODE_BYTES);
                    kv.get(f, Some(o)).await
                }
            })?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                out.push((kv.key().to_vec(), kv.value().to_vec()));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }
}

impl Store for EtcdStore {
    fn writable(&self) -> bool {
        self.guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn describe(&self) -> String {
        format!("etcd under {}", self.prefix)
    }

    fn groups(&self) -> Result<Vec<GroupState>, OrchestratorError> {
        self.groups_read()?.all("group", &self.describe())
    }

    fn groups_read(&self) -> Result<Records<GroupState>, OrchestratorError> {
        let Records {
            read: keyed,
            unreadable,
        } = self.list_read::<GroupState>("read groups", "groups")?;
        // A record is the group its key names: a copy under another key
        // (written by hand) must not stand in for it, nor be written back
        // over the real one.
        for (k, g) in &keyed {
            if *k != self.key(&format!("groups/{}", g.name)) {
                return Err(mismatch(k, &format!("group {:?}", g.name)));
            }
        }
        Ok(Records {
            read: keyed.into_iter().map(|(_, g)| g).collect(),
            unreadable,
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn state_version(&self) -> Option<i64> {
        // The newest modification among groups and runbooks (keys only),
        // and the retention's last delete of runbooks.
        let mut newest = 0;
        for table in ["groups/", "runbooks/", PRUNED_MARK] {
            let prefix = self.key(table);
            let resp = self
                .call("read the state version", move |mut c| {
                    let p = prefix.clone();
                    async move {
                        c.get(
                            p,
                            Some(
                                GetOptions::new()
                                    .with_prefix()
                                    .with_keys_only()
                                    .with_sort(SortTarget::Mod, SortOrder::Descend)
                                    .with_limit(1),
                            ),
                        )
                        .await
                    }
                })
                .ok()?;
            newest = newest.max(resp.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0));
        }
        Some(newest)
    }

    fn put_group(&self, g: &GroupState) -> Result<(), OrchestratorError> {
        let op = put(self.key(&format!("groups/{}", g.name)), enc_group(g)?);
        self.write("write a group", vec![op])
    }

    fn put_groups(&self, groups: &[GroupState]) -> Result<(), OrchestratorError> {
        let ops = groups
            .iter()
            .map(|g| Ok(put(self.key(&format!("groups/{}", g.name)), enc_group(g)?)))
            .collect::<Result<Vec<_>, OrchestratorError>>()?;
        self.write("write groups", ops)
    }

    fn put_group_and_runbook(&self, g: &GroupState, rb: &Runbook) -> Result<(), OrchestratorError> {
        // One transaction, never split: the group's record is bounded
        // (GROUP_RECORD_BYTES) so that the pair fits.
        let (group, _) = put(self.key(&format!("groups/{}", g.name)), enc_group(g)?);
        let (runbook, _) = put(self.id_key("runbooks", rb.id), enc(rb)?);
        self.commit("write a decision", vec![vec![group, runbook]])
    }

    fn put_runbook(&self, rb: &Runbook) -> Result<(), OrchestratorError> {
        let op = put(self.id_key("runbooks", rb.id), enc(rb)?);
        self.write("write a runbook", vec![op])
    }

    fn runbooks(&self) -> Result<Vec<Runbook>, OrchestratorError> {
        self.runbooks_read()?.all("runbook", &self.describe())
    }

    fn delete_runbooks(&self, ids: &[u64]) -> Result<(), OrchestratorError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ops: Vec<(TxnOp, usize)> = ids
            .iter()
            .map(|id| (TxnOp::delete(self.id_key("runbooks", *id), None), 0))
            .collect();
        // A delete leaves no key whose revision moves: this one does, so
        // followers see the state version change and mirror the store.
        ops.push(put(
            self.key(PRUNED_MARK),
            format!("{} runbooks deleted", ids.len()).into_bytes(),
        ));
        self.write("delete runbooks", ops)
    }

    fn runbooks_read(&self) -> Result<Records<Runbook>, OrchestratorError> {
        let Records {
            read: keyed,
            unreadable,
        } = self.list_read::<Runbook>("read runbooks", "runbooks")?;
        for (k, rb) in &keyed {
            if *k != self.id_key("runbooks", rb.id) {
                return Err(mismatch(k, &format!("runbook {}", rb.id)));
            }
        }
        Ok(Records {
            read: keyed.into_iter().map(|(_, rb)| rb).collect(),
            unreadable,
        })
    }

    fn put_event(&self, e: &Event) -> Result<(), OrchestratorError> {
        self.put_events(std::slice::from_ref(e))
    }

    fn put_events(&self, events: &[Event]) -> Result<(), OrchestratorError> {
        let ops = events
            .iter()
            .map(|e| Ok(put(self.id_key("events", e.id), enc(e)?)))
            .collect::<Result<Vec<_>, OrchestratorError>>()?;
        self.write("write events", ops)
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, OrchestratorError> {
        let from = self.id_key("events", after.saturating_add(1));
        let end = prefix_end(&self.key("events/"));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let resp = self.call("read events", move |mut c| {
            let (from, end) = (from.clone(), end.clone());
            async move {
                c.get(
                    from,
                    Some(GetOptions::new().with_range(end).with_limit(limit)),
                )
                .await
            }
        })?;
        resp.kvs()
            .iter()
            .map(|kv| dec(kv.key(), kv.value()))
            .collect()
    }

    fn last_event_id(&self) -> Result<u64, OrchestratorError> {
        // Event keys are 20-digit ids: only keys starting with a digit are
        // read (`events/0` up to `events/:`), the highest first, and a key
        // among them that is not an id is skipped, said by its name — never
        // read as "no events", which would number new events over old ones.
        let prefix = self.key("events/");
        let (from, to) = (self.key("events/0"), self.key("events/:"));
        let resp = self.call("read the last event", move |mut c| {
            let (from, to) = (from.clone(), to.clone());
            async move {
                c.get(
                    from,
                    Some(
                        GetOptions::new()
                            .with_range(to)
                            .with_sort(SortTarget::Key, SortOrder::Descend)
                            .with_limit(64)
                            .with_keys_only(),
                    ),
                )
                .await
            }
        })?;
        let mut strays = Vec::new();
        for kv in resp.kvs() {
            let rest = &kv.key()[prefix.len()..];
            let id = std::str::from_utf8(rest)
                .ok()
                .filter(|r| r.len() == 20 && r.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|r| r.parse::<u64>().ok());
            match id {
                Some(id) => {
                    for k in &strays {
                        warn!(key = %k, "a key under events/ that is not an event id: skipped");
                    }
                    return Ok(id);
                }
                None => strays.push(String::from_utf8_lossy(kv.key()).escape_debug().to_string()),
            }
        }
        if strays.is_empty() {
            return Ok(0);
        }
        Err(OrchestratorError::store(
            "read the last event",
            format!(
                "{} key(s) under events/ that are not event ids, and no event id among the \
                 highest 64 (first: {}): remove them (etcdctl del)",
                strays.len(),
                strays[0]
            ),
        ))
    }

    fn prune_events(
        &self,
        keep: usize,
        before_unix_ms: u64,
        max: usize,
    ) -> Result<usize, OrchestratorError> {
        let prefix = self.key("events/");
        let p = prefix.clone();
        let count = self
            .call("count events", move |mut c| {
                let p = p.clone();
                async move {
                    c.get(p, Some(GetOptions::new().with_prefix().with_count_only()))
                        .await
                }
            })?
            .count();
        let excess = usize::try_from(count).unwrap_or(0).saturating_sub(keep);
        // Read from the oldest only as far as something goes: the excess by
        // count, then by age a page that starts at one event and doubles
        // while they are all old (a batch in steady state reads one event).
        let end_all = prefix_end(&prefix);
        let mut oldest: Vec<Vec<u8>> = Vec::new();
        let mut from = prefix.clone();
        let mut page = 1usize;
        'pages: while oldest.len() < max {
            let want = if oldest.len() < excess {
                (excess - oldest.len()).min(PRUNE_PAGE)
            } else {
                page
            }
            .min(max - oldest.len());
            let (f, e) = (from.clone(), end_all.clone());
            let limit = i64::try_from(want).unwrap_or(i64::MAX);
            let resp = self.call("read the oldest events", move |mut c| {
                let (f, e) = (f.clone(), e.clone());
                async move {
                    c.get(f, Some(GetOptions::new().with_range(e).with_limit(limit)))
                        .await
                }
            })?;
            if resp.kvs().is_empty() {
                break;
            }
            for kv in resp.kvs() {
                // By its time alone: a record this version cannot read
                // whole (another version's event) is judged like any
                // other, one with no time (no event) goes as the oldest.
                let old = match crate::model::recorded_at(kv.value()) {
                    Some(t) => t < before_unix_ms,
                    None => {
                        warn!(key = %String::from_utf8_lossy(kv.key()).escape_debug(), "a record under events/ that is not an event: pruned with the oldest");
                        true
                    }
                };
                if oldest.len() >= excess && !old {
                    break 'pages;
                }
                oldest.push(kv.key().to_vec());
                from = prefix_end(kv.key());
            }
            page = (page * 2).min(PRUNE_PAGE);
        }
        let doomed = oldest.len();
        if doomed == 0 {
            return Ok(0);
        }
        let first = oldest[0].clone();
        let end = prefix_end(&oldest[doomed - 1]);
        let op = TxnOp::delete(first, Some(DeleteOptions::new().with_range(end)));
        self.write("prune events", vec![(op, 0)])?;
        Ok(doomed)
    }
}
