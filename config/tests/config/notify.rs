//! `[[orchestrator.notify]]`: webhooks and commands told of state changes;
//! a valid list, and each mistake at its key and line:col.

use crate::{find, ok, pos_of, problems, show, BASE};

/// BASE with `entries` appended (each a `[[orchestrator.notify]]` table).
fn with_notify(entries: &str) -> String {
    format!("{BASE}\n{entries}")
}

#[test]
fn a_webhook_and_a_command_parse_with_their_defaults() {
    let text = with_notify(
        r#"[[orchestrator.notify]]
name = "pager"
url = "https://hooks.example.net/warden"
secret = { file = "/etc/warden/notify.secret" }

[[orchestrator.notify]]
name = "log-it"
command = ["/usr/local/bin/log-event", "--tag", "warden"]
kinds = ["runbook_failed", "alert"]
timeout = "2s"
retry_for = "1h"
"#,
    );
    let c = ok(&text);
    let n = &c.orchestrator.notify;
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].timeout, std::time::Duration::from_secs(5));
    assert_eq!(n[0].retry_for, std::time::Duration::from_secs(600));
    assert!(n[0].wants("runbook_started") && n[0].wants("alert"));
    assert!(!n[0].wants("step_started"), "steps are not sent by default");
    assert!(n[1].wants("alert") && !n[1].wants("runbook_started"));
    assert_eq!(
        n[1].command.as_ref().unwrap()[0],
        "/usr/local/bin/log-event"
    );
}

#[test]
fn every_mistake_at_its_key() {
    let text = with_notify(
        r#"[[orchestrator.notify]]
name = "bad name!"
url = "ftp://hooks.example.net/x"

[[orchestrator.notify]]
name = "both"
url = "https://hooks.example.net/x"
command = ["/bin/true"]

[[orchestrator.notify]]
name = "neither"

[[orchestrator.notify]]
name = "cmd-secret"
command = ["/bin/true"]
secret = { env = "HOOK_SECRET" }
kinds = ["runbook_failed", "runbook_exploded"]
timeout = "0s"

[[orchestrator.notify]]
name = "both"
url = "https://user:pw@hooks.example.net/x"
retry_for = "30d"
"#,
    );
    let p = problems(&text);
    let name = find(&p, "orchestrator.notify[0].name");
    assert_eq!((name.line, name.col), pos_of(&text, "\"bad name!\""));
    let url = find(&p, "orchestrator.notify[0].url");
    assert!(
        url.message.contains("http") && url.value.is_none(),
        "not echoed: {url}"
    );
    assert!(!show(&p).contains("ftp://"), "{}", show(&p));
    let both = find(&p, "orchestrator.notify[1].command");
    assert!(both.message.contains("not both"), "{both}");
    let neither = find(&p, "orchestrator.notify[2]");
    assert!(neither.message.contains("missing"), "{neither}");
    let sec = find(&p, "orchestrator.notify[3].secret");
    assert!(sec.message.contains("webhook"), "{sec}");
    let kind = find(&p, "orchestrator.notify[3].kinds[1]");
    assert_eq!((kind.line, kind.col), pos_of(&text, "\"runbook_exploded\""));
    assert!(kind.message.contains("runbook_failed"), "{kind}");
    find(&p, "orchestrator.notify[3].timeout");
    let dup = find(&p, "orchestrator.notify[4].name");
    assert!(dup.message.contains("another"), "{dup}");
    let cred = find(&p, "orchestrator.notify[4].url");
    assert!(
        cred.message.contains("credentials") && cred.value.is_none(),
        "not echoed: {cred}"
    );
    assert!(!show(&p).contains("user:pw"), "{}", show(&p));
    find(&p, "orchestrator.notify[4].retry_for");
    assert_eq!(p.len(), 10, "{}", show(&p));
}

#[test]
fn an_unknown_key_is_named() {
    let text = with_notify(
        "[[orchestrator.notify]]\nname = \"x\"\nurl = \"https://h.example.net/\"\nheaders = { a = \"b\" }\n",
    );
    let p = problems(&text);
    let k = find(&p, "orchestrator.notify[0].headers");
    assert_eq!((k.line, k.col), pos_of(&text, "headers"));
}
