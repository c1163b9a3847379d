//! A divergent candidate that vanishes while a resync pass runs (an rsync
//! temporary file of a transfer that just ended, a delete racing the pass)
//! is nothing to set aside: the pass goes on instead of failing — a
//! switchover once failed on `cannot discard divergent item
//! data/001/.00269.dat.TKjrZL: No such file or directory`. Made
//! deterministic by an rsync wrapper that deletes the file when the pass's
//! checksum comparison starts. Needs `rsync` (CI fails without it,
//! elsewhere the test skips).

use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{DivergentPolicy, Resyncer, RsyncResyncer};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_candidate_that_vanishes_is_skipped_under_every_policy() {
    if !have_rsync() {
        return;
    }
    for policy in [
        DivergentPolicy::Quarantine,
        DivergentPolicy::Discard,
        DivergentPolicy::Keep,
    ] {
        let d = Daemon::start();
        std::fs::write(d.target().join("f.txt"), "at the peer").unwrap();
        std::fs::write(d.src().join("f.txt"), "here, never confirmed").unwrap();
        let vanishing = d.src().join(".g.txt.Ab12Cd");
        std::fs::write(&vanishing, "a transfer's temporary file").unwrap();
        let wrapper = d.dir.path().join("rsync-vanish");
        rsync_wrapper(
            &wrapper,
            &format!(
                "for a in \"$@\"; do [ \"$a\" = -c ] && rm -f '{}'; done",
                vanishing.display()
            ),
            "",
        );
        let mut s = d.settings("drdata", PASSWORD);
        s.manifest = Some(d.dir.path().join("manifest.json"));
        s.rsync_path = wrapper;
        let r = RsyncResyncer::new(s).unwrap();
        let report = r
            .pass(policy, CancellationToken::new(), None)
            .await
            .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let names: Vec<&str> = report.divergent.iter().map(|d| d.name.as_str()).collect();
        assert!(
            !names.contains(&".g.txt.Ab12Cd"),
            "{policy:?}: a vanished file reported: {names:?}"
        );
        assert!(names.contains(&"f.txt"), "{policy:?}: {names:?}");
        assert!(!vanishing.exists());
    }
}
