//! Report sequence guard: every agent report carries its process's random
//! `boot` id and a `seq` that grows with each report of that process; a
//! report whose seq is not above the last one accepted from the same
//! process is a replay (or a reordered duplicate) and is refused. Up to
//! [`BOOTS_KEPT`] processes are remembered per site, so a replay of an
//! earlier process's report is refused too; a new process (a restart)
//! starts its own sequence. A forger who holds the site's token can still
//! make up new reports — TLS keeps the token secret; this keeps a captured
//! report from being played again.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::Mutex;

use warden_proto::agent::AgentReport;

/// Agent processes remembered per site.
pub(super) const BOOTS_KEPT: usize = 8;

/// Last accepted seq per (site, agent process).
#[derive(Default)]
pub(super) struct ReportSeqs {
    by_site: Mutex<HashMap<String, VecDeque<(String, u64)>>>,
}

impl ReportSeqs {
    /// Admits `rep` by its site, process and seq, or says why not. An agent
    /// from before the `boot` id sends none: its process is then told by
    /// its start time (`started_unix_ms`, sent by every agent; never used
    /// for freshness), so its restart starts a sequence of its own instead
    /// of every report being refused until the new seq passes the old one.
    pub(super) fn admit_report(&self, rep: &AgentReport) -> Result<(), String> {
        if rep.boot.is_empty() {
            let process = format!("started at {} (no boot id)", rep.started_unix_ms);
            return self.admit(&rep.site, &process, rep.seq);
        }
        self.admit(&rep.site, &rep.boot, rep.seq)
    }

    /// Admits `seq` of agent process `boot` at `site`, or says why not.
    pub(super) fn admit(&self, site: &str, boot: &str, seq: u64) -> Result<(), String> {
        let mut all = self.by_site.lock().unwrap_or_else(|p| p.into_inner());
        // One look-up for a site seen before (every report comes here), and
        // no key allocation.
        if let Some(boots) = all.get_mut(site) {
            return admit_in(boots, site, boot, seq);
        }
        admit_in(all.entry(site.to_string()).or_default(), site, boot, seq)
    }
}

/// [`ReportSeqs::admit`] among the processes remembered for `site`.
fn admit_in(
    boots: &mut VecDeque<(String, u64)>,
    site: &str,
    boot: &str,
    seq: u64,
) -> Result<(), String> {
    match boots.iter().position(|(b, _)| b == boot) {
        Some(i) => {
            let last = boots[i].1;
            if seq <= last {
                return Err(format!(
                    "report seq {seq} of {site}'s agent process {boot:?} is not above its last accepted seq {last}: \
                     a replayed or reordered report is refused"
                ));
            }
            // Most recent first.
            if i == 0 {
                boots[0].1 = seq;
            } else {
                let mut entry = boots.remove(i).unwrap_or_default();
                entry.1 = seq;
                boots.push_front(entry);
            }
        }
        None => {
            boots.push_front((boot.to_string(), seq));
            boots.truncate(BOOTS_KEPT);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_or_older_report_is_refused_and_a_restart_starts_over() {
        let s = ReportSeqs::default();
        s.admit("a", "p1", 1).unwrap();
        s.admit("a", "p1", 2).unwrap();
        let e = s.admit("a", "p1", 2).unwrap_err();
        assert!(
            e.contains("replayed") && e.contains("last accepted seq 2"),
            "{e}"
        );
        assert!(s.admit("a", "p1", 1).is_err());
        // Another site, another process: their own sequences.
        s.admit("b", "p1", 1).unwrap();
        s.admit("a", "p2", 1).unwrap();
        // The earlier process's reports stay refused after the restart.
        assert!(s.admit("a", "p1", 2).is_err());
        s.admit("a", "p1", 3).unwrap();
    }

    /// An agent from before the boot id (none sent) that restarts starts
    /// its seq at 1 again: told apart by its start time, it is heard at
    /// once; a replay of its reports is still refused. Before, every report
    /// of the restarted agent was refused until its seq passed the last
    /// one of the process before (a day of reports, at 500 ms), and its
    /// site was never judged healthy (nor recovered) meanwhile.
    #[test]
    fn an_agent_without_a_boot_id_that_restarts_is_heard_at_once() {
        let s = ReportSeqs::default();
        let rep = |started: u64, seq: u64| AgentReport {
            site: "a".into(),
            seq,
            boot: String::new(),
            started_unix_ms: started,
            checks: vec![],
            peers: vec![],
            outcomes: vec![],
            replication: vec![],
            authority: vec![],
            taken_term: None,
            taken_cluster: None,
            left_clusters: vec![],
        };
        s.admit_report(&rep(1_000, 1)).unwrap();
        s.admit_report(&rep(1_000, 172_800)).unwrap();
        assert!(s.admit_report(&rep(1_000, 172_800)).is_err(), "a replay");
        s.admit_report(&rep(2_000, 1))
            .expect("the restarted agent's first report");
        s.admit_report(&rep(2_000, 2)).unwrap();
        assert!(s.admit_report(&rep(2_000, 2)).is_err(), "a replay");
    }

    #[test]
    fn remembers_a_bounded_number_of_processes() {
        let s = ReportSeqs::default();
        for i in 0..100 {
            s.admit("a", &format!("p{i}"), 5).unwrap();
        }
        assert_eq!(s.by_site.lock().unwrap()["a"].len(), BOOTS_KEPT);
        assert!(s.admit("a", "p99", 5).is_err());
    }
}
