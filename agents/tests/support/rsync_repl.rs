//! A warden config whose group `web` replicates with the rsync plan between
//! sites `a` (the harness's `src/`) and `b` (the daemon's `drdata` module),
//! for tests that drive [`Replication`] with real commands.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind, CommandOutcome, ReplicationStatus};
use warden_config::Config;

use crate::rsyncd::{Daemon, PASSWORD, USER};

const PW_ENV: &str = "WARDEN_RSYNC_REPL_TEST_PW";

/// The config, with `extra` lines added to `[groups.web.replication]`.
pub(crate) fn config(d: &Daemon, extra: &str) -> Config {
    std::env::set_var(PW_ENV, PASSWORD);
    let module = format!("127.0.0.1:{}/drdata", d.port);
    let replication = format!(
        r#"plan = "rsync"
{extra}

[groups.web.replication.sites.a]
path = "{src}"
module = "{module}"
user = "{USER}"
password = {{ env = "{PW_ENV}" }}

[groups.web.replication.sites.b]
path = "{other}"
module = "{module}"
user = "{USER}"
password = {{ env = "{PW_ENV}" }}
"#,
        src = d.src().display(),
        other = d.dir.path().join("b-local").display(),
    );
    // The agents' state (the divergent lists, kept on disk) in the
    // daemon's directory, removed with it.
    let data_dir = d.dir.path().join("data").display().to_string();
    let text = crate::web::config_text(PW_ENV, &data_dir, &replication);
    warden_config::parse(&text, Path::new("rsync-repl-test.conf")).expect("test config")
}

/// Site `a`'s replication role.
pub(crate) fn site_a(d: &Daemon, extra: &str) -> Replication {
    Replication::from_config(&config(d, extra), "a").expect("group web replicates at a")
}

/// A replication command for group `web` at site `a`, toward peer `b`.
pub(crate) fn cmd(kind: CommandKind, epoch: u64) -> Command {
    let mut c = Command::new("web", epoch, kind);
    c.peer = Some("b".into());
    c.site = "a".into();
    c
}

pub(crate) async fn run(r: &Replication, kind: CommandKind) -> CommandOutcome {
    r.run(&cmd(kind, 1), &CancellationToken::new()).await
}

pub(crate) fn status(r: &Replication) -> ReplicationStatus {
    r.status()
        .into_iter()
        .find(|s| s.group == "web")
        .expect("group web in the status")
}

/// Waits (polling) until `f` holds, or panics with `what` after `patience`.
pub(crate) async fn eventually(patience: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
