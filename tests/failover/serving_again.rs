//! A site confirmed down while no standby could take it, serving again
//! before one can: a path fault to it afterwards (the orchestrator cut from
//! it, its peer reaching it) is no disaster and moves nobody (DESIGN §3).

use anyhow::Result;

use crate::deploy::Knobs;
use crate::lab::{secs, Deploy};
use crate::{deployment, no_runbooks};

/// Both sites' services die together; a is confirmed down with no standby.
/// a comes back, then b (a stays confirmed down: a long hold-down). Then
/// the orchestrator is cut from a while b reaches it: a path fault, and
/// users stay on a. Before, that round — not judging a healthy — failed
/// the group over to b.
#[test]
fn a_path_fault_to_a_site_that_serves_again_moves_nobody() -> Result<()> {
    let Some(d) = deployment(Knobs {
        hold_down: "120s",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    d.start_all()?;
    d.lab.kill("svc-a")?;
    d.lab.kill("svc-b")?;
    d.wait_event("no_standby", secs(15))?;
    d.lab.restart("svc-a")?;
    d.wait_verdict("a", "healthy", secs(15))?;
    d.lab.restart("svc-b")?;
    d.wait_verdict("b", "healthy", secs(15))?;
    let rbs = d.runbooks()?;
    assert!(
        rbs.is_empty(),
        "a serves again: nothing moves, found {rbs:#?}"
    );
    d.lab.cut("a", "ctl")?;
    d.wait_verdict("a", "path_fault", secs(15))?;
    std::thread::sleep(secs(5)); // far longer than fall × interval
    no_runbooks(&d)?;
    assert_eq!(d.group()?["active"], "a");
    assert_eq!(d.user_get()?, "a");
    d.lab.heal("a", "ctl")?;
    d.wait_verdict("a", "healthy", secs(15))?;
    no_runbooks(&d)?;
    assert_eq!(d.user_get()?, "a");
    Ok(())
}
