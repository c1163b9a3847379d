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

/// A leader's answer of etcd cluster `cluster` (`None`: no cluster).
fn answer_of(web: u64, term: u64, cluster: Option<u64>) -> crate::wire::ReportResponse {
    crate::wire::ReportResponse {
        cluster,
        ..answer(web, term)
    }
}

/// The orchestrators moved from etcd cluster a (b took epoch 5 from its
/// leader at term 17) to a new cluster b, whose revisions started over:
/// b's leader, at term 3, is taken at the group's current epoch — the
/// wait ends, its term and cluster are kept, a is retired — and a late
/// answer of cluster a (a deposed leader, whatever its term) is refused
/// and said so; after a restart too, from `authority.json`.
#[test]
fn a_new_etcd_clusters_lower_term_is_taken_and_the_old_clusters_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(
        b.answered(&answer_of(5, 17, Some(0xa)), "L1"),
        Heard::Leader
    );
    assert!(
        !b.take_cluster_left(),
        "the first cluster heard leaves none"
    );
    drop(b);
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    assert_eq!(
        b.answered(&answer_of(5, 3, Some(0xb)), "N1"),
        Heard::Leader,
        "the new cluster's leader at the current epoch"
    );
    assert!(!untold(dir.path()), "its answer ended the wait");
    assert_eq!((b.term(), b.cluster()), (3, Some(0xb)));
    assert!(
        b.take_cluster_left(),
        "cluster a left: told to the command book"
    );
    assert!(!b.take_cluster_left(), "told once");
    for term in [17, 40] {
        assert_eq!(
            b.answered(&answer_of(5, term, Some(0xa)), "L1"),
            Heard::Deposed { known: 3 },
            "cluster a at term {term}"
        );
    }
    let said = b.last_refusal().unwrap_or_default();
    assert!(
        said.contains("the orchestrator at L1 answers under leader term 40 of etcd cluster a, which this site left for etcd cluster b: a deposed leader's answer"),
        "{said}"
    );
    drop(b);
    let file = std::fs::read_to_string(dir.path().join("authority.json")).unwrap();
    assert!(
        file.contains("\"cluster\": 11") && file.contains("\"retired\": [\n    10\n  ]"),
        "{file}"
    );
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    b.untold();
    assert_eq!(
        b.answered(&answer_of(5, 17, Some(0xa)), "L1"),
        Heard::Deposed { known: 3 },
        "cluster a after a restart"
    );
    assert!(untold(dir.path()));
    assert_eq!(
        b.answered(&answer_of(5, 2, Some(0xb)), "N0"),
        Heard::Deposed { known: 3 },
        "b's own order by term"
    );
    assert_eq!(b.answered(&answer_of(5, 4, Some(0xb)), "N2"), Heard::Leader);
}

/// One orchestrator (no cluster, term 0) after several is no move: judged
/// by its term, below the kept one, it is a deposed leader's at the
/// current epoch (a lone orchestrator left running after the move to etcd,
/// or its answer delayed across it, must not take the site off the etcd
/// cluster and retire it) — until it states an epoch above the site's.
/// Then etcd again (a new cluster) is a move. An older orchestrator with
/// etcd (no cluster said, a term) is judged by its term: a deposed one of
/// them moves nothing. A term kept of no known cluster (from such an
/// orchestrator) is compared with the first cluster heard: a deposed
/// upgraded leader of that very cluster (a rolling upgrade) is refused,
/// its successor taken and its cluster kept.
#[test]
fn one_orchestrator_after_several_and_back_to_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(b.answered(&answer(5, 17), "older"), Heard::Leader);
    assert_eq!(
        b.answered(&answer_of(5, 16, None), "older deposed"),
        Heard::Deposed { known: 17 }
    );
    assert_eq!(
        b.answered(&answer_of(5, 15, Some(0xa)), "upgraded, deposed"),
        Heard::Deposed { known: 17 },
        "the first cluster heard, below the term kept of no known cluster"
    );
    assert_eq!(b.cluster(), None, "nothing kept of a refused answer");
    assert_eq!(
        b.answered(&answer_of(5, 18, Some(0xa)), "L1"),
        Heard::Leader,
        "the first cluster heard, its successor"
    );
    assert_eq!(b.cluster(), Some(0xa));
    assert_eq!(
        b.answered(&answer_of(5, 9, Some(0xa)), "L1 deposed"),
        Heard::Deposed { known: 18 }
    );
    assert_eq!(
        b.answered(&answer_of(5, 0, None), "alone"),
        Heard::Deposed { known: 18 },
        "one orchestrator at the current epoch: by its term"
    );
    assert_eq!((b.term(), b.cluster()), (18, Some(0xa)), "nothing moved");
    assert_eq!(
        b.answered(&answer_of(5, 19, Some(0xa)), "L1"),
        Heard::Leader,
        "cluster a still leads"
    );
    assert_eq!(
        b.answered(&answer_of(6, 0, None), "alone"),
        Heard::Leader,
        "one orchestrator at the group's next epoch"
    );
    assert_eq!(
        (b.term(), b.cluster()),
        (0, Some(0xa)),
        "its term followed, no move"
    );
    assert_eq!(
        b.answered(&answer_of(6, 1, Some(0xc)), "C1"),
        Heard::Leader,
        "a new cluster"
    );
    assert_eq!(b.cluster(), Some(0xc));
    assert_eq!(
        b.answered(&answer_of(6, 30, Some(0xa)), "L1"),
        Heard::Deposed { known: 1 },
        "the cluster left"
    );
}

/// An answer of a cluster this site has not followed that is behind it
/// (a deposed leader of a new cluster, or one whose store was replaced)
/// is not the orchestrators' move, and with no term to judge it by against
/// this site's, none of it is taken: before, it was Unsettled — its orders
/// judged by their epochs alone, and run — while the cluster kept stayed
/// the old one.
#[test]
fn a_new_clusters_answer_behind_this_site_is_taken_as_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(
        b.answered(&answer_of(6, 17, Some(0xa)), "L1"),
        Heard::Leader
    );
    assert_eq!(
        b.answered(&answer_of(5, 3, Some(0xb)), "N1"),
        Heard::Deposed { known: 17 }
    );
    assert_eq!((b.term(), b.cluster()), (17, Some(0xa)), "nothing moved");
    let said = b.last_refusal().unwrap_or_default();
    assert!(
        said.contains(
            "which this site has not followed, and says group web is at epoch 5, below epoch 6"
        ),
        "{said}"
    );
    assert_eq!(
        b.answered(&answer_of(6, 3, Some(0xb)), "N1"),
        Heard::Leader,
        "in step with this site: the move"
    );
    assert_eq!(b.cluster(), Some(0xb));
}

/// b follows etcd cluster a (term 17, epoch 6). An orchestrator of a
/// cluster b has not followed, its store behind this site, answers b's
/// command poll: one promote, and no epochs (a poll's answer never says
/// them). Nothing of it is taken — no move, its order dropped, said so —
/// and cluster a's leader is still heard. Before, the poll's answer was
/// taken as the orchestrators' move (only epochs below the site's stopped
/// one, and it had none): cluster a retired, its leader refused for good,
/// the behind orchestrator's promote queued.
#[test]
fn a_command_polls_answer_of_a_cluster_not_followed_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(
        b.answered(&answer_of(6, 17, Some(0xa)), "L1"),
        Heard::Leader
    );
    let poll = crate::wire::ReportResponse {
        commands: vec![
            crate::wire::Command::new("web", 6, crate::wire::CommandKind::Promote).to_site("b"),
        ],
        term: 3,
        cluster: Some(0xb),
        ..Default::default()
    };
    assert_eq!(b.answered(&poll, "L9"), Heard::Deposed { known: 17 });
    assert_eq!((b.term(), b.cluster()), (17, Some(0xa)));
    assert!(!b.take_cluster_left());
    let said = b.last_refusal().unwrap_or_default();
    assert!(
        said.contains("answers a command poll under leader term 3 of etcd cluster b")
            && said.contains("none of its orders or withdrawals taken"),
        "{said}"
    );
    assert_eq!(
        b.answered(&answer_of(6, 18, Some(0xa)), "L1"),
        Heard::Leader
    );
    // A first start keeps no cluster yet: the poll's answer of the first
    // cluster heard waits for its report answer, which moves it.
    let fresh = tempfile::tempdir().unwrap();
    let c = Authority::open(fresh.path(), "b", &groups()).unwrap();
    assert_eq!(c.answered(&poll, "L9"), Heard::Deposed { known: 0 });
    assert_eq!(c.cluster(), None);
    assert_eq!(c.answered(&answer_of(6, 3, Some(0xb)), "L9"), Heard::Leader);
    assert_eq!(c.cluster(), Some(0xb));
}
