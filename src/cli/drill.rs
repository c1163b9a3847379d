//! `warden drill GROUP`: a disaster-recovery drill through the API, as an
//! operator would run it by hand — a planned switchover of a healthy
//! group from its primary to a standby (no data lost: the standby is
//! resynced and verified before users move), users left there for
//! `--stay`, then a failback to the primary; each move waited for, and a
//! report of what each took (RTO, steps, verify). It refuses to start on a
//! group that is not steady on its primary, is in maintenance, has alerts
//! or a pending decision, or whose standby is not healthy; it stops at the first move
//! that fails and says where users are.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use warden_orchestrator::model::{Phase, Runbook, RunbookStatus};
use warden_orchestrator::service::GroupView;

use crate::client::Client;

/// How often a move in progress is asked about.
const POLL: Duration = Duration::from_millis(500);

/// One move of the drill, as the report shows it.
struct Move {
    what: &'static str,
    rb: Runbook,
    took: Duration,
}

pub(super) async fn run(
    c: &Client,
    group: &str,
    to: Option<&str>,
    stay: Duration,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<()> {
    // Reads go to the leader (a follower's view lags, and knows a runbook
    // only once it mirrored it); actions are redirected to it anyway.
    let r = Reader::new(c).await;
    let g = r.view(group).await?;
    let target = preflight(&g, to)?;
    let primary = g.primary.clone();
    eprintln!(
        "drill of {group}: switchover {primary} → {target}, {} there, failback → {primary}",
        humantime::format_duration(stay)
    );
    let mut moves = Vec::new();
    let finished = tokio::select! {
        r = drill(&r, &g, &target, stay, timeout, &mut moves) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let outcome = match finished {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(e.context(r.where_users_are(group).await)),
        None => Err(anyhow::anyhow!(
            "interrupted: a move already started goes on ({}); see `warden status`",
            r.where_users_are(group).await
        )),
    };
    report(group, &moves, outcome.is_ok(), json)?;
    outcome
}

/// Where the drill (and a move's [`super::operator`] read of the group)
/// reads: the leader's URL when one is known.
pub(super) struct Reader<'c> {
    c: &'c Client,
    leader: Option<String>,
}

impl<'c> Reader<'c> {
    pub(super) async fn new(c: &'c Client) -> Reader<'c> {
        let leader = if c.bases().len() > 1 {
            super::operator::orchestrators(c)
                .await
                .into_iter()
                .find(|n| n["is_leader"] == Value::Bool(true))
                .and_then(|n| n["url"].as_str().map(str::to_string))
        } else {
            None
        };
        Reader { c, leader }
    }

    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        if let Some(base) = &self.leader {
            if let Ok((200, v)) = self.c.get_at(base, path).await {
                return Ok(v);
            }
        }
        self.c.get(path).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.c.post(path, body).await
    }

    async fn view(&self, group: &str) -> anyhow::Result<GroupView> {
        let v = self.get(&format!("/v1/groups/{group}")).await?;
        serde_json::from_value(v).map_err(|e| {
            anyhow::anyhow!("the orchestrator's group is not what this CLI reads: {e}")
        })
    }

    /// "users are on b (…)": what the orchestrator says now, and what brings
    /// them back; or that it could not be asked.
    async fn where_users_are(&self, group: &str) -> String {
        match self.view(group).await {
            Ok(g) if g.active != g.primary => format!(
                "users are on {} now ({:?}); `warden failback {group}` brings them back to {} once no runbook runs",
                g.active, g.phase, g.primary
            ),
            Ok(g) => format!("users are on {} now ({:?})", g.active, g.phase),
            Err(e) => format!("where users are now could not be read ({e:#}): see `warden status`"),
        }
    }
}

/// The drill's moves; `moves` gets each as it ends.
async fn drill(
    c: &Reader<'_>,
    seen: &GroupView,
    target: &str,
    stay: Duration,
    timeout: Duration,
    moves: &mut Vec<Move>,
) -> anyhow::Result<()> {
    let group = seen.name.as_str();
    let started = Instant::now();
    // For the group as the preflight saw it (409 if it moved on since).
    let v = c
        .post(
            &format!("/v1/groups/{group}/switchover"),
            serde_json::json!({ "to": target, "from": seen.active, "epoch": seen.epoch }),
        )
        .await?;
    let id = runbook_id(&v)?;
    let rb = wait(c, id, timeout).await?;
    let ok = rb.status == RunbookStatus::Succeeded;
    let epoch = rb.epoch;
    moves.push(Move {
        what: "switchover",
        rb,
        took: started.elapsed(),
    });
    if !ok {
        bail!("the switchover to {target} failed (runbook {id}): see `warden events --group {group}`; users stay where the runbook left them");
    }
    // Users on the standby; the group must stay as the drill left it.
    let until = Instant::now() + stay;
    while Instant::now() < until {
        tokio::time::sleep(POLL.min(until - Instant::now())).await;
        let g = c.view(group).await?;
        if g.active != target || g.phase != Phase::Steady || g.epoch != epoch {
            bail!(
                "while users were on {target}, the group moved on by itself (active {} at epoch {}, {:?}): the drill stops",
                g.active,
                g.epoch,
                g.phase
            );
        }
    }
    // The failback is for the group as the drill left it: refused (409) if
    // it moved on between the last look and this order.
    let started = Instant::now();
    let v = c
        .post(
            &format!("/v1/groups/{group}/failback"),
            serde_json::json!({ "from": target, "epoch": epoch }),
        )
        .await?;
    let id = runbook_id(&v)?;
    let rb = wait(c, id, timeout).await?;
    let ok = rb.status == RunbookStatus::Succeeded;
    moves.push(Move {
        what: "failback",
        rb,
        took: started.elapsed(),
    });
    if !ok {
        bail!("the failback failed (runbook {id}): users are still on {target}; see `warden events --group {group}`");
    }
    Ok(())
}

/// The site the drill moves users to, or why it does not start.
fn preflight(g: &GroupView, to: Option<&str>) -> anyhow::Result<String> {
    let name = &g.name;
    if g.phase != Phase::Steady
        || g.runbook
            .as_ref()
            .is_some_and(|r| r.status == RunbookStatus::Running)
    {
        bail!(
            "{name} is {:?}: a drill starts only from a steady group",
            g.phase
        );
    }
    if g.maintenance {
        bail!(
            "{name} is in maintenance: a drill moves its users twice; end it first (`warden maintenance {name} off`)"
        );
    }
    if g.pending.is_some() {
        bail!("{name} has a pending decision: approve or resolve it first");
    }
    if !g.alerts.is_empty() {
        bail!(
            "{name} has alerts ({}): clear their cause first",
            g.alerts.join("; ")
        );
    }
    if g.active != g.primary {
        bail!(
            "{name} runs on {}, not on its primary {}: a drill starts from the primary (`warden failback {name}` first)",
            g.active,
            g.primary
        );
    }
    let healthy = |s: &str| {
        g.sites
            .iter()
            .any(|v| v.name == s && v.verdict == "healthy")
    };
    let target = match to {
        Some(t) => {
            if !g.sites.iter().any(|v| v.name == t) {
                bail!("{t} is not a site of {name}");
            }
            if t == g.primary {
                bail!("{t} is {name}'s primary: give a standby");
            }
            t.to_string()
        }
        None => {
            let standbys: Vec<String> = g
                .sites
                .iter()
                .map(|v| v.name.clone())
                .filter(|s| *s != g.primary)
                .collect();
            standbys
                .iter()
                .find(|s| healthy(s))
                .or(standbys.first())
                .cloned()
                .with_context(|| format!("{name} has no standby"))?
        }
    };
    if !healthy(&target) || !healthy(&g.primary) {
        bail!(
            "{name}: both {} and {target} must be healthy for a drill (`warden status`)",
            g.primary
        );
    }
    Ok(target)
}

fn runbook_id(v: &Value) -> anyhow::Result<u64> {
    v["runbook"]
        .as_u64()
        .with_context(|| format!("the orchestrator did not name the runbook: {v}"))
}

/// The runbook once it has ended (or an error after `timeout`).
async fn wait(c: &Reader<'_>, id: u64, timeout: Duration) -> anyhow::Result<Runbook> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = c
            .get(&format!("/v1/runbooks/{id}"))
            .await
            .with_context(|| format!("following runbook {id}"))?;
        let rb: Runbook = serde_json::from_value(v).map_err(|e| {
            anyhow::anyhow!("the orchestrator's runbook is not what this CLI reads: {e}")
        })?;
        if rb.ended() {
            return Ok(rb);
        }
        if Instant::now() >= deadline {
            bail!(
                "runbook {id} still runs after {}: the drill stops waiting (the runbook goes on)",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn report(group: &str, moves: &[Move], ok: bool, json: bool) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    if json {
        let v: Vec<Value> = moves
            .iter()
            .map(|m| {
                serde_json::json!({
                    "move": m.what,
                    "runbook": m.rb.id,
                    "from": m.rb.from,
                    "to": m.rb.to,
                    "status": m.rb.status,
                    "rto_ms": m.rb.rto_ms,
                    "took_ms": m.took.as_millis() as u64,
                    "steps": m.rb.steps,
                })
            })
            .collect();
        let doc = serde_json::json!({ "group": group, "succeeded": ok, "moves": v });
        return super::operator::emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?));
    }
    let mut out = String::new();
    writeln!(
        out,
        "drill of {group}: {}",
        if ok { "succeeded" } else { "FAILED" }
    )?;
    writeln!(
        out,
        "{:<11} {:>7}  {:<15} {:<10} {:>9} {:>9}",
        "MOVE", "RUNBOOK", "FROM → TO", "STATUS", "RTO", "TOOK"
    )?;
    for m in moves {
        let rto =
            m.rb.rto_ms
                .map(|r| format!("{r} ms"))
                .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<11} {:>7}  {:<15} {:<10} {:>9} {:>7} s",
            m.what,
            m.rb.id,
            format!("{} → {}", m.rb.from, m.rb.to),
            serde_json::to_value(m.rb.status)?
                .as_str()
                .unwrap_or_default(),
            rto,
            format!("{:.1}", m.took.as_secs_f64()),
        )?;
        for s in &m.rb.steps {
            let name = serde_json::to_value(s.name)?;
            let status = serde_json::to_value(s.status)?;
            writeln!(
                out,
                "    {:<14} {:<10} {}",
                name.as_str().unwrap_or_default(),
                status.as_str().unwrap_or_default(),
                warden_orchestrator::text::printable(&s.detail)
            )?;
        }
    }
    super::operator::emit(&out)
}
