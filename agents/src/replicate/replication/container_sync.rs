//! This site's container headers under the `swift-container-sync` plan,
//! whatever the agent remembers: Swift's container-sync daemon pushes as
//! long as a container carries `X-Container-Sync-To`, also after the agent
//! restarted (its role then `idle`) or its site lost power. So every stop
//! and demote removes the header here, and a promote keys the containers
//! for its epoch (the fence: see `replicate/swift/container_sync.rs`).
//!
//! A change that fails (this site's Swift unreachable) is said in the
//! command's outcome and, as the status's `error`, in every report until
//! it lands; a task retries it meanwhile. It does not fail the command:
//! what protects the new active site from this site's daemon is the key
//! its containers got at its promote, not this site's cooperation, and a
//! failover must not wait for the lost site's Swift.

use super::*;
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
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Remove `X-Container-Sync-To`: this site's daemon pushes nothing more.
    RemoveSyncTo,
    /// Set the key of this epoch: pushes keyed for another one are refused.
    Fence(u64),
}

impl Change {
    async fn apply(self, site: &ContainerSyncSite) -> Result<(), AgentError> {
        match self {
            Change::RemoveSyncTo => site.remove_sync_to().await,
            Change::Fence(epoch) => site.fence(epoch).await,
        }
    }

    fn done(self) -> String {
        match self {
            Change::RemoveSyncTo => "X-Container-Sync-To removed from this site's containers".into(),
            Change::Fence(epoch) => format!(
                "this site's containers keyed for epoch {epoch}: container sync from a site keyed for an older epoch is refused"
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
        }
    }
}

impl Replication {
    /// A stop or demote: `X-Container-Sync-To` removed here (`None` for
    /// the other plans).
    pub(super) async fn remove_sync_to(&self, g: &GroupRepl, group: &str) -> Option<String> {
        self.change_headers(g, group, Change::RemoveSyncTo).await
    }

    /// A promote: the containers here keyed for `epoch` (`None` for the
    /// other plans).
    pub(super) async fn fence(&self, g: &GroupRepl, group: &str, epoch: u64) -> Option<String> {
        self.change_headers(g, group, Change::Fence(epoch)).await
    }

    /// Stops a header change still retried and waits for its try in
    /// flight: a newer command's change must land after it, not before.
    pub(super) async fn headers_settled(&self, g: &GroupRepl) {
        let retry = lock(&g.headers_retry).take();
        if let Some(r) = retry {
            r.cancel.cancel();
            let _ = r.task.await;
        }
        lock(&g.headers).take();
    }

    async fn change_headers(&self, g: &GroupRepl, group: &str, change: Change) -> Option<String> {
        if g.cfg.plan != ReplicationPlan::SwiftContainerSync {
            return None;
        }
        self.headers_settled(g).await;
        let site = match plan::container_sync_site(&self.config, group, &self.site) {
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
        *lock(&g.headers) = Some(why.clone());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(retry(
            site,
            change,
            group.to_string(),
            g.headers.clone(),
            cancel.clone(),
        ));
        *lock(&g.headers_retry) = Some(Retry { cancel, task });
        Some(why)
    }
}

/// Tries `change` again until it lands (then clears `headers`) or until
/// `cancel`; a try in flight is finished, never cut.
async fn retry(
    site: ContainerSyncSite,
    change: Change,
    group: String,
    headers: Arc<Mutex<Option<String>>>,
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

    /// Site a of group `web` with `plan` (a's Swift at a port nothing listens on).
    fn replication(plan: &str) -> Replication {
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::env::set_var("WARDEN_CSYNC_UNIT_SECRET", "csync-unit-secret");
        let text = format!(
            r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-csync-unit"
operator_token = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
[sites.a]
agent_token = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
[sites.b]
agent_token = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081" }}
[groups.web.replication]
plan = "{plan}"
containers = ["c1"]
realm = "realm1"
sync_key = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
[groups.web.replication.sites.a]
auth_url = "http://127.0.0.1:1/auth/v1.0"
user = "test:tester"
key = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
cluster = "clustera"
[groups.web.replication.sites.b]
auth_url = "http://127.0.0.1:1/auth/v1.0"
user = "test:tester"
key = {{ env = "WARDEN_CSYNC_UNIT_SECRET" }}
cluster = "clusterb"
"#
        );
        let text = if plan == "swift" {
            text.replace("realm = \"realm1\"\n", "")
                .replace("sync_key = { env = \"WARDEN_CSYNC_UNIT_SECRET\" }\n", "")
                .replace("cluster = \"clustera\"\n", "")
                .replace("cluster = \"clusterb\"\n", "")
        } else {
            text
        };
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

    /// The other plans: a demote of an idle site has nothing to stop.
    #[tokio::test]
    async fn other_plans_are_untouched_by_an_idle_demote() {
        let r = replication("swift");
        assert_eq!(r.demoted("web").await, None);
        assert_eq!(r.promoted("web", 4).await, None);
        assert_eq!(r.status()[0].error, None);
    }
}
