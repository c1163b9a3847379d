//! One process per node on a host: with etcd, [`lock`] holds an exclusive
//! lock on the node's run directory (`DATA_DIR/node-NAME/node.lock`,
//! [`crate::OrchestratorSettings::run_dir`]) for as long as the process
//! runs. (The local store has its own: `DATA_DIR/orchestrator.lock`.)
//!
//! At start an orchestrator ends every process bound to its run directory
//! (`service::leftovers`): its predecessor's fence and notify commands. A
//! second `warden orchestrator --node NAME` on the same host — a typo, a
//! unit started twice, a restart script racing the running process —
//! would end the RUNNING node's fence command (a power-off cut in half)
//! and campaign as the same node. So the lock is taken before that sweep
//! and before the campaign, and a second process exits with an error
//! naming the node, the lock file and the process that holds it, having
//! ended nothing.
//!
//! The lock is the kernel's (`warden_config::dir_lock`): it ends with its
//! process however that ends, and a command the node started does not
//! inherit it.

use warden_config::dir_lock::{DirLock, Refused};

use crate::{OrchestratorError, OrchestratorSettings};

/// The lock file's name in the node's run directory.
pub const LOCK_NAME: &str = "node.lock";

/// Lock the run directory of the node `settings` run as (created if
/// missing); an error when another process holds it.
pub fn lock(settings: &OrchestratorSettings) -> Result<DirLock, OrchestratorError> {
    let dir = settings.run_dir();
    let node = settings.node.as_deref().unwrap_or("orchestrator");
    let file = dir.join(LOCK_NAME).display().to_string();
    DirLock::acquire(&dir, LOCK_NAME).map_err(|r| match r {
        Refused::Held(holder) => OrchestratorError::NodeRunning {
            node: node.to_string(),
            lock: file,
            holder,
        },
        Refused::Io(why) => OrchestratorError::store(format!("cannot lock {file}"), why),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path, node: &str) -> OrchestratorSettings {
        let text = format!(
            r#"[orchestrator]
listen = "127.0.0.1:1"
data_dir = "{d}"
operator_token = {{ file = "{d}/op" }}
store = "etcd"
[orchestrator.etcd]
endpoints = ["http://127.0.0.1:1"]
[[orchestrator.nodes]]
name = "n1"
listen = "127.0.0.1:2"
[[orchestrator.nodes]]
name = "n2"
listen = "127.0.0.1:3"
"#,
            d = dir.display()
        );
        let op = dir.join("op");
        std::fs::write(&op, "op-token-of-this-test").unwrap();
        std::fs::set_permissions(&op, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let cfg = warden_config::parse(&text, &dir.join("failover.conf")).expect("config");
        OrchestratorSettings::from_config(cfg)
            .and_then(|s| s.as_node(node))
            .expect("settings")
    }

    #[test]
    fn a_second_process_of_one_node_is_refused_naming_the_node_lock_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(&settings(dir.path(), "n1")).expect("the first takes the lock");
        let e = lock(&settings(dir.path(), "n1")).expect_err("a second n1 is refused");
        let text = e.to_string();
        let file = dir.path().join("node-n1").join(LOCK_NAME);
        assert!(
            text.contains("node n1")
                && text.contains(&file.display().to_string())
                && text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        lock(&settings(dir.path(), "n2")).expect("another node of the host is not refused");
        drop(held);
        lock(&settings(dir.path(), "n1")).expect("the lock ends with its holder");
    }
}
