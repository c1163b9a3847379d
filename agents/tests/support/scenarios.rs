//! What the real-daemon suites share: waiting for a condition that the
//! daemons reach in their own time, and running every scenario of a suite
//! against one deployment, reporting all that failed at the end.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Polls `check` every 200 ms until it answers `true`; fails after `limit`
/// with the last error it gave.
pub(crate) async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {limit:?} (last error: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs scenarios one after the other; `VAR=a,b` (e.g.
/// `WARDEN_SWIFT_SCENARIOS`) runs only those.
pub(crate) struct Scenarios {
    only: Option<String>,
    var: &'static str,
    failed: Vec<String>,
}

impl Scenarios {
    pub(crate) fn new(var: &'static str) -> Scenarios {
        Scenarios {
            only: std::env::var(var).ok(),
            var,
            failed: Vec::new(),
        }
    }

    /// Runs one scenario (unless left out) and notes how it went.
    pub(crate) async fn run(&mut self, name: &str, scenario: impl Future<Output = Result<()>>) {
        if self
            .only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == name))
        {
            eprintln!("scenario {name} ... skipped ({})", self.var);
            return;
        }
        let t0 = Instant::now();
        match scenario.await {
            Ok(()) => eprintln!("scenario {name} ... ok ({:.1?})", t0.elapsed()),
            Err(e) => {
                eprintln!("scenario {name} ... FAILED: {e:#}");
                self.failed.push(format!("{name}: {e:#}"));
            }
        }
    }

    /// Fails the test, listing every scenario that failed.
    pub(crate) fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "failed scenarios:\n{}",
            self.failed.join("\n")
        );
    }
}
