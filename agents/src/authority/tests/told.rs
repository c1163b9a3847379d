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
