//! The group's fence command as deployed: run by the real orchestrator at
//! the fence step of every move, in both directions, told which site to
//! fence in its environment, and judged by its exit even when it leaves a
//! process behind holding its stderr.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::deploy::{Deployment, Knobs};
use crate::lab::{self, secs, Deploy, Lab};

/// What each run of the fence command was told, one line per run:
/// `SITE TARGET EPOCH GROUP ACTION`.
fn told(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn fence_note(rb: &Value) -> String {
    rb["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "fence"))
        .map(|s| s["detail"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The `nth` runbook of `kind` (0 first), once it has succeeded.
fn succeeded(d: &Deployment, kind: &str, nth: usize) -> Result<Value> {
    lab::eventually(secs(90), secs(0.3), || {
        let rbs = d.runbooks()?;
        match rbs.iter().filter(|r| r["kind"] == kind).nth(nth) {
            Some(rb) if rb["status"] == "succeeded" => Ok(rb.clone()),
            Some(rb) => bail!("{kind} #{nth} {}", rb["status"]),
            None => bail!("no {kind} #{nth} yet"),
        }
    })
}

fn fence_script(lab: &Lab, log: &Path) -> Result<String> {
    // a PDU client that forks a helper which keeps stderr open
    let script = lab.write_file(
        "fence.sh",
        format!(
            "#!/bin/sh\necho \"$WARDEN_SITE $WARDEN_TARGET $WARDEN_EPOCH $WARDEN_GROUP $WARDEN_ACTION\" >> {}\n\
             sleep 600 &\nexit 0\n",
            log.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(script.display().to_string())
}

/// With `fencing = "required"` and a's agent killed with its service, only
/// the fence command can fence a: it runs, told to fence a for b at the
/// failover's epoch, and the failover goes on. a returns (users stay on b:
/// failback is manual), then b is lost: the failover back fences b for a.
/// Neither run waits for the helper that holds its stderr.
#[test]
fn the_fence_command_is_told_which_site_to_fence_in_both_directions() -> Result<()> {
    let Some(lab) = Lab::new_or_skip(crate::HOSTS) else {
        return Ok(());
    };
    let log = lab.dir().join("fenced.log");
    let script = fence_script(&lab, &log)?;
    let d = Deployment::new(
        lab,
        Knobs {
            hold_down: "2s",
            failback: "manual",
            group_extra: format!("fencing = \"required\"\nfence_command = [\"{script}\"]"),
            ..Knobs::default()
        },
    )?;
    d.start_all()?;
    d.lab.kill("agent-a")?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(60))?;
    let fo = succeeded(&d, "failover", 0)?;
    assert!(fence_note(&fo).contains("fence command: exit 0"), "{fo:#}");
    assert_eq!(told(&log), [format!("a b {} web fence", fo["epoch"])]);

    // a returns (no automatic failback: users stay on b); then b is lost
    // the same way, and the failover back to a fences b
    d.start_service("a")?;
    d.start_agent("a")?;
    d.wait_verdict("a", "healthy", secs(30))?;
    d.lab.kill("agent-b")?;
    d.lab.kill("svc-b")?;
    let back = succeeded(&d, "failover", 1)?;
    d.wait_users_on("a", secs(30))?;
    assert!(
        fence_note(&back).contains("fence command: exit 0"),
        "{back:#}"
    );
    assert_eq!(
        told(&log),
        [
            format!("a b {} web fence", fo["epoch"]),
            format!("b a {} web fence", back["epoch"]),
        ]
    );
    Ok(())
}
