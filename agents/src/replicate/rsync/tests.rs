use super::*;

#[test]
fn parses_itemized_differences() {
    let d = |p: &str, kind| {
        Some(Difference {
            path: PathBuf::from(p),
            kind,
        })
    };
    assert_eq!(
        parse_difference("*deleting   old.txt"),
        d("old.txt", DifferenceKind::ExtraAtTarget)
    );
    assert_eq!(
        parse_difference("<f+++++++++ new.txt"),
        d("new.txt", DifferenceKind::MissingAtTarget)
    );
    assert_eq!(
        parse_difference("cd+++++++++ dir/"),
        d("dir/", DifferenceKind::MissingAtTarget)
    );
    assert_eq!(
        parse_difference("<f.st...... a/b"),
        d("a/b", DifferenceKind::Changed)
    );
    assert_eq!(
        parse_difference("<f..t...... a/c"),
        d("a/c", DifferenceKind::Changed)
    );
    assert_eq!(parse_difference(".d..t...... dir/"), None);
    assert_eq!(parse_difference(".f...p..... mode-only"), None);
    assert_eq!(parse_difference(".d..t...... ./"), None);
    assert_eq!(
        parse_difference(".f........x meta"),
        d("meta", DifferenceKind::Changed)
    );
    assert_eq!(
        parse_difference(".f.......a. acl"),
        d("acl", DifferenceKind::Changed)
    );
    assert_eq!(
        parse_difference("hf          h2"),
        d("h2", DifferenceKind::Changed)
    );
}

/// A failback's verification also counts modes, owners, groups, ACLs and
/// xattrs, of directories and the root too — never a directory's mtime.
#[test]
fn a_resyncs_verification_counts_what_the_pull_carries_beside_content() {
    let changed = |p: &str| {
        Some(Difference {
            path: PathBuf::from(p),
            kind: DifferenceKind::Changed,
        })
    };
    for (line, name) in [
        (".f...p..... mode-only", "mode-only"),
        (".f....o.... owner", "owner"),
        (".f.....g... group", "group"),
        (".d.......a. dir/", "dir/"),
        (".d...p..... ./", "./"),
        (".d........x ./", "./"),
        ("<f.st...... a/b", "a/b"),
    ] {
        assert_eq!(parse_whole_difference(line), changed(name), "{line}");
    }
    assert_eq!(
        parse_whole_difference("<f+++++++++ new.txt"),
        parse_difference("<f+++++++++ new.txt")
    );
    for line in [
        ".d..t...... dir/",
        ".d..t...... ./",
        ".f          same",
        "*deleting   x",
        "short",
    ] {
        assert_ne!(
            parse_whole_difference(line).map(|d| d.kind),
            Some(DifferenceKind::Changed),
            "{line}"
        );
    }
}

#[test]
fn a_batch_with_hard_links_outside_it_needs_a_full_pass() {
    let dir = std::env::temp_dir().join(format!("warden-links-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("a"), "a").unwrap();
    std::fs::hard_link(dir.join("a"), dir.join("d/b")).unwrap();
    std::fs::write(dir.join("lone"), "x").unwrap();
    let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
    assert!(links_outside(&dir, &p(&["d/b"])));
    assert!(links_outside(&dir, &p(&["a", "lone"])));
    assert!(!links_outside(&dir, &p(&["a", "d"])));
    assert!(!links_outside(&dir, &p(&["a", "d/b", "d"])));
    assert!(!links_outside(&dir, &p(&["lone", "gone"])));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_the_symlink_probe_back() {
    let n = ".warden-symlink-probe-1-0";
    assert_eq!(
        parse_probe_line(
            &format!("lrwxrwxrwx          37 2026/11/30 18:55:35 {n} -> {SYMLINK_PROBE_TARGET}"),
            n
        ),
        Some((37, SYMLINK_PROBE_TARGET.to_string()))
    );
    assert_eq!(
        parse_probe_line(&format!("-rw-r--r--  3 2026/11/30 18:55:35 {n}"), n),
        None
    );
    assert_eq!(
        attribute_args(&RsyncSettings::new("/s", "h", "m", "u", Secret::new("p"))),
        ["-X", "-A", "-H", "-S", PROBE_EXCLUDE]
            .map(OsString::from)
            .to_vec()
    );
}

#[test]
fn running_batches_block_overlapping_paths_only() {
    let mut st = State::default();
    st.batch_paths.insert(PathBuf::from("a/b"));
    st.batch_paths.insert(PathBuf::from("c"));
    for (p, overlaps) in [
        ("a/b", true),
        ("a", true),
        ("a/b/c", true),
        ("c/d/e", true),
        ("a/bc", false),
        ("a b", false),
        ("a/a", false),
        ("d", false),
    ] {
        assert_eq!(st.overlaps_running(Path::new(p)), overlaps, "{p}");
    }
}

#[test]
fn batch_updates_set_replace_subtrees_and_remove() {
    let it = |v: &str| Item {
        size: 1,
        version: v.into(),
    };
    let st = |n: u64| Stamp {
        ino: n,
        mtime_ns: n as i64,
        ctime_ns: n as i64,
    };
    let mut book = Book::default();
    for (k, v) in [("a", "1"), ("d/x", "1"), ("d/y", "1"), ("dz", "1")] {
        book.items.insert(k.to_string(), it(v));
        book.stamps.insert(k.to_string(), st(1));
    }
    apply_updates(
        &mut book,
        vec![
            Update::Set("a".into(), it("2"), st(2)),
            Update::Subtree(
                "d".into(),
                [("d/z".to_string(), it("3"))].into(),
                [("d/z".to_string(), st(3))].into(),
            ),
            Update::Remove("dz".into()),
            Update::Set("new".into(), it("4"), st(4)),
        ],
    );
    let got: Vec<(&str, &str)> = book
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), v.version.as_str()))
        .collect();
    assert_eq!(got, vec![("a", "2"), ("d/z", "3"), ("new", "4")]);
    let stamps: Vec<(&str, u64)> = book
        .stamps
        .iter()
        .map(|(k, v)| (k.as_str(), v.ino))
        .collect();
    assert_eq!(stamps, vec![("a", 2), ("d/z", 3), ("new", 4)]);
}

#[test]
fn a_path_changed_during_its_transfer_keeps_its_old_entry() {
    let it = |v: &str| Item {
        size: 1,
        version: v.into(),
    };
    let st = |n: i64| Stamp {
        ino: 7,
        mtime_ns: n,
        ctime_ns: n,
    };
    let before = vec![
        Update::Set("same".into(), it("1"), st(1)),
        Update::Set("changed".into(), it("1"), st(1)),
        Update::Subtree(
            "d".into(),
            [("d/a".to_string(), it("1")), ("d/b".to_string(), it("1"))].into(),
            [("d/a".to_string(), st(1)), ("d/b".to_string(), st(1))].into(),
        ),
        Update::Set("gone".into(), it("1"), st(1)),
    ];
    let after = vec![
        Update::Set("same".into(), it("1"), st(1)),
        Update::Set("changed".into(), it("1"), st(2)),
        Update::Subtree(
            "d".into(),
            [("d/a".to_string(), it("1")), ("d/b".to_string(), it("1"))].into(),
            [("d/a".to_string(), st(1)), ("d/b".to_string(), st(5))].into(),
        ),
        Update::Remove("gone".into()),
    ];
    assert_eq!(
        confirmed_updates(before, after),
        vec![
            Update::Set("same".into(), it("1"), st(1)),
            Update::Prune("d".into(), ["d/b".to_string()].into()),
            Update::Set("d/a".into(), it("1"), st(1)),
        ]
    );
}

#[test]
fn a_directory_that_changed_while_sent_loses_only_what_is_gone_from_it() {
    // `--delete` took from the peer what the directory held in neither
    // listing; what changed keeps its older entry.
    let it = |v: &str| Item {
        size: 1,
        version: v.into(),
    };
    let st = |n: u64| Stamp {
        ino: n,
        mtime_ns: 1,
        ctime_ns: 1,
    };
    let mut book = Book::default();
    for k in ["d/old", "d/a", "d/b", "dx"] {
        book.items.insert(k.to_string(), it("1"));
        book.stamps.insert(k.to_string(), st(1));
    }
    apply_updates(
        &mut book,
        vec![
            Update::Prune("d".into(), ["d/b".to_string()].into()),
            Update::Set("d/a".into(), it("2"), st(2)),
        ],
    );
    let got: Vec<(&str, &str)> = book
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), v.version.as_str()))
        .collect();
    assert_eq!(got, vec![("d/a", "2"), ("d/b", "1"), ("dx", "1")]);
    assert_eq!(book.stamps.len(), 3);
}

#[test]
fn errors_never_quote_the_password() {
    let s = RsyncSettings::new(
        "/src",
        "127.0.0.1",
        "drdata",
        "drsync",
        Secret::new("hunter2-pw"),
    );
    let e = classify(&s, 5, "@ERROR: auth failed on module drdata\nhunter2-pw\n");
    let msg = e.to_string();
    assert!(msg.contains("drdata") && !msg.contains("hunter2"), "{msg}");
    let e = classify(&s, 23, "rsync: weird hunter2-pw thing\n");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(matches!(
        classify(&s, 10, "connection refused"),
        AgentError::ReplicationUnreachable { .. }
    ));
    assert_eq!(s.url(), "rsync://drsync@127.0.0.1:873/drdata/");
}

#[test]
fn a_daemon_receivers_refused_write_is_read_only_the_senders_unreadable_item_is_not() {
    let s = RsyncSettings::new("/src", "127.0.0.1", "drdata", "drsync", Secret::new("pw"));
    let refused = classify(
        &s,
        23,
        "rsync: [receiver] mkstemp \"/.x.abc\" (in drdata) failed: Permission denied (13)\n",
    );
    assert!(
        matches!(refused, AgentError::ReplicationReadOnly { .. }),
        "{refused}"
    );
    for unreadable in [
        "rsync: [sender] send_files failed to open \"/src/secret\": Permission denied (13)\n",
        "rsync: [sender] opendir \"/src/locked\" failed: Permission denied (13)\n",
        "rsync: send_files failed to open \"/src/secret\": Permission denied (13)\n",
    ] {
        let e = classify(&s, 23, unreadable);
        assert!(matches!(e, AgentError::Rsync { code: 23, .. }), "{e}");
    }
}

#[test]
fn over_ssh_the_login_the_host_key_the_gate_and_rsyncs_own_errors_are_told_apart() {
    let login = SshLogin {
        path: "/srv/b data".into(),
        key: "/etc/warden/ssh/id_ed25519".into(),
        known_hosts: "/etc/warden/ssh/known_hosts".into(),
    };
    let s = RsyncSettings::over_ssh("/srv/a", "10.2.0.10", 2222, "warden", login.clone());
    assert_eq!(s.url(), "warden@10.2.0.10:/srv/b data/");
    let e = ssh_command(&s, &login, 30);
    assert!(
        e.starts_with("ssh -F /dev/null -p 2222 -i \"/etc/warden/ssh/id_ed25519\"")
            && e.contains("-o StrictHostKeyChecking=yes")
            && e.contains("-o \"UserKnownHostsFile=/etc/warden/ssh/known_hosts\"")
            && e.contains("-o BatchMode=yes"),
        "{e}"
    );
    // Transfers share one connection per peer, never across keys.
    let other = SshLogin {
        key: "/etc/warden/ssh/other_key".into(),
        ..login.clone()
    };
    let control = |cmd: &str| {
        cmd.split("ControlPath=")
            .nth(1)
            .map(|r| r.split('"').next().unwrap_or("").to_string())
    };
    let (mine, theirs) = (control(&e), control(&ssh_command(&s, &other, 30)));
    assert!(mine.as_deref().is_some_and(|p| p.ends_with("-%C")), "{e}");
    assert_ne!(mine, theirs);
    assert_eq!(mine, control(&ssh_command(&s, &login, 5)), "stable");
    let login_refused = classify(
        &s,
        255,
        "warden@10.2.0.10: Permission denied (publickey).\nrsync: connection unexpectedly closed\n",
    );
    assert!(
        matches!(&login_refused, AgentError::ReplicationLogin { detail, .. } if detail.contains("authorized_keys")),
        "{login_refused}"
    );
    let host_key = classify(&s, 255, "Host key verification failed.\n");
    assert!(host_key.to_string().contains("known_hosts"), "{host_key}");
    let gate = classify(
        &s,
        12,
        "warden rsync-gate: refused a push of /srv/b data/ at site b from 10.1.0.10: site b is the active site of group web (epoch 4)\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n",
    );
    assert!(
        matches!(&gate, AgentError::ReplicationRefused { detail, .. } if detail.contains("active site")),
        "{gate}"
    );
    // rsync's errno text is not ssh's login refusal, nor a daemon module's.
    let write = classify(
        &s,
        23,
        "rsync: [receiver] mkstemp \"/srv/b data/.x.abc\" failed: Permission denied (13)\n",
    );
    assert!(
        matches!(write, AgentError::Rsync { code: 23, .. }),
        "{write}"
    );
    assert!(matches!(
        classify(
            &s,
            255,
            "ssh: connect to host 10.2.0.10 port 2222: Connection refused\n"
        ),
        AgentError::ReplicationUnreachable { .. }
    ));
}

/// A push under an order that no longer stands (this site heard of a
/// newer epoch) starts no rsync at all: refused here, saying why. Before,
/// the transfer ran (here: the missing rsync program was spawned).
#[tokio::test]
async fn nothing_is_sent_under_an_order_that_no_longer_stands() {
    let mut s = RsyncSettings::new("/src", "127.0.0.1", "drdata", "drsync", Secret::new("pw"));
    s.rsync_path = "/nonexistent/rsync".into();
    s.stated = Some(StatedPush {
        order: crate::gate::order::PushOrder {
            group: "web".into(),
            site: "a".into(),
            epoch: 4,
        },
        now: Some(crate::replicate::OrderCheck::new(4, |e| {
            Err(format!(
                "epoch 5 is known here, newer than the order's epoch {e}"
            ))
        })),
    });
    let e = run_rsync(&s, vec![], None, &CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AgentError::PushOrderGone(why) if why.contains("order's epoch 4")),
        "{e}"
    );
    assert!(e.to_string().starts_with("nothing sent"), "{e}");
}
