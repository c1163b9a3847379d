//! Tests of the ssh forced command's parsing and judgement.

use super::*;

fn parse(cmd: &str) -> Result<SshTransfer, String> {
    SshTransfer::parse(Some(cmd), Some("10.1.0.10 40022 22"))
}

#[test]
fn the_commands_warden_sends_pass_and_say_push_or_read() {
    // As captured from rsync 3.5 for warden's transfers (docs/rsyncd.md).
    for (cmd, push) in [
        ("rsync --server -lHogDtpAXIRSe.LsfxCIvu --log-format=%i --timeout=30 --force --delete-missing-args -@-1 . /srv/b/", true),
        ("rsync --server -lWHogDtpAXrSe.iLsfxCIvu --timeout=30 --max-delete=5 --delete --force -@-1 . /srv/b/", true),
        // A batch that may delete nothing (`--max-delete=0` is sent as -1).
        ("rsync --server -lHogDtpAXrIRSe.iLsfxCIvu --log-format=%i --timeout=30 --max-delete=-1 --delete --force --delete-missing-args . /srv/b/", true),
        ("rsync --server -nlHogDtpAXrcSe.iLsfxCIvu --log-format=%i%I --timeout=30 --delete -@-1 . /srv/b/", true),
        ("rsync --server --sender -lde.LsfxCIvu --list-only --timeout=30 . /srv/b/", false),
        ("rsync --server --sender -lHogDtpAXRSe.LsfxCIvu --timeout=30 --ignore-missing-args --files-from=- --from0 . /srv/b/", false),
        ("rsync --server -le.LsfxCIvu --timeout=30 -@-1 . /srv/b/", true),
        ("rsync --server --sender -le.LsfxCIvu . /srv/b/.warden-symlink-probe-1 /srv/b/x\\ y", false),
    ] {
        let t = parse(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert_eq!(t.push, push, "{cmd}");
        assert_eq!(t.argv[0], "rsync");
        assert_eq!(t.from, "10.1.0.10");
    }
    let t = parse("rsync --server --sender -l . /srv/b/x\\ y").unwrap();
    assert_eq!(t.paths, [PathBuf::from("/srv/b/x y")]);
}

#[test]
fn a_symlink_on_the_way_out_of_the_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
    std::os::unix::fs::symlink("/warden-symlink-probe/../../outside/x", dir.join("probe")).unwrap();
    // Inside, existing or not yet.
    resolves_inside(&dir, &dir, true).unwrap();
    resolves_inside(&dir.join("sub/new/deeper"), &dir, true).unwrap();
    // A push into (or through) the symlink leads out.
    for p in [dir.join("out"), dir.join("out/x/y")] {
        let e = resolves_inside(&p, &dir, true).unwrap_err();
        assert!(e.contains("outside the group's directory"), "{e}");
    }
    // Reading the symlink itself (rsync -l sends it as a symlink)
    // passes; reading through it (a trailing `/`) does not.
    resolves_inside(&dir.join("probe"), &dir, false).unwrap();
    resolves_inside(&dir, &dir, false).unwrap();
    resolves_inside(&dir.join("out"), &dir, false).unwrap();
    let through = PathBuf::from(format!("{}/", dir.join("out").display()));
    assert!(resolves_inside(&through, &dir, false).is_err());
    // A group directory that is not there refuses everything.
    let gone = tmp.path().join("gone");
    let e = resolves_inside(&gone.join("x"), &gone, true).unwrap_err();
    assert!(e.contains("cannot be resolved"), "{e}");
}

#[test]
fn anything_else_is_not_let_through_and_the_reason_is_named() {
    for (cmd, says) in [
        ("id", "not rsync's server"),
        ("sh -c 'rsync --server . /srv/b'", "not rsync's server"),
        ("rsync --daemon", "not rsync's server"),
        ("/tmp/x/rsync --server -l . /srv/b", "not rsync's server"),
        ("rsync --server -l /srv/b", "no `.`"),
        ("rsync --server -l . /srv/b /srv/c", "names 2 paths"),
        ("rsync --server -l . srv/b", "plain absolute path"),
        (
            "rsync --server -l . /srv/b/../../etc",
            "plain absolute path",
        ),
        (
            "rsync --server --sender -l . /srv/b/*",
            "plain absolute path",
        ),
        ("rsync --server -lKe.x . /srv/b", "\"-lKe.x\""),
        (
            "rsync --server -l --backup-dir=/etc . /srv/b",
            "\"--backup-dir=/etc\"",
        ),
        (
            "rsync --server -l --log-file=/etc/x . /srv/b",
            "\"--log-file=/etc/x\"",
        ),
        (
            "rsync --server -l --files-from=/etc/x . /srv/b",
            "\"--files-from=/etc/x\"",
        ),
        (
            "rsync --server -l --suffix --sender . /srv/b",
            "\"--suffix\"",
        ),
        (
            "rsync --server -l --timeout=3x . /srv/b",
            "\"--timeout=3x\"",
        ),
        (
            "rsync --server -l --log-format=%i%n/etc . /srv/b",
            "\"--log-format",
        ),
        ("rsync --server -l 'unclosed . /srv/b", "not well quoted"),
        // `--secluded-args`: the server's real arguments come on stdin,
        // never seen by the gate (a peer's key would read any file,
        // or push with any option anywhere the login user may write).
        (
            "rsync --server --sender -se.LsfxCIvu . /srv/b/",
            "\"-se.LsfxCIvu\"",
        ),
        (
            "rsync --server -slogDtpre.iLsfxCIvu . /srv/b/",
            "\"-slogDtpre.iLsfxCIvu\"",
        ),
    ] {
        let e = parse(cmd).expect_err(cmd);
        assert!(e.contains(says), "{cmd}: {e}");
    }
    let e = SshTransfer::parse(None, None).unwrap_err();
    assert!(e.contains("interactive login"), "{e}");
}

/// warden's client states its order in `--rsync-path`; the gate reads
/// it off the command (and runs rsync without it). A push into a
/// standby stated at an older epoch than the standby knows is refused,
/// saying so; so is one that states none. Before, an ssh push was
/// judged by the standby's role alone.
#[test]
fn a_push_over_ssh_states_its_order_and_an_older_one_is_refused() {
    use crate::authority::Authority;
    use crate::wire::{Command, CommandKind};
    let o = PushOrder {
        group: "web".into(),
        site: "a".into(),
        epoch: 4,
    };
    let cmd = |o: &PushOrder| {
        format!(
            "{} --server -logDtpre.iLsfxCIvu --delete . /srv/b/",
            rsync_path_stating(&o.line())
        )
    };
    let t = parse(&cmd(&o)).unwrap();
    assert_eq!(t.order, Stated::Order(o.clone()));
    assert_eq!(t.argv[0], "rsync");
    assert!(t.push);
    let bad = parse("WARDEN_PUSH=junk rsync --server -l . /srv/b/").unwrap();
    assert!(matches!(bad.order, Stated::Bad(_)), "{bad:?}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("b");
    std::fs::create_dir_all(&data).unwrap();
    let site = |path: &str, host: &str| {
        format!(
            "path = \"{path}\"\nssh = \"{host}\"\nuser = \"warden\"\n\
             ssh_key = \"/nonexistent/key\"\nknown_hosts = \"/nonexistent/known_hosts\"\n"
        )
    };
    let cfg = super::super::test_config::config(
        dir.path(),
        &[super::super::test_config::group(
            "web",
            8000,
            &site("/srv/a", "10.1.0.10"),
            &site(&data.display().to_string(), "10.2.0.10"),
        )],
    );
    let groups = vec![("web".to_string(), "a".to_string())];
    let b = Authority::open(dir.path(), "b", &groups).unwrap();
    let demote = Command::new("web", 5, CommandKind::Demote).to_site("b");
    b.admit(&demote).unwrap();
    b.record(&demote).unwrap();
    let push = |c: String| parse(&c.replace("/srv/b/", &format!("{}/", data.display()))).unwrap();
    let e = check(&cfg, "b", &push(cmd(&o))).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 4, but site b knows epoch 5"),
        "{e}"
    );
    let now = PushOrder { epoch: 5, ..o };
    let (_, ok) = check(&cfg, "b", &push(cmd(&now))).unwrap();
    assert!(ok.contains("(site a at epoch 5)"), "{ok}");
    let e = check(
        &cfg,
        "b",
        &push("rsync --server -logDtpre.iLsfxCIvu --delete . /srv/b/".into()),
    )
    .unwrap_err();
    assert!(e.contains("states no order"), "{e}");
}

/// Over ssh as through the daemon: a read of b's directory whose declared
/// volume is gone is refused, saying so; mounted (`/` always is), it
/// passes. Before, every read passed.
#[test]
fn a_read_over_ssh_of_a_volume_that_is_gone_is_refused() {
    use crate::authority::Authority;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("b");
    std::fs::create_dir_all(&data).unwrap();
    let cfg_at = |path: &str| {
        let site = |path: &str, host: &str| {
            format!(
                "path = \"{path}\"\nssh = \"{host}\"\nuser = \"warden\"\n\
                 ssh_key = \"/nonexistent/key\"\nknown_hosts = \"/nonexistent/known_hosts\"\n\
                 mount_point = true\n"
            )
        };
        super::super::test_config::config(
            dir.path(),
            &[super::super::test_config::group(
                "web",
                8000,
                &site("/srv/a", "10.1.0.10"),
                &site(path, "10.2.0.10"),
            )],
        )
    };
    let groups = vec![("web".to_string(), "b".to_string())];
    let _b = Authority::open(dir.path(), "b", &groups).unwrap();
    let read = |path: &str| {
        parse(&format!(
            "rsync --server --sender -lde.LsfxCIvu --list-only --timeout=30 . {path}/"
        ))
        .unwrap()
    };
    let data = data.display().to_string();
    let e = check(&cfg_at(&data), "b", &read(&data)).unwrap_err();
    assert!(
        e.starts_with("warden rsync-gate: refused a read of")
            && e.contains("declared a mount point (mount_point = true) and is not one now"),
        "{e}"
    );
    check(&cfg_at("/"), "b", &read("")).unwrap();
}
