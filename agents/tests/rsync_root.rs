//! The watched directory itself replaced under a running replicator
//! (renamed away and another put in its place, deleted and made again,
//! a filesystem mounted over it) against a real rsync daemon on
//! 127.0.0.1: what is written in the directory now at the source path
//! reaches the peer. inotify watches inodes, not paths, so a watch left
//! on the old directory sees none of it. Needs `rsync` (CI fails without
//! it, elsewhere the tests skip).

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{Replicator, RsyncReplicator, Volume};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_directory_swapped_by_renames_is_watched_again() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    write(&src, "old.txt", "version 1");
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    repl.start(CancellationToken::new()).await.unwrap();
    arrives(&dst, "old.txt", "version 1").await;

    // A deploy swaps the whole data directory.
    let next = d.dir.path().join("src.new");
    write(&next, "old.txt", "version 2");
    write(&next, "new.txt", "only in version 2");
    std::fs::rename(&src, d.dir.path().join("src.old")).unwrap();
    std::fs::rename(&next, &src).unwrap();
    arrives(&dst, "new.txt", "only in version 2").await;
    arrives(&dst, "old.txt", "version 2").await;
    // and what users write there afterwards
    write(&src, "later/written.txt", "after the swap");
    arrives(&dst, "later/written.txt", "after the swap").await;
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_directory_removed_and_made_again_is_watched_again() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    write(&src, "a.txt", "a");
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    repl.start(CancellationToken::new()).await.unwrap();
    arrives(&dst, "a.txt", "a").await;

    std::fs::remove_dir_all(&src).unwrap();
    std::fs::create_dir(&src).unwrap();
    write(&src, "a.txt", "restored");
    tokio::time::sleep(Duration::from_millis(300)).await;
    write(&src, "b.txt", "written after the restore");
    arrives(&dst, "b.txt", "written after the restore").await;
    arrives(&dst, "a.txt", "restored").await;
    repl.stop().await;
}

/// A tmpfs mounted on a directory, unmounted on drop (also when the test fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` (a skip) when this process cannot mount; in CI, a failure.
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs (CI runs the tests as root)"
            );
            eprintln!("note: cannot mount a tmpfs (not root?), skipping this test");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The agent started before the data volume was mounted (a boot order, a
/// late iSCSI or NFS mount): what users write on the volume reaches the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filesystem_mounted_on_the_source_after_the_start_is_watched() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    write(&src, "a.txt", "a");
    let repl = RsyncReplicator::new(d.settings("drdata", PASSWORD));
    repl.start(CancellationToken::new()).await.unwrap();
    arrives(&dst, "a.txt", "a").await;

    let Some(_volume) = Tmpfs::mount(&src) else {
        return;
    };
    write(&src, "a.txt", "a, on the volume");
    arrives(&dst, "a.txt", "a, on the volume").await;
    write(&src, "b.txt", "written on the volume");
    arrives(&dst, "b.txt", "written on the volume").await;
    repl.stop().await;
}

/// The source is declared a volume of its own (`mount_point = true`) and is
/// not mounted when replication starts (a late iSCSI or NFS mount, an
/// operator's mistake): nothing is sent from the directory under the mount
/// point — the guard holds, saying so — and once the volume is mounted,
/// what users write on it reaches the peer by itself. Before, the first
/// full pass sent the root filesystem's directory (and, had it been empty,
/// the peer's tree would have been deleted by it within the guard's share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_volume_not_mounted_at_the_start_sends_nothing_until_mounted() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    write(&src, "under.txt", "on the root filesystem");
    let state = tempfile::tempdir().unwrap();
    let mut s = d.settings("drdata", PASSWORD);
    s.volume = Some(Volume {
        state_dir: state.path().to_path_buf(),
        group: "web".into(),
        declared: true,
    });
    let hold = s.hold.clone();
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await.unwrap();
    let held = hold.held().expect("the guard holds the first pass");
    assert!(
        held.contains("is declared a mount point (mount_point = true)"),
        "{held}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !dst.join("under.txt").exists(),
        "sent from under the mount point"
    );

    let Some(_volume) = Tmpfs::mount(&src) else {
        return;
    };
    write(&src, "on-volume.txt", "written on the volume");
    arrives(&dst, "on-volume.txt", "written on the volume").await;
    assert!(!dst.join("under.txt").exists());
    repl.stop().await;
}

/// The agent restarted while its data volume is not mounted (a boot whose
/// mount failed), the volume undeclared but recorded in `volumes.json` by
/// an earlier run that saw it mounted; the directory under the mount
/// point holds a file (written there while the volume was not mounted):
/// nothing is sent from it and nothing is deleted at the peer — the
/// guard holds, saying so — and once the volume is back, what is written
/// on it arrives. Before, only a declared volume or one mounted at the
/// start was guarded: the first full pass sent the directory under the
/// mount point and deleted the peer's copy (within the guard's 100 items).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_volume_not_mounted_at_the_start_sends_nothing_until_mounted() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    let (src, dst) = (d.src(), d.target());
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&src).unwrap();
    let dirs = [warden_agents::volumes::Dir {
        group: "web".into(),
        path: src.clone(),
        declared: false,
    }];
    {
        // An earlier run of the agent saw it mounted.
        let Some(_volume) = Tmpfs::mount(&src) else {
            return;
        };
        let recorded = warden_agents::volumes::note(state.path(), &dirs).unwrap();
        assert_eq!(recorded, ["web"]);
    }
    write(&dst, "replicated.txt", "the active site's data, replicated");
    write(&src, "under.txt", "on the root filesystem");
    let mut s = d.settings("drdata", PASSWORD);
    s.volume = Some(Volume {
        state_dir: state.path().to_path_buf(),
        group: "web".into(),
        declared: false,
    });
    let hold = s.hold.clone();
    let repl = RsyncReplicator::new(s);
    repl.start(CancellationToken::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        dst.join("replicated.txt").exists() && !dst.join("under.txt").exists(),
        "the peer's copy was replaced by the directory under the mount point"
    );
    let held = hold.held().expect("the guard holds the first pass");
    assert!(held.contains("was seen a mount point"), "{held}");

    let Some(_volume) = Tmpfs::mount(&src) else {
        return;
    };
    write(&src, "on-volume.txt", "written on the volume");
    arrives(&dst, "on-volume.txt", "written on the volume").await;
    assert!(!dst.join("under.txt").exists());
    repl.stop().await;
}
