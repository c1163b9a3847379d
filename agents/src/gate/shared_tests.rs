//! The gate where two groups of a site share a module name (two daemons,
//! one per host of the site): the daemon names the module only, so the
//! push is judged by every group it may write into, never by whichever
//! the config lists first.

use super::*;
use crate::authority::Authority;
use crate::wire::{Command, CommandKind};

/// Groups `api` (b standby) and `web` (b to be promoted), each with an
/// rsync plan; b's table of each group gets `b_api` and `b_web`.
fn two_groups(state_dir: &std::path::Path, b_api: &str, b_web: &str) -> Config {
    use super::test_config::{config, daemon_site, group};
    let a = |name: &str| daemon_site(&format!("/srv/a/{name}"), &format!("10.1.0.10/{name}"), "");
    let b = |extra: &str| format!("user = \"warden\"\n{extra}");
    config(
        state_dir,
        &[
            group("api", 8000, &a("api"), &b(b_api)),
            group("web", 8001, &a("web"), &b(b_web)),
        ],
    )
}

/// b's agent state: standby in both groups, then promoted in `web`.
fn b_active_in_web(dir: &std::path::Path) -> Authority {
    let groups = vec![
        ("api".to_string(), "a".to_string()),
        ("web".to_string(), "a".to_string()),
    ];
    let b = Authority::open(dir, "b", &groups).unwrap();
    let promote = Command::new("web", 3, CommandKind::Promote).to_site("b");
    b.admit(&promote).unwrap();
    b.record(&promote).unwrap();
    b
}

/// Site b runs one daemon per host, each with a module named `data`:
/// `api`'s (b a standby there) and `web`'s (b its active site). The daemon
/// names the module only, so a push into `data` may be `web`'s: refused
/// while b is active in either. Before, it was judged by `api` alone (the
/// first group listed) and landed in `web`'s data at its active site.
#[test]
fn a_module_name_two_groups_share_is_judged_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let password = r#"password = { file = "/nonexistent/never-read" }"#;
    let cfg = two_groups(
        dir.path(),
        &format!("path = \"/srv/b/api\"\nmodule = \"10.2.0.10/data\"\n{password}"),
        &format!("path = \"/srv/b/web\"\nmodule = \"10.2.0.11/data\"\n{password}"),
    );
    let push = Transfer {
        module: "data".into(),
        push: true,
        host: "10.1.0.10".into(),
        removes: false,
        order: super::order::Stated::NotAsked,
    };
    let b = b_active_in_web(dir.path());
    let e = check(&cfg, "b", &push).expect_err("b is web's active site");
    assert!(
        e.contains("site b is the active site of group web (epoch 3)"),
        "{e}"
    );
    // Demoted in `web` too: a standby of both, the push lands.
    let demote = Command::new("web", 4, CommandKind::Demote).to_site("b");
    b.admit(&demote).unwrap();
    b.record(&demote).unwrap();
    let ok = check(&cfg, "b", &push).unwrap();
    assert!(
        ok.contains("standby of group api") && ok.contains("standby of group web (epoch 4)"),
        "{ok}"
    );
}
