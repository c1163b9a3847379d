//! The authority's state file: a restart on a full disk, a lost file told
//! from a first start by the marker, a file of another site or of none.

use super::*;

/// An agent restarted on a full disk (often the very trouble its site is
/// failed away from for) starts with the state it reads, so that it can
/// still be demoted; it refuses to start only when it has something
/// new to write (a first start, a group added, roles forgotten).
#[test]
fn an_agent_restarts_on_a_full_disk_with_the_state_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    a.admit(&cmd(4, CommandKind::Promote, "a")).unwrap();
    drop(a);
    let tmp = dir
        .path()
        .join(format!("authority.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).expect("nothing new to write: it starts");
    assert_eq!(a.get("web").unwrap().epoch, 4);
    a.admit(&cmd(5, CommandKind::Demote, "a"))
        .expect("and can be demoted");
    drop(a);
    let mut more = groups();
    more.push(("db".into(), "a".into()));
    let e = Authority::open(dir.path(), "a", &more).unwrap_err();
    assert!(e.to_string().contains("authority.json"), "{e}");
    std::fs::remove_dir(&tmp).unwrap();
}

/// A state file lost from a directory in use: every role is unknown
/// (the configured one proves nothing), nothing is pushed, and the
/// orchestrator's promote or demote makes it known again. A first
/// start (no marker, whatever else the directory holds) takes the
/// configured roles.
#[test]
fn a_lost_state_file_forgets_the_roles_until_the_orchestrator_says_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    assert_eq!(a.get("web").unwrap().role, Role::Active, "first start");
    let demote = cmd(4, CommandKind::Demote, "a");
    a.admit(&demote).unwrap();
    a.record(&demote).unwrap();
    drop(a);
    // Only the state file goes: the agent's marker says the directory
    // was in use.
    std::fs::remove_file(dir.path().join("authority.json")).unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    let w = a.wire();
    assert_eq!((w[0].role.as_str(), w[0].may_push), ("unknown", false));
    assert_eq!(read(dir.path(), "a").unwrap()["web"].role, Role::Unknown);
    let e = a
        .admit(&cmd(0, CommandKind::StartReplication, "a"))
        .unwrap_err();
    assert!(e.contains("role in group web is unknown"), "{e}");
    // The orchestrator says its epoch, then demotes it again there.
    a.observe(&BTreeMap::from([("web".to_string(), 4)]));
    let again = cmd(4, CommandKind::Demote, "a");
    a.admit(&again).unwrap();
    a.record(&again).unwrap();
    let w = a.wire();
    assert_eq!((w[0].role.as_str(), w[0].may_push), ("standby", false));
    // Where it is the active site, a promote makes it active again.
    let dir = tempfile::tempdir().unwrap();
    drop(Authority::open(dir.path(), "b", &groups()).unwrap());
    std::fs::remove_file(dir.path().join("authority.json")).unwrap();
    let b = Authority::open(dir.path(), "b", &groups()).unwrap();
    assert_eq!(b.get("web").unwrap().role, Role::Unknown);
    let promote = cmd(6, CommandKind::Promote, "b");
    b.admit(&promote).unwrap();
    b.record(&promote).unwrap();
    assert_eq!(read(dir.path(), "b").unwrap()["web"].role, Role::Active);
    b.admit(&cmd(6, CommandKind::StartReplication, "b"))
        .unwrap();
    // Other files in a directory without the marker are no sign of
    // use (a volume's lost+found): a first start.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lost+found")).unwrap();
    let a = Authority::open(dir.path(), "a", &groups()).unwrap();
    assert_eq!(a.get("web").unwrap().role, Role::Active);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("agent.site")).unwrap(),
        "a\n"
    );
}

#[test]
fn a_state_dir_of_another_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Authority::open(dir.path(), "a", &groups()).unwrap();
    let e = Authority::open(dir.path(), "b", &groups()).unwrap_err();
    assert!(e.to_string().contains("belongs to site \"a\""), "{e}");
}

#[test]
fn a_state_file_that_names_no_site_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authority.json");
    let text = r#"{"site": "", "groups": {"web": {"epoch": 9, "role": "active"}}}"#;
    std::fs::write(&file, text).unwrap();
    let e = Authority::open(dir.path(), "a", &groups()).unwrap_err();
    assert!(e.to_string().contains("names no site"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "left as it was"
    );
}

/// A damaged state file (a torn write by a tool other than the agent, a
/// disk error, a hand edit gone wrong) stops the agent with an error that
/// names the file, and is left as it was: never a fresh start at epoch 0,
/// which would take a deposed leader's orders again (and, at the primary,
/// role `active`).
#[test]
fn a_damaged_state_file_stops_the_agent_and_is_kept() {
    let damaged: [&[u8]; 5] = [
        b"",
        b"{\"site\": \"a\", \"groups\": {\"web\": {\"epoch\": 9, \"ro",
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        b"{\"site\": \"a\", \"groups\": {\"web\": {\"epoch\": -1, \"role\": \"standby\"}}}",
        b"{\"site\": \"a\", \"groups\": {\"web\": {\"epoch\": 9, \"role\": \"leader\"}}}",
    ];
    for bytes in damaged {
        let dir = tempfile::tempdir().unwrap();
        Authority::open(dir.path(), "a", &groups()).unwrap();
        let file = dir.path().join("authority.json");
        std::fs::write(&file, bytes).unwrap();
        let e = Authority::open(dir.path(), "a", &groups())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("authority.json") && e.contains("unreadable"),
            "{:?}: {e}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "left as it was");
    }
}

/// A state file an older agent wrote after taking an order at epoch
/// u64::MAX: every later order of the group would be refused as older.
/// The agent says so at start, naming the group, instead of refusing every
/// order in silence; the file is left as it was.
#[test]
fn a_state_file_at_the_last_epoch_there_is_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authority.json");
    let text = format!(
        r#"{{"site": "a", "groups": {{"web": {{"epoch": {}, "role": "standby"}}}}}}"#,
        u64::MAX
    );
    std::fs::write(&file, &text).unwrap();
    let e = Authority::open(dir.path(), "a", &groups())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("group web") && e.contains("no leader can have issued"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
