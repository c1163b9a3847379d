//! `[groups.NAME.replication]`: each plan's keys, per-site tables, and every
//! mistake reported at its place.

use std::time::Duration;

use warden_config::{parse_rsync_module, parse_ssh_host, Divergent, ReplicationPlan};

use crate::{find, ok, pos_of, problems, show, BASE};

const RSYNC: &str = r#"
[groups.web.replication]
plan = "rsync"
divergent = "quarantine"
resync_lag_max = "500ms"

[groups.web.replication.sites.ca]
path = "/srv/data"
module = "10.1.0.10:8873/data"
user = "warden"
password = { file = "/etc/warden/rsync.pw" }

[groups.web.replication.sites.tx]
path = "/srv/data"
module = "10.2.0.10/data"
user = "warden"
password = { env = "RSYNC_PW" }
manifest = "/var/lib/warden/web.manifest.json"
"#;

#[test]
fn rsync_plan_parses_with_defaults() {
    let c = ok(&format!("{BASE}{RSYNC}"));
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!(r.plan, ReplicationPlan::Rsync);
    assert_eq!(r.divergent, Divergent::Quarantine);
    assert_eq!(r.resync_lag_max, Duration::from_millis(500));
    assert_eq!(r.resync_timeout, Duration::from_secs(3600));
    assert_eq!(
        r.sites["ca"].rsync_target(),
        Some(("10.1.0.10".into(), 8873, "data".into()))
    );
    assert_eq!(
        r.sites["tx"].rsync_target(),
        Some(("10.2.0.10".into(), 873, "data".into()))
    );
    // No table: no replication, and divergent defaults to keep.
    assert!(ok(BASE).groups["web"].replication.is_none());
    assert_eq!(Divergent::default(), Divergent::Keep);
}

#[test]
fn rsync_module_syntax() {
    assert_eq!(
        parse_rsync_module("[fd00::1]:900/m").unwrap(),
        ("fd00::1".into(), 900, "m".into())
    );
    for bad in ["host", "host/", "host:0/m", "host:x/m", "/m", "h/a/b"] {
        assert!(parse_rsync_module(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn rsync_mistakes_are_reported_where_they_are() {
    let text = format!("{BASE}{RSYNC}")
        .replace(
            "module = \"10.2.0.10/data\"\n",
            "module = \"10.2.0.10:99999/data\"\n",
        )
        .replace(
            "password = { env = \"RSYNC_PW\" }\n",
            "auth_url = \"http://x/auth/v1.0\"\n",
        )
        .replace("divergent = \"quarantine\"", "divergent = \"merge\"");
    let p = problems(&text);
    let m = find(&p, "groups.web.replication.sites.tx.module");
    assert!(m.message.contains("65535"), "{}", show(&p));
    assert_eq!((m.line, m.col), pos_of(&text, "\"10.2.0.10:99999/data\""));
    let pw = find(&p, "groups.web.replication.sites.tx.password");
    assert!(pw.message.contains("needs password"), "{}", show(&p));
    let au = find(&p, "groups.web.replication.sites.tx.auth_url");
    assert!(au.message.contains("does not use"), "{}", show(&p));
    let d = find(&p, "groups.web.replication.divergent");
    assert!(
        d.message.contains("keep") && d.message.contains("quarantine"),
        "{}",
        show(&p)
    );
}

/// `RSYNC` with site tx reached over ssh instead of a daemon module.
fn over_ssh() -> String {
    format!("{BASE}{RSYNC}").replace(
        "module = \"10.2.0.10/data\"\nuser = \"warden\"\npassword = { env = \"RSYNC_PW\" }\n",
        "ssh = \"10.2.0.10:2222\"\nuser = \"warden\"\nssh_key = \"/etc/warden/ssh/id_ed25519\"\nknown_hosts = \"/etc/warden/ssh/known_hosts\"\n",
    )
}

#[test]
fn rsync_over_ssh_parses_and_its_mistakes_are_reported_where_they_are() {
    let c = ok(&over_ssh());
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!(r.sites["tx"].ssh_target(), Some(("10.2.0.10".into(), 2222)));
    assert_eq!(r.sites["tx"].rsync_target(), None);
    assert_eq!(parse_ssh_host("[fd00::1]").unwrap(), ("fd00::1".into(), 22));
    for bad in ["", "root@h", "h/x", "h:0", "-oProxyCommand=x", "h x"] {
        assert!(parse_ssh_host(bad).is_err(), "{bad} accepted");
    }

    // Both transports on one site.
    let both = over_ssh().replace(
        "ssh = \"10.2.0.10:2222\"\n",
        "ssh = \"10.2.0.10:2222\"\nmodule = \"10.2.0.10/data\"\n",
    );
    let p = problems(&both);
    let m = find(&p, "groups.web.replication.sites.tx.ssh");
    assert!(m.message.contains("not both"), "{}", show(&p));
    assert_eq!((m.line, m.col), pos_of(&both, "\"10.2.0.10:2222\""));

    // Half of ssh: no known_hosts (the host key is always checked).
    let half = over_ssh().replace("known_hosts = \"/etc/warden/ssh/known_hosts\"\n", "");
    let p = problems(&half);
    let k = find(&p, "groups.web.replication.sites.tx.known_hosts");
    assert!(
        k.message.contains("rsync over ssh needs known_hosts"),
        "{}",
        show(&p)
    );

    // A bad host, a relative key, a quote in a path that goes into ssh's command line.
    let bad = over_ssh()
        .replace("\"10.2.0.10:2222\"", "\"warden@10.2.0.10\"")
        .replace("\"/etc/warden/ssh/id_ed25519\"", "\"id_ed25519\"")
        .replace(
            "\"/etc/warden/ssh/known_hosts\"",
            "'/etc/warden/ssh/kn\"own'",
        );
    let p = problems(&bad);
    let h = find(&p, "groups.web.replication.sites.tx.ssh");
    assert!(h.message.contains("HOST[:PORT]"), "{}", show(&p));
    assert_eq!((h.line, h.col), pos_of(&bad, "\"warden@10.2.0.10\""));
    let key = find(&p, "groups.web.replication.sites.tx.ssh_key");
    assert!(key.message.contains("absolute"), "{}", show(&p));
    let kh = find(&p, "groups.web.replication.sites.tx.known_hosts");
    assert!(kh.message.contains("must not contain"), "{}", show(&p));
}

#[test]
fn a_missing_site_table_and_a_stranger_site() {
    let text = format!("{BASE}{RSYNC}").replace(
        "[groups.web.replication.sites.tx]",
        "[groups.web.replication.sites.ny]",
    );
    let p = problems(&text);
    find(&p, "groups.web.replication.sites.ny");
    let tx = find(&p, "groups.web.replication.sites.tx");
    assert!(tx
        .message
        .contains("needs a [groups.web.replication.sites.tx] table"));
}

const SWIFT: &str = r#"
[groups.web.replication]
plan = "swift-container-sync"
containers = ["photos", "docs"]
realm = "realm1"
sync_key = { file = "/etc/warden/sync.key" }

[groups.web.replication.sites.ca]
auth_url = "http://10.1.0.10:8080/auth/v1.0"
user = "test:tester"
key = { file = "/etc/warden/swift-ca.key" }
cluster = "clustera"

[groups.web.replication.sites.tx]
auth_url = "http://10.2.0.10:8080/auth/v1.0"
user = "test:tester"
key = { env = "SWIFT_TX_KEY" }
cluster = "clusterb"
"#;

#[test]
fn swift_plans() {
    let c = ok(&format!("{BASE}{SWIFT}"));
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!(r.plan, ReplicationPlan::SwiftContainerSync);
    assert_eq!(r.containers, ["photos", "docs"]);
    // plain swift: no realm, sync_key or cluster
    let text = format!("{BASE}{SWIFT}").replace("swift-container-sync", "swift");
    let p = problems(&text);
    for k in [
        "groups.web.replication.realm",
        "groups.web.replication.sync_key",
        "groups.web.replication.sites.ca.cluster",
    ] {
        assert!(find(&p, k).message.contains("does not use"), "{}", show(&p));
    }
    // container sync without realm, and an empty placement list
    let text = format!("{BASE}{SWIFT}")
        .replace("realm = \"realm1\"\n", "")
        .replace("containers = [\"photos\", \"docs\"]", "containers = []");
    let p = problems(&text);
    find(&p, "groups.web.replication.realm");
    find(&p, "groups.web.replication.containers");
}

#[test]
fn none_and_command_plans() {
    ok(&format!(
        "{BASE}\n[groups.web.replication]\nplan = \"none\"\n"
    ));
    ok(&format!(
        "{BASE}\n[groups.web.replication]\nplan = \"command\"\nstart = [\"/usr/local/bin/db-repl\", \"start\"]\nresync = [\"/usr/local/bin/db-repl\", \"resync\"]\n"
    ));
    let p = problems(&format!(
        "{BASE}\n[groups.web.replication]\nplan = \"command\"\nstart = []\n"
    ));
    find(&p, "groups.web.replication.start");
    find(&p, "groups.web.replication.resync");
}

/// A placement container, a realm or a cluster name the agents refuse
/// when the replication starts (at a failover: "containers: \"..\" is not
/// a usable container name") was accepted by check-config, which refused
/// only an empty name or a '/': "." and "..", a control character, a name
/// whose quarantine container (NAME.warden-quarantine) passes Swift's 256
/// bytes. Each is refused at its place; 238 bytes is the longest.
#[test]
fn placement_names_the_agents_refuse_are_refused_here() {
    let long = "c".repeat(239);
    for (bad, why) in [
        ("..", "another path"),
        (".", "another path"),
        ("ph\\u0001otos", "control character"),
        (long.as_str(), "quarantine container"),
    ] {
        let text = format!("{BASE}{SWIFT}").replace("\"photos\"", &format!("\"{bad}\""));
        let p = problems(&text);
        let found = find(&p, "groups.web.replication.containers[0]");
        assert_eq!(
            (found.line, found.col),
            pos_of(&text, &format!("\"{bad}\"")),
            "{found}"
        );
        assert!(found.message.contains(why), "{bad}: {found}");
    }
    ok(&format!("{BASE}{SWIFT}").replace("\"photos\"", &format!("\"{}\"", "c".repeat(238))));
    for (from, key) in [
        ("realm = \"realm1\"", "groups.web.replication.realm"),
        (
            "cluster = \"clusterb\"",
            "groups.web.replication.sites.tx.cluster",
        ),
    ] {
        let to = from.replace(['1', 'b'], "/x");
        let p = problems(&format!("{BASE}{SWIFT}").replace(from, &to));
        find(&p, key);
    }
}

/// A command plan's optional phases were never checked: `stop = []`, a
/// `verify` whose program holds a NUL, `lag = [""]` passed check-config,
/// and then every move away from the site failed its stop ("empty
/// command"), every verify could not start, and the lag poller failed
/// every 5 s. Each is refused at its key, as `start` and `resync` are.
#[test]
fn a_command_plans_optional_phases_are_checked_too() {
    let text = format!(
        "{BASE}\n[groups.web.replication]\nplan = \"command\"\n\
         start = [\"/usr/local/bin/db-repl\", \"start\"]\nresync = [\"/usr/local/bin/db-repl\", \"resync\"]\n\
         stop = []\nverify = [\"/usr/local/bin/db-repl\\u0000\"]\nlag = [\"\", \"lag\"]\n"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{}", show(&p));
    for (key, needle) in [
        ("groups.web.replication.stop", "[]"),
        (
            "groups.web.replication.verify",
            "[\"/usr/local/bin/db-repl\\u0000\"]",
        ),
        ("groups.web.replication.lag", "[\"\", \"lag\"]"),
    ] {
        let found = find(&p, key);
        assert_eq!((found.line, found.col), pos_of(&text, needle), "{found}");
    }
}

/// A key a plan needs, written empty or left out, is reported at the key
/// when it is written and at the plan when it is not, never showing the
/// plan's value as its own. `containers = []` was placed at the plan's
/// line and read `groups.web.replication.containers = "swift": plan
/// "swift" needs containers = ...`, naming a value the file never gave it.
#[test]
fn a_needed_key_is_reported_where_it_is_written_with_its_own_value() {
    let text = format!("{BASE}{SWIFT}")
        .replace("swift-container-sync", "swift")
        .replace("realm = \"realm1\"\n", "")
        .replace("containers = [\"photos\", \"docs\"]", "containers = []");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("sync_key") && !l.starts_with("cluster"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = crate::one(&text);
    assert_eq!(p.key, "groups.web.replication.containers", "{p}");
    assert_eq!((p.line, p.col), pos_of(&text, "[]"), "{p}");
    assert_eq!(p.value.as_deref(), Some("[]"), "{p}");
    // Left out: at the plan, with no value.
    let missing = text.replace("containers = []\n", "");
    let p = crate::one(&missing);
    assert_eq!(p.key, "groups.web.replication.containers", "{p}");
    assert_eq!((p.line, p.col), pos_of(&missing, "\"swift\""), "{p}");
    assert_eq!(p.value, None, "{p}");
    let p = crate::one(&format!(
        "{BASE}\n[groups.web.replication]\nplan = \"command\"\nstart = [\"/bin/true\"]\n"
    ));
    assert_eq!(
        (p.key.as_str(), p.value.as_deref()),
        ("groups.web.replication.resync", None),
        "{p}"
    );
}

/// A share given as a string was refused with "expected f64, found a
/// string": a Rust type's name, where every other number says what it
/// takes. It now asks for a number, at the value.
#[test]
fn a_share_of_the_wrong_type_asks_for_a_number() {
    let text = format!("{BASE}{RSYNC}").replace(
        "plan = \"rsync\"\n",
        "plan = \"rsync\"\nmax_delete_share = \"0.5\"\n",
    );
    let p = crate::one(&text);
    assert_eq!(p.key, "groups.web.replication.max_delete_share", "{p}");
    assert_eq!((p.line, p.col), pos_of(&text, "\"0.5\""), "{p}");
    assert!(
        p.message.contains("expected a number such as 0.1") && !p.message.contains("f64"),
        "{p}"
    );
    ok(&text.replace("\"0.5\"", "1"));
}

/// `interval` and `concurrency` are the Swift plans' (how often listings
/// are compared, copies at once): given to an rsync plan they were taken
/// and did nothing, as if tuning its rounds. Refused at their place, even
/// at their defaults; a Swift plan takes them.
#[test]
fn the_swift_plans_tuning_keys_are_refused_on_an_rsync_plan() {
    let text = format!("{BASE}{RSYNC}").replace(
        "resync_lag_max = \"500ms\"",
        "resync_lag_max = \"500ms\"\ninterval = \"10s\"\nconcurrency = 16",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    for (k, v) in [("interval", "\"10s\""), ("concurrency", "16")] {
        let e = find(&p, &format!("groups.web.replication.{k}"));
        assert!(e.message.contains("does not use this key"), "{}", show(&p));
        assert_eq!((e.line, e.col), pos_of(&text, v), "{k}");
    }
    let swift = format!("{BASE}{SWIFT}").replace(
        "containers = [\"photos\", \"docs\"]",
        "containers = [\"photos\", \"docs\"]\ninterval = \"10s\"\nconcurrency = 4",
    );
    let c = ok(&swift);
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!((r.interval, r.concurrency), (Duration::from_secs(10), 4));
}
