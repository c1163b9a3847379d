//! The resyncer's own tests: what its parsers read, what a pass confirms.

use super::*;

#[test]
fn parses_list_only_lines() {
    let it = |s: u64, v: i64| Item {
        size: s,
        version: v.to_string(),
    };
    assert_eq!(
        parse_list_line("-rw-r--r--           2 2020/01/02 03:04:05 sub/b\\#ack"),
        Some(("sub/b\\\\#ack".into(), it(2, 1_577_934_245)))
    );
    assert_eq!(
        parse_list_line("-rw-r--r--     2097152 1970/01/01 00:00:01  two  spaces "),
        Some((" two  spaces ".into(), it(2_097_152, 1)))
    );
    assert_eq!(
        parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 new\\#012line"),
        Some(("new\nline".into(), it(1, 1_795_307_436)))
    );
    assert_eq!(
        parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 lit\\#134#101"),
        Some(("lit\\\\#101".into(), it(1, 1_795_307_436)))
    );
    assert_eq!(
        parse_list_line("lrwxrwxrwx           7 2024/02/29 12:00:00 link -> x y.txt"),
        Some(("link".into(), it(7, 1_709_208_000)))
    );
    // Special files are items too (`rsync -a` carries them).
    for kind in ['p', 's', 'c', 'b'] {
        assert_eq!(
            parse_list_line(&format!(
                "{kind}rw-r--r--           0 2020/01/01 00:00:00 pipe"
            )),
            Some(("pipe".into(), it(0, 1_577_836_800)))
        );
    }
    assert_eq!(
        parse_list_line("drwxr-xr-x        4096 2026/11/22 00:30:34 sub"),
        None
    );
    assert_eq!(parse_list_line("garbage"), None);
    assert_eq!(
        parse_list_line("-rw-r--r--     1,234 2026/11/22 00:30:34 commas"),
        None
    );
}

#[test]
fn parses_what_the_pull_settled() {
    let p = parse_settled(">f+++++++++ 5 2026/11/22-00:30:36 new\\#012line").unwrap();
    assert_eq!(p.name, "new\nline");
    assert_eq!(
        (p.kind, p.fetched, p.untouched, p.size),
        (b'f', true, false, 5)
    );
    assert_eq!(p.mtime, 1_795_307_436);
    let p = parse_settled(".f          19500 2026/11/22-00:30:36 d/x y.dat").unwrap();
    assert_eq!(
        (p.name.as_str(), p.fetched, p.untouched),
        ("d/x y.dat", false, true)
    );
    let p = parse_settled(".f..t...... 3 2026/11/22-00:30:36 t").unwrap();
    assert!(!p.fetched && !p.untouched);
    let p = parse_settled("cL+++++++++ 8 2026/11/22-00:30:36 link").unwrap();
    assert_eq!((p.kind, p.fetched), (b'L', true));
    let p = parse_settled("cd+++++++++ 4096 2026/11/22-00:30:36 sub/dir/").unwrap();
    assert_eq!(
        (p.name.as_str(), p.kind, p.fetched),
        ("sub/dir", b'd', false)
    );
    assert_eq!(
        parse_settled(".d          4096 2026/11/22-00:30:36 ./"),
        None
    );
    assert_eq!(parse_settled("*deleting   0 1970/01/01-00:00:00 x"), None);
    assert_eq!(parse_settled("garbage"), None);
}

#[test]
fn confirms_what_arrived_and_keeps_what_was_confirmed() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for (name, body) in [
        ("old", "old"),
        ("grew", "grew while read"),
        ("touched", "x"),
    ] {
        std::fs::write(root.join(name), body).unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join(name))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let (here, stamps) = list_local_stamped(root).unwrap();
    let mut old = Manifest::confirmed_escaped(here.clone());
    old.stamps = stamps.clone();
    old.items.remove("grew");
    old.stamps.remove("grew");
    let settled = |name: &str, fetched: bool, size: u64, mtime: i64| Settled {
        name: name.into(),
        kind: b'f',
        fetched,
        untouched: !fetched,
        size,
        mtime,
    };
    // `touched` changed here after rsync wrote it: its mtime moved.
    std::fs::write(root.join("touched"), "y").unwrap();
    let (items, new_stamps, missing) = confirm(
        root,
        &[
            settled("old", false, 3, 1_700_000_000),
            settled("grew", true, 4, 1_700_000_000),
            settled("touched", true, 1, 1_700_000_000),
        ],
        &old,
        &here,
        &stamps,
    );
    let keys: Vec<&String> = items.keys().collect();
    assert_eq!(keys, vec!["grew", "old", "touched"]);
    assert_eq!(items["grew"].size, 15, "what arrived, not the list's size");
    let ino = std::fs::symlink_metadata(root.join("grew")).unwrap().ino();
    assert_eq!(new_stamps["grew"].ino, ino);
    // The carried entry of `touched` keeps its old stamp: no longer matching.
    assert_eq!(new_stamps["touched"], stamps["touched"]);
    assert_eq!(missing, vec!["touched"]);
}

#[test]
fn filter_patterns_match_literally() {
    assert_eq!(anchored(b"a/b c.txt"), b"/a/b c.txt");
    assert_eq!(anchored(b"x*[y]\\z"), b"/x\\*\\[y]\\\\z");
    assert_eq!(anchored(b"raw\xff"), b"/raw\xff");
    assert_eq!(rule("P", "raw\\xff?"), b"P /raw\xff\\?");
    assert_eq!(
        parse_list_line("-rw-r--r--           1 2026/11/22 00:30:36 n\\#377\\#376"),
        Some((
            "n\\xff\\xfe".into(),
            Item {
                size: 1,
                version: "1795307436".into()
            }
        ))
    );
}

#[test]
fn needs_a_manifest_and_defaults_the_quarantine_to_a_sibling() {
    let mut s = RsyncSettings::new(
        "/srv/data/",
        "127.0.0.1",
        "m",
        "u",
        warden_config::Secret::new("p"),
    );
    assert!(matches!(
        RsyncResyncer::new(s.clone()),
        Err(AgentError::InvalidSetting { .. })
    ));
    s.manifest = Some("/var/lib/warden/m.json".into());
    let r = RsyncResyncer::new(s).unwrap();
    assert_eq!(r.quarantine(), Path::new("/srv/data.warden-quarantine"));
}
