//! Builds a group's replication plan for one direction from the config:
//! the [`Replicator`] a source site runs toward its peer, and the
//! [`Resyncer`] a returning site runs against the active peer. The `_held`
//! variants share the group's [`GuardHold`] with the plan (the mass-delete
//! guard's state, reported and released by the agent's replication role).
//! A replicator is built for one start order: the `swift-container-sync`
//! plan derives its sync key from the order's epoch, the `swift` copier
//! stops at a destination fenced by a promote of that epoch or a newer one.
//! [`container_sync_site`] is the container-sync plan's one-site side (no
//! peer), for demotes, stops and promotes; [`active_fence`] the `swift`
//! plan's, for promotes.

use std::path::PathBuf;
use std::sync::Arc;

use warden_config::{Config, ReplicationConfig, ReplicationPlan, ReplicationSite, Secret};
use warden_openstack::KeystoneSettings;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::guard::{DeleteGuard, GuardHold};
use super::swift::ActiveFence;
use super::OrderCheck;
use super::{
    CommandLine, CommandPlan, CommandSettings, ContainerSyncSettings, ContainerSyncSite,
    DivergentPolicy, NoReplication, PassReport, Replicator, ResyncProgress, Resyncer,
    RsyncReplicator, RsyncResyncer, RsyncSettings, SshLogin, SwiftContainerSync, SwiftReplicator,
    SwiftReplicatorSettings, SwiftResyncer, SwiftResyncerSettings, SwiftSettings, VerifyReport,
    Volume,
};
use crate::AgentError;

mod rsync;
mod swift;

pub use rsync::{journal_paths, manifest_path, quarantine_path, rsync_settings};
pub use swift::{active_fence, container_sync_site};
use swift::{container_sync, swift_manifest, swift_settings};

fn repl<'a>(config: &'a Config, group: &str) -> Result<&'a ReplicationConfig, AgentError> {
    config
        .groups
        .get(group)
        .and_then(|g| g.replication())
        .ok_or_else(|| AgentError::InvalidSetting {
            key: format!("groups.{group}.replication"),
            reason: "the group has no replication plan".into(),
        })
}

fn site<'a>(
    r: &'a ReplicationConfig,
    group: &str,
    site: &str,
) -> Result<&'a ReplicationSite, AgentError> {
    r.sites.get(site).ok_or_else(|| AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.sites.{site}"),
        reason: "missing".into(),
    })
}

fn missing(group: &str, site: &str, key: &str) -> AgentError {
    AgentError::InvalidSetting {
        key: format!("groups.{group}.replication.sites.{site}.{key}"),
        reason: "missing".into(),
    }
}

/// The `command` plan of `site` towards `peer`, serving an order of `epoch`.
fn command_plan(
    config: &Config,
    r: &ReplicationConfig,
    group: &str,
    site: &str,
    peer: &str,
    epoch: Option<u64>,
) -> CommandPlan {
    let line = |v: &Option<Vec<String>>| {
        CommandLine::Argv(v.clone().unwrap_or_else(|| vec!["true".to_string()]))
    };
    let mut s = CommandSettings::new(
        group,
        peer,
        line(&r.start),
        line(&r.stop),
        line(&r.resync),
        line(&r.verify),
    );
    s.lag = r.lag.clone().map(CommandLine::Argv);
    s.timeout = r.resync_timeout;
    s.site = site.into();
    s.epoch = epoch;
    s.state_dir = Some(crate::settings::state_dir(config, site));
    CommandPlan::new(s)
}

/// The `command` plan of `site` towards `peer` serving no order: its
/// `stop`, run when this agent holds no replicator of the group (see
/// `Replication::stop_unheld`).
pub(crate) fn command_stopper(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
) -> Result<CommandPlan, AgentError> {
    let r = repl(config, group)?;
    Ok(command_plan(config, r, group, site, peer, None))
}

/// Plan `none` (a stretched cluster): nothing to fetch, nothing differs.
struct NoResync;

#[async_trait]
impl Resyncer for NoResync {
    async fn pass(
        &self,
        _policy: DivergentPolicy,
        _cancel: CancellationToken,
        _progress: Option<watch::Sender<ResyncProgress>>,
    ) -> Result<PassReport, AgentError> {
        Ok(PassReport::default())
    }

    async fn verify(&self, _except: &[String]) -> Result<VerifyReport, AgentError> {
        Ok(VerifyReport::default())
    }
}

/// The continuous replicator `site` → `peer` for a start order of `epoch`.
pub fn replicator(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
    epoch: u64,
) -> Result<Arc<dyn Replicator>, AgentError> {
    replicator_held(config, group, site, peer, epoch, &GuardHold::new())
}

/// [`replicator`], its mass-delete guard reporting into `hold`.
pub fn replicator_held(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
    epoch: u64,
    hold: &GuardHold,
) -> Result<Arc<dyn Replicator>, AgentError> {
    replicator_checked(config, group, site, peer, epoch, hold, None)
}

/// [`replicator_held`], asking `order_stands` (the agent's authority for
/// this start) before work that outlives the start acts on the peer.
pub fn replicator_checked(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
    epoch: u64,
    hold: &GuardHold,
    order_stands: Option<OrderCheck>,
) -> Result<Arc<dyn Replicator>, AgentError> {
    let r = repl(config, group)?;
    match r.plan {
        ReplicationPlan::Rsync => {
            let mut s = rsync_settings(config, group, site, peer)?;
            s.hold = hold.clone();
            s.stated = Some(crate::replicate::rsync::StatedPush {
                order: crate::gate::order::PushOrder {
                    group: group.into(),
                    site: site.into(),
                    epoch,
                },
                now: order_stands,
            });
            Ok(Arc::new(RsyncReplicator::new(s)))
        }
        ReplicationPlan::Swift => {
            let mut s = SwiftReplicatorSettings::new(
                swift_settings(r, group, site)?,
                swift_settings(r, group, peer)?,
                r.containers.clone(),
                swift_manifest(r, group, site),
            );
            s.interval = r.interval;
            s.concurrency = r.concurrency;
            s.guard = crate::replicate::guard::DeleteGuard::from_config(r);
            let mut s = s.order(group, site, peer, epoch);
            s.order_stands = order_stands;
            Ok(Arc::new(SwiftReplicator::new(s)?))
        }
        ReplicationPlan::SwiftContainerSync => Ok(Arc::new(container_sync(
            r,
            group,
            site,
            peer,
            epoch,
            order_stands,
        )?)),
        ReplicationPlan::None => Ok(Arc::new(NoReplication)),
        ReplicationPlan::Command => Ok(Arc::new(command_plan(
            config,
            r,
            group,
            site,
            peer,
            Some(epoch),
        ))),
    }
}

/// The resyncer that brings `site` up to the active `peer`.
pub fn resyncer(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
) -> Result<Arc<dyn Resyncer>, AgentError> {
    resyncer_held(config, group, site, peer, None, &GuardHold::new())
}

/// [`resyncer`] for an order of `epoch`, its mass-delete guard reporting
/// into `hold`.
pub fn resyncer_held(
    config: &Config,
    group: &str,
    site: &str,
    peer: &str,
    epoch: Option<u64>,
    hold: &GuardHold,
) -> Result<Arc<dyn Resyncer>, AgentError> {
    let r = repl(config, group)?;
    match r.plan {
        // The local directory is `site`'s; the module is `peer`'s.
        ReplicationPlan::Rsync => {
            let mut s = rsync_settings(config, group, site, peer)?;
            s.hold = hold.clone();
            Ok(Arc::new(RsyncResyncer::new(s)?))
        }
        // Container sync has no manifest of its own: the failback copies
        // through the API like the swift plan, then the direction flips.
        ReplicationPlan::Swift | ReplicationPlan::SwiftContainerSync => {
            let mut s = SwiftResyncerSettings::new(
                swift_settings(r, group, site)?,
                swift_settings(r, group, peer)?,
                r.containers.clone(),
                swift_manifest(r, group, site),
            );
            s.concurrency = r.concurrency;
            s.guard = crate::replicate::guard::DeleteGuard::from_config(r);
            Ok(Arc::new(SwiftResyncer::new(s)?))
        }
        ReplicationPlan::None => Ok(Arc::new(NoResync)),
        ReplicationPlan::Command => Ok(Arc::new(command_plan(config, r, group, site, peer, epoch))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/tmp/warden-plan-test"
operator_token = { env = "WARDEN_PLAN_TEST_SECRET" }

[sites.a]
agent_token = { env = "WARDEN_PLAN_TEST_SECRET" }

[sites.b]
agent_token = { env = "WARDEN_PLAN_TEST_SECRET" }

[frontends.fe1]
control = "127.0.0.1:7100"
token = { env = "WARDEN_PLAN_TEST_SECRET" }

[groups.web]
sites = ["a", "b"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = { a = "127.0.0.1:8080", b = "127.0.0.1:8081" }
"#;

    const CONF_SITES: &str = r#"
[groups.web.replication]
plan = "rsync"
[groups.web.replication.sites.a]
path = "/srv/a"
module = "10.0.0.1:8873/data"
user = "ua"
password = { env = "WARDEN_PLAN_TEST_SECRET" }
[groups.web.replication.sites.b]
path = "/srv/b"
module = "10.0.0.2/data"
user = "ub"
password = { env = "WARDEN_PLAN_TEST_SECRET" }
"#;

    fn config(replication: &str) -> Config {
        // The Swift clients build reqwest with rustls (the binary installs ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::env::set_var("WARDEN_PLAN_TEST_SECRET", "s3cret-plan-test");
        warden_config::parse(
            &format!("{CONF}{replication}"),
            std::path::Path::new("plan.conf"),
        )
        .unwrap()
    }

    #[test]
    fn rsync_settings_take_the_peers_module_and_the_local_manifest() {
        let c = config(CONF_SITES);
        let s = rsync_settings(&c, "web", "a", "b").unwrap();
        assert_eq!(s.source, PathBuf::from("/srv/a"));
        assert_eq!(
            (s.host.as_str(), s.port, s.module.as_str(), s.user.as_str()),
            ("10.0.0.2", 873, "data", "ub")
        );
        assert_eq!(
            s.manifest,
            Some(PathBuf::from("/srv/a.warden-manifest.json"))
        );
        assert_eq!(
            s.quarantine,
            Some(PathBuf::from("/srv/a.warden-quarantine"))
        );
        assert!(replicator(&c, "web", "a", "b", 1).is_ok());
        assert!(resyncer(&c, "web", "b", "a").is_ok());
        assert_eq!(
            (s.xattrs, s.acls, s.hard_links, s.sparse),
            (true, true, true, true)
        );
        let c = config(&CONF_SITES.replace(
            "plan = \"rsync\"",
            "plan = \"rsync\"\nacls = false\nhard_links = false\nsparse = false",
        ));
        let s = rsync_settings(&c, "web", "a", "b").unwrap();
        assert_eq!(
            (s.xattrs, s.acls, s.hard_links, s.sparse),
            (true, false, false, false)
        );
    }

    #[test]
    fn every_plan_builds_from_the_config() {
        let swift_sites = r#"
[groups.web.replication.sites.a]
auth_url = "http://127.0.0.1:1/auth/v1.0"
user = "test:tester"
key = { env = "WARDEN_PLAN_TEST_SECRET" }
CLUSTER_A
[groups.web.replication.sites.b]
auth_url = "http://127.0.0.1:2/auth/v1.0"
user = "test:tester"
key = { env = "WARDEN_PLAN_TEST_SECRET" }
CLUSTER_B
"#;
        let plain = swift_sites
            .replace("CLUSTER_A", "")
            .replace("CLUSTER_B", "");
        let synced = swift_sites
            .replace("CLUSTER_A", "cluster = \"clustera\"")
            .replace("CLUSTER_B", "cluster = \"clusterb\"");
        for conf in [
            format!("[groups.web.replication]\nplan = \"swift\"\ncontainers = [\"c1\"]\n{plain}"),
            format!("[groups.web.replication]\nplan = \"swift-container-sync\"\ncontainers = [\"c1\"]\nrealm = \"realm1\"\nsync_key = {{ env = \"WARDEN_PLAN_TEST_SECRET\" }}\n{synced}"),
            "[groups.web.replication]\nplan = \"none\"\n".to_string(),
            "[groups.web.replication]\nplan = \"command\"\nstart = [\"true\"]\nresync = [\"true\"]\n".to_string(),
        ] {
            let c = config(&format!("\n{conf}"));
            if let Err(e) = replicator(&c, "web", "a", "b", 1) {
                panic!("{conf}: {e}");
            }
            if let Err(e) = resyncer(&c, "web", "b", "a") {
                panic!("{conf}: {e}");
            }
            // only the swift copier's promote fences its containers
            let fence = active_fence(&c, "web", "a").unwrap_or_else(|e| panic!("{conf}: {e}"));
            assert_eq!(fence.is_some(), conf.contains("plan = \"swift\"\n"), "{conf}");
        }
    }
    #[test]
    fn a_keystone_site_builds_with_its_secret_loaded() {
        // a variable only this test reads
        std::env::set_var("WARDEN_PLAN_TEST_KS_SECRET", "app-cred-secret-1");
        let c = config(
            r#"
[groups.web.replication]
plan = "swift"
containers = ["c1"]
[groups.web.replication.sites.a.keystone]
auth_url = "http://127.0.0.1:1/v3"
user = "warden"
password = { env = "WARDEN_PLAN_TEST_KS_SECRET" }
project = "dr"
region = "ra"
[groups.web.replication.sites.b.keystone]
auth_url = "http://127.0.0.1:1/v3"
application_credential_id = "ac1"
application_credential_secret = { env = "WARDEN_PLAN_TEST_KS_SECRET" }
interface = "internal"
"#,
        );
        let a = swift_settings(
            c.groups["web"].replication.as_ref().unwrap().get_ref(),
            "web",
            "a",
        )
        .unwrap();
        let warden_openstack::SwiftAuth::Keystone(k) = &a.auth else {
            panic!("{a:?}")
        };
        assert_eq!(
            k.credentials.who(),
            "user warden (domain Default) in project dr (domain Default)"
        );
        assert_eq!(
            (k.region.as_deref(), k.interface.as_str()),
            (Some("ra"), "public")
        );
        assert!(!format!("{a:?}").contains("app-cred-secret-1"));
        let b = swift_settings(
            c.groups["web"].replication.as_ref().unwrap().get_ref(),
            "web",
            "b",
        )
        .unwrap();
        let warden_openstack::SwiftAuth::Keystone(k) = &b.auth else {
            panic!("{b:?}")
        };
        assert_eq!(k.credentials.who(), "application credential ac1");
        assert_eq!(
            (k.region.as_deref(), k.interface.as_str()),
            (None, "internal")
        );
        assert!(replicator(&c, "web", "a", "b", 1).is_ok());
        assert!(resyncer(&c, "web", "b", "a").is_ok());
    }

    /// The `command` plan's scripts are told the authority they act under
    /// — this site and the order's epoch — so that one can state it to its
    /// receiver, as warden's rsync push does. Before, a script knew its
    /// group, peer and phase only.
    #[tokio::test]
    async fn a_command_plan_is_told_its_site_and_the_orders_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("env");
        let line = format!(
            "[\"sh\", \"-c\", \"echo $WARDEN_PHASE $WARDEN_SITE $WARDEN_PEER $WARDEN_EPOCH >> {}\"]",
            log.display()
        );
        let c = config(&format!(
            "[groups.web.replication]\nplan = \"command\"\nstart = {line}\nresync = {line}\n"
        ));
        let cancel = CancellationToken::new();
        let r = replicator(&c, "web", "a", "b", 7).unwrap();
        r.start(cancel.clone()).await.unwrap();
        r.stop().await;
        let p = resyncer_held(&c, "web", "b", "a", Some(9), &GuardHold::new()).unwrap();
        p.pass(DivergentPolicy::Keep, cancel, None).await.unwrap();
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(said.lines().any(|l| l == "start a b 7"), "{said}");
        assert!(said.lines().any(|l| l == "resync b a 9"), "{said}");
    }

    /// Every script of the `command` plan carries a mark bound to its
    /// site's state directory (`crate::leftovers`: the agent's next process
    /// ends one its death left running). Before, its mark was bound to
    /// nothing and the script outlived a SIGKILLed agent.
    #[tokio::test]
    async fn a_command_plans_scripts_carry_the_mark_of_the_sites_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("env");
        let line = format!(
            "[\"sh\", \"-c\", \"echo $WARDEN_RUN >> {}\"]",
            log.display()
        );
        let c = config(&format!(
            "[groups.web.replication]\nplan = \"command\"\nstart = {line}\nresync = {line}\n"
        ));
        let r = replicator(&c, "web", "a", "b", 7).unwrap();
        r.start(CancellationToken::new()).await.unwrap();
        r.stop().await;
        let said = std::fs::read_to_string(&log).unwrap();
        let state_dir = std::path::absolute(crate::settings::state_dir(&c, "a")).unwrap();
        let bound = format!("@{}", state_dir.display());
        assert!(
            said.lines().any(|l| l.ends_with(&bound)),
            "{said} (not bound: {bound})"
        );
    }
}
