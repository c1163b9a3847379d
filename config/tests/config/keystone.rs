//! `keystone = { … }` tables: a Swift site's login and the `keystone` and
//! `swift` checks; every mistake at its place.

use warden_config::{CheckKind, KeystoneConfig};

use crate::{find, ok, pos_of, problems, show, BASE};

const SWIFT_KS: &str = r#"
[groups.web.replication]
plan = "swift"
containers = ["photos"]

[groups.web.replication.sites.ca.keystone]
auth_url = "http://10.0.0.5:5000/v3"
user = "warden"
password = { file = "/etc/warden/keystone.pw" }
project = "dr"
region = "ca"

[groups.web.replication.sites.tx.keystone]
auth_url = "http://10.0.0.5:5000/v3"
application_credential_id = "d28121900aa04cb5b22d2c9e3dee351d"
application_credential_secret = { env = "WARDEN_APP_CRED" }
region = "tx"
interface = "internal"
"#;

#[test]
fn a_swift_site_logs_in_with_keystone_by_password_or_application_credential() {
    let c = ok(&format!("{BASE}{SWIFT_KS}"));
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    let ca: &KeystoneConfig = r.sites["ca"].keystone.as_ref().unwrap();
    assert_eq!(ca.user.as_deref(), Some("warden"));
    assert_eq!(
        (ca.user_domain(), ca.project_domain()),
        ("Default", "Default")
    );
    assert_eq!(ca.interface(), "public");
    let tx = r.sites["tx"].keystone.as_ref().unwrap();
    assert_eq!(tx.interface(), "internal");
    assert!(r.sites["tx"].auth_url.is_none());
    // the same login under swift-container-sync
    ok(&format!("{BASE}{SWIFT_KS}")
        .replace(
            "plan = \"swift\"",
            "plan = \"swift-container-sync\"\nrealm = \"r1\"\nsync_key = { env = \"SK\" }",
        )
        .replace(
            "region = \"ca\"",
            "region = \"ca\"\n[groups.web.replication.sites.ca]\ncluster = \"c1\"",
        )
        .replace(
            "interface = \"internal\"",
            "interface = \"internal\"\n[groups.web.replication.sites.tx]\ncluster = \"c2\"",
        ));
}

#[test]
fn a_keystone_login_is_whole_one_way_and_said_where() {
    // both ways at once
    let text = format!("{BASE}{SWIFT_KS}").replace(
        "project = \"dr\"\n",
        "project = \"dr\"\napplication_credential_id = \"abc\"\n",
    );
    let p = problems(&text);
    let e = find(
        &p,
        "groups.web.replication.sites.ca.keystone.application_credential_id",
    );
    assert!(e.message.contains("not both"), "{}", show(&p));
    assert_eq!((e.line, e.col), pos_of(&text, "\"abc\""));
    // half a password login
    let text = format!("{BASE}{SWIFT_KS}").replace("project = \"dr\"\n", "");
    let p = problems(&text);
    let e = find(&p, "groups.web.replication.sites.ca.keystone.project");
    assert!(
        e.message.contains("a password login needs project"),
        "{}",
        show(&p)
    );
    // half an application credential
    let text = format!("{BASE}{SWIFT_KS}").replace(
        "application_credential_secret = { env = \"WARDEN_APP_CRED\" }\n",
        "",
    );
    let p = problems(&text);
    find(
        &p,
        "groups.web.replication.sites.tx.keystone.application_credential_secret",
    );
    // no login at all
    let text = format!("{BASE}{SWIFT_KS}")
        .replace(
            "application_credential_id = \"d28121900aa04cb5b22d2c9e3dee351d\"\n",
            "",
        )
        .replace(
            "application_credential_secret = { env = \"WARDEN_APP_CRED\" }\n",
            "",
        );
    let p = problems(&text);
    assert!(
        find(&p, "groups.web.replication.sites.tx.keystone")
            .message
            .contains("missing: how to log in"),
        "{}",
        show(&p)
    );
    // a domain beside an application credential, a wrong interface, a bad URL,
    // a secret pasted in place
    let text = format!("{BASE}{SWIFT_KS}")
        .replace(
            "interface = \"internal\"",
            "interface = \"private\"\nuser_domain = \"Default\"",
        )
        .replace(
            "http://10.0.0.5:5000/v3\"\nuser",
            "10.0.0.5:5000/v3\"\nuser",
        )
        .replace("{ env = \"WARDEN_APP_CRED\" }", "{ env = \"not a var\" }");
    let p = problems(&text);
    let e = find(&p, "groups.web.replication.sites.tx.keystone.interface");
    assert!(
        e.message.contains("\"public\", \"internal\" or \"admin\""),
        "{}",
        show(&p)
    );
    assert_eq!((e.line, e.col), pos_of(&text, "\"private\""));
    find(&p, "groups.web.replication.sites.tx.keystone.user_domain");
    find(&p, "groups.web.replication.sites.ca.keystone.auth_url");
    find(
        &p,
        "groups.web.replication.sites.tx.keystone.application_credential_secret.env",
    );
    // a query would end up before /auth/tokens
    let text = format!("{BASE}{SWIFT_KS}").replace(
        "http://10.0.0.5:5000/v3\"\nuser",
        "http://10.0.0.5:5000/v3?x=1\"\nuser",
    );
    let p = problems(&text);
    assert!(
        find(&p, "groups.web.replication.sites.ca.keystone.auth_url")
            .message
            .contains("no query or fragment"),
        "{}",
        show(&p)
    );
    // an unknown key in the table
    let text =
        format!("{BASE}{SWIFT_KS}").replace("region = \"ca\"", "region = \"ca\"\ntenant = \"dr\"");
    let p = problems(&text);
    assert!(show(&p).contains("tenant"), "{}", show(&p));
}

#[test]
fn tempauth_and_keystone_are_not_mixed_and_one_is_needed() {
    let text = format!("{BASE}{SWIFT_KS}").replace(
        "[groups.web.replication.sites.ca.keystone]",
        "[groups.web.replication.sites.ca]\nkey = { env = \"SWIFT_KEY\" }\n\n[groups.web.replication.sites.ca.keystone]",
    );
    let p = problems(&text);
    let e = find(&p, "groups.web.replication.sites.ca.key");
    assert!(
        e.message.contains(
            "logs in with its keystone table; auth_url, user and key are tempauth's: remove it"
        ),
        "{}",
        show(&p)
    );
    assert_eq!((e.line, e.col), pos_of(&text, "{ env = \"SWIFT_KEY\" }"));
    // neither: tempauth's keys asked for, keystone offered
    let text = format!("{BASE}\n[groups.web.replication]\nplan = \"swift\"\ncontainers = [\"p\"]\n[groups.web.replication.sites.ca]\nmanifest = \"/m\"\n[groups.web.replication.sites.tx]\nmanifest = \"/n\"\n");
    let p = problems(&text);
    let e = find(&p, "groups.web.replication.sites.ca.auth_url");
    assert!(
        e.message.contains(
            "for every site of the group (tempauth: auth_url, user, key), or a keystone table instead"
        ),
        "{}",
        show(&p)
    );
    // keystone is no rsync key
    let text = format!(
        "{BASE}\n[groups.web.replication]\nplan = \"rsync\"\n[groups.web.replication.sites.ca]\npath = \"/d\"\nuser = \"u\"\nmodule = \"h/m\"\npassword = {{ env = \"P\" }}\nkeystone = {{ auth_url = \"http://k:5000/v3\" }}\n[groups.web.replication.sites.tx]\npath = \"/d\"\nuser = \"u\"\nmodule = \"h/m\"\npassword = {{ env = \"P\" }}\n"
    );
    let p = problems(&text);
    assert!(
        find(&p, "groups.web.replication.sites.ca.keystone")
            .message
            .contains("does not use"),
        "{}",
        show(&p)
    );
}

const CHECKS: &str = r#"
[[sites.tx.checks]]
name = "identity"
kind = "keystone"
keystone = { auth_url = "http://10.2.0.5:5000/v3", application_credential_id = "abc", application_credential_secret = { env = "AC" } }

[[sites.tx.checks]]
name = "object store"
kind = "swift"
container = "canary"
keystone = { auth_url = "http://10.2.0.5:5000/v3", user = "warden", password = { env = "PW" }, project = "dr", region = "tx" }
"#;

#[test]
fn keystone_and_swift_checks() {
    let c = ok(&format!("{BASE}{CHECKS}"));
    let checks = &c.sites["tx"].checks;
    assert_eq!(*checks[0].kind.get_ref(), CheckKind::Keystone);
    assert_eq!(*checks[1].kind.get_ref(), CheckKind::Swift);
    assert_eq!(checks[1].container.as_deref(), Some("canary"));
    // no login
    let text = format!("{BASE}{CHECKS}").replace(
        "keystone = { auth_url = \"http://10.2.0.5:5000/v3\", application_credential_id = \"abc\", application_credential_secret = { env = \"AC\" } }\n",
        "",
    );
    let p = problems(&text);
    let e = find(&p, "sites.tx.checks[0].keystone");
    assert!(
        e.message.contains("kind \"keystone\" needs keystone"),
        "{}",
        show(&p)
    );
    assert_eq!((e.line, e.col), pos_of(&text, "\"keystone\"\n\n"));
    // a container on another kind, a bad container name, a half login
    let text = format!("{BASE}{CHECKS}")
        .replace("container = \"canary\"", "container = \"a/b\"")
        .replace(
            "url = \"http://127.0.0.1:8080/healthz\"",
            "url = \"http://127.0.0.1:8080/healthz\"\ncontainer = \"c\"",
        )
        .replace(", project = \"dr\"", "");
    let p = problems(&text);
    find(&p, "sites.tx.checks[1].container");
    for dots in [".", ".."] {
        let text = format!("{BASE}{CHECKS}")
            .replace("container = \"canary\"", &format!("container = \"{dots}\""));
        let p = problems(&text);
        assert!(
            find(&p, "sites.tx.checks[1].container")
                .message
                .contains("not \".\" or \"..\""),
            "{}",
            show(&p)
        );
    }
    assert!(
        find(&p, "sites.ca.checks[0].container")
            .message
            .contains("not used by this kind"),
        "{}",
        show(&p)
    );
    find(&p, "sites.tx.checks[1].keystone.project");
    // an interval: positive, and only on a site's own checks
    let text = format!("{BASE}{CHECKS}").replace(
        "container = \"canary\"",
        "container = \"canary\"\ninterval = \"0s\"",
    );
    let p = problems(&text);
    find(&p, "sites.tx.checks[1].interval");
    let text = format!("{BASE}{CHECKS}\n[[sites.tx.endpoints]]\nname = \"e\"\nkind = \"tcp\"\naddress = \"10.2.0.10:443\"\ninterval = \"5s\"\n");
    let p = problems(&text);
    assert!(
        find(&p, "sites.tx.endpoints[0].interval")
            .message
            .contains("prober's schedule"),
        "{}",
        show(&p)
    );
    let c = ok(&format!("{BASE}{CHECKS}").replace(
        "container = \"canary\"",
        "container = \"canary\"\ninterval = \"30s\"",
    ));
    assert_eq!(
        c.sites["tx"].checks[1].every(),
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        c.sites["tx"].checks[0].every(),
        Some(std::time::Duration::from_secs(10))
    );
    // not an endpoint: other hosts probe endpoints, without the login's secret
    let text = format!("{BASE}{CHECKS}").replace(
        "[[sites.tx.checks]]\nname = \"identity\"",
        "[[sites.tx.endpoints]]\nname = \"identity\"",
    );
    let p = problems(&text);
    assert!(
        find(&p, "sites.tx.endpoints[0].kind")
            .message
            .contains("allowed kinds are \"http\", \"tcp\" and \"dns\""),
        "{}",
        show(&p)
    );
}
