//! Operator commands: one API call each, rendered for a person (or as JSON).

use serde_json::Value;

use anyhow::bail;

use super::args::{Cmd, OnOff};
use super::as_read::{approve_body, clear_body, maintenance_body, move_body, read_group};
use super::render::{render_events, render_status};
use crate::client::Client;

/// A line to stdout through [`emit`] (a confirmation printed after the
/// action was taken must not panic on a closed pipe: the action is done,
/// and the exit code says so).
macro_rules! say {
    ($($t:tt)*) => {
        emit(&format!("{}\n", format!($($t)*)))?
    };
}

pub(super) async fn run_client(c: &Client, cmd: &Cmd) -> anyhow::Result<()> {
    // A group is named in the request's path (or query): a name no group
    // can have — `web/approve?` — would reach another endpoint (a resync
    // turned into an approval). Refused before anything is sent.
    if let Some(g) = group_of(cmd).filter(|g| !warden_config::load::valid_name(g)) {
        bail!(
            "{:?} is not a group name (1 to 63 letters, digits, '-' and '_'); nothing sent",
            warden_orchestrator::text::printable(g)
        );
    }
    match cmd {
        Cmd::Status { json } => {
            let nodes = orchestrators(c).await;
            let v = match nodes.iter().find(|n| n["is_leader"] == Value::Bool(true)) {
                Some(leader) => {
                    let base = leader["url"].as_str().unwrap_or_default().to_string();
                    match c.get_at(&base, "/v1/status").await {
                        Ok((200, v)) if is_status(&v) => v,
                        _ => c.get("/v1/status").await?,
                    }
                }
                None => c.get("/v1/status").await?,
            };
            // `--json` prints what is served (a status of another version
            // too), but only a status: an object with its groups.
            if !is_status(&v) {
                bail!(
                    "the orchestrator's answer is not a status (an object with its groups): {}",
                    shown(&v)
                );
            }
            let many = c.bases().len() > 1 || v.get("leadership").is_some_and(|l| !l.is_null());
            if *json {
                let mut v = v;
                if many {
                    v["orchestrators"] = Value::Array(nodes);
                }
                emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                if many {
                    emit(&super::render::render_orchestrators(&nodes))?;
                }
                let view: warden_orchestrator::api::StatusView = serde_json::from_value(v)
                    .map_err(|e| {
                        anyhow::anyhow!("the orchestrator's status is not what this CLI reads: {e}")
                    })?;
                emit(&render_status(&view))?;
            }
        }
        Cmd::Failover { group, to, epoch } => {
            let body = move_body(c, group, *epoch, serde_json::json!({ "to": to })).await?;
            let v = c
                .post(&format!("/v1/groups/{group}/failover"), body)
                .await?;
            let id = started(&v)?;
            say!("failover of {group} to {to} started (runbook {id})");
        }
        Cmd::Failback { group, epoch } => {
            let body = move_body(c, group, *epoch, serde_json::json!({})).await?;
            let v = c
                .post(&format!("/v1/groups/{group}/failback"), body)
                .await?;
            let id = started(&v)?;
            say!("failback of {group} started (runbook {id})");
        }
        Cmd::Switchover { group, to, epoch } => {
            let body = move_body(c, group, *epoch, serde_json::json!({ "to": to })).await?;
            let v = c
                .post(&format!("/v1/groups/{group}/switchover"), body)
                .await?;
            let id = started(&v)?;
            say!("switchover of {group} to {to} started (runbook {id})");
        }
        Cmd::Drill {
            group,
            to,
            stay,
            timeout,
            json,
        } => super::drill::run(c, group, to.as_deref(), *stay, *timeout, *json).await?,
        Cmd::Resync { group, epoch } => {
            let body = move_body(c, group, *epoch, serde_json::json!({})).await?;
            let v = c.post(&format!("/v1/groups/{group}/resync"), body).await?;
            let id = started(&v)?;
            say!(
                "resync of {group} started (runbook {id}): the standby is brought in line with the active site, then replication resumes"
            );
        }
        Cmd::Approve { group, to } => {
            let view = read_group(c, group).await?;
            let (body, target, kind) = approve_body(&view, group, to.as_deref())?;
            let v = c.post(&format!("/v1/groups/{group}/approve"), body).await?;
            let id = started(&v)?;
            say!("approved {kind} → {target}; runbook {id} started for {group}");
        }
        Cmd::Maintenance { group, mode } => {
            let on = matches!(mode, OnOff::On);
            let body = maintenance_body(&read_group(c, group).await?, on);
            let v = c
                .post(&format!("/v1/groups/{group}/maintenance"), body)
                .await?;
            // Stored, and said so: anything else (a proxy's empty 200, an
            // orchestrator that answered before storing) is no success —
            // an operator who then takes the site down would see the
            // group failed over.
            // An older orchestrator answers 204 once it stored the change:
            // the group is read again for what it holds.
            let stored = match v.get("maintenance").and_then(Value::as_bool) {
                Some(m) => m == on,
                None if v.is_null() => {
                    read_group(c, group).await?["maintenance"].as_bool() == Some(on)
                }
                None => false,
            };
            if !stored {
                bail!(
                    "the orchestrator's answer does not say maintenance is {} for {group}: {}; see `warden status {group}`",
                    if on { "on" } else { "off" },
                    shown(&v)
                );
            }
            say!("maintenance {} for {group}", if on { "on" } else { "off" });
        }
        Cmd::Clear { group, deletions } => {
            let body = clear_body(&read_group(c, group).await?, deletions);
            let v = c.post(&format!("/v1/groups/{group}/clear"), body).await?;
            if !v.get("cleared").is_some_and(Value::is_array) {
                bail!(
                    "the orchestrator's answer does not say what was cleared: {}; see `warden status {group}`",
                    shown(&v)
                );
            }
            let list = |key: &str| -> Vec<String> {
                v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c.as_str().unwrap_or_default().to_string())
                    .collect()
            };
            let (lifted, kept) = (list("cleared"), list("not_cleared"));
            if lifted.is_empty() && kept.is_empty() {
                say!("{group}: nothing was blocked");
            } else if lifted.is_empty() {
                say!("{group}: nothing cleared");
            }
            for l in lifted {
                say!("{group}: cleared: {l}");
            }
            for k in kept {
                say!("{group}: not cleared: {k}");
            }
        }
        Cmd::AdoptEpoch { group, epoch } => {
            let body = match epoch {
                Some(e) => serde_json::json!({ "epoch": e }),
                None => Value::Null,
            };
            let v = c
                .post(&format!("/v1/groups/{group}/adopt-epoch"), body)
                .await?;
            let Some(epoch) = v.get("epoch").and_then(Value::as_u64) else {
                bail!(
                    "the orchestrator's answer names no epoch: {}; whether it adopted one is not known: see `warden status {group}`",
                    shown(&v)
                );
            };
            say!("{group}: adopted epoch {epoch}; the next move carries a higher one");
        }
        Cmd::Events { json, group, after } => events(c, *json, group.as_deref(), *after).await?,
        _ => bail!("not a client command"),
    }
    Ok(())
}

/// The group a client command names, if any.
fn group_of(cmd: &Cmd) -> Option<&str> {
    match cmd {
        Cmd::Failover { group, .. }
        | Cmd::Failback { group, .. }
        | Cmd::Switchover { group, .. }
        | Cmd::Drill { group, .. }
        | Cmd::Resync { group, .. }
        | Cmd::Approve { group, .. }
        | Cmd::Maintenance { group, .. }
        | Cmd::Clear { group, .. }
        | Cmd::AdoptEpoch { group, .. } => Some(group),
        Cmd::Events { group, .. } => group.as_deref(),
        _ => None,
    }
}

/// Events asked of the API at a time (its default page).
const EVENTS_PAGE: usize = 1000;

/// `warden events`: every event after `after` (of `group`), to the newest,
/// a page at a time, each written as it comes (the API answers the oldest
/// first, a page at most: one request showed the oldest page and never
/// the events of the incident at hand). `--json` writes what is served,
/// as one array.
async fn events(c: &Client, json: bool, group: Option<&str>, after: u64) -> anyhow::Result<()> {
    let mut after = after;
    let mut first = true;
    if json && !write_more("[")? {
        return Ok(());
    }
    loop {
        let mut path = format!("/v1/events?after={after}&limit={EVENTS_PAGE}");
        if let Some(g) = group {
            path.push_str(&format!("&group={g}"));
        }
        let (v, headers) = c.get_with_headers(&path).await?;
        let Some(page) = v.as_array() else {
            bail!(
                "the orchestrator's answer is not a list of events: {}",
                shown(&v)
            );
        };
        // A group-filtered scan that stopped at its bound before the log's
        // end says how far it read: the next page starts there, also when
        // this one is short or empty.
        let scanned = match headers.get(warden_orchestrator::service::SCANNED_THROUGH) {
            None => None,
            Some(h) => match h.to_str().ok().and_then(|t| t.parse::<u64>().ok()) {
                Some(id) => Some(id),
                None => bail!(
                    "the orchestrator's {} header is no event id: {:?}",
                    warden_orchestrator::service::SCANNED_THROUGH,
                    h
                ),
            },
        };
        let last = match page.last() {
            None => match scanned {
                Some(id) if id > after => {
                    after = id;
                    continue;
                }
                _ => break,
            },
            Some(last) => last,
        };
        let Some(last) = last.get("id").and_then(Value::as_u64) else {
            bail!("the orchestrator's events are not what this CLI reads: an event without its id");
        };
        let text = if json {
            let mut out = String::new();
            for e in page {
                out.push_str(if first { "\n" } else { ",\n" });
                out.push_str(&serde_json::to_string_pretty(e)?);
                first = false;
            }
            out
        } else {
            let events: Vec<warden_orchestrator::model::Event> = serde_json::from_value(v.clone())
                .map_err(|e| {
                    anyhow::anyhow!("the orchestrator's events are not what this CLI reads: {e}")
                })?;
            render_events(&events)
        };
        if !write_more(&text)? {
            return Ok(());
        }
        // Oldest first: a short page is the last one, unless the scan
        // stopped at its bound. Ids that do not go up would ask for the
        // same page for ever.
        let next = scanned.map_or(last, |s| s.max(last));
        if (page.len() < EVENTS_PAGE && scanned.is_none()) || next <= after {
            break;
        }
        after = next;
    }
    if json {
        write_more("\n]\n")?;
    }
    Ok(())
}

/// The runbook an action's answer says it started. An answer that names
/// none (`{}`, an empty body: a proxy's, a wrong URL's) is not taken for
/// success: whether anything started is not known.
fn started(v: &Value) -> anyhow::Result<u64> {
    v.get("runbook").and_then(Value::as_u64).ok_or_else(|| {
        anyhow::anyhow!(
            "the orchestrator's answer names no runbook: {}; whether anything started is not known: see `warden status`",
            shown(v)
        )
    })
}

/// Whether `v` is a status answer: an object with its groups.
fn is_status(v: &Value) -> bool {
    v.get("groups").is_some_and(Value::is_array)
}

/// An unexpected answer as an error shows it: escaped, and cut short.
fn shown(v: &Value) -> String {
    let text = match v {
        Value::Null => "(no body)".to_string(),
        other => other.to_string(),
    };
    let mut text = warden_orchestrator::text::printable(&text).into_owned();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// `GET /v1/leader` of every orchestrator, each with its `url`; an
/// unreachable one is listed with its error.
pub(super) async fn orchestrators(c: &Client) -> Vec<Value> {
    let asks = c.bases().iter().map(|base| async move {
        let mut v = match c.get_at(base, "/v1/leader").await {
            Ok((_, v)) if v.is_object() => v,
            Ok((status, _)) => {
                serde_json::json!({ "error": format!("answered {status} without a leader view") })
            }
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        };
        v["url"] = Value::String(base.clone());
        v
    });
    futures::future::join_all(asks).await
}

/// Write a listing to stdout. A reader that stopped reading (`warden
/// status | head`) ends the output quietly: `print!` would panic on the
/// broken pipe.
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    write_more(text).map(|_| ())
}

/// [`emit`]; whether the reader still reads (false: stop writing).
fn write_more(text: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}
