//! Tests of the gate's judgement of a push (role, stated order, module).

use std::collections::BTreeMap;

use super::*;
use crate::authority::Authority;
use crate::wire::{Command, CommandKind};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_daemons_arguments_say_push_or_read() {
    let push = env(&[
        ("RSYNC_MODULE_NAME", "appdata"),
        ("RSYNC_HOST_ADDR", "10.1.0.10"),
        ("RSYNC_ARG0", "rsyncd"),
        ("RSYNC_ARG1", "--server"),
        ("RSYNC_ARG2", "-logDtpre.iLsfxCIvu"),
        ("RSYNC_ARG3", "--delete"),
        ("RSYNC_ARG4", "."),
    ]);
    let t = Transfer::from_env(push).unwrap();
    assert!(t.push);
    assert_eq!(t.module, "appdata");
    let read = env(&[
        ("RSYNC_MODULE_NAME", "appdata"),
        ("RSYNC_ARG0", "rsyncd"),
        ("RSYNC_ARG1", "--server"),
        ("RSYNC_ARG2", "--sender"),
        ("RSYNC_ARG3", "-logDtpre.iLsfxCIvu"),
    ]);
    assert!(!Transfer::from_env(read).unwrap().push);
    // `--sender` as the value of another option: the daemon still
    // receives, so this is a push whatever the word says.
    let disguised = env(&[
        ("RSYNC_MODULE_NAME", "appdata"),
        ("RSYNC_ARG0", "rsyncd"),
        ("RSYNC_ARG1", "--server"),
        ("RSYNC_ARG2", "-logDtpre.iLsfxCIvu"),
        ("RSYNC_ARG3", "--delete"),
        ("RSYNC_ARG4", "--suffix"),
        ("RSYNC_ARG5", "--sender"),
    ]);
    assert!(Transfer::from_env(disguised).unwrap().push);
    // A read that asks the daemon to remove what it sends.
    for remove in REMOVING {
        let removing = env(&[
            ("RSYNC_MODULE_NAME", "appdata"),
            ("RSYNC_ARG0", "rsyncd"),
            ("RSYNC_ARG1", "--server"),
            ("RSYNC_ARG2", "--sender"),
            ("RSYNC_ARG3", "-logDtpre.iLsfxCIvu"),
            ("RSYNC_ARG4", remove),
            ("RSYNC_ARG5", "."),
            ("RSYNC_ARG6", "files/"),
        ]);
        let t = Transfer::from_env(removing).unwrap();
        assert!(!t.push && t.removes, "{remove}");
    }
    let e = Transfer::from_env(env(&[("RSYNC_ARG0", "rsyncd")])).unwrap_err();
    assert!(e.contains("RSYNC_MODULE_NAME is not set"), "{e}");
}

fn config(state_dir: &std::path::Path) -> Config {
    config_with(state_dir, "/srv/b", "")
}

/// The config with b's directory at `b_path` and `b_extra` in b's
/// rsync table.
fn config_with(state_dir: &std::path::Path, b_path: &str, b_extra: &str) -> Config {
    use super::test_config::{config, daemon_site, group};
    let a = daemon_site("/srv/a", "10.1.0.10/appdata", "");
    let b = daemon_site(b_path, "10.2.0.10:8873/appdata-b", b_extra);
    config(state_dir, &[group("web", 8000, &a, &b)])
}

/// [`config`] with group web of sites a, b and c.
fn three_sites(state_dir: &std::path::Path) -> Config {
    use super::test_config::{config, daemon_site, group_of};
    let a = daemon_site("/srv/a", "10.1.0.10/appdata", "");
    let b = daemon_site("/srv/b", "10.2.0.10:8873/appdata-b", "");
    config(state_dir, &[group_of("web", 8000, true, &a, &b)])
}

fn push(module: &str) -> Transfer {
    Transfer {
        module: module.into(),
        push: true,
        host: "10.1.0.10".into(),
        removes: false,
        order: Stated::NotAsked,
    }
}

#[test]
fn a_push_lands_only_at_a_standby() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // No state yet: fail closed.
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(
        e.contains("cannot be known") && e.contains("never started"),
        "{e}"
    );
    let groups = vec![("web".to_string(), "a".to_string())];
    let b = Authority::open(dir.path(), "b", &groups).unwrap();
    let ok = check(&cfg, "b", &push("appdata-b")).unwrap();
    assert!(ok.contains("standby of group web"), "{ok}");
    let removing = Transfer {
        push: false,
        removes: true,
        ..push("appdata-b")
    };
    let e = check(&cfg, "b", &removing).unwrap_err();
    assert!(e.contains("removes what it sends"), "{e}");
    // b is promoted: pushes into it are refused from now on, reads pass.
    let promote = Command::new("web", 4, CommandKind::Promote).to_site("b");
    b.admit(&promote).unwrap();
    b.record(&promote).unwrap();
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(
        e.contains("site b is the active site of group web (epoch 4)")
            && e.contains("from 10.1.0.10"),
        "{e}"
    );
    let read = Transfer {
        push: false,
        ..push("appdata-b")
    };
    assert!(check(&cfg, "b", &read).is_ok());
    // A read that removes what it sends deletes here: refused, at the
    // active site and at a standby alike.
    let removing = Transfer {
        removes: true,
        ..read.clone()
    };
    let e = check(&cfg, "b", &removing).unwrap_err();
    assert!(e.contains("removes what it sends"), "{e}");
    // A module no plan names for this site (a's module, here) is refused.
    let e = check(&cfg, "b", &push("appdata")).unwrap_err();
    assert!(e.contains("no group's rsync plan names this module"), "{e}");
    // Active b loses its state file (a restored disk): its agent
    // restarts not knowing its role, which could be active: refused.
    drop(b);
    std::fs::remove_file(dir.path().join("authority.json")).unwrap();
    let b = Authority::open(dir.path(), "b", &groups).unwrap();
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(
        e.contains("role in group web is unknown") && e.contains("was lost"),
        "{e}"
    );
    // The orchestrator promotes it again: still refused, as active.
    b.admit(&promote).unwrap();
    b.record(&promote).unwrap();
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(e.contains("is the active site"), "{e}");
}

/// b's directory is declared a volume of its own and is not a mount
/// point (never mounted since the agent started: nothing recorded):
/// a push into standby b is refused, saying so. Before, only a
/// directory once seen mounted was judged, and the push landed.
#[test]
fn a_push_into_a_declared_volume_that_is_not_mounted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("b-data");
    std::fs::create_dir_all(&data).unwrap();
    let groups = vec![("web".to_string(), "a".to_string())];
    let _b = Authority::open(dir.path(), "b", &groups).unwrap();
    let data = data.display().to_string();
    let cfg = config_with(dir.path(), &data, "mount_point = true");
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(
        e.contains("declared a mount point (mount_point = true) and is not one now"),
        "{e}"
    );
    // The root directory is always a mount point: the push lands.
    let cfg = config_with(dir.path(), "/", "mount_point = true");
    assert!(check(&cfg, "b", &push("appdata-b")).is_ok());
}

/// b's directory is a volume (declared, or recorded as seen mounted) that
/// is gone: a read of b's module — a failback's resync at a pulling from
/// active b — is refused, saying so, whatever b's role; with the volume
/// mounted (`/` always is) it passes. Before, every read passed, and the
/// resync took the few files under the mount point for b's tree.
#[test]
fn a_read_of_a_volume_that_is_gone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("b-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("stale.txt"), "under the mount point").unwrap();
    let groups = vec![("web".to_string(), "b".to_string())];
    let _b = Authority::open(dir.path(), "b", &groups).unwrap();
    let read = Transfer {
        push: false,
        ..push("appdata-b")
    };
    let cfg = config_with(
        dir.path(),
        &data.display().to_string(),
        "mount_point = true",
    );
    let e = check(&cfg, "b", &read).unwrap_err();
    assert!(
        e.starts_with("warden rsync-gate: refused a read of module \"appdata-b\" of site b")
            && e.contains("declared a mount point (mount_point = true) and is not one now")
            && e.contains("is not the group's data"),
        "{e}"
    );
    // recorded, not declared
    let recorded = format!(r#"{{"mounted": {{"web": "{}"}}}}"#, data.display());
    std::fs::write(dir.path().join(crate::volumes::FILE_NAME), recorded).unwrap();
    let cfg = config_with(dir.path(), &data.display().to_string(), "");
    let e = check(&cfg, "b", &read).unwrap_err();
    assert!(e.contains("was a mount point and is not one now"), "{e}");
    std::fs::remove_file(dir.path().join(crate::volumes::FILE_NAME)).unwrap();
    assert!(check(&cfg, "b", &read).is_ok());
    let cfg = config_with(dir.path(), "/", "mount_point = true");
    assert!(check(&cfg, "b", &read).is_ok());
}

/// A push states its order (the daemon's `early exec` kept it): one
/// from a site behind the epoch this standby knows of the group is
/// refused, saying so; so is one that states none, or names another
/// group or this site. Before, a standby took a push from any site that
/// still believed it was active.
#[test]
fn a_push_stated_at_an_older_epoch_than_known_here_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let groups = vec![("web".to_string(), "a".to_string())];
    let b = Authority::open(dir.path(), "b", &groups).unwrap();
    let demote = Command::new("web", 5, CommandKind::Demote).to_site("b");
    b.admit(&demote).unwrap();
    b.record(&demote).unwrap();
    let stating = |group: &str, site: &str, epoch: u64| Transfer {
        order: Stated::Order(PushOrder {
            group: group.into(),
            site: site.into(),
            epoch,
        }),
        ..push("appdata-b")
    };
    let e = check(&cfg, "b", &stating("web", "a", 4)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 4, but site b knows epoch 5"),
        "{e}"
    );
    for epoch in [5, 6] {
        let ok = check(&cfg, "b", &stating("web", "a", epoch)).unwrap();
        assert!(
            ok.contains(&format!("(site a for group web at epoch {epoch})")),
            "{ok}"
        );
    }
    let e = check(&cfg, "b", &stating("db", "a", 9)).unwrap_err();
    assert!(e.contains("replicates group \"db\""), "{e}");
    for site in ["b", "z"] {
        let e = check(&cfg, "b", &stating("web", site, 9)).unwrap_err();
        assert!(e.contains("not another site of group web"), "{e}");
    }
    let silent = Transfer {
        order: Stated::Nothing,
        ..push("appdata-b")
    };
    let e = check(&cfg, "b", &silent).unwrap_err();
    assert!(e.contains("states no order"), "{e}");
    // A read is not judged by any order.
    let read = Transfer {
        push: false,
        ..stating("web", "a", 1)
    };
    assert!(check(&cfg, "b", &read).is_ok());
}

/// Standby b of group web at epoch 4, its agent started again (its
/// `untold` marker written) and not told anything yet.
fn restarted_at_epoch_4(state_dir: &std::path::Path) -> Authority {
    let groups = vec![("web".to_string(), "a".to_string())];
    let b = Authority::open(state_dir, "b", &groups).unwrap();
    b.observe(&BTreeMap::from([("web".to_string(), 4)]));
    drop(b);
    let b = Authority::open(state_dir, "b", &groups).unwrap();
    b.untold();
    b
}

/// A push into b's module stating site a's order of group web at `epoch`.
fn stating(epoch: u64) -> Transfer {
    Transfer {
        order: Stated::Order(PushOrder {
            group: "web".into(),
            site: "a".into(),
            epoch,
        }),
        ..push("appdata-b")
    }
}

/// Three sites or more: a failover a → c was made while standby b was
/// down, and b's agent restarts at the epoch it had (4); a, deposed and
/// cut off, still pushes to b stating that epoch. Until b's agent has
/// heard the orchestrator, every push is refused (whatever epoch it
/// states: a forged high one raises nothing); the orchestrator's answer
/// says epoch 5, and a's push is then refused as older, one at 5 passes.
/// Before, a's push at epoch 4 landed at b.
#[test]
fn a_push_waits_until_the_agent_has_heard_the_orchestrator_since_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = three_sites(dir.path());
    let b = restarted_at_epoch_4(dir.path());
    for epoch in [4, 9] {
        let e = check(&cfg, "b", &stating(epoch)).unwrap_err();
        assert!(
            e.contains("site b's agent has not heard from the orchestrator since it started")
                && e.contains("epoch 4 of group web here may be older")
                && !e.contains("  "),
            "{e}"
        );
    }
    let e = check(&cfg, "b", &push("appdata-b")).unwrap_err();
    assert!(e.contains("has not heard from the orchestrator"), "{e}");
    let read = Transfer {
        push: false,
        ..stating(4)
    };
    assert!(
        check(&cfg, "b", &read).is_ok(),
        "a read changes nothing here"
    );
    b.observe(&BTreeMap::from([("web".to_string(), 5)]));
    let e = check(&cfg, "b", &stating(4)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 4, but site b knows epoch 5"),
        "{e}"
    );
    assert!(check(&cfg, "b", &stating(5)).is_ok());
}

/// The same restart with two sites: no failover can have been missed (the
/// site failed over to is b itself, active on disk from its promote), so
/// the wait would only stop replication while the orchestrator cannot be
/// reached. A's push at b's epoch lands; one stated older is refused as
/// always; b's own config naming a third site makes it wait again.
#[test]
fn with_two_sites_a_restarted_standby_takes_the_active_sites_push_before_it_heard_the_orchestrator()
{
    let dir = tempfile::tempdir().unwrap();
    let _b = restarted_at_epoch_4(dir.path());
    let cfg = config(dir.path());
    let r = check(&cfg, "b", &stating(4));
    assert!(r.is_ok(), "{r:?}");
    let e = check(&cfg, "b", &stating(3)).unwrap_err();
    assert!(e.contains("but site b knows epoch 4"), "{e}");
    let e = check(&three_sites(dir.path()), "b", &stating(4)).unwrap_err();
    assert!(e.contains("has not heard from the orchestrator"), "{e}");
}

/// Three sites: a, active at epoch 4 and pushing into standby b, hears of
/// epoch 5 (a failover to c) before its stop arrives (cut off from the
/// orchestrator after that answer, or its executor busy with another
/// group's hooks). Its pushes go on stating its own order's epoch, 4 —
/// refused at b, which knows 5 — and its replicator sends nothing more
/// under that order. A newer start toward the same peer (a promoted again
/// at 6, its replicator kept) states 6. Before, a stated the epoch it
/// had merely heard, 5, and b's gate let the deposed site's push in.
#[test]
fn a_deposed_site_that_heard_the_new_epoch_states_its_own_and_sends_nothing() {
    use crate::replicate::rsync::StatedPush;
    use crate::replicate::OrderCheck;
    use std::sync::Arc;
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let groups = vec![("web".to_string(), "a".to_string())];
    let a = Arc::new(Authority::open(a_dir.path(), "a", &groups).unwrap());
    let promote = |epoch| Command::new("web", epoch, CommandKind::Promote).to_site("a");
    a.admit(&promote(4)).unwrap();
    a.record(&promote(4)).unwrap();
    let judged = a.clone();
    let pushing = StatedPush {
        order: PushOrder {
            group: "web".into(),
            site: "a".into(),
            epoch: 4,
        },
        now: Some(OrderCheck::new(4, move |e| judged.still_active("web", e))),
    };
    assert!(pushing.stands().is_ok());
    let b = Authority::open(b_dir.path(), "b", &groups).unwrap();
    b.observe(&BTreeMap::from([("web".to_string(), 4)]));
    let cfg = three_sites(b_dir.path());
    let stated = |p: &StatedPush| Transfer {
        order: Stated::Order(PushOrder::parse(&p.line()).unwrap()),
        ..push("appdata-b")
    };
    assert!(check(&cfg, "b", &stated(&pushing)).is_ok(), "a's push at 4");

    // The failover to c at epoch 5: both a and b hear of it.
    a.observe(&BTreeMap::from([("web".to_string(), 5)]));
    b.observe(&BTreeMap::from([("web".to_string(), 5)]));
    assert!(
        pushing.line().contains("epoch=4"),
        "a deposed site states the epoch it heard of: {}",
        pushing.line()
    );
    let e = check(&cfg, "b", &stated(&pushing)).unwrap_err();
    assert!(
        e.contains("a push of group web from site a at epoch 4, but site b knows epoch 5"),
        "{e}"
    );
    let why = pushing.stands().unwrap_err();
    assert!(
        why.contains("epoch 5 of group web is known at site a"),
        "{why}"
    );

    // a is promoted again at 6 and its start keeps the replicator.
    a.admit(&promote(6)).unwrap();
    a.record(&promote(6)).unwrap();
    pushing.now.as_ref().unwrap().raise(6);
    assert!(pushing.stands().is_ok());
    assert!(pushing.line().contains("epoch=6"), "{}", pushing.line());
    b.observe(&BTreeMap::from([("web".to_string(), 6)]));
    assert!(check(&cfg, "b", &stated(&pushing)).is_ok(), "a's push at 6");
}
