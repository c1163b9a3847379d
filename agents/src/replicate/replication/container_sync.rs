//! This site's container headers under the Swift plans, whatever the
//! agent remembers.
//!
//! `swift-container-sync`: Swift's container-sync daemon pushes as long as
//! a container carries `X-Container-Sync-To`, also after the agent
//! restarted (its role then `idle`) or its site lost power. So every stop
//! and demote removes the header here, and a promote keys the containers
//! for its epoch (the fence: see `replicate/swift/container_sync.rs`).
//!
//! `swift`: a promote sets `X-Container-Meta-Warden-Active: epoch=N
//! site=S` on the containers here (see `replicate/swift/fence.rs`): the
//! copier of a site failed away from that never heard its demote reads it
//! and writes nothing more here. Stops, starts and demotes leave it: an
//! older fence is superseded by a newer epoch's, never removed (a demote
//! only ends a fence change still retried, which no longer matters).
//!
//! A change that fails (this site's Swift unreachable) is said in the
//! command's outcome and, as the status's `error`, in every report until
//! it lands; a task retries it meanwhile. The change is kept on disk
//! (`headers-pending.json` in the agent's state directory) until it lands
//! or a newer change supersedes it, and the agent's next process takes up
//! its retry before any command ([`Replication::resume_header_changes`]):
//! a promote whose fence had not landed when the agent was killed (an
//! OOM, a reboot) left the new active site's containers open to the old
//! site's copier or daemon for good. It does not fail the command:
//! what protects the new active site from this site's daemon is the key
//! its containers got at its promote, not this site's cooperation, and a
//! failover must not wait for the lost site's Swift (nor for its own: the
//! copier's fence is retried until it lands).

use super::pending_headers::PendingChanges;
use super::*;
use crate::replicate::swift::ActiveFence;
use crate::replicate::ContainerSyncSite;

/// First pause before a failed header change is tried again; doubled up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between two tries of a failed header change.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A header change retried in the background: its stop signal and task.
pub(super) struct Retry {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What a demote, stop or promote does to this site's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Change {
    /// `swift-container-sync`: remove `X-Container-Sync-To`: this site's
    /// daemon pushes nothing more.
    RemoveSyncTo,
    /// `swift-container-sync`: set the key of this epoch: pushes keyed for
    /// another one are refused.
    Fence(u64),
    /// `swift`: mark the containers active at this epoch: a copier of an
    /// older order writes nothing into them.
    Active(u64),
}

/// The site's side a [`Change`] is made on.
enum Site {
    Sync(ContainerSyncSite),
    Copier(ActiveFence),
}

impl Change {
    /// This change as `plan` makes it; `None` when the plan has none.
    fn under(self, plan: ReplicationPlan) -> Option<Change> {
        match (plan, self) {
            (ReplicationPlan::SwiftContainerSync, c) => Some(c),
            (ReplicationPlan::Swift, Change::Fence(epoch)) => Some(Change::Active(epoch)),
            _ => None,
        }
    }

    /// The site's side for this change, from the config.
    fn site(self, config: &Config, group: &str, site: &str) -> Result<Option<Site>, AgentError> {
        Ok(match self {
            Change::Active(_) => plan::active_fence(config, group, site)?.map(Site::Copier),
            _ => plan::container_sync_site(config, group, site)?.map(Site::Sync),
        })
    }

    async fn apply(self, site: &Site) -> Result<(), AgentError> {
        match (self, site) {
            (Change::RemoveSyncTo, Site::Sync(s)) => s.remove_sync_to().await,
            (Change::Fence(epoch), Site::Sync(s)) => s.fence(epoch).await,
            (Change::Active(epoch), Site::Copier(f)) => f.set(epoch).await,
            // `Change::site` builds the side each change is made on
            _ => Err(AgentError::Task(format!(
                "{self:?} does not apply to this plan"
            ))),
        }
    }

    fn done(self) -> String {
        match self {
            Change::RemoveSyncTo => "X-Container-Sync-To removed from this site's containers".into(),
            Change::Fence(epoch) => format!(
                "this site's containers keyed for epoch {epoch}: container sync from a site keyed for an older epoch is refused"
            ),
            Change::Active(epoch) => format!(
                "this site's containers fenced as active at epoch {epoch}: a copier of an older epoch writes nothing into them"
            ),
        }
    }

    fn failed(self, cause: &str) -> String {
        match self {
            Change::RemoveSyncTo => format!(
                "X-Container-Sync-To could not be removed from this site's containers ({cause}): \
                 retrying in the background; until it is, this site's container-sync daemon keeps \
                 pushing to the peer, whose containers refuse it once keyed for a newer epoch (its promote)"
            ),
            Change::Fence(epoch) => format!(
                "this site's containers could not be keyed for epoch {epoch} ({cause}): retrying in \
                 the background; until they are, a site still keyed for an older epoch can push into them"
            ),
            Change::Active(epoch) => format!(
                "this site's containers could not be fenced as active at epoch {epoch} ({cause}): \
                 retrying in the background; until they are, the copier of a site failed away from \
                 that never heard its demote can still write into them"
            ),
        }
    }
}

impl Replication {
    /// A stop or demote: `X-Container-Sync-To` removed here (`None` for
    /// the other plans).
    pub(super) async fn remove_sync_to(&self, g: &GroupRepl, group: &str) -> Option<String> {
        self.change_headers(g, group, Change::RemoveSyncTo).await
    }

    /// A promote: the containers here keyed for `epoch`
    /// (`swift-container-sync`) or fenced as active at `epoch` (`swift`);
    /// `None` for the other plans.
    pub(super) async fn fence(&self, g: &GroupRepl, group: &str, epoch: u64) -> Option<String> {
        self.change_headers(g, group, Change::Fence(epoch)).await
    }

    /// Stops a header change still retried and waits for its try in
    /// flight: a newer command's change must land after it, not before.
    /// The change kept on disk is forgotten (superseded).
    pub(super) async fn headers_settled(&self, g: &GroupRepl) {
        self.stop_header_retry(g).await;
        self.pending.forget(&g.name);
    }

    /// [`Replication::headers_settled`] at the agent's shutdown: the change
    /// stays on disk, for the next process to retry.
    pub(super) async fn stop_header_retry(&self, g: &GroupRepl) {
        let retry = lock(&g.headers_retry).take();
        if let Some(r) = retry {
            r.cancel.cancel();
            let _ = r.task.await;
        }
        lock(&g.headers).take();
    }

    /// At the agent's start, before any command: the header change each
    /// group's previous process had not landed is retried again.
    pub fn resume_header_changes(&self) {
        for (group, change) in self.pending.all() {
            let Some(g) = self.groups.get(&group) else {
                self.pending.forget(&group);
                continue;
            };
            // kept as the plan makes it; a plan changed since has none
            let fits = matches!(
                (g.cfg.plan, change),
                (ReplicationPlan::Swift, Change::Active(_))
                    | (
                        ReplicationPlan::SwiftContainerSync,
                        Change::RemoveSyncTo | Change::Fence(_)
                    )
            );
            if !fits {
                self.pending.forget(&group);
                continue;
            }
            let site = match change.site(&self.config, &group, &self.site) {
                Ok(Some(site)) => site,
                _ => {
                    self.pending.forget(&group);
                    continue;
                }
            };
            let why = change.failed("not landed before this agent's previous process ended");
            warn!(group = %group, "{why}");
            self.retry_in_background(g, &group, site, change, why);
        }
    }

    /// `change` failed (`why`): said in the status until it lands, kept on
    /// disk for a next process, and tried again by a task of its own.
    fn retry_in_background(
        &self,
        g: &GroupRepl,
        group: &str,
        site: Site,
        change: Change,
        why: String,
    ) {
        *lock(&g.headers) = Some(why);
        self.pending.keep(group, change);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(retry(
            site,
            change,
            group.to_string(),
            g.headers.clone(),
            self.pending.clone(),
            cancel.clone(),
        ));
        *lock(&g.headers_retry) = Some(Retry { cancel, task });
    }

    async fn change_headers(&self, g: &GroupRepl, group: &str, change: Change) -> Option<String> {
        let change = change.under(g.cfg.plan)?;
        self.headers_settled(g).await;
        let site = match change.site(&self.config, group, &self.site) {
            Ok(Some(site)) => site,
            Ok(None) => return None,
            Err(e) => {
                let why = change.failed(&e.to_string());
                warn!(group = %group, "{why}");
                *lock(&g.headers) = Some(why.clone());
                return Some(why);
            }
        };
        let cause = match change.apply(&site).await {
            Ok(()) => {
                info!(group = %group, "{}", change.done());
                return Some(change.done());
            }
            Err(e) => e.to_string(),
        };
        let why = change.failed(&cause);
        warn!(group = %group, "{why}");
        self.retry_in_background(g, group, site, change, why.clone());
        Some(why)
    }
}

/// Tries `change` again until it lands (then clears `headers`) or until
/// `cancel`; a try in flight is finished, never cut.
async fn retry(
    site: Site,
    change: Change,
    group: String,
    headers: Arc<Mutex<Option<String>>>,
    pending: Arc<PendingChanges>,
    cancel: CancellationToken,
) {
    let mut pause = RETRY_FIRST;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        match change.apply(&site).await {
            Ok(()) => {
                if !cancel.is_cancelled() {
                    lock(&headers).take();
                    pending.forget_if(&group, change);
                }
                info!(group = %group, "{} (retried)", change.done());
                return;
            }
            Err(e) => {
                if !cancel.is_cancelled() {
                    *lock(&headers) = Some(change.failed(&e.to_string()));
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "WARDEN_CSYNC_UNIT_SECRET";

    /// A [`Replication`] whose data directory is removed with it.
    struct Cleaned(Replication, String);

    impl std::ops::Deref for Cleaned {
        type Target = Replication;
        fn deref(&self) -> &Replication {
            &self.0
        }
    }

    impl Drop for Cleaned {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }

    /// Site a of group `web` with `plan` (a's Swift at a port nothing
    /// listens on), its data directory its own (removed after).
    fn replication(plan: &str) -> Cleaned {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = format!(
            "/tmp/warden-csync-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let _ = std::fs::remove_dir_all(&dir);
        Cleaned(replication_in(plan, &dir), dir)
    }

    /// [`replication`] with the data directory `dir` (a process started
    /// again on the same one).
    fn replication_in(plan: &str, dir: &str) -> Replication {
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::env::set_var(SECRET, "csync-unit-secret");
        // The plan's table: the keys every Swift plan has, then its own.
        let site = |name: &str, cluster: &str| {
            format!(
                "[groups.web.replication.sites.{name}]\n\
                 auth_url = \"http://127.0.0.1:1/auth/v1.0\"\n\
                 user = \"test:tester\"\n\
                 key = {{ env = \"{SECRET}\" }}\n{cluster}"
            )
        };
        let table = match plan {
            "none" => "plan = \"none\"\n".to_string(),
            "swift" => format!(
                "plan = \"swift\"\ncontainers = [\"c1\"]\n{}{}",
                site("a", ""),
                site("b", "")
            ),
            _ => format!(
                "plan = \"{plan}\"\ncontainers = [\"c1\"]\nrealm = \"realm1\"\n\
                 sync_key = {{ env = \"{SECRET}\" }}\n{}{}",
                site("a", "cluster = \"clustera\"\n"),
                site("b", "cluster = \"clusterb\"\n")
            ),
        };
        let text = crate::test_web::config_text(SECRET, dir, &table);
        let config = warden_config::parse(&text, std::path::Path::new("csync-unit.conf")).unwrap();
        Replication::from_config(&config, "a").unwrap()
    }

    /// A fresh agent (no role: it restarted) is demoted while its Swift is
    /// down: it still tries to remove Sync-To, and says it could not.
    #[tokio::test]
    async fn a_demote_after_a_restart_removes_sync_to_and_says_when_it_cannot() {
        let r = replication("swift-container-sync");
        assert_eq!(r.status()[0].role, "idle");
        assert_eq!(r.status()[0].error, None);
        let said = r
            .demoted("web")
            .await
            .expect("a container-sync demote always acts");
        assert!(
            said.contains("no replication was running from a")
                && said.contains("X-Container-Sync-To could not be removed")
                && said.contains("127.0.0.1:1"),
            "{said}"
        );
        let error = r.status()[0]
            .error
            .clone()
            .expect("reported until it lands");
        assert!(
            error.contains("X-Container-Sync-To could not be removed"),
            "{error}"
        );
        assert!(!said.contains("csync-unit-secret") && !error.contains("csync-unit-secret"));
        assert!(
            lock(&r.groups["web"].headers_retry).is_some(),
            "retried in the background"
        );
        // A promote supersedes the retry with its own change.
        let fenced = r
            .promoted("web", 4)
            .await
            .expect("a promote keys the containers");
        assert!(
            fenced.contains("could not be keyed for epoch 4"),
            "{fenced}"
        );
        let error = r.status()[0].error.clone().unwrap_or_default();
        assert!(error.contains("epoch 4"), "{error}");
        r.shutdown().await;
        assert_eq!(r.status()[0].error, None);
        assert!(lock(&r.groups["web"].headers_retry).is_none());
    }

    /// The `swift` plan: a demote of an idle site has nothing to stop; a
    /// promote whose own Swift is down says its fence could not be set,
    /// retries it, and still succeeds; a later demote ends the retry (the
    /// next active site's epoch supersedes the fence), a start does not.
    #[tokio::test]
    async fn a_swift_promote_fences_its_containers_and_says_when_it_cannot() {
        let r = replication("swift");
        assert_eq!(r.demoted("web").await, None);
        assert_eq!(r.status()[0].error, None);
        let said = r
            .promoted("web", 4)
            .await
            .expect("a swift promote fences its containers");
        assert!(
            said.contains("could not be fenced as active at epoch 4")
                && said.contains("127.0.0.1:1"),
            "{said}"
        );
        assert!(!said.contains("csync-unit-secret"));
        let error = r.status()[0].error.clone().unwrap_or_default();
        assert!(error.contains("fenced as active at epoch 4"), "{error}");
        assert!(lock(&r.groups["web"].headers_retry).is_some());
        // the active site's own start leaves the retry running
        let mut start = Command::new("web", 4, CommandKind::StartReplication).to_site("a");
        start.peer = Some("b".into());
        let o = r.run(&start, &CancellationToken::new()).await;
        assert!(o.ok, "{}", o.detail);
        assert!(lock(&r.groups["web"].headers_retry).is_some());
        assert!(r.status()[0].error.is_some());
        assert_eq!(
            r.demoted("web").await.map(|s| s.contains("stopped")),
            Some(true)
        );
        assert!(lock(&r.groups["web"].headers_retry).is_none());
        assert_eq!(r.status()[0].error, None);
        r.shutdown().await;
    }

    /// A promote whose fence did not land before the agent's process ended
    /// (killed, rebooted): the next process retries it before any command,
    /// and says so; a demote then supersedes it, and the process after
    /// that one retries nothing.
    #[tokio::test]
    async fn a_fence_not_landed_is_retried_by_the_next_process() {
        for (plan, says) in [
            ("swift", "fenced as active at epoch 4"),
            ("swift-container-sync", "keyed for epoch 4"),
        ] {
            let dir = format!(
                "/tmp/warden-csync-unit-resume-{}-{plan}",
                std::process::id()
            );
            let _ = std::fs::remove_dir_all(&dir);
            let r = replication_in(plan, &dir);
            let said = r.promoted("web", 4).await.unwrap_or_default();
            assert!(said.contains(says), "{plan}: {said}");
            r.shutdown().await;
            drop(r);

            let again = replication_in(plan, &dir);
            again.resume_header_changes();
            assert!(
                lock(&again.groups["web"].headers_retry).is_some(),
                "{plan}: the next process does not retry the fence"
            );
            let error = again.status()[0].error.clone().unwrap_or_default();
            assert!(
                error.contains(says) && error.contains("previous process"),
                "{plan}: {error}"
            );
            // A demote supersedes it: nothing is left for the next one.
            let _ = again.demoted("web").await;
            again.shutdown().await;
            drop(again);
            let third = replication_in(plan, &dir);
            third.resume_header_changes();
            let left = third.status()[0].error.clone().unwrap_or_default();
            assert!(!left.contains(says), "{plan}: {left}");
            third.shutdown().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Plans without container headers: a promote or demote touches none.
    #[tokio::test]
    async fn other_plans_are_untouched() {
        let r = replication("none");
        assert_eq!(r.demoted("web").await, None);
        assert_eq!(r.promoted("web", 4).await, None);
        assert_eq!(r.status()[0].error, None);
    }
}
