//! The hook groups SIGKILL did not end at start: a group still there
//! [`super::KILL_WAIT`] after SIGKILL (a process stuck in the kernel, on a
//! dead NFS mount) keeps its record, and while it lives no promote or
//! demote of its group runs here ([`blocking`]): each is refused with what
//! still runs and how to end it; the first one after it ended runs.
//!
//! Everything else the previous process left running is
//! `crate::leftovers`'s, which runs after [`super::end_leftovers`] and
//! leaves the groups held here ([`held_marks`]) and what a hook that ended
//! kept alone.

use std::path::Path;

use tracing::info;
use warden_config::run_mark::RunMark;

use super::procfs::{boot_id, group_alive};
use super::{action, records, Record};

/// The marks of the hooks whose records [`super::end_leftovers`] kept (groups
/// SIGKILL did not end): theirs, not `crate::leftovers`'s to end.
pub fn held_marks(state_dir: &Path) -> Vec<String> {
    records(state_dir)
        .into_iter()
        .filter_map(|(_, r)| r?.mark)
        .collect()
}

/// Why no promote or demote of `group` may run now: a hook of the agent's
/// previous process that SIGKILL did not end at start ([`super::end_leftovers`]
/// kept its record) still runs. `None` once none does (their records are
/// then removed).
pub fn blocking(state_dir: &Path, group: &str) -> Option<String> {
    let (boot, me) = (boot_id(), std::process::id());
    let mut why = None;
    for (path, r) in records(state_dir) {
        let Some(r) = r else {
            continue;
        };
        if r.agent == Some(me) || r.group() != group {
            continue;
        }
        let Some((what, how)) = still_there(&r, &boot) else {
            info!(command = %r.command, hook = %r.hook, "a hook of the agent's previous process that SIGKILL had not ended is gone");
            let _ = std::fs::remove_file(&path);
            continue;
        };
        why.get_or_insert(format!(
            "not run: {} hook {:?} of {}, left running by the agent's previous process \
             ({what}), still runs after SIGKILL (a process stuck in the kernel: a dead NFS \
             mount, a failing disk), and no hook of group {group} runs beside it; end it \
             ({how}) or restart the host, then ask again",
            action(&r.command),
            r.hook,
            r.command,
        ));
    }
    why
}

/// What of the hook `r` still runs and the command that ends it: its
/// process group, or — its process never recorded (the agent killed in the
/// instant after its start) — the processes carrying its run's mark.
fn still_there(r: &Record, boot: &str) -> Option<(String, String)> {
    if r.boot != boot {
        return None;
    }
    match r.pid {
        Some(pgid) => group_alive(pgid).then(|| {
            (
                format!("process group {pgid}"),
                format!("kill -KILL -- -{pgid}"),
            )
        }),
        None => {
            let pids = RunMark::of(r.mark.as_deref()?).marked();
            let list = pids.iter().map(u32::to_string).collect::<Vec<_>>();
            (!pids.is_empty()).then(|| {
                (
                    format!("process {}, found by its run's mark", list.join(", ")),
                    format!("kill -KILL {}", list.join(" ")),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hook_groups::startup::{end_leftovers_with, gone_within, signal_group, Patience};
    use crate::hook_groups::{intend, spawn_group, DIR};

    /// The record at `path` as another agent process's (the previous one).
    fn of_a_previous_process(path: &Path) {
        let mut r: Record = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        r.agent = None;
        std::fs::write(path, serde_json::to_vec(&r).unwrap()).unwrap();
    }

    /// A hook group that SIGKILL does not end (a stand-in signal sends
    /// nothing: a process stuck in the kernel) keeps its record, and no
    /// promote or demote of its group may run while it lives — said with
    /// how to end it; another group's may. Once it is gone, they may
    /// again and the record is removed. Before, the record was removed at
    /// start and the next command of the group ran its hooks beside it.
    #[tokio::test]
    async fn a_group_sigkill_does_not_end_holds_its_groups_hooks_while_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let mut stuck = spawn_group("sleep 60");
        let r = intend(dir.path(), &RunMark::new(), "web", "web:3:promote", "db").unwrap();
        r.started(stuck.id());
        of_a_previous_process(&r.path);
        std::mem::forget(r);
        let said = end_leftovers_with(dir.path(), &Patience::STUCK).await;
        let refused = blocking(dir.path(), "web");
        let other_group = blocking(dir.path(), "db");
        signal_group(stuck.id(), rustix::process::Signal::KILL);
        let _ = stuck.wait();
        assert!(gone_within(|| !group_alive(stuck.id()), Duration::from_secs(10)).await);
        let after = blocking(dir.path(), "web");
        assert!(
            said.len() == 1
                && said[0].contains(
                    "was sent SIGKILL, and some of it still ran 0 s later: no promote or \
                     demote of group web runs here while it does"
                ),
            "{said:?}"
        );
        let pgid = stuck.id();
        assert_eq!(
            refused,
            Some(format!(
                "not run: promote hook \"db\" of web:3:promote, left running by the agent's \
                 previous process (process group {pgid}), still runs after SIGKILL (a process \
                 stuck in the kernel: a dead NFS mount, a failing disk), and no hook of group \
                 web runs beside it; end it (kill -KILL -- -{pgid}) or restart the host, then \
                 ask again"
            ))
        );
        assert_eq!(other_group, None);
        assert_eq!(after, None, "still refused once it ended");
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);
    }

    /// The same for a hook found by its mark alone (the agent killed in
    /// the instant after its start, before its process was recorded) that
    /// SIGKILL does not end: its record is kept and its group's promotes
    /// and demotes are refused, naming the processes found by the mark,
    /// until they are gone. Before, the start-up said "killed (SIGKILL)"
    /// without waiting, removed the record, and the group's next command
    /// ran its hooks beside the stuck one.
    #[tokio::test]
    async fn a_hook_found_by_its_mark_alone_that_sigkill_does_not_end_holds_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let mark = RunMark::bound(dir.path());
        let r = intend(dir.path(), &mark, "web", "web:3:promote", "db").unwrap();
        of_a_previous_process(&r.path);
        std::mem::forget(r);
        let mut stuck = std::process::Command::new("sleep")
            .arg("60")
            .env(warden_config::run_mark::VAR, mark.value())
            .spawn()
            .unwrap();
        let pid = stuck.id();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while mark.marked().is_empty() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let said = end_leftovers_with(dir.path(), &Patience::STUCK).await;
        let refused = blocking(dir.path(), "web");
        let held = held_marks(dir.path());
        let _ = stuck.kill();
        let _ = stuck.wait();
        let after = blocking(dir.path(), "web");
        assert!(
            said.len() == 1
                && said[0].contains(
                    "1 process found by its run's mark), was sent SIGKILL, and \
                     some of it still ran 0 s later: no promote or demote of group web runs \
                     here while it does"
                ),
            "{said:?}"
        );
        assert_eq!(
            refused,
            Some(format!(
                "not run: promote hook \"db\" of web:3:promote, left running by the agent's \
                 previous process (process {pid}, found by its run's mark), still runs after \
                 SIGKILL (a process stuck in the kernel: a dead NFS mount, a failing disk), and \
                 no hook of group web runs beside it; end it (kill -KILL {pid}) or restart the \
                 host, then ask again"
            ))
        );
        assert_eq!(
            held,
            vec![mark.value().to_string()],
            "not left to the sweep"
        );
        assert_eq!(after, None, "still refused once it ended");
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);
    }
}
