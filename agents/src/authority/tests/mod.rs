//! The authority's rules against commands (epochs, sites, demotes and
//! resyncs, promotes on disk first); its state file's own in `file.rs`.

use super::*;
use crate::wire::{Command, CommandKind};

mod file;
mod told;

fn groups() -> Vec<(String, String)> {
    vec![("web".into(), "a".into())]
}

fn cmd(epoch: u64, kind: CommandKind, site: &str) -> Command {
    Command::new("web", epoch, kind).to_site(site)
}

#[test]
fn a_start_stands_while_the_site_is_active_at_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let start = cmd(1, CommandKind::StartReplication, "a");
    a.admit(&start).unwrap();
    assert_eq!(a.still_active("web", 1), Ok(()));
    assert_eq!(a.still_active("other", 1), Ok(()), "nothing to judge by");
    // a newer epoch seen in the orchestrator's answer: superseded
    a.observe(&[("web".to_string(), 2)].into());
    let why = a.still_active("web", 1).unwrap_err();
    assert!(why.contains("epoch 2 of group web is known"), "{why}");
    assert_eq!(a.still_active("web", 2), Ok(()));
    // demoted: no order of this site's stands
    let demote = cmd(2, CommandKind::Demote, "a");
    a.admit(&demote).unwrap();
    a.record(&demote).unwrap();
    let why = a.still_active("web", 2).unwrap_err();
    assert!(why.contains("no longer active"), "{why}");
}

#[test]
fn older_epochs_are_refused_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    assert_eq!(
        a.get("web").unwrap().role,
        Role::Active,
        "the primary starts active"
    );
    a.admit(&cmd(3, CommandKind::Promote, "a")).unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let e = a.admit(&cmd(2, CommandKind::Promote, "a")).unwrap_err();
    assert!(e.contains("epoch 2, older than epoch 3"), "{e}");
    // Same epoch (several commands of one runbook) is fine.
    a.admit(&cmd(3, CommandKind::Demote, "a")).unwrap();
    // A replayed or late journal order (it stops this site's push) is
    // refused like any other, and so is one addressed to another site.
    let e = a.admit(&cmd(2, CommandKind::Journal, "a")).unwrap_err();
    assert!(e.contains("stale or replayed"), "{e}");
    let e = a.admit(&cmd(3, CommandKind::Journal, "b")).unwrap_err();
    assert!(e.contains("addressed to site"), "{e}");
    // An order that names no site is addressed to nobody: refused too.
    let e = a.admit(&cmd(3, CommandKind::Journal, "")).unwrap_err();
    assert!(e.contains("names no site"), "{e}");
    a.admit(&cmd(3, CommandKind::Journal, "a")).unwrap();
    // The release of a held mass-delete guard is an order too: a
    // deposed leader's late `clear` (older epoch) lets nothing go.
    let e = a.admit(&cmd(2, CommandKind::Clear, "a")).unwrap_err();
    assert!(e.contains("stale or replayed"), "{e}");
    a.admit(&cmd(3, CommandKind::Clear, "a")).unwrap();
}

#[test]
fn the_orchestrators_epochs_raise_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(a.get("web").unwrap().role, Role::Standby);
    a.observe(&BTreeMap::from([
        ("web".to_string(), 5),
        ("other".to_string(), 9),
    ]));
    assert!(a.admit(&cmd(4, CommandKind::Promote, "b")).is_err());
    a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap();
    assert!(
        a.get("other").is_none(),
        "groups of other sites are not kept"
    );
}

#[test]
fn commands_for_another_site_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let e = a.admit(&cmd(2, CommandKind::Promote, "b")).unwrap_err();
    assert!(e.contains("addressed to site \"b\""), "{e}");
    let e = a
        .admit(&Command::new("nope", 2, CommandKind::Promote).to_site("a"))
        .unwrap_err();
    assert!(e.contains("not in group"), "{e}");
}

/// A runbook rolled back before its switch promotes the old active site
/// again at the epoch it demoted it at: that site may push again (no
/// other site took users' writes), across a restart — but a bar from an
/// earlier demote, never resynced, stays.
#[test]
fn a_demote_rolled_back_at_its_own_epoch_lets_the_site_push_again() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    for c in [
        cmd(3, CommandKind::Demote, "a"),
        cmd(3, CommandKind::Promote, "a"),
    ] {
        a.admit(&c).unwrap();
        a.record(&c).unwrap();
    }
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(3, CommandKind::StartReplication, "a"))
        .unwrap();
    assert!(a.wire()[0].may_push);

    // Failed away from at 4 and never resynced; promoted at 6 (a failover
    // back to it), then a switchover at 7 rolled back: still barred.
    for c in [
        cmd(4, CommandKind::Demote, "a"),
        cmd(6, CommandKind::Promote, "a"),
        cmd(7, CommandKind::Demote, "a"),
        cmd(7, CommandKind::Promote, "a"),
    ] {
        a.admit(&c).unwrap();
        a.record(&c).unwrap();
    }
    let e = a
        .admit(&cmd(7, CommandKind::StartReplication, "a"))
        .unwrap_err();
    assert!(e.contains("demoted at epoch 4"), "{e}");
    // A promote at a later epoch than the demote is no roll-back.
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    for c in [
        cmd(3, CommandKind::Demote, "a"),
        cmd(5, CommandKind::Promote, "a"),
    ] {
        a.admit(&c).unwrap();
        a.record(&c).unwrap();
    }
    assert!(a
        .admit(&cmd(5, CommandKind::StartReplication, "a"))
        .is_err());
}

/// A promote whose new role cannot be written fails, and changes
/// nothing: the agent's memory and the gate's read of the file both
/// still say standby (pushes into the site are what a standby takes).
#[test]
fn a_role_that_cannot_be_written_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "b", &groups()).unwrap();
    let promote = cmd(4, CommandKind::Promote, "b");
    a.admit(&promote).unwrap();
    // The next write's temporary file cannot be created.
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let e = a.record(&promote).unwrap_err();
    assert!(
        e.contains("role active, epoch 4") && e.contains("authority.json"),
        "{e}"
    );
    assert_eq!(a.get("web").unwrap().role, Role::Standby);
    assert_eq!(a.wire()[0].role, "standby");
    let on_disk = read(dir.path(), "b").unwrap();
    assert_eq!(on_disk["web"].role, Role::Standby);
    assert_eq!(
        on_disk["web"].epoch, 4,
        "the epoch was written before acting"
    );
    // Once the disk takes writes again, the same promote is recorded.
    std::fs::remove_dir(&tmp).unwrap();
    a.record(&promote).unwrap();
    assert_eq!(read(dir.path(), "b").unwrap()["web"].role, Role::Active);
}

/// A promote's role is on disk before its hooks run (the gate refuses
/// pushes from then on), or the promote does not go on; the rest of it
/// (a demote rolled back) is recorded when it succeeds.
#[test]
fn a_promotes_role_is_on_disk_before_its_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let demote = cmd(3, CommandKind::Demote, "a");
    a.admit(&demote).unwrap();
    a.record(&demote).unwrap();
    let promote = cmd(3, CommandKind::Promote, "a");
    a.admit(&promote).unwrap();
    // Not a promote: nothing changes.
    a.promoting(&cmd(3, CommandKind::Demote, "a")).unwrap();
    assert_eq!(read(dir.path(), "a").unwrap()["web"].role, Role::Standby);
    // A file that cannot be written: refused, nothing changed.
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let e = a.promoting(&promote).unwrap_err();
    assert!(e.contains("hooks did not run"), "{e}");
    assert_eq!(a.get("web").unwrap().role, Role::Standby);
    std::fs::remove_dir(&tmp).unwrap();
    a.promoting(&promote).unwrap();
    let on_disk = read(dir.path(), "a").unwrap();
    assert_eq!(on_disk["web"].role, Role::Active);
    assert_eq!(on_disk["web"].demoted_at, Some(3), "only the role so far");
    assert!(!a.wire()[0].may_push);
    // The promote succeeds: a roll-back of the demote at its epoch.
    a.record(&promote).unwrap();
    assert_eq!(read(dir.path(), "a").unwrap()["web"].demoted_at, None);
    assert!(a.wire()[0].may_push);
}

/// An epoch this agent could not write down is not held in memory
/// either: neither the orchestrator's word (`observe`) nor a command
/// raises it unwritten, so the next order at that epoch is refused
/// until the disk takes it, and a restart cannot forget an epoch the
/// agent acted on (an older order would then pass).
#[test]
fn an_epoch_that_cannot_be_written_is_not_raised() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "b", &groups()).unwrap();
    a.admit(&cmd(4, CommandKind::Promote, "b")).unwrap();
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    a.observe(&BTreeMap::from([("web".to_string(), 5)]));
    assert_eq!(a.get("web").unwrap().epoch, 4, "not raised unwritten");
    let e = a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap_err();
    assert!(e.contains("cannot persist epoch 5"), "{e}");
    let e = a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap_err();
    assert!(e.contains("cannot persist epoch 5"), "refused again: {e}");
    assert_eq!(a.get("web").unwrap().epoch, 4);
    // The disk is back: the order at 5 is written, then admitted, and
    // a restart still refuses the older one.
    std::fs::remove_dir(&tmp).unwrap();
    a.admit(&cmd(5, CommandKind::Promote, "b")).unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "b", &groups()).unwrap();
    let e = a.admit(&cmd(4, CommandKind::Demote, "b")).unwrap_err();
    assert!(e.contains("older than epoch 5"), "{e}");
}

/// A demote is the safe direction: a site whose disk is full (often
/// the very reason it is failed away from) still runs its demote hooks
/// although the new epoch cannot be written. Nothing is held unwritten:
/// the epoch is raised with the demote's record, on disk first, so an
/// older order is refused from then on, across a restart too.
#[test]
fn a_demote_runs_when_its_epoch_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(4, CommandKind::Promote, "a")).unwrap();
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let demote = cmd(5, CommandKind::Demote, "a");
    a.admit(&demote)
        .expect("a demote runs whatever the disk says");
    assert_eq!(a.get("web").unwrap().epoch, 4, "not raised unwritten");
    // Still full when it ends: not recorded, the outcome says so.
    assert!(a.record(&demote).is_err());
    assert_eq!(a.get("web").unwrap().role, Role::Active);
    // The disk takes writes again: the demote and its epoch go together.
    std::fs::remove_dir(&tmp).unwrap();
    a.record(&demote).unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let w = a.get("web").unwrap();
    assert_eq!((w.epoch, w.role, w.demoted_at), (5, Role::Standby, Some(5)));
    let e = a.admit(&cmd(4, CommandKind::Promote, "a")).unwrap_err();
    assert!(e.contains("older than epoch 5"), "{e}");
    // Any other order still needs its epoch on disk first.
    std::fs::create_dir(&tmp).unwrap();
    let e = a.admit(&cmd(6, CommandKind::Promote, "a")).unwrap_err();
    assert!(e.contains("cannot persist epoch 6"), "{e}");
    std::fs::remove_dir(&tmp).unwrap();
}

#[test]
fn a_demoted_site_pushes_only_after_a_newer_resync() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(1, CommandKind::StartReplication, "a"))
        .unwrap();
    let demote = cmd(2, CommandKind::Demote, "a");
    a.admit(&demote).unwrap();
    a.record(&demote).unwrap();
    let e = a
        .admit(&cmd(2, CommandKind::StartReplication, "a"))
        .unwrap_err();
    assert!(e.contains("demoted at epoch 2"), "{e}");
    // A resync at the same epoch as the demote does not count…
    a.record(&cmd(2, CommandKind::FinalSync, "a")).unwrap();
    assert!(a
        .admit(&cmd(2, CommandKind::StartReplication, "a"))
        .is_err());
    // …one for a newer epoch does, and survives a restart.
    let fs = cmd(3, CommandKind::FinalSync, "a");
    a.admit(&fs).unwrap();
    a.record(&fs).unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(3, CommandKind::StartReplication, "a"))
        .unwrap();
    let w = a.wire();
    assert_eq!(w[0].role, "standby");
    assert!(w[0].may_push);
}

/// Failed away from (demoted at 2), made active again by a failover
/// back (promoted at 4): it pushes only once the orchestrator says its
/// peer was resynced from it (`warden resync`), never on a plain start,
/// and never as a standby; from then on plain starts are admitted.
#[test]
fn a_site_promoted_after_its_demote_pushes_once_its_peer_was_resynced_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let demote = cmd(2, CommandKind::Demote, "a");
    a.admit(&demote).unwrap();
    a.record(&demote).unwrap();
    let mut vouched = cmd(3, CommandKind::StartReplication, "a");
    vouched.peer_resynced = true;
    let e = a.admit(&vouched).unwrap_err();
    assert!(e.contains("demoted at epoch 2"), "a standby never: {e}");
    let promote = cmd(4, CommandKind::Promote, "a");
    a.admit(&promote).unwrap();
    a.record(&promote).unwrap();
    let e = a
        .admit(&cmd(4, CommandKind::StartReplication, "a"))
        .unwrap_err();
    assert!(e.contains("demoted at epoch 2"), "{e}");
    // The order of an older epoch (a replay, a deposed leader's) is
    // refused even with the peer's word.
    let mut replayed = cmd(3, CommandKind::StartReplication, "a");
    replayed.peer_resynced = true;
    let e = a.admit(&replayed).unwrap_err();
    assert!(e.contains("epoch 3, older than epoch 4"), "{e}");
    let mut vouched = cmd(5, CommandKind::StartReplication, "a");
    vouched.peer_resynced = true;
    a.admit(&vouched).unwrap();
    a.record(&vouched).unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(5, CommandKind::StartReplication, "a"))
        .expect("a plain start after the agent restarted");
    assert!(a.wire()[0].may_push);
}

/// The site is taken out of group `old` (its config changed, the agent
/// restarted) while an orchestrator whose config still has it there asks
/// it to promote `old`: refused, as for a group it was never in. Its state
/// file keeps the group's epoch (a replayed order stays refused should it
/// be put back). Before, the remembered group let the promote run the
/// site's hooks for a group it no longer serves.
#[test]
fn a_command_for_a_group_the_site_was_taken_out_of_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let both = vec![("web".into(), "a".into()), ("old".into(), "a".into())];
    let a = Authority::open(dir.path(), "a", &both).unwrap();
    a.admit(&Command::new("old", 4, CommandKind::Demote).to_site("a"))
        .unwrap();
    drop(a);
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let e = a
        .admit(&Command::new("old", 5, CommandKind::Promote).to_site("a"))
        .expect_err("a promote of a group this site is no longer in was admitted");
    assert!(e.contains("not in group \"old\""), "{e}");
    a.admit(&cmd(1, CommandKind::Promote, "a")).unwrap();
    // Put back in the group: what it remembered of it stands.
    drop(a);
    let a = Authority::open(dir.path(), "a", &both).unwrap();
    let e = a
        .admit(&Command::new("old", 3, CommandKind::Promote).to_site("a"))
        .unwrap_err();
    assert!(e.contains("older than epoch 4"), "{e}");
}

/// An order at epoch u64::MAX (forged, or a corrupted leader's), or any
/// within 2^32 of it: no orchestrator decides one (see
/// `warden_proto::EPOCH_CEILING`). Before, it was
/// admitted and its epoch written to disk, and the agent then refused
/// every later order (each "older") until authority.json was edited by
/// hand — a site nobody could demote or promote any more. Now it is
/// refused and nothing is written; so is such an epoch in the
/// orchestrator's answer.
#[test]
fn an_order_at_the_last_epoch_there_is_is_refused_and_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(4, CommandKind::Promote, "a")).unwrap();
    let e = a
        .admit(&cmd(u64::MAX, CommandKind::Demote, "a"))
        .unwrap_err();
    assert!(
        e.contains("no orchestrator decides an epoch that near"),
        "{e}"
    );
    a.observe(&BTreeMap::from([("web".to_string(), u64::MAX)]));
    assert_eq!(a.get("web").unwrap().epoch, 4);
    drop(a);
    // Nothing of it on disk: after a restart the next real order runs.
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    assert_eq!(a.get("web").unwrap().epoch, 4);
    a.admit(&cmd(5, CommandKind::Demote, "a")).unwrap();
    // Nor any within 2^32 of it (warden_proto::EPOCH_CEILING): the
    // orchestrator never decides one, so none is kept either.
    let e = a
        .admit(&cmd(u64::MAX - 1, CommandKind::Demote, "a"))
        .unwrap_err();
    assert!(e.contains("1 below the largest there is"), "{e}");
    // The ceiling itself is a real epoch.
    a.admit(&cmd(warden_proto::EPOCH_CEILING, CommandKind::Demote, "a"))
        .unwrap();
}
