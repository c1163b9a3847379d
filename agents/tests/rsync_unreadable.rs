//! A source item the push cannot read (rsync's sender: `send_files failed
//! to open … Permission denied`, `opendir … Permission denied`) is the
//! source's problem, not a read-only peer: the full pass carries everything
//! else and says what it could not read (rsync code 23), and the
//! replication starts and carries later changes. Made real by running the push's rsync as root without
//! `CAP_DAC_OVERRIDE`/`CAP_DAC_READ_SEARCH` (`setpriv`), so a mode-000 file
//! of another user is unreadable to it. Needs `rsync`, `setpriv` and root
//! (CI fails without rsync, elsewhere the test skips).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator};
use warden_agents::AgentError;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_source_file_is_no_read_only_peer_and_stops_no_replication() {
    if !have_rsync() {
        return;
    }
    let have_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_setpriv {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "setpriv (util-linux) is missing: in CI a missing prerequisite fails the test"
        );
        eprintln!("note: setpriv not installed, skipping this test");
        return;
    }
    let d = Daemon::start();
    let src = d.src();
    write(&src, "ok.txt", "readable");
    write(&src, "sub/also-ok.txt", "readable too");
    write(&src, "secret.txt", "unreadable to the push");
    std::os::unix::fs::chown(src.join("secret.txt"), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(src.join("secret.txt"), PermissionsExt::from_mode(0o000)).unwrap();
    let real = real_rsync();
    let wrapper = d.dir.path().join("rsync-no-dac");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --bounding-set -dac_override,-dac_read_search {real} \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, PermissionsExt::from_mode(0o755)).unwrap();

    let mut s = d.settings("drdata", PASSWORD);
    s.manifest = Some(d.dir.path().join("state/manifest.json"));
    s.rsync_path = wrapper;
    let push = RsyncReplicator::new(s);
    let err = push
        .resync(CancellationToken::new(), None)
        .await
        .expect_err("an unreadable file: the pass is incomplete");
    assert!(
        matches!(&err, AgentError::Rsync { code: 23, detail, .. } if detail.contains("secret.txt")),
        "not the source's unreadable file: {err}"
    );
    // Everything readable arrived.
    let target = d.target();
    assert_eq!(
        std::fs::read_to_string(target.join("ok.txt")).unwrap(),
        "readable"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("sub/also-ok.txt")).unwrap(),
        "readable too"
    );
    assert!(!target.join("secret.txt").exists());

    // The replication starts (the initial full pass, incomplete, is
    // retried in the background) and carries what changes next.
    let cancel = CancellationToken::new();
    push.start(cancel.clone())
        .await
        .unwrap_or_else(|e| panic!("replication did not start: {e}"));
    write(&src, "later.txt", "written after the start");
    arrives(&target, "later.txt", "written after the start").await;
    push.stop().await;
}
