//! `deny_unknown_fields` in every table: an unknown key is reported alone, at
//! its own line:col, under its full dotted key, with the allowed keys.

use crate::{one, pos_of};

/// A valid config covering every table. `%NAME%` marks where an unknown key
/// can be put: on its own line for `[tables]`, after a comma for inline ones.
const TEMPLATE: &str = r#"%top%
[orchestrator]
listen = "10.0.0.2:7000"
data_dir = "/var/lib/warden"
operator_token = { file = "/etc/warden/operator.token"%operator_token% }
%orchestrator%

[detection]
interval = "500ms"
%detection%

[sites.ca]
agent_token = { env = "WARDEN_CA_TOKEN"%agent_token% }
%site%

[[sites.ca.checks]]
name = "app"
kind = "http"
url = "http://127.0.0.1:8080/healthz"
%check%

[[sites.ca.endpoints]]
name = "db"
kind = "tcp"
address = "db.ca.example.net:5432"
%endpoint%

[[sites.ca.promote]]
name = "db-promote"
command = ["/usr/local/bin/pg-promote"]
%promote%

[[sites.ca.demote]]
name = "stop"
command = ["/usr/bin/systemctl", "stop", "app"]
%demote%

[sites.tx]
agent_token = { env = "WARDEN_TX_TOKEN" }
checks = [{ name = "app", kind = "tcp", address = "127.0.0.1:8080"%inline_check% }]

[frontends.fe1]
control = "10.0.0.5:7100"
token = { file = "/etc/warden/fe1.token"%fe_token% }
%frontend%

[groups.app]
sites = ["ca", "tx"]
scheme = "hybrid"
%group%

[groups.app.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "10.0.0.5:443"
backends = { ca = "10.1.0.10:8443", tx = "10.2.0.10:8443" }
%group_frontend%

[groups.app.dns]
provider = "rfc2136"
name = "app.example.net"
server = "ns1.example.net:53"
zone = "example.net"
credentials = { file = "/etc/warden/tsig.key"%credentials% }
addresses = { fe1 = "10.0.0.5" }
%group_dns%
"#;

/// (marker, inline?, table key the unknown key lands in, a key the message must allow)
const CASES: &[(&str, bool, &str, &str)] = &[
    ("top", false, "", "orchestrator"),
    ("orchestrator", false, "orchestrator", "data_dir"),
    ("operator_token", true, "orchestrator.operator_token", "env"),
    ("detection", false, "detection", "hold_down"),
    ("site", false, "sites.ca", "agent_token"),
    ("agent_token", true, "sites.ca.agent_token", "file"),
    ("check", false, "sites.ca.checks[0]", "expect_status"),
    ("endpoint", false, "sites.ca.endpoints[0]", "address"),
    ("promote", false, "sites.ca.promote[0]", "command"),
    ("demote", false, "sites.ca.demote[0]", "timeout"),
    ("inline_check", true, "sites.tx.checks[0]", "body_contains"),
    ("frontend", false, "frontends.fe1", "control"),
    ("fe_token", true, "frontends.fe1.token", "env"),
    ("group", false, "groups.app", "fencing"),
    ("group_frontend", false, "groups.app.frontend", "backends"),
    ("group_dns", false, "groups.app.dns", "provider"),
    ("credentials", true, "groups.app.dns.credentials", "file"),
];

/// The template with an unknown key at `marker` and every other marker empty.
fn with_unknown(marker: &str, inline: bool) -> String {
    let mut text = TEMPLATE.to_string();
    for (m, _, _, _) in CASES {
        let fill = match (*m == marker, inline) {
            (false, _) => "",
            (true, true) => ", bogus_key = 1",
            (true, false) => "bogus_key = 1",
        };
        text = text.replace(&format!("%{m}%"), fill);
    }
    text
}

#[test]
fn template_is_valid() {
    crate::ok(&with_unknown("none", false));
}

#[test]
fn unknown_key_rejected_in_every_table() {
    for (marker, inline, table, allowed) in CASES {
        let text = with_unknown(marker, *inline);
        let p = one(&text);
        let want_key = if table.is_empty() {
            "bogus_key".to_string()
        } else {
            format!("{table}.bogus_key")
        };
        assert_eq!(p.key, want_key, "{marker}: {p}");
        assert_eq!((p.line, p.col), pos_of(&text, "bogus_key"), "{marker}: {p}");
        assert!(p.message.contains("unknown key"), "{marker}: {p}");
        assert!(
            p.message.contains(allowed),
            "{marker}: message should list {allowed:?}: {p}"
        );
        // The value of an unknown key is never shown.
        assert_eq!(p.value, None, "{marker}: {p}");
        assert!(
            p.to_string()
                .starts_with(&format!("test.conf:{}:{}: {want_key}: ", p.line, p.col)),
            "{p}"
        );
    }
}

#[test]
fn several_unknown_keys_in_one_table_are_all_reported() {
    let text = crate::BASE.replace(
        "interval = \"500ms\"",
        "interval = \"500ms\"\nfirst_bad = 1\nsecond_bad = \"x\"\nfall = 2",
    );
    let p = crate::problems(&text);
    assert_eq!(p.len(), 2, "{}", crate::show(&p));
    assert_eq!(p[0].key, "detection.first_bad");
    assert_eq!(p[1].key, "detection.second_bad");
    assert_eq!((p[1].line, p[1].col), pos_of(&text, "second_bad"));
}

#[test]
fn unknown_keys_in_sibling_array_entries_are_all_reported() {
    let text = crate::BASE.replace(
        "url = \"http://127.0.0.1:8080/healthz\"\n",
        "url = \"http://127.0.0.1:8080/healthz\"\nzz_one = 1\n\n[[sites.ca.checks]]\nname = \"b\"\nkind = \"tcp\"\naddress = \"h:1\"\nzz_two = 2\n",
    );
    let p = crate::problems(&text);
    assert_eq!(p.len(), 2, "{}", crate::show(&p));
    assert_eq!(p[0].key, "sites.ca.checks[0].zz_one");
    assert_eq!(p[1].key, "sites.ca.checks[1].zz_two");
    assert_eq!((p[1].line, p[1].col), pos_of(&text, "zz_two"));
}
