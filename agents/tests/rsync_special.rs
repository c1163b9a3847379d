//! Special files (FIFOs, sockets, device nodes) through a failback against a
//! real rsync daemon on 127.0.0.1: `rsync -a` carries them to the peer, so
//! they are items of the manifest like files — one the active site deleted
//! is deleted at the returning site by the resync and by the journaled final
//! pass, one written only at the returning site is divergent, and verify
//! sees one that differs. The daemon's `drdata` module plays the active
//! site (b), the harness's `src/` the returning one (a). Needs `rsync`
//! (CI fails without it, elsewhere the tests skip) and root (`mknod`).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, DivergentReason, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {p:?}");
}

fn is_fifo(p: &Path) -> bool {
    p.symlink_metadata().is_ok_and(|m| m.file_type().is_fifo())
}

fn gone(p: &Path) -> bool {
    p.symlink_metadata().is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_special_file_deleted_at_the_active_site_is_deleted_at_the_returning_one() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (here, active) = (d.src(), d.target());
    // Both sides in sync through the push replicator (a was active).
    write(&here, "data.txt", "data");
    mkfifo(&here.join("pipe"));
    std::fs::create_dir_all(here.join("deep")).unwrap();
    mkfifo(&here.join("deep/pipe"));
    drop(std::os::unix::net::UnixListener::bind(here.join("sock")).unwrap());
    let dev = Command::new("mknod")
        .arg(here.join("null-dev"))
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success();
    let push = RsyncReplicator::new(settings(&d));
    push.resync(CancellationToken::new(), None).await.unwrap();
    drop(push);
    assert!(is_fifo(&active.join("pipe")), "rsync -a carries a FIFO");
    // b active: it deletes a FIFO and the device node, makes a new FIFO; a
    // holds a FIFO of its own that never left it.
    std::fs::remove_file(active.join("pipe")).unwrap();
    if dev {
        std::fs::remove_file(active.join("null-dev")).unwrap();
    }
    mkfifo(&active.join("new-at-b"));
    mkfifo(&here.join("only-at-a"));

    let resyncer = RsyncResyncer::new(settings(&d)).unwrap();
    let report = resyncer
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    assert!(gone(&here.join("pipe")), "a FIFO deleted at b is back at a");
    if dev {
        assert!(
            gone(&here.join("null-dev")),
            "a device deleted at b is back at a"
        );
    }
    assert!(is_fifo(&here.join("new-at-b")));
    assert!(is_fifo(&here.join("deep/pipe")));
    assert_eq!(report.deleted, 1 + u64::from(dev), "{report:?}");
    let div: Vec<(&str, DivergentReason, &str)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason, i.action.as_str()))
        .collect();
    assert_eq!(
        div,
        vec![("only-at-a", DivergentReason::NotInManifest, "kept")],
        "{report:?}"
    );
    let kept = vec!["only-at-a".to_string()];
    let v = resyncer.verify(&kept).await.unwrap();
    assert_eq!(v.differences, vec![]);
    // Without the exception, the kept FIFO is a difference; so is one a
    // fresh resyncer's full check finds only here.
    assert_eq!(resyncer.verify(&[]).await.unwrap().differences.len(), 1);
    let fresh = RsyncResyncer::new(settings(&d)).unwrap();
    let v = fresh.verify(&kept).await.unwrap();
    assert_eq!(v.differences, vec![]);
    assert_eq!(v.excepted, 1, "{v:?}");

    // The cut-over's final pass from b's journal: b deleted the socket and
    // a FIFO in a directory, and replaced the new FIFO by a file.
    std::fs::remove_file(active.join("sock")).unwrap();
    std::fs::remove_file(active.join("deep/pipe")).unwrap();
    std::fs::remove_file(active.join("new-at-b")).unwrap();
    write(&active, "new-at-b", "a file now");
    let names: Vec<String> = ["sock", "deep/pipe", "new-at-b"].map(String::from).to_vec();
    let fin = fresh
        .pass_changed(&names, &kept, false, CancellationToken::new())
        .await
        .unwrap()
        .expect("a journaled pass");
    assert!(
        gone(&here.join("sock")),
        "a socket deleted at b is back at a"
    );
    assert!(gone(&here.join("deep/pipe")), "{fin:?}");
    assert_eq!(
        std::fs::read_to_string(here.join("new-at-b")).unwrap(),
        "a file now"
    );
    assert!(is_fifo(&here.join("only-at-a")));
}

/// A daemon module whose receiver does not run as root (`uid = nobody`)
/// skips device nodes — `skipping non-regular file "null-dev"`, exit 0 —
/// so the peer never holds the node. The push's book must not count it
/// as carried: the failback's resync then finds it only here (divergent,
/// kept), not deleted at the active site, and leaves it. Before, the full
/// pass recorded it from the listing and the resync deleted it at a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_node_the_peer_did_not_create_is_not_deleted_at_failback() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start_with(" uid = nobody\n gid = nogroup\n");
    let (here, active) = (d.src(), d.target());
    std::os::unix::fs::chown(&active, Some(65534), Some(65534)).unwrap();
    write(&here, "data.txt", "data");
    let made = Command::new("mknod")
        .arg(here.join("null-dev"))
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success();
    assert!(made, "mknod (root) for a device node");
    let push = RsyncReplicator::new(settings(&d));
    push.resync(CancellationToken::new(), None).await.unwrap();
    drop(push);
    assert_eq!(
        std::fs::read_to_string(active.join("data.txt")).unwrap(),
        "data"
    );
    assert!(
        gone(&active.join("null-dev")),
        "a receiver that is not root made a device node"
    );
    // One made while replication runs goes in a batch, with a file.
    let push = RsyncReplicator::new(settings(&d));
    let cancel = CancellationToken::new();
    push.start(cancel.clone()).await.unwrap();
    let made = Command::new("mknod")
        .arg(here.join("zero-dev"))
        .args(["c", "1", "5"])
        .status()
        .unwrap()
        .success();
    assert!(made);
    write(&here, "marker.txt", "after the node");
    arrives(&active, "marker.txt", "after the node").await;
    push.stop().await;
    cancel.cancel();
    assert!(gone(&active.join("zero-dev")));
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    for node in ["null-dev", "zero-dev"] {
        assert!(
            !gone(&here.join(node)),
            "the device node {node} the peer never held was deleted here: {report:?}"
        );
    }
    assert_eq!(report.deleted, 0, "{report:?}");
    let div: Vec<(&str, DivergentReason)> = report
        .divergent
        .iter()
        .map(|i| (i.name.as_str(), i.reason))
        .collect();
    assert_eq!(
        div,
        vec![
            ("null-dev", DivergentReason::NotInManifest),
            ("zero-dev", DivergentReason::NotInManifest)
        ],
        "{report:?}"
    );
}

/// The peer's `skipping non-regular file` line is believed only of a special
/// file: a peer whose rsync says it of a regular file (broken, or lying) does
/// not make the book forget that the file was carried — so when the file is
/// deleted at that peer while it is active, the failback's resync deletes
/// it at the returning site too, instead of keeping it as never carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_says_it_skipped_a_regular_file_is_not_believed() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (here, active) = (d.src(), d.target());
    // An rsync that says, after a real transfer, that the receiver skipped
    // two regular files as non-regular.
    let liar = d.dir.path().join("lying-rsync");
    std::fs::write(
        &liar,
        "#!/bin/sh\nrsync \"$@\"\nrc=$?\necho 'skipping non-regular file \"data.txt\"'\n\
         echo 'skipping non-regular file \"batch.txt\"'\nexit $rc\n",
    )
    .unwrap();
    std::fs::set_permissions(&liar, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let lying = || {
        let mut s = settings(&d);
        s.rsync_path = liar.clone();
        s
    };
    write(&here, "data.txt", "data");
    write(&here, "keep.txt", "stays at both");
    let push = RsyncReplicator::new(lying());
    push.resync(CancellationToken::new(), None).await.unwrap();
    drop(push);
    // One written while replication runs goes in a batch.
    let push = RsyncReplicator::new(lying());
    let cancel = CancellationToken::new();
    push.start(cancel.clone()).await.unwrap();
    write(&here, "batch.txt", "in a batch");
    arrives(&active, "batch.txt", "in a batch").await;
    push.stop().await;
    cancel.cancel();
    // b active: it deletes both.
    std::fs::remove_file(active.join("data.txt")).unwrap();
    std::fs::remove_file(active.join("batch.txt")).unwrap();
    let report = RsyncResyncer::new(settings(&d))
        .unwrap()
        .pass(DivergentPolicy::Keep, CancellationToken::new(), None)
        .await
        .unwrap();
    for name in ["data.txt", "batch.txt"] {
        assert!(
            gone(&here.join(name)),
            "{name}, carried and deleted at the active site, is back at the returning one: {report:?}"
        );
    }
    assert!(report.divergent.is_empty(), "{report:?}");
    assert_eq!(report.deleted, 2, "{report:?}");
    assert!(!gone(&here.join("keep.txt")));
}
