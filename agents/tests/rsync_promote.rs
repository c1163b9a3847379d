//! A push still running into a site when it is promoted ends before the
//! promote's hooks run. The rsync gate judges a push when its connection
//! starts: site a's initial full pass (16 MiB through an rsync limited to
//! 256 KiB/s, about a minute) began while b was a standby, and without
//! more it would go on into b after b's promote, deleting and overwriting
//! what users write there.
//!
//! A real rsync daemon is b (its `drdata` module is b's directory), with
//! warden's real gate (`warden_agents::gate::check`) as its `pre-xfer
//! exec`: this test's own executable, run by the daemon with
//! `WARDEN_TEST_GATE` set, judges the transfer and exits (the `warden`
//! binary is another crate's). b is promoted the way its agent does it:
//! the role on disk first (`Authority::promoting`), then
//! `Replication::promoted`. Asserted: the push's receiver processes are
//! gone within a couple of seconds and the promote says it ended one
//! push; the daemon still answers; no rsync temporary file is left in b's
//! tree; what users write at b right after the promote is neither deleted
//! nor overwritten, while a's replication goes on trying and is refused
//! by the gate. Fails without the ending: the receivers keep running.
//! And over ssh (`warden rsync-gate --ssh` execs `rsync --server`, here a
//! remote shell that runs the command locally): a push's server in the
//! directory ends, a read's (`--server --sender`) goes on.
//! The first test changes `PATH` (the slow rsync); the second runs the
//! real rsync by its path. Needs `rsync` (CI fails without it, elsewhere
//! the tests skip).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden_agents::authority::Authority;
use warden_agents::replication::Replication;
use warden_agents::wire::{Command, CommandKind};

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/web.rs"]
mod web;

const GATE_ENV: &str = "WARDEN_TEST_GATE";
const PW_ENV: &str = "WARDEN_RSYNC_PROMOTE_TEST_PW";
const TEST: &str = "a_promote_ends_a_push_still_running_into_the_site";

/// The daemon's `pre-xfer exec`: warden's gate for site b, on the transfer
/// the daemon describes in this process's environment. Never returns.
fn gate(conf: &str) -> ! {
    let cfg = match warden_config::load(Path::new(conf)) {
        Ok(c) => c,
        Err(e) => {
            println!("warden rsync-gate: refused the transfer: {e}");
            std::process::exit(1)
        }
    };
    let verdict = warden_agents::gate::Transfer::from_env(|k| std::env::var(k).ok())
        .and_then(|t| warden_agents::gate::check(&cfg, "b", &t));
    match verdict {
        Ok(passed) => {
            eprintln!("warden rsync-gate: {passed}");
            std::process::exit(0)
        }
        Err(why) => {
            println!("{why}");
            std::process::exit(1)
        }
    }
}

/// Group `web`: a's directory is the harness's `src/`, b's the daemon's
/// module (`target/`), b's agent state in `state`.
fn config_text(d: &Daemon, state: &Path) -> String {
    let module = format!("127.0.0.1:{}/drdata", d.port);
    let replication = format!(
        r#"plan = "rsync"

[groups.web.replication.sites.a]
path = "{src}"
module = "{module}"
user = "{USER}"
password = {{ env = "{PW_ENV}" }}

[groups.web.replication.sites.b]
path = "{target}"
module = "{module}"
user = "{USER}"
password = {{ env = "{PW_ENV}" }}
"#,
        src = d.src().display(),
        target = d.target().display(),
    );
    let data_dir = d.dir.path().join("data").display().to_string();
    web::config_text(PW_ENV, &data_dir, &replication).replace(
        "[sites.b]\n",
        &format!("[sites.b]\nstate_dir = \"{}\"\n", state.display()),
    )
}

/// `/proc/PID/stat`: (comm, state, ppid).
fn stat(pid: u32) -> Option<(String, char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let mut rest = s[close + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((s[open + 1..close].to_string(), state, ppid))
}

/// Live rsync processes working in `dir` (the daemon's connections and
/// their receivers; the listening daemon works elsewhere).
fn rsync_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|(comm, state, _)| comm == "rsync" && state != 'Z')
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(dir))
        })
        .collect()
}

/// rsync's temporary files (`.NAME.XXXXXX`) anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            } else if name.starts_with('.')
                && name.len() > 8
                && name.as_bytes()[name.len() - 7] == b'.'
            {
                out.push(e.path());
            }
        }
    }
    out
}

async fn eventually(patience: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn a_cmd(kind: CommandKind) -> Command {
    let mut c = Command::new("web", 1, kind);
    c.peer = Some("b".into());
    c.site = "a".into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_ends_a_push_still_running_into_the_site() {
    if let Ok(conf) = std::env::var(GATE_ENV) {
        gate(&conf);
    }
    if !have_rsync() {
        return;
    }
    // Before the daemon starts: the gate it runs loads the config.
    std::env::set_var(PW_ENV, PASSWORD);
    let here = tempfile::tempdir().unwrap();
    let conf = here.path().join("failover.conf");
    let exe = std::env::current_exe().unwrap();
    let d = Daemon::start_with(&format!(
        " pre-xfer exec = {GATE_ENV}={} {} --exact {TEST} --nocapture -q\n",
        conf.display(),
        exe.display()
    ));
    let state = here.path().join("state-b");
    std::fs::write(&conf, config_text(&d, &state)).unwrap();
    let config = warden_config::load(&conf).expect("test config");
    // b's agent: a standby of web (a is the primary).
    let authority = Authority::open(&state, "b", &[("web".into(), "a".into())]).unwrap();
    let b = Replication::from_config(&config, "b").expect("web replicates at b");
    let a = Arc::new(Replication::from_config(&config, "a").expect("web replicates at a"));

    let src = d.src();
    let target = std::fs::canonicalize(d.target()).unwrap();
    let mb = vec![7u8; 1 << 20];
    for i in 0..16 {
        std::fs::write(src.join(format!("big{i:02}.bin")), &mb).unwrap();
    }
    std::fs::write(src.join("shared.txt"), "a's old version").unwrap();
    slow_rsync_in_path(d.dir.path());

    // a's start: its initial full pass pushes into b, slowly.
    let start = tokio::spawn({
        let a = a.clone();
        async move {
            a.run(
                &a_cmd(CommandKind::StartReplication),
                &CancellationToken::new(),
            )
            .await
        }
    });
    eventually(PATIENCE, "a's full pass is receiving into b", || {
        rsync_in(&target).len() >= 2 && !temp_files(&target).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receivers = rsync_in(&target);
    assert!(!start.is_finished(), "the initial pass still runs");

    // b is promoted as its agent does it: the role on disk, then the rest.
    let promote = Command::new("web", 2, CommandKind::Promote).to_site("b");
    authority.admit(&promote).unwrap();
    authority.promoting(&promote).unwrap();
    let t = Instant::now();
    let said = b
        .promoted("web", promote.epoch)
        .await
        .expect("the promote says what it ended");
    assert!(
        said.contains(&format!(
            "ended 1 push into {} still running from before the promote",
            d.target().display()
        )),
        "{said}"
    );
    assert!(!said.contains("warning"), "{said}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    eventually(
        Duration::from_secs(2),
        "the push's receivers are gone",
        || {
            receivers
                .iter()
                .all(|&p| stat(p).is_none_or(|s| s.1 == 'Z'))
        },
    )
    .await;
    // (a's next connections come and go: the gate refuses each one.)
    let temps = temp_files(&target);
    assert!(temps.is_empty(), "rsync temporary files left: {temps:?}");

    // Users write at b right after the promote.
    std::fs::write(target.join("written-at-b.txt"), "acknowledged at b").unwrap();
    std::fs::write(target.join("shared.txt"), "b's update").unwrap();

    // a's start returns (its pass failed; it retries in the background).
    let out = tokio::time::timeout(Duration::from_secs(5), start)
        .await
        .expect("a's start returned")
        .unwrap();
    assert!(out.ok, "{}", out.detail);

    // The daemon still answers: a read of the module passes the gate.
    let listing = std::process::Command::new("rsync")
        .arg(format!("rsync://{USER}@127.0.0.1:{}/drdata/", d.port))
        .env("RSYNC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        listing.status.success()
            && String::from_utf8_lossy(&listing.stdout).contains("written-at-b.txt"),
        "{listing:?}"
    );

    // a goes on trying; the gate refuses its pushes into active b.
    eventually(PATIENCE, "a's replication is refused by b's gate", || {
        a.status()
            .iter()
            .find(|s| s.group == "web")
            .and_then(|s| s.error.clone())
            .is_some_and(|e| e.contains("site b is the active site of group web (epoch 2)"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        std::fs::read_to_string(target.join("written-at-b.txt")).unwrap(),
        "acknowledged at b"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("shared.txt")).unwrap(),
        "b's update"
    );
    assert!(temp_files(&target).is_empty());
    let stop = a
        .run(
            &a_cmd(CommandKind::StopReplication),
            &CancellationToken::new(),
        )
        .await;
    assert!(stop.ok, "{}", stop.detail);
}

/// The real rsync, not the slow wrapper another test puts first in `PATH`.
fn real_rsync() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .filter(|d| !d.ends_with("slow-bin"))
        .map(|d| d.join("rsync"))
        .find(|p| p.is_file())
        .expect("rsync on PATH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ssh_a_push_into_the_directory_ends_and_a_read_from_it_does_not() {
    if std::env::var_os(GATE_ENV).is_some() || !have_rsync() {
        return;
    }
    let rsync = real_rsync();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dir, out) = (
        tmp.path().join("src"),
        tmp.path().join("data"),
        tmp.path().join("out"),
    );
    for d in [&src, &dir.join("old"), &dir.join("in"), &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mb = vec![9u8; 1 << 20];
    for i in 0..4 {
        std::fs::write(src.join(format!("new{i}.bin")), &mb).unwrap();
        std::fs::write(dir.join(format!("old/old{i}.bin")), &mb).unwrap();
    }
    // The remote shell: what sshd and the gate would leave running.
    let rsh = tmp.path().join("rsh");
    std::fs::write(
        &rsh,
        format!(
            "#!/bin/sh\nshift\ncd /\nshift\nexec {} \"$@\"\n",
            rsync.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rsh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spawn = |args: &[String]| {
        std::process::Command::new(&rsync)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let e = format!("-e{}", rsh.display());
    let mut push = spawn(&[
        "-a".into(),
        "--delete".into(),
        "--bwlimit=128".into(),
        e.clone(),
        format!("{}/", src.display()),
        format!("localhost:{}/in/", dir.display()),
    ]);
    let mut read = spawn(&[
        "-a".into(),
        "--bwlimit=64".into(),
        e,
        format!("localhost:{}/old/", dir.display()),
        format!("{}/", out.display()),
    ]);
    let dir = std::fs::canonicalize(&dir).unwrap();
    // The push's server and receiver, and the read's sender.
    eventually(PATIENCE, "both transfers run in the directory", || {
        rsync_in(&dir).len() >= 3 && !temp_files(&dir).is_empty()
    })
    .await;
    let ended = warden_agents::replicate::rsync::receivers::end_pushes_into(&dir).await;
    assert_eq!(ended.transfers, 1, "{ended:?}");
    assert_eq!((ended.denied, ended.unseen), (0, 0), "{ended:?}");
    let said = ended.say(&dir).unwrap();
    assert!(said.starts_with("ended 1 push into"), "{said}");
    // The push's client sees its server gone; the read goes on.
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(s) = push.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the push ended");
    assert!(!status.success());
    assert!(read.try_wait().unwrap().is_none(), "the read was ended too");
    assert_eq!(rsync_in(&dir).len(), 1, "the read's sender alone is left");
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
    read.kill().unwrap();
    read.wait().unwrap();
}

/// A resync pull into b killed outright (its log left beside the
/// manifest), then b promoted by a failover — which pauses replication, so
/// b may stay active for long without pushing: the promote removes the
/// log. Left there, a later failback's first pass at b would read it as
/// its own and take every write b's users made since for what that pull
/// fetched (quarantined, not kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_removes_the_log_of_a_pull_cut_off_before_it() {
    if !have_rsync() {
        return;
    }
    std::env::set_var(PW_ENV, PASSWORD);
    let here = tempfile::tempdir().unwrap();
    let conf = here.path().join("failover.conf");
    let d = Daemon::start();
    let state = here.path().join("state-b");
    std::fs::write(&conf, config_text(&d, &state)).unwrap();
    let config = warden_config::load(&conf).expect("test config");
    let b = Replication::from_config(&config, "b").expect("web replicates at b");
    let mut log = d.target().into_os_string();
    log.push(".warden-manifest.json.pulling");
    std::fs::write(&log, "# warden pull started at 1\n").unwrap();
    let authority = Authority::open(&state, "b", &[("web".into(), "a".into())]).unwrap();
    let promote = Command::new("web", 2, CommandKind::Promote).to_site("b");
    authority.admit(&promote).unwrap();
    authority.promoting(&promote).unwrap();
    b.promoted("web", promote.epoch).await;
    assert!(
        !Path::new(&log).exists(),
        "the log of a pull cut off before the promote is gone"
    );
}
