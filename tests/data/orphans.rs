//! An agent killed outright in the middle of a push: its rsync, its own
//! process group, outlives it and goes on pushing into the peer with no
//! order behind it. With the real binaries and rsync daemons on
//! network-namespace hosts.

use std::time::Instant;

use anyhow::{bail, Result};

use crate::lab::{self, secs};
use crate::site::Data;

/// `/proc/PID/stat`'s state letter, `None` when there is no such process.
fn state(pid: &str) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(") ")?.1.chars().next()
}

fn alive(pid: &str) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// Agent a, its rsync limited to 128 KiB/s (a wrapper first in its
/// `PATH`), pushes 8 MiB to b (about a minute) when it is killed with
/// SIGKILL: the push's rsync lives on (checked, else the test proves
/// nothing). The agent's next process ends it before it takes any
/// command, and says so in its log. Before, the orphan went on pushing
/// into b for the rest of its minute, beside the restarted agent's own
/// passes (with no failover: a's service stays up, only its agent died).
#[test]
fn a_push_left_by_a_killed_agent_is_ended_by_its_next_process() -> Result<()> {
    let Some(x) = Data::new("keep", "pw-b-right") else {
        return Ok(());
    };
    let slow = x.d.lab.dir().join("slow-rsync");
    std::fs::create_dir_all(&slow)?;
    let wrapper = slow.join("rsync");
    std::fs::write(
        &wrapper,
        "#!/bin/bash\nexec -a rsync /usr/bin/rsync --bwlimit=128 \"$@\"\n",
    )?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let path = format!(
        "{}:{}",
        slow.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = x.d.config.display().to_string();
    let slow_agent = || {
        x.d.lab.spawn_env(
            "a",
            "agent-a",
            crate::deploy::WARDEN,
            ["agent", "--config", &config, "--site", "a"],
            [("WARDEN_LOG", "info"), ("PATH", path.as_str())],
        )
    };
    let pushes = |x: &Data| x.rsync_clients("a", |cmd| cmd.contains("rsync://"));
    x.write("a", "seed.txt", "seed")?;
    x.start()?;
    x.wait_same(secs(20))?;
    // a's agent again, with the slow rsync; the orchestrator starts its
    // replication anew.
    x.d.lab.kill("agent-a")?;
    slow_agent()?;
    x.d.lab
        .wait_log("agent-a", "replication started", secs(30))?;
    x.write_blocks("a", "big", 8)?;
    let running = lab::eventually(secs(20), secs(0.1), || {
        let p = pushes(&x);
        if p.is_empty() {
            bail!("no rsync pushing from a yet")
        }
        Ok(p)
    })?;
    let pids: Vec<String> = running
        .iter()
        .filter_map(|l| l.split_once(':').map(|(p, _)| p.to_string()))
        .collect();
    x.d.lab.kill("agent-a")?; // SIGKILL
    std::thread::sleep(secs(1));
    let outlived: Vec<&String> = pids.iter().filter(|p| alive(p)).collect();
    assert!(
        !outlived.is_empty(),
        "no push outlived the agent's SIGKILL (the test proves nothing): {running:?}"
    );

    let restarted = Instant::now();
    slow_agent()?;
    let ended = lab::eventually(secs(20), secs(0.2), || {
        let left: Vec<&&String> = outlived.iter().filter(|p| alive(p)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            bail!("the killed agent's pushes still run: {left:?}")
        }
    });
    let log = x.d.lab.log("agent-a");
    let left: Vec<&&String> = outlived.iter().filter(|p| alive(p)).collect();
    for p in &outlived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", p.as_str()])
            .status();
    }
    ended.map_err(|e| {
        anyhow::anyhow!("{e}: the killed agent's pushes {left:?} still ran; a's log: {log}")
    })?;
    // Said once the sweep has seen them end (it kills, waits, then logs:
    // the pushes may be gone a moment before the line is written).
    x.d.lab
        .wait_log(
            "agent-a",
            "left running by the agent's previous process (a push or pull of its replication",
            secs(10),
        )
        .map_err(|e| anyhow::anyhow!("{e}: a's log: {}", x.d.lab.log("agent-a")))?;
    let rbs = x.d.runbooks()?;
    assert!(
        rbs.iter().all(|r| r["kind"] != "failover"),
        "a failover happened (b's promote ends pushes into it: the test proves nothing): {rbs:?}"
    );
    eprintln!(
        "orphaned pushes ended {:.1} s after the agent's restart",
        restarted.elapsed().as_secs_f64()
    );
    Ok(())
}
