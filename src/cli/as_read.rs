//! What an operator's action names as read. The group is read first (from
//! the leader when one is known: a follower's mirror may lag) and the
//! request names what was seen — the active site and epoch for a move or
//! a resync, the pending decision for an approval, the maintenance change,
//! the alerts, divergent count and held passes for a clear — so the
//! orchestrator refuses, or leaves alone, what changed between the read
//! and the request's arrival (a request delayed in a proxy). A command
//! re-run from shell history reads the group again: it acts on what
//! stands at the re-run (only a move's `--epoch N` pins what was seen).

use anyhow::bail;
use serde_json::Value;

use crate::client::Client;

/// The group's view, read from the leader when one is known.
pub(super) async fn read_group(c: &Client, group: &str) -> anyhow::Result<Value> {
    super::drill::Reader::new(c)
        .await
        .get(&format!("/v1/groups/{group}"))
        .await
}

/// A move's (or a resync's) `body` with the group as read: its active site
/// (`from`) and `epoch`. The move is then made only of that group: one that
/// moved on before the request arrives (a failover and failback in
/// between) is refused (409) and nothing is done. With `--epoch`
/// (`expected`), the operator's own reading: a group found at another
/// epoch is not sent at all, and the orchestrator checks it again on
/// arrival.
pub(super) async fn move_body(
    c: &Client,
    group: &str,
    expected: Option<u64>,
    mut body: Value,
) -> anyhow::Result<Value> {
    let g = read_group(c, group).await?;
    let (Some(active), Some(epoch)) = (g["active"].as_str(), g["epoch"].as_u64()) else {
        bail!("the orchestrator's view of group {group} has no active site or epoch; nothing sent");
    };
    if let Some(want) = expected.filter(|&want| want != epoch) {
        bail!(
            "group {group} is at epoch {epoch} (active: {}), not at epoch {want} as --epoch says: \
             it moved on since; nothing sent (read `warden status` again)",
            warden_orchestrator::text::printable(active)
        );
    }
    body["from"] = active.into();
    body["epoch"] = epoch.into();
    Ok(body)
}

/// An approval of the decision pending in `view`, named back (one made
/// meanwhile is refused, not approved): its body, its target and its kind.
/// `to`, when given, must be that decision's target.
pub(super) fn approve_body(
    view: &Value,
    group: &str,
    to: Option<&str>,
) -> anyhow::Result<(Value, String, String)> {
    let pending = view.get("pending").cloned().unwrap_or(Value::Null);
    if pending.is_null() {
        bail!("group {group} has no pending decision; nothing approved");
    }
    let seen: warden_orchestrator::service::SeenPending =
        serde_json::from_value(serde_json::json!({
            "kind": pending["kind"],
            "to": pending["to"],
            "since_unix_ms": pending["since_unix_ms"],
        }))
        .map_err(|e| {
            anyhow::anyhow!("the orchestrator's pending decision is not what this CLI reads: {e}")
        })?;
    let target = seen.to.clone().unwrap_or_default();
    if let Some(want) = to.filter(|w| *w != target) {
        bail!(
            "the pending decision of {group} is a move to {target}, not to {want}; nothing approved"
        );
    }
    let kind = pending["kind"].as_str().unwrap_or("move").to_string();
    Ok((serde_json::to_value(&seen)?, target, kind))
}

/// Maintenance `on` or off, named at the change read (`maintenance_seq`):
/// one made meanwhile by another operator is refused, not undone. An
/// orchestrator older than the field shows none: sent without.
pub(super) fn maintenance_body(view: &Value, on: bool) -> Value {
    let mut body = serde_json::json!({ "on": on });
    if let Some(seq) = view.get("maintenance_seq").and_then(Value::as_u64) {
        body["maintenance_seq"] = seq.into();
    }
    body
}

/// A clear of what `view` shows: the alerts and the divergent count read,
/// and for each site in `deletions` the held pass read there — an alert
/// raised since, a list grown since, another hold is not lifted.
pub(super) fn clear_body(view: &Value, deletions: &[String]) -> Value {
    let mut body = serde_json::json!({});
    if let Some(alerts) = view.get("alerts").filter(|a| a.is_array()) {
        body["alerts"] = alerts.clone();
    }
    if let Some(n) = view["replication"]["divergent_total"].as_u64() {
        body["divergent"] = n.into();
    }
    if !deletions.is_empty() {
        let held = &view["replication"]["held"];
        let seen: serde_json::Map<String, Value> = deletions
            .iter()
            .filter_map(|site| Some((site.clone(), held.get(site)?.clone())))
            .collect();
        body["deletions"] = serde_json::json!(deletions);
        body["seen"] = Value::Object(seen);
    }
    body
}
