//! File names that are not UTF-8, end to end through the push replicator,
//! the manifest and the resync pull, against a real rsync daemon on
//! 127.0.0.1: a divergent file named `odd\xff.txt` beside an in-sync sibling
//! `odd\u{FFFD}.txt` (its lossy twin) under each divergent policy: the policy
//! applies to exactly that file, nothing else is touched, the pass succeeds.
//! Needs `rsync` (CI fails without it, elsewhere the tests skip).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    DivergentPolicy, Manifest, Replicator, Resyncer, RsyncReplicator, RsyncResyncer,
};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

const ODD: &[u8] = b"odd\xff.txt";
const TWIN: &str = "odd\u{FFFD}.txt";
const SYNCED: &[u8] = b"dir\xfe/in sync\xff[x]*.txt";

fn p(root: &Path, name: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(name))
}

/// In sync (pushed, manifest recorded): the twin, a non-UTF-8 name with
/// wildcard characters in a non-UTF-8 directory, a plain file. Then the
/// stale site writes the non-UTF-8 divergent file.
async fn setup(d: &Daemon) {
    let stale = d.src();
    std::fs::write(stale.join(TWIN), "twin, in sync").unwrap();
    std::fs::create_dir_all(p(&stale, b"dir\xfe")).unwrap();
    std::fs::write(p(&stale, SYNCED), "synced bytes name").unwrap();
    std::fs::write(stale.join("plain.txt"), "plain").unwrap();
    RsyncReplicator::new(settings(d))
        .resync(CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(files(&stale), files(&d.target()));
    let m = Manifest::load(&d.dir.path().join("state/manifest.json")).unwrap();
    assert_eq!(m.items.len(), 3, "{m:?}");
    std::fs::write(p(&stale, ODD), "divergent, never replicated").unwrap();
}

async fn run_policy(policy: DivergentPolicy) {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    setup(&d).await;
    let (stale, active) = (d.src(), d.target());
    let before = files(&stale);
    let resyncer = RsyncResyncer::new(settings(&d)).unwrap();
    let report = resyncer
        .pass(policy, CancellationToken::new(), None)
        .await
        .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
    assert_eq!(report.divergent.len(), 1, "{:?}", report.divergent);
    let div = &report.divergent[0];
    assert_eq!(div.name, "odd\\xff.txt", "shown with the byte escaped");
    assert_eq!(report.deleted, 0);
    assert_eq!(report.fetched.items, 0, "everything else was in sync");

    // Everything but the divergent file is exactly as before.
    let mut others = before.clone();
    others.remove(&PathBuf::from(OsStr::from_bytes(ODD)));
    let mut now = files(&stale);
    let odd_now = now.remove(&PathBuf::from(OsStr::from_bytes(ODD)));
    assert_eq!(now, others, "{policy:?}: nothing else touched");
    assert_eq!(files(&active).len(), 3, "the peer is only read");
    match policy {
        DivergentPolicy::Keep => {
            assert_eq!(div.action, "kept");
            assert_eq!(
                odd_now.as_deref(),
                Some(&b"divergent, never replicated"[..])
            );
            let v = resyncer
                .verify(std::slice::from_ref(&div.name))
                .await
                .unwrap();
            assert!(v.differences.is_empty(), "{:?}", v.differences);
            assert_eq!(v.excepted, 1);
        }
        DivergentPolicy::Quarantine => {
            assert_eq!(div.action, "quarantined");
            assert_eq!(odd_now, None);
            assert!(div.moved_to.is_some(), "says where it went");
            let moved = files(resyncer.quarantine());
            assert_eq!(moved.len(), 1, "{moved:?}");
            let (name, body) = moved.iter().next().unwrap();
            assert_eq!(name.file_name().unwrap().as_bytes(), ODD);
            assert_eq!(body, b"divergent, never replicated");
        }
        DivergentPolicy::Discard => {
            assert_eq!(div.action, "discarded");
            assert_eq!(odd_now, None);
        }
    }
    if policy != DivergentPolicy::Keep {
        assert_eq!(files(&stale), files(&active));
        let v = resyncer.verify(&[]).await.unwrap();
        assert!(v.differences.is_empty(), "{:?}", v.differences);
    }
    // The manifest kept the byte names: a second pass finds nothing new.
    let again = resyncer
        .pass(policy, CancellationToken::new(), None)
        .await
        .unwrap();
    let names: Vec<&str> = again.divergent.iter().map(|d| d.name.as_str()).collect();
    let expect: Vec<&str> = if policy == DivergentPolicy::Keep {
        vec!["odd\\xff.txt"]
    } else {
        vec![]
    };
    assert_eq!(names, expect);
    assert_eq!((again.deleted, again.fetched.items), (0, 0));
    assert_eq!(now_without(&stale, ODD), others);
}

fn now_without(root: &Path, name: &[u8]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut f = files(root);
    f.remove(&PathBuf::from(OsStr::from_bytes(name)));
    f
}

#[tokio::test]
async fn keep_protects_exactly_the_non_utf8_file() {
    run_policy(DivergentPolicy::Keep).await;
}

#[tokio::test]
async fn quarantine_moves_exactly_the_non_utf8_file() {
    run_policy(DivergentPolicy::Quarantine).await;
}

#[tokio::test]
async fn discard_removes_exactly_the_non_utf8_file() {
    run_policy(DivergentPolicy::Discard).await;
}
