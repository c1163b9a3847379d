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

/// One line of output: `text` with every control character and
/// bidirectional override escaped ([`printable`]), then a line break. What
/// the orchestrator answers carries text from agents (divergent file
/// names, replication errors and guards, refused names) and from etcd:
/// none of it may start a line of its own or reach the terminal as an
/// escape sequence (a file named `\x1b]…` or `x\n  ALERT: …` in the
/// replicated data).
fn put_line(out: &mut String, text: &str) {
    out.push_str(&printable(text));
    out.push('\n');
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The leader term the answering node's orders are made under: 0 alone
/// (no etcd), its lease's while it leads; `None` on a follower.
fn own_term(v: &StatusView) -> Option<u64> {
    match &v.leadership {
        None => Some(0),
        Some(l) if l.is_leader => l.term.and_then(|t| u64::try_from(t).ok()),
        Some(_) => None,
    }
}

/// The human table of `warden status`.
pub(crate) fn render_status(v: &StatusView) -> String {
    let mut out = String::new();
    let own = own_term(v);
    if v.isolated {
        put_line(&mut out, "WARNING: the orchestrator is isolated (reaches no site, hears no agent): deciding nothing");
        out.push('\n');
    }
    // Groups this node leaves as stored: not among the groups below.
    for a in &v.alerts {
        put_line(&mut out, &format!("ALERT: {a}"));
    }
    if !v.alerts.is_empty() {
        out.push('\n');
    }
    for g in &v.groups {
        put_line(
            &mut out,
            &format!(
                "group {}  scheme {}  active {}  (primary {})  epoch {}  state {}{}",
                g.name,
                g.scheme,
                g.active,
                g.primary,
                g.epoch,
                name(&g.phase),
                if g.maintenance { "  MAINTENANCE" } else { "" }
            ),
        );
        if g.switched_over {
            let text = format!(
                "  on {} by a planned move (or adopted there by a new store): stays there until `warden failback {}` (no automatic failback)",
                g.active, g.name
            );
            put_line(&mut out, &text);
        }
        // Each alert says what ends it (`warden clear`, `adopt-epoch`, a
        // fix at a site): not every one is lifted by `warden clear`.
        for a in &g.alerts {
            put_line(&mut out, &format!("  ALERT: {a}"));
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
            put_line(&mut out, &line);
            for e in &r.errors {
                put_line(&mut out, &format!("  REPLICATION ERROR: {e}"));
            }
            if !r.divergent.is_empty() || r.divergent_not_stored > 0 {
                let total = r.divergent_total.max(r.divergent.len());
                put_line(
                    &mut out,
                    &format!(
                        "  divergent items ({total}, policy {}):",
                        r.divergent_policy
                    ),
                );
                for d in &r.divergent {
                    put_line(
                        &mut out,
                        &format!(
                            "    {}  {}  {}{}",
                            d.name,
                            d.reason,
                            d.action,
                            d.moved_to
                                .as_ref()
                                .map(|m| format!(" → {m}"))
                                .unwrap_or_default()
                        ),
                    );
                }
                if total > r.divergent.len() {
                    put_line(
                        &mut out,
                        &format!(
                            "    … and {} more (GET /v1/groups/{}/divergent)",
                            total - r.divergent.len(),
                            g.name
                        ),
                    );
                }
                if r.divergent_not_stored > 0 {
                    let text = format!(
                        "    ({} of them not kept in the orchestrator's store: too many for one etcd record; they are at the site)",
                        r.divergent_not_stored
                    );
                    put_line(&mut out, &text);
                }
            }
        }
        if let Some(p) = &g.pending {
            put_line(
                &mut out,
                &format!(
                    "  pending: {} to {} — {} (run `warden approve {}`)",
                    name(&p.kind),
                    p.to,
                    p.reason,
                    g.name
                ),
            );
        }
        if let Some(rb) = &g.runbook {
            let steps: Vec<String> = rb
                .steps
                .iter()
                .map(|st| format!("{}:{}", name(&st.name), name(&st.status)))
                .collect();
            put_line(
                &mut out,
                &format!(
                    "  runbook {} {} {} → {} {}  rto {} ms  [{}]",
                    rb.id,
                    name(&rb.kind),
                    rb.from,
                    rb.to,
                    name(&rb.status),
                    name(&rb.rto_ms),
                    steps.join(" ")
                ),
            );
        }
        put_line(
            &mut out,
            &format!(
                "  {:<12} {:<12} {:<14} {:<9} {:<8} {}",
                "SITE", "VERDICT", "VANTAGE", "STATUS", "AGE", "DETAIL"
            ),
        );
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
                put_line(
                    &mut out,
                    &format!(
                        "  {:<12} {:<12} {:<14} {:<9} {:<8} {}",
                        n, vd, row.vantage, row.status, age, row.detail
                    ),
                );
            }
            if first {
                put_line(
                    &mut out,
                    &format!("  {:<12} {:<12} (no evidence yet)", site.name, verdict),
                );
            }
            if let (Some(left), Some(_)) = (site.left_cluster, own) {
                put_line(
                    &mut out,
                    &format!(
                        "  {:<12} REFUSES THIS LEADER'S ORDERS: its agent left this leader's \
                         etcd cluster {left:x} (`warden events`: the alert says what to do)",
                        site.name
                    ),
                );
            }
            if let (Some(taken), Some(own)) = (site.taken_term, own) {
                if taken > own {
                    put_line(
                        &mut out,
                        &format!(
                            "  {:<12} REFUSES THIS LEADER'S ORDERS: its agent took leader term \
                             {taken}, this leader's is {own} (`warden events`: the alert says \
                             what to do)",
                            site.name
                        ),
                    );
                }
            }
        }
        out.push('\n');
    }
    put_line(&mut out, "(* = confirmed down)");
    out
}

/// The human list of `warden events`.
pub(crate) fn render_events(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let when = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis(e.time_unix_ms),
        );
        // The epoch it is about, where it has one.
        let epoch = e.epoch.map(|n| format!(" epoch={n}")).unwrap_or_default();
        put_line(
            &mut out,
            &format!(
                "#{} {} {:<20} group={} site={}{epoch}  {}",
                e.id,
                when,
                name(&e.kind),
                opt(&e.group),
                opt(&e.site),
                e.message
            ),
        );
        if !e.evidence.is_empty() {
            put_line(
                &mut out,
                &format!(
                    "      {:<10} {:<14} {:<9} {}",
                    "SITE", "VANTAGE", "STATUS", "DETAIL"
                ),
            );
            for r in &e.evidence {
                put_line(
                    &mut out,
                    &format!(
                        "      {:<10} {:<14} {:<9} {}",
                        r.site, r.vantage, r.status, r.detail
                    ),
                );
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
            put_line(&mut out, &format!("  {url}  UNREACHABLE: {e}"));
            continue;
        }
        let node = n["node"].as_str().unwrap_or("?");
        let role = if n["is_leader"].as_bool() == Some(true) {
            // Its term, and the etcd cluster the term is a revision of
            // (terms start over in a new cluster).
            match (n["term"].as_i64(), n["cluster"].as_u64()) {
                (Some(t), Some(c)) => format!("LEADER (term {t} of etcd cluster {c:x})"),
                (Some(t), None) => format!("LEADER (term {t})"),
                _ => "LEADER".to_string(),
            }
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
        put_line(
            &mut out,
            &format!("  {node:<10} {url}  {role}  {lease}  {etcd}"),
        );
        if let Some(why) = n["take_over_failed"].as_str() {
            put_line(&mut out, &format!("             CANNOT TAKE OVER: {why}"));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an agent (or the data it replicates) wrote, as the status
    /// carries it: a line break and terminal escapes (set the window title,
    /// clear the screen).
    const FORGED: &str = "x\n  ALERT: forged line\u{1b}]0;owned\u{7}\u{1b}[2J";

    fn status_with(text: &str) -> StatusView {
        serde_json::from_value(serde_json::json!({
            "isolated": false,
            "groups": [{
                "name": "web", "scheme": "builtin", "primary": "a", "active": "a",
                "epoch": 3, "phase": "steady", "maintenance": false,
                "pending": null, "runbook": null,
                "alerts": [format!("replication at a: 1 item(s) refused, e.g. {text}")],
                "sites": [{
                    "name": "a", "verdict": "healthy", "reason": "", "confirmed_down": false,
                    "down_rounds": 0, "healthy_rounds": 3, "hold_down_left_ms": null,
                    "evidence": [{"site": "a", "vantage": "agent", "status": "ok", "detail": text}],
                }],
                "replication": {
                    "plan": "rsync", "divergent_policy": "keep", "state": "replicating",
                    "source": "a", "target": text,
                    "errors": [format!("b: {text}")],
                    "divergent": [{
                        "name": text, "reason": "not_in_manifest", "action": "quarantined",
                        "moved_to": text,
                    }],
                    "divergent_total": 1,
                },
            }],
        }))
        .expect("a status view")
    }

    /// Agent text in `warden status` never reaches the terminal as an
    /// escape sequence or a line of its own.
    #[test]
    fn agent_text_in_the_status_is_escaped() {
        let out = render_status(&status_with(FORGED));
        let bad: Vec<&str> = out
            .lines()
            .filter(|l| l.chars().any(char::is_control) || l.starts_with("  ALERT: forged"))
            .collect();
        assert!(
            bad.is_empty(),
            "lines with control characters, or forged by agent text: {bad:#?}\nin:\n{out}"
        );
        // The same lines as with plain text: nothing added, nothing split.
        let plain = render_status(&status_with("x"));
        assert_eq!(out.lines().count(), plain.lines().count(), "{out}");
        assert!(
            out.contains(r"x\n  ALERT: forged line\u{1b}]0;owned\u{7}"),
            "{out}"
        );
    }

    /// A site whose agent took a leader term above the answering leader's
    /// (its orders refused there) has a line saying so; one at or below
    /// it, an older agent's (no term), or a follower's status (no term
    /// of its own to compare) has none.
    #[test]
    fn a_site_refusing_this_leaders_orders_is_shown() {
        let with = |taken: serde_json::Value, leadership: serde_json::Value| {
            let mut v = serde_json::to_value(status_with("x")).unwrap();
            v["groups"][0]["sites"][0]["taken_term"] = taken;
            v["leadership"] = leadership;
            render_status(&serde_json::from_value(v).unwrap())
        };
        let leading = |is_leader: bool, term: Option<i64>| {
            serde_json::json!({"node": "o1", "leader": "o1", "is_leader": is_leader,
                "term": term, "lease_ttl_ms": 10000, "etcd_ok": true})
        };
        let refused =
            "  a            REFUSES THIS LEADER'S ORDERS: its agent took leader term 17, \
                       this leader's is 3 (`warden events`: the alert says what to do)";
        let out = with(17.into(), leading(true, Some(3)));
        assert!(out.lines().any(|l| l == refused), "{out}");
        let alone = with(17.into(), serde_json::Value::Null);
        assert!(
            alone.contains("took leader term 17, this leader's is 0"),
            "{alone}"
        );
        for (taken, leadership) in [
            (3.into(), leading(true, Some(3))),
            (serde_json::Value::Null, serde_json::Value::Null),
            (17.into(), leading(false, None)),
        ] {
            let out = with(taken.clone(), leadership);
            assert!(!out.contains("REFUSES"), "taken {taken}: {out}");
        }
    }

    /// `warden events` says the epoch an event of a group is about (an
    /// older orchestrator's events, without one, and a site's say none).
    #[test]
    fn events_name_their_epoch() {
        let events: Vec<Event> = serde_json::from_value(serde_json::json!([
            {"id": 1, "time_unix_ms": 0, "kind": "runbook_succeeded", "group": "web",
             "site": "b", "message": "done", "epoch": 4, "runbook": 2},
            {"id": 2, "time_unix_ms": 0, "kind": "site_confirmed_down", "site": "a",
             "message": "down"},
        ]))
        .unwrap();
        let out = render_events(&events);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("group=web site=b epoch=4  done"), "{out}");
        assert!(lines[1].contains("group=- site=a  down"), "{out}");
    }

    /// The same for `warden events` and the orchestrators' list (etcd's
    /// trouble, a node's answer).
    #[test]
    fn text_in_events_and_the_orchestrators_is_escaped() {
        let events: Vec<Event> = serde_json::from_value(serde_json::json!([{
            "id": 1, "time_unix_ms": 0, "kind": "site_down", "group": "web", "site": "a",
            "message": FORGED,
            "evidence": [{"site": "a", "vantage": "agent", "status": "failing", "detail": FORGED}],
        }]))
        .unwrap();
        let nodes = vec![serde_json::json!({
            "url": "http://o1:7700", "node": "o1", "is_leader": false, "leader": FORGED,
            "etcd_ok": false, "etcd_trouble": FORGED, "take_over_failed": FORGED,
        })];
        for out in [render_events(&events), render_orchestrators(&nodes)] {
            assert!(
                !out.lines()
                    .any(|l| l.chars().any(char::is_control) || l.starts_with("  ALERT: forged")),
                "{out}"
            );
        }
    }

    /// The leader's line names its term and the etcd cluster the term is
    /// a revision of (receivers compare terms within one cluster).
    #[test]
    fn the_leader_is_shown_with_its_term_and_etcd_cluster() {
        let node = |cluster: serde_json::Value| {
            serde_json::json!({
                "url": "http://o1:7700", "node": "o1", "is_leader": true, "leader": "o1",
                "term": 17, "cluster": cluster, "lease_ttl_ms": 10000,
                "lease_remaining_ms": 8000, "etcd_ok": true,
            })
        };
        let out = render_orchestrators(&[node(0x1c2f.into())]);
        assert!(out.contains("o1         http://o1:7700  LEADER (term 17 of etcd cluster 1c2f)  lease 8.0s left of 10s  etcd ok"), "{out}");
        let out = render_orchestrators(&[node(serde_json::Value::Null)]);
        assert!(out.contains("LEADER (term 17)  lease"), "{out}");
    }

    /// A group the answering node leaves as stored is not among the
    /// status's groups: its alert (the status's own) is printed first,
    /// not lost. Before, `warden status` did not show it at all.
    #[test]
    fn alerts_about_groups_left_as_stored_are_printed_first() {
        let mut v = status_with("x");
        v.alerts = vec!["group api: the record in etcd names site c as its active site".into()];
        let out = render_status(&v);
        assert!(
            out.starts_with("ALERT: group api: the record in etcd names site c"),
            "{out}"
        );
    }
}
