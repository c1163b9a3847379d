//! What a person reads: `warden status` and `warden events` rendered from the
//! API's typed views (`warden_orchestrator::api::StatusView`, `model::Event`).

use std::time::Duration;

use serde::Serialize;
use warden_orchestrator::api::StatusView;
use warden_orchestrator::model::Event;
use warden_orchestrator::text::printable;

/// An enum or number as the API spells it (`"steady"`, `"failover"`).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) | Err(_) => "-".into(),
        Ok(other) => other.to_string(),
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The human table of `warden status`.
pub(crate) fn render_status(v: &StatusView) -> String {
    let mut out = String::new();
    if v.isolated {
        out.push_str("WARNING: the orchestrator is isolated (reaches no site, hears no agent): deciding nothing\n\n");
    }
    for g in &v.groups {
        out.push_str(&format!(
            "group {}  scheme {}  active {}  (primary {})  epoch {}  state {}{}\n",
            g.name,
            g.scheme,
            g.active,
            g.primary,
            g.epoch,
            name(&g.phase),
            if g.maintenance { "  MAINTENANCE" } else { "" }
        ));
        if g.switched_over {
            out.push_str(&format!(
                "  on {} by a planned move (or adopted there by a new store): stays there until `warden failback {}` (no automatic failback)\n",
                g.active, g.name
            ));
        }
        // Each alert says what ends it (`warden clear`, `adopt-epoch`, a
        // fix at a site): not every one is lifted by `warden clear`.
        for a in &g.alerts {
            out.push_str(&format!("  ALERT: {a}\n"));
        }
        if let Some(r) = &g.replication {
            let ms = |v: Option<u64>| match v {
                Some(n) => format!("{:.1}s", n as f64 / 1000.0),
                None => "-".into(),
            };
            let mut line = format!("  replication {}: {}", r.plan, r.state);
            if let Some(source) = &r.source {
                line.push_str(&format!(" {source} → {}", opt(&r.target)));
            }
            line.push_str(&format!("  lag {}  rpo {}", ms(r.lag_ms), ms(r.rpo_ms)));
            if let Some(p) = &r.progress {
                line.push_str(&format!(
                    "  pass {}: {} items / {} bytes done, {} items / {} bytes left",
                    r.passes, p.items_done, p.bytes_done, p.items_left, p.bytes_left
                ));
            }
            out.push_str(&line);
            out.push('\n');
            for e in &r.errors {
                out.push_str(&format!("  REPLICATION ERROR: {e}\n"));
            }
            if !r.divergent.is_empty() || r.divergent_not_stored > 0 {
                let total = r.divergent_total.max(r.divergent.len());
                out.push_str(&format!(
                    "  divergent items ({total}, policy {}):\n",
                    r.divergent_policy
                ));
                for d in &r.divergent {
                    out.push_str(&format!(
                        "    {}  {}  {}{}\n",
                        d.name,
                        d.reason,
                        d.action,
                        d.moved_to
                            .as_ref()
                            .map(|m| format!(" → {m}"))
                            .unwrap_or_default()
                    ));
                }
                if total > r.divergent.len() {
                    out.push_str(&format!(
                        "    … and {} more (GET /v1/groups/{}/divergent)\n",
                        total - r.divergent.len(),
                        g.name
                    ));
                }
                if r.divergent_not_stored > 0 {
                    out.push_str(&format!(
                        "    ({} of them not kept in the orchestrator's store: too many for one etcd record; they are at the site)\n",
                        r.divergent_not_stored
                    ));
                }
            }
        }
        if let Some(p) = &g.pending {
            out.push_str(&format!(
                "  pending: {} to {} — {} (run `warden approve {}`)\n",
                name(&p.kind),
                p.to,
                p.reason,
                g.name
            ));
        }
        if let Some(rb) = &g.runbook {
            let steps: Vec<String> = rb
                .steps
                .iter()
                .map(|st| format!("{}:{}", name(&st.name), name(&st.status)))
                .collect();
            out.push_str(&format!(
                "  runbook {} {} {} → {} {}  rto {} ms  [{}]\n",
                rb.id,
                name(&rb.kind),
                rb.from,
                rb.to,
                name(&rb.status),
                name(&rb.rto_ms),
                steps.join(" ")
            ));
        }
        out.push_str(&format!(
            "  {:<12} {:<12} {:<14} {:<9} {:<8} {}\n",
            "SITE", "VERDICT", "VANTAGE", "STATUS", "AGE", "DETAIL"
        ));
        for site in &g.sites {
            let verdict = format!(
                "{}{}",
                site.verdict,
                if site.confirmed_down { "*" } else { "" }
            );
            let mut first = true;
            for row in &site.evidence {
                let (n, vd) = if first {
                    (site.name.clone(), verdict.clone())
                } else {
                    (String::new(), String::new())
                };
                first = false;
                let age = row
                    .age_ms
                    .map(|a| format!("{a}ms"))
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "  {:<12} {:<12} {:<14} {:<9} {:<8} {}\n",
                    n,
                    vd,
                    row.vantage,
                    row.status,
                    age,
                    printable(&row.detail)
                ));
            }
            if first {
                out.push_str(&format!(
                    "  {:<12} {:<12} (no evidence yet)\n",
                    site.name, verdict
                ));
            }
        }
        out.push('\n');
    }
    out.push_str("(* = confirmed down)\n");
    out
}

/// The human list of `warden events`.
pub(crate) fn render_events(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let when = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis(e.time_unix_ms),
        );
        out.push_str(&format!(
            "#{} {} {:<20} group={} site={}  {}\n",
            e.id,
            when,
            name(&e.kind),
            opt(&e.group),
            opt(&e.site),
            printable(&e.message)
        ));
        if !e.evidence.is_empty() {
            out.push_str(&format!(
                "      {:<10} {:<14} {:<9} {}\n",
                "SITE", "VANTAGE", "STATUS", "DETAIL"
            ));
            for r in &e.evidence {
                out.push_str(&format!(
                    "      {:<10} {:<14} {:<9} {}\n",
                    r.site,
                    r.vantage,
                    r.status,
                    printable(&r.detail)
                ));
            }
        }
    }
    out
}

/// The orchestrators of an etcd deployment: who leads, the lease, etcd.
pub(crate) fn render_orchestrators(nodes: &[serde_json::Value]) -> String {
    let mut out = String::from("orchestrators:\n");
    for n in nodes {
        let url = n["url"].as_str().unwrap_or("?");
        if let Some(e) = n.get("error").and_then(|e| e.as_str()) {
            out.push_str(&format!("  {url}  UNREACHABLE: {e}\n"));
            continue;
        }
        let node = n["node"].as_str().unwrap_or("?");
        let role = if n["is_leader"].as_bool() == Some(true) {
            "LEADER".to_string()
        } else {
            match n["leader"].as_str() {
                Some(l) => format!("follower (leader {l})"),
                None => "follower (no leader)".to_string(),
            }
        };
        let lease = match n["lease_remaining_ms"].as_u64() {
            Some(ms) => format!(
                "lease {:.1}s left of {}s",
                ms as f64 / 1000.0,
                n["lease_ttl_ms"].as_u64().unwrap_or(0) / 1000
            ),
            None => "lease -".to_string(),
        };
        let etcd = match (n["etcd_ok"].as_bool(), n["etcd_trouble"].as_str()) {
            (Some(true), _) => "etcd ok".to_string(),
            (Some(false), Some(t)) => format!("etcd FAILING: {t}"),
            (Some(false), None) => "etcd FAILING".to_string(),
            (None, _) => format!("store {}", n["store"].as_str().unwrap_or("?")),
        };
        out.push_str(&format!("  {node:<10} {url}  {role}  {lease}  {etcd}\n"));
        if let Some(why) = n["take_over_failed"].as_str() {
            out.push_str(&format!(
                "             CANNOT TAKE OVER: {}\n",
                printable(why)
            ));
        }
    }
    out.push('\n');
    out
}
