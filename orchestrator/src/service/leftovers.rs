//! What the orchestrator's previous process left running, ended at start.
//!
//! Every command the orchestrator runs — a group's fence command
//! (`super::fence`), a notify command (`super::notify`) — carries a run
//! mark bound to this process's run directory
//! ([`crate::OrchestratorSettings::run_dir`]: its `data_dir`; with etcd,
//! its node's name in it), `fence-…@DIR` or `notify-…@DIR`
//! (`warden_config::run_mark`), and so does every process that command
//! starts. An orchestrator killed outright (SIGKILL, the OOM killer, a
//! crash) leaves them running: a slow fence command (an IPMI power-off of
//! 30 s) goes on while the restarted process resumes the runbook
//! (crash-safe journal) and runs the fence step again — two fence
//! commands at once against one site. So before it resumes any runbook
//! or takes any request ([`Shared::end_leftovers`], called by
//! `crate::run` before the API serves and the licence is taken), the
//! orchestrator ends every process bound to its run directory
//! (`warden_config::run_sweep`: SIGTERM, up to [`TERM_GRACE`], then
//! SIGKILL and up to its kill wait), and says which in the log and in an
//! event — an `alert` naming what still runs after SIGKILL (stuck in the
//! kernel), which a resumed fence step may run beside.
//!
//! Never touched: another orchestrator's commands (another `data_dir`, or
//! another node), an agent's (bound to its state directory), the running
//! process's own (a second process of the same node stops at its lock
//! before this sweep: `crate::node_lock`; the local store's lock likewise). Limits are
//! `run_mark`'s: a process started with another environment (`sudo`,
//! `env -i`, `systemd-run`) or as another user is not found. A fence
//! command must be idempotent all the same: one the sweep cut short may
//! have done part of its work.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use warden_config::run_mark::RunMark;
use warden_config::run_sweep::{self, Ending, Swept};

use super::*;

/// How long the leftover processes get to end after SIGTERM.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(3);

/// The run of a fence command's mark (before its unique part).
pub(super) const FENCE: &str = "fence";
/// The run of a notify command's mark.
pub(super) const NOTIFY: &str = "notify";

/// A new mark for a command of `kind` ([`FENCE`], [`NOTIFY`]), bound to
/// `run_dir`: `KIND-UNIQUE@DIR`.
pub(super) fn mark(kind: &str, run_dir: &Path) -> RunMark {
    RunMark::bound_named(&format!("{kind}-{}", RunMark::new().value()), run_dir)
}

impl Shared {
    /// Ends what the previous process left running (module docs); logged
    /// and recorded as an event when something was found. Called once,
    /// at start, before runbooks resume, notifications go out or requests
    /// are served.
    pub async fn end_leftovers(&self) {
        let dir = self.run_dir.clone();
        let swept =
            tokio::task::spawn_blocking(move || run_sweep::end_bound(&dir, |_| false, TERM_GRACE))
                .await;
        let swept = match swept {
            Ok(Some(swept)) => swept,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    cause = %e,
                    "cannot look for what the previous orchestrator process left running"
                );
                return;
            }
        };
        let line = describe(&swept);
        tracing::warn!("{line}");
        let kind = match swept.ending {
            Ending::Survived => EventKind::Alert,
            _ => EventKind::Started,
        };
        self.event(kind, None, None, line, vec![], None);
    }
}

/// "ended 2 processes left by the previous orchestrator process (with
/// SIGTERM) before resuming any runbook: fence command pid 10 (sh), pid
/// 11 (ipmitool)".
fn describe(swept: &Swept) -> String {
    let mut runs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &swept.ended {
        let run = e.mark.parts().0;
        let what = match run.split_once('-').map(|(k, _)| k) {
            Some(FENCE) => "fence command",
            Some(NOTIFY) => "notify command",
            _ => "command",
        };
        runs.entry(what).or_default().push(format!(
            "pid {} ({})",
            e.pid,
            crate::text::printable(&e.program)
        ));
    }
    let n = swept.ended.len();
    let what: Vec<String> = runs
        .into_iter()
        .map(|(what, pids)| format!("{what} {}", pids.join(", ")))
        .collect();
    let plural = if n == 1 { "" } else { "es" };
    if swept.ending == Ending::Survived {
        return format!(
            "found {n} process{plural} left by the previous orchestrator process before \
             resuming any runbook: {}; {}: a fence step resumed now may run its command beside \
             it (end it, or restart the host)",
            what.join("; "),
            swept.how()
        );
    }
    format!(
        "ended {n} process{plural} left by the previous orchestrator process (with SIGTERM{}) \
         before resuming any runbook: {}",
        if swept.killed() { ", then SIGKILL" } else { "" },
        what.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::harness;
    use super::*;
    use warden_config::run_sweep::Ended;

    /// Two orchestrators on one host (two `data_dir`s): a start ends what
    /// is bound to its own directory only, and says so in an event.
    #[tokio::test]
    async fn a_start_ends_its_own_leftovers_and_no_other_orchestrators() {
        let (da, db) = (harness::test_dir(true, 5), harness::test_dir(true, 5));
        let start = |d: &Path| {
            let text = harness::config_text(d, true, 5, "");
            let store = Arc::new(crate::store::MemStore::default());
            harness::start_from(&text, d, store).unwrap().0
        };
        let (a, b) = (start(&da), start(&db));
        assert_eq!(a.run_dir, da.join("data"));
        let spawn = |s: &Shared| {
            let m = mark(FENCE, &s.run_dir);
            let child = std::process::Command::new("sleep")
                .arg("60")
                .env(warden_config::run_mark::VAR, m.value())
                .spawn()
                .unwrap();
            (child, m)
        };
        let ((mut mine, m1), (mut theirs, m2)) = (spawn(&a), spawn(&b));
        // their environments are readable once they run (exec'd)
        for _ in 0..200 {
            if m1.marked().contains(&mine.id()) && m2.marked().contains(&theirs.id()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        a.end_leftovers().await;
        let mine_ended = mine.try_wait().unwrap().is_some();
        let theirs_alive = theirs.try_wait().unwrap().is_none();
        for c in [&mut mine, &mut theirs] {
            let _ = (c.kill(), c.wait());
        }
        assert!(mine_ended, "its own fence command still runs");
        assert!(
            theirs_alive,
            "another orchestrator's fence command was ended"
        );
        let said: Vec<String> = a
            .lock()
            .recent
            .iter()
            .filter(|e| e.kind == EventKind::Started)
            .map(|e| e.message.clone())
            .collect();
        assert_eq!(
            said,
            [format!(
                "ended 1 process left by the previous orchestrator process (with SIGTERM) \
                 before resuming any runbook: fence command pid {} (sleep)",
                mine.id()
            )]
        );
    }

    /// With etcd the nodes of one host may share `data_dir`: each node's
    /// marks are bound to a name of its own in it.
    #[test]
    fn etcd_nodes_sharing_a_data_dir_have_run_directories_of_their_own() {
        let d = harness::test_dir(true, 5);
        let etcd =
            "store = \"etcd\"\n[orchestrator.etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n\
                    [[orchestrator.nodes]]\nname = \"n1\"\nlisten = \"127.0.0.1:7001\"\n\
                    [[orchestrator.nodes]]\nname = \"n2\"\nlisten = \"127.0.0.1:7002\"\n";
        let settings = |extra: &str| {
            let text = harness::config_head(&d, 5, extra)
                + &format!(
                    "[sites.a]\nagent_token = {{ file = \"{}/a\" }}\n",
                    d.display()
                );
            let cfg = warden_config::parse(&text, &d.join("failover.conf")).unwrap();
            crate::OrchestratorSettings::with_strategies(cfg, Default::default()).unwrap()
        };
        assert_eq!(settings("").run_dir(), d.join("data"));
        let n1 = settings(etcd).as_node("n1").unwrap().run_dir();
        let n2 = settings(etcd).as_node("n2").unwrap().run_dir();
        assert_eq!(n1, d.join("data").join("node-n1"));
        assert_eq!(n2, d.join("data").join("node-n2"));
    }

    #[test]
    fn a_mark_is_bound_to_the_run_directory_and_says_its_kind() {
        let m = mark(FENCE, Path::new("/var/lib/warden"));
        let (run, dir) = m.parts();
        assert_eq!(dir, Some("/var/lib/warden"));
        assert!(run.starts_with("fence-") && run.len() > 6, "{run}");
        assert_ne!(mark(FENCE, Path::new("/d")), mark(FENCE, Path::new("/d")));
    }

    #[test]
    fn what_was_ended_is_said_by_command_and_pid() {
        let ended = |pid, program: &str, kind| Ended {
            pid,
            program: program.into(),
            mark: mark(kind, Path::new("/d")),
        };
        let swept = Swept {
            ended: vec![
                ended(10, "sh", FENCE),
                ended(11, "ipmitool", FENCE),
                ended(12, "curl", NOTIFY),
            ],
            ending: Ending::Killed,
            left: vec![],
            kill_wait: Duration::from_secs(10),
        };
        assert_eq!(
            describe(&swept),
            "ended 3 processes left by the previous orchestrator process (with SIGTERM, then \
             SIGKILL) before resuming any runbook: fence command pid 10 (sh), pid 11 \
             (ipmitool); notify command pid 12 (curl)"
        );
        // One that SIGKILL did not end (stuck in the kernel) is not said
        // to be ended.
        let stuck = Swept {
            ending: Ending::Survived,
            left: vec![11],
            ..swept
        };
        assert_eq!(
            describe(&stuck),
            "found 3 processes left by the previous orchestrator process before resuming any \
             runbook: fence command pid 10 (sh), pid 11 (ipmitool); notify command pid 12 \
             (curl); sent SIGKILL, and 1 of them (pid 11) still ran 10 s later: a fence step \
             resumed now may run its command beside it (end it, or restart the host)"
        );
    }
}
