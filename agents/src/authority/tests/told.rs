//! The `untold` marker: written at the agent's start, removed by the
//! orchestrator's first answer whose epochs are on disk, and by nothing
//! else.

use super::*;

/// A restarted standby's marker stays until a leader's answer (one that
/// carries epochs) has been taken and its epochs written: a follower's
/// empty answer, or epochs a full disk could not take, leave it. A
/// restart writes it again, also when the answer then says nothing new.
#[test]
fn only_the_orchestrators_epochs_on_disk_end_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert!(!untold(dir.path()), "only the agent's start writes it");
    b.untold();
    assert!(untold(dir.path()));
    b.observe(&BTreeMap::new());
    assert!(untold(dir.path()), "a follower's answer says no epoch");
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    b.observe(&BTreeMap::from([("web".to_string(), 5)]));
    assert!(untold(dir.path()), "epoch 5 is not on disk");
    std::fs::remove_dir(&tmp).unwrap();
    b.observe(&BTreeMap::from([("web".to_string(), 5)]));
    assert!(!untold(dir.path()));
    assert_eq!(read(dir.path(), "b").unwrap()["web"].epoch, 5);
    drop(b);
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    assert!(untold(dir.path()), "a new start waits again");
    b.observe(&BTreeMap::from([("web".to_string(), 5)]));
    assert!(
        !untold(dir.path()),
        "the same epoch, said again, is the word"
    );
}

/// A leader's answer: `epochs` of group web under leader `term`.
fn answer(web: u64, term: u64) -> crate::wire::ReportResponse {
    crate::wire::ReportResponse {
        epochs: BTreeMap::from([("web".to_string(), web)]),
        term,
        ..Default::default()
    }
}

/// Standby b took epoch 5 from leader L1 (term 7), and restarts. L0, a
/// leader deposed at term 6 that still believes it leads, answers first
/// with its epochs (4, then the 5 it knew too): b keeps waiting, lowers
/// nothing, and says so. A standby's answer (no epochs, no term) says
/// nothing either. L1's next answer (epoch 6: a failover b was not there
/// for) ends the wait.
#[test]
fn a_deposed_leaders_answer_after_a_restart_ends_no_wait() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    assert_eq!(b.answered(&answer(5, 7), "L1"), Heard::Leader);
    assert!(!untold(dir.path()));
    drop(b);
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    for web in [4, 5] {
        assert_eq!(
            b.answered(&answer(web, 6), "L0"),
            Heard::Deposed { known: 7 },
            "L0 at epoch {web}"
        );
        assert!(
            untold(dir.path()),
            "L0's answer at epoch {web} ended the wait"
        );
    }
    assert_eq!(read(dir.path(), "b").unwrap()["web"].epoch, 5);
    let said = b.last_refusal().unwrap_or_default();
    assert!(
        said.contains("the orchestrator at L0 answers under leader term 6, below term 7 this agent has taken: a deposed leader's answer, none of its epochs, orders or withdrawals taken"),
        "{said}"
    );
    let standby = crate::wire::ReportResponse::default();
    assert_eq!(b.answered(&standby, "L2"), Heard::Nothing);
    assert!(untold(dir.path()), "a standby's answer ended the wait");
    assert_eq!(b.answered(&answer(6, 7), "L1"), Heard::Leader);
    assert!(!untold(dir.path()));
    assert_eq!(read(dir.path(), "b").unwrap()["web"].epoch, 6);
}

/// An answer of a higher term whose epoch is below the one on disk (a
/// confused or replaced orchestrator) lowers nothing, ends no wait, and
/// its term is not kept: the leader at term 7 is still heard after it.
#[test]
fn an_answer_behind_this_site_ends_no_wait_whatever_its_term() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.answered(&answer(5, 7), "L1");
    drop(b);
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    assert_eq!(b.answered(&answer(4, 9), "X"), Heard::Unsettled);
    assert!(untold(dir.path()), "epoch 4 at term 9 ended the wait");
    assert_eq!(read(dir.path(), "b").unwrap()["web"].epoch, 5, "lowered");
    let said = b.last_refusal().unwrap_or_default();
    assert!(
        said.contains("the orchestrator at X (leader term 9) says group web is at epoch 4, below epoch 5 this site holds"),
        "{said}"
    );
    assert_eq!(b.answered(&answer(5, 7), "L1"), Heard::Leader);
    assert!(!untold(dir.path()));
}

/// A new etcd cluster starts its terms over: its leader's answer, of a
/// lower term, is taken once it states an epoch above this site's (no
/// deposed leader can), and its term is followed from then on.
#[test]
fn terms_started_over_are_followed_from_the_next_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.answered(&answer(5, 700), "old");
    b.untold();
    assert_eq!(
        b.answered(&answer(5, 3), "new"),
        Heard::Deposed { known: 700 }
    );
    assert!(untold(dir.path()));
    assert_eq!(b.answered(&answer(6, 3), "new"), Heard::Leader);
    assert!(!untold(dir.path()));
    drop(b);
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(b.answered(&answer(6, 3), "new"), Heard::Leader);
    assert_eq!(
        b.answered(&answer(6, 2), "older"),
        Heard::Deposed { known: 3 }
    );
}

/// A new leader's term that cannot be written (a full disk) is not taken,
/// but its answer, whose epochs are those on disk, still ends the wait:
/// the leader of the term on disk is still heard afterwards.
#[test]
fn a_term_that_cannot_be_written_is_not_taken_but_its_answer_is_the_word() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.answered(&answer(5, 7), "L1");
    b.untold();
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    assert_eq!(b.answered(&answer(5, 8), "L2"), Heard::Leader);
    assert!(!untold(dir.path()));
    assert_eq!(
        b.answered(&answer(6, 8), "L2"),
        Heard::Unsettled,
        "not on disk"
    );
    std::fs::remove_dir(&tmp).unwrap();
    assert_eq!(
        b.answered(&answer(5, 7), "L1"),
        Heard::Leader,
        "term 8 taken unwritten"
    );
}
