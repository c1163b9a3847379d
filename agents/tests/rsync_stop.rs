//! `stop_replication` interrupts a start still in its initial full pass (a
//! large tree pushed through a bandwidth-limited rsync) and a resync pull:
//! it returns within a few seconds (at once when rsync ends on SIGTERM)
//! and no rsync process of warden's is left.
//! rsync is limited by a wrapper first in `PATH` (`exec rsync --bwlimit`),
//! so this file holds one test (it changes the process environment).
//! Needs `rsync` (CI fails without it, elsewhere the test skips).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_agents::wire::CommandKind;

#[path = "support/rsyncd.rs"]
mod rsyncd;
use rsyncd::*;
#[path = "support/rsync_repl.rs"]
mod rsync_repl;
#[path = "support/web.rs"]
mod web;
use rsync_repl::*;

/// `/proc/PID/stat`: (comm, state, ppid, pgrp).
fn stat(pid: u32) -> Option<(String, char, u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((comm, state, ppid, pgrp))
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Waits (up to 10 s) until the daemon serves no connection (no live
/// child): the receiving end of a push killed mid-transfer finishes on
/// its own (it may still create what it had been sent), and nothing
/// written after that can come from warden any more.
async fn daemon_settled(d: &Daemon) {
    let Some(daemon) = d.pid() else { return };
    let t = std::time::Instant::now();
    while pids()
        .into_iter()
        .any(|p| stat(p).is_some_and(|(_, state, ppid, _)| ppid == daemon && state != 'Z'))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the daemon still serves a connection 10 s after the stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Process groups of the live rsync processes this test started through
/// warden (descendants of this process not in its own group: the daemon is).
fn warden_rsync_groups() -> BTreeSet<u32> {
    let me = std::process::id();
    let my_group = stat(me).unwrap().3;
    pids()
        .into_iter()
        .filter_map(|pid| {
            let (comm, state, _, pgrp) = stat(pid)?;
            if comm != "rsync" || state == 'Z' || pgrp == my_group {
                return None;
            }
            let mut p = pid;
            for _ in 0..64 {
                let (_, _, ppid, _) = stat(p)?;
                if ppid == me {
                    return Some(pgrp);
                }
                if ppid <= 1 {
                    return None;
                }
                p = ppid;
            }
            None
        })
        .collect()
}

/// Live (not zombie) processes in any of `groups`.
fn alive_in(groups: &BTreeSet<u32>) -> Vec<(u32, String)> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let (comm, state, _, pgrp) = stat(pid)?;
            (state != 'Z' && groups.contains(&pgrp)).then_some((pid, comm))
        })
        .collect()
}

fn big_tree(root: &Path) {
    let mb = vec![7u8; 1 << 20];
    for i in 0..16 {
        std::fs::write(root.join(format!("big{i:02}.bin")), &mb).unwrap();
    }
}

/// Waits until warden's rsync runs; its process groups.
async fn running_rsync() -> BTreeSet<u32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let g = warden_rsync_groups();
        if !g.is_empty() {
            return g;
        }
        assert!(Instant::now() < deadline, "no rsync of warden's runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops within 3 s (the kill grace, 1.5 s, and room for a loaded host);
/// no process of `groups` is left.
async fn stop_within_bounds(r: &Replication, groups: &BTreeSet<u32>) {
    let mut groups = groups.clone();
    groups.extend(warden_rsync_groups());
    let groups = &groups;
    let t = Instant::now();
    let out = run(r, CommandKind::StopReplication).await;
    let took = t.elapsed();
    assert!(out.ok, "{}", out.detail);
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    loop {
        let left = alive_in(groups);
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "rsync processes left after the stop: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(warden_rsync_groups().is_empty());
}

use warden_agents::replication::Replication;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_interrupts_the_initial_pass_and_a_resync_and_kills_rsync() {
    if !have_rsync() {
        return;
    }
    let d = Daemon::start();
    // rsync limited to 256 KiB/s: 16 MiB take about a minute.
    slow_rsync_in_path(d.dir.path());
    big_tree(&d.src());
    let r = Arc::new(site_a(&d, ""));

    // The initial full pass of a start.
    let start = tokio::spawn({
        let r = r.clone();
        async move { run(&r, CommandKind::StartReplication).await }
    });
    let groups = running_rsync().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!start.is_finished(), "the initial pass is still running");
    stop_within_bounds(&r, &groups).await;
    let out = tokio::time::timeout(Duration::from_secs(3), start)
        .await
        .expect("the start returned")
        .unwrap();
    assert!(
        !out.ok,
        "an interrupted start is not a success: {}",
        out.detail
    );
    assert_eq!(status(&r).role, "idle");
    // The daemon's end of the killed push may still be finishing what it
    // had received (under load, a directory or file after the stop): the
    // count is taken once it is done.
    daemon_settled(&d).await;
    let sent = snapshot(&d.target()).len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        snapshot(&d.target()).len(),
        sent,
        "nothing is sent any more"
    );

    // A resync pull of the same tree (now at the peer, gone here).
    std::fs::remove_dir_all(d.target()).unwrap();
    std::fs::rename(d.src(), d.target()).unwrap();
    std::fs::create_dir(d.src()).unwrap();
    let resync = tokio::spawn({
        let r = r.clone();
        async move { run(&r, CommandKind::Resync).await }
    });
    let groups = running_rsync().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!resync.is_finished(), "the resync pass is still running");
    assert_eq!(status(&r).role, "resync");
    stop_within_bounds(&r, &groups).await;
    let out = tokio::time::timeout(Duration::from_secs(3), resync)
        .await
        .expect("the resync returned")
        .unwrap();
    assert!(!out.ok, "{}", out.detail);
    // The file the pull was in the middle of: rsync was asked to end, and
    // removed its temporary file; killed outright it stays in the tree
    // (the next pass would take it for a user's file).
    let left: Vec<_> = snapshot(&d.src())
        .into_keys()
        .filter(|p| is_rsync_temp(p))
        .collect();
    assert!(
        left.is_empty(),
        "rsync's temporary files left here: {left:?}"
    );
}

/// rsync's temporary file of a transfer: `.NAME.XXXXXX`.
fn is_rsync_temp(p: &Path) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with('.')
        && name.rsplit_once('.').is_some_and(|(_, tail)| {
            tail.len() == 6 && tail.chars().all(|c| c.is_ascii_alphanumeric())
        })
}
