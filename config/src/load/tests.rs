use super::*;

const BASE: &str = r#"[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/var/lib/warden"
operator_token = { env = "T" }

[sites.a]
agent_token = { env = "T" }

[sites.b]
agent_token = { env = "T" }

[frontends.fe1]
control = "127.0.0.1:7100"
token = { env = "T" }

[groups.web]
sites = ["a", "b"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = { a = "127.0.0.1:8080", b = "127.0.0.1:8081" }

[groups.web.replication]
plan = "none"
"#;

fn problems(extra: &str) -> (String, Vec<Problem>) {
    let text = format!("{BASE}{extra}");
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => (text, p),
        other => panic!("expected problems for {extra:?}, got {other:?}"),
    }
}

/// (line, col) of the first `needle` in `text`, 1-based.
fn pos(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap();
    let before = &text[..at];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (before.matches('\n').count() + 1, at - line_start + 1)
}

#[test]
fn mass_delete_guard_keys_default_and_are_checked_where_they_are() {
    let c = parse(BASE, Path::new("guard.conf")).unwrap();
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!((r.max_delete_share, r.max_delete_count), (0.10, 100));
    let c = parse(
        &format!("{BASE}max_delete_share = 1.0\nmax_delete_count = 0\n"),
        Path::new("guard.conf"),
    )
    .unwrap();
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!((r.max_delete_share, r.max_delete_count), (1.0, 0));

    for bad in ["1.5", "-0.1", "nan", "inf"] {
        let (text, p) = problems(&format!("max_delete_share = {bad}\n"));
        let e = p
            .iter()
            .find(|x| x.key == "groups.web.replication.max_delete_share")
            .unwrap_or_else(|| panic!("{bad}: {p:?}"));
        assert!(e.message.contains("0.0 to 1.0"), "{}", e.message);
        assert_eq!(
            (e.line, e.col),
            pos(&text, &format!("{bad}\n")),
            "{bad}: {e}"
        );
    }
    let (text, p) = problems("max_delete_count = -1\n");
    let e = p
        .iter()
        .find(|x| x.key == "groups.web.replication.max_delete_count")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert_eq!((e.line, e.col), pos(&text, "-1\n"), "{e}");
}

#[test]
fn rsync_attribute_keys_default_on_and_belong_to_the_rsync_plan() {
    let rsync = BASE.replace("plan = \"none\"", "plan = \"rsync\"");
    let sites = "\n[groups.web.replication.sites.a]\npath = \"/srv/a\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n[groups.web.replication.sites.b]\npath = \"/srv/b\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n";
    let parsed = |extra: &str| parse(&format!("{rsync}{extra}{sites}"), Path::new("attrs.conf"));
    let get = |c: &crate::Config| {
        let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
        (
            r.rsync_xattrs(),
            r.rsync_acls(),
            r.rsync_hard_links(),
            r.rsync_sparse(),
        )
    };
    std::env::set_var("X", "pw");
    assert_eq!(get(&parsed("").unwrap()), (true, true, true, true));
    let c = parsed("xattrs = true\nacls = false\nhard_links = false\nsparse = false\n").unwrap();
    assert_eq!(get(&c), (true, false, false, false));
    // Not a boolean: the key, where it is.
    let text = format!("{rsync}xattrs = \"yes\"\n{sites}");
    match parse(&text, Path::new("attrs.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key.ends_with("xattrs"))
                .unwrap_or_else(|| panic!("{p:?}"));
            assert_eq!((e.line, e.col), pos(&text, "\"yes\""), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Another plan: the key does not belong there.
    for k in ["xattrs", "acls", "hard_links", "sparse"] {
        let (text, p) = problems(&format!("{k} = true\n"));
        let e = p
            .iter()
            .find(|x| x.key == format!("groups.web.replication.{k}"))
            .unwrap_or_else(|| panic!("{k}: {p:?}"));
        assert!(e.message.contains("does not use this key"), "{e}");
        let (line, col) = pos(&text, &format!("{k} = true"));
        assert_eq!((e.line, e.col), (line, col + k.len() + 3), "{e}");
    }
}

#[test]
fn mount_point_belongs_to_an_rsync_site_and_is_a_boolean() {
    let rsync = BASE.replace("plan = \"none\"", "plan = \"rsync\"");
    let site = |name: &str, extra: &str| {
        format!("\n[groups.web.replication.sites.{name}]\npath = \"/srv/{name}\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = {{ env = \"X\" }}\n{extra}")
    };
    std::env::set_var("X", "pw");
    let text = format!(
        "{rsync}{}{}",
        site("a", ""),
        site("b", "mount_point = true\n")
    );
    let c = parse(&text, Path::new("mount.conf")).unwrap();
    let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
    assert_eq!(
        (r.sites["a"].is_mount_point(), r.sites["b"].is_mount_point()),
        (false, true)
    );
    let text = format!(
        "{rsync}{}{}",
        site("a", ""),
        site("b", "mount_point = \"yes\"\n")
    );
    match parse(&text, Path::new("mount.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key.ends_with("mount_point"))
                .unwrap_or_else(|| panic!("{p:?}"));
            assert_eq!((e.line, e.col), pos(&text, "\"yes\""), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Another plan (none, here) has no directory to mount.
    let (_, p) = problems("\n[groups.web.replication.sites.b]\nmount_point = true\n");
    let e = p
        .iter()
        .find(|x| x.key == "groups.web.replication.sites.b.mount_point")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(e.message.contains("does not use this key"), "{e}");
}

#[test]
fn audit_every_defaults_to_six_hours_on_the_rsync_plan_only() {
    let rsync = BASE.replace("plan = \"none\"", "plan = \"rsync\"");
    let sites = "\n[groups.web.replication.sites.a]\npath = \"/srv/a\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n[groups.web.replication.sites.b]\npath = \"/srv/b\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n";
    std::env::set_var("X", "pw");
    let every = |extra: &str| {
        let c = parse(&format!("{rsync}{extra}{sites}"), Path::new("audit.conf")).unwrap();
        let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
        r.rsync_audit_every()
    };
    assert_eq!(every(""), std::time::Duration::from_secs(6 * 3600));
    assert_eq!(
        every("audit_every = \"10m\"\n"),
        std::time::Duration::from_secs(600)
    );
    let text = format!("{rsync}audit_every = \"0s\"\n{sites}");
    match parse(&text, Path::new("audit.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key.ends_with("audit_every"))
                .unwrap_or_else(|| panic!("{p:?}"));
            assert!(
                e.message.contains("greater than zero")
                    || e.message.contains("positive")
                    || e.message.contains("> 0"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (_, p) = problems("audit_every = \"1h\"\n");
    let e = p
        .iter()
        .find(|x| x.key == "groups.web.replication.audit_every")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(e.message.contains("does not use this key"), "{e}");
}

#[test]
fn durations_longer_than_ten_years_are_refused_where_they_are() {
    // Appended to [groups.web.replication]; then a table of its own.
    let (text, p) = problems("resync_timeout = \"300000000000y\"\n");
    let e = p
        .iter()
        .find(|x| x.key == "groups.web.replication.resync_timeout")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(e.message.contains("too long"), "{}", e.message);
    assert!(e.message.contains("10 years"), "{}", e.message);
    assert_eq!((e.line, e.col), pos(&text, "\"300000000000y\""), "{e}");

    let text = BASE.replace(
        "scheme = \"frontend\"\n",
        "scheme = \"frontend\"\nstep_timeout = \"300000000000y\"\n",
    );
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key == "groups.web.step_timeout")
                .unwrap_or_else(|| panic!("{p:?}"));
            assert!(e.message.contains("too long"), "{}", e.message);
            assert_eq!((e.line, e.col), pos(&text, "\"300000000000y\""), "{e}");
        }
        other => panic!("accepted: {other:?}"),
    }
    // Ten years is still a setting (an operator's "never", in effect).
    let ok = BASE.replace(
        "scheme = \"frontend\"\n",
        "scheme = \"frontend\"\nstep_timeout = \"3650days\"\n",
    );
    parse(&ok, Path::new("guard.conf")).expect("ten years");
}

/// A site's report interval at or above `agent_timeout` would have its
/// agent judged stale between reports: refused where it is written.
#[test]
fn a_report_interval_must_be_shorter_than_the_agent_timeout() {
    let text = BASE.replace(
        "[sites.b]\nagent_token = { env = \"T\" }\n",
        "[sites.b]\nagent_token = { env = \"T\" }\nreport_interval = \"4s\"\n",
    ) + "[detection]\nagent_timeout = \"2s\"\n";
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key == "sites.b.report_interval")
                .unwrap_or_else(|| panic!("{p:?}"));
            assert!(
                e.message
                    .contains("shorter than detection.agent_timeout (2s)"),
                "{}",
                e.message
            );
            assert_eq!((e.line, e.col), pos(&text, "\"4s\""), "{e}");
            assert_eq!(p.len(), 1, "{p:?}");
        }
        other => panic!("accepted: {other:?}"),
    }
    let ok = text.replace("report_interval = \"4s\"", "report_interval = \"1500ms\"");
    parse(&ok, Path::new("guard.conf")).expect("1.5s < 2s");
}

/// Promote hooks whose timeouts add up to more than the group's
/// `step_timeout` (demote hooks too under `fencing = "required"`) are
/// refused: the runbook would give up on a promote that still completes.
#[test]
fn hooks_must_fit_in_the_step_that_waits_for_them() {
    let hooks = "promote = [{ name = \"p1\", command = [\"/bin/true\"], timeout = \"40s\" }, \
                 { name = \"p2\", command = [\"/bin/true\"], timeout = \"30s\" }]\n\
                 demote = [{ name = \"d\", command = [\"/bin/true\"], timeout = \"90s\" }]\n";
    let text = BASE.replace(
        "[sites.b]\nagent_token = { env = \"T\" }\n",
        &format!("[sites.b]\nagent_token = {{ env = \"T\" }}\n{hooks}"),
    );
    // Default step_timeout 60s: 40s + 30s of promote hooks do not fit; the
    // demote hooks are not waited for with best-effort fencing.
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            assert_eq!(p.len(), 1, "{p:?}");
            let e = &p[0];
            assert_eq!(e.key, "sites.b.promote");
            assert!(
                e.message.contains("1m 10s in all")
                    && e.message.contains("groups.web.step_timeout (1m)"),
                "{}",
                e.message
            );
            assert_eq!((e.line, e.col), pos(&text, "[{ name = \"p1\""), "{e}");
        }
        other => panic!("accepted: {other:?}"),
    }
    // Under required fencing the demote hooks count too.
    let required = text.replace(
        "scheme = \"frontend\"\n",
        "scheme = \"frontend\"\nstep_timeout = \"80s\"\nfencing = \"required\"\n",
    );
    match parse(&required, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].key, "sites.b.demote", "{p:?}");
        }
        other => panic!("accepted: {other:?}"),
    }
    let ok = required.replace("step_timeout = \"80s\"", "step_timeout = \"90s\"");
    parse(&ok, Path::new("guard.conf")).expect("both fit in 90s");
}

/// Durable state in a relative (or empty) directory would depend on where a
/// process starts: refused for the orchestrator's data_dir, a site's and a
/// frontend's state_dir, each where it is written.
#[test]
fn state_directories_must_be_absolute() {
    let text = BASE
        .replace("data_dir = \"/var/lib/warden\"", "data_dir = \"\"")
        .replace(
            "[sites.b]\nagent_token = { env = \"T\" }\n",
            "[sites.b]\nagent_token = { env = \"T\" }\nstate_dir = \"st\"\n",
        )
        .replace(
            "control = \"127.0.0.1:7100\"\n",
            "control = \"127.0.0.1:7100\"\nstate_dir = \"fe/state\"\n",
        );
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "orchestrator.data_dir",
                    "sites.b.state_dir",
                    "frontends.fe1.state_dir"
                ],
                "{p:?}"
            );
            assert!(
                p.iter().all(|x| x.message.contains("absolute path")),
                "{p:?}"
            );
            assert_eq!((p[1].line, p[1].col), pos(&text, "\"st\""), "{}", p[1]);
        }
        other => panic!("accepted: {other:?}"),
    }
}

/// A number out of its key's range says the range, not only "non-negative"
/// (5000000000 is non-negative; it is too large for `fall`).
#[test]
fn an_integer_out_of_range_is_told_its_range() {
    let (text, p) = problems("[detection]\nfall = 5000000000\n");
    let e = p
        .iter()
        .find(|x| x.key == "detection.fall")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert!(
        e.message.contains("an integer from 0 to 4294967295"),
        "{}",
        e.message
    );
    assert_eq!((e.line, e.col), pos(&text, "5000000000"), "{e}");
}

/// A body limit too small for an agent's largest report (a divergent page
/// beside its checks and outcomes) would leave the site's agent silent:
/// refused where it is written; the default is the smallest allowed.
#[test]
fn a_body_limit_below_an_agents_largest_report_is_refused() {
    let text = BASE.replace(
        "operator_token = { env = \"T\" }\n",
        "operator_token = { env = \"T\" }\nmax_body_bytes = 4096\n",
    );
    match parse(&text, Path::new("guard.conf")) {
        Err(ConfigError::Invalid(p)) => {
            let e = p
                .iter()
                .find(|x| x.key == "orchestrator.max_body_bytes")
                .unwrap_or_else(|| panic!("{p:?}"));
            assert!(e.message.contains("at least 65536"), "{}", e.message);
            assert_eq!((e.line, e.col), pos(&text, "4096"), "{e}");
        }
        other => panic!("accepted: {other:?}"),
    }
    let ok = text.replace("max_body_bytes = 4096", "max_body_bytes = 65536");
    parse(&ok, Path::new("guard.conf")).expect("the default");
}

/// A built-in group's backend that is another group's `listen` on the same
/// frontend — the same address, or a wildcard's port reached at the
/// loopback — is refused where it is written: connections would loop
/// through the frontend. A backend on another port, or another host,
/// passes. Before, only the group's own listen was refused.
#[test]
fn a_backend_that_is_the_frontends_own_listen_is_refused() {
    let with = |web_backend: &str, api_listen: &str| {
        let text = BASE.replace("127.0.0.1:8081", web_backend).replace(
            "[groups.web.replication]",
            &format!(
                "[groups.api]\nsites = [\"a\", \"b\"]\nscheme = \"frontend\"\n\n\
                 [groups.api.frontend]\ndriver = \"builtin\"\nfrontends = [\"fe1\"]\n\
                 listen = \"{api_listen}\"\nbackends = {{ a = \"10.9.0.1:80\", b = \"10.9.0.2:80\" }}\n\n\
                 [groups.web.replication]"
            ),
        );
        (parse(&text, Path::new("loop.conf")), text)
    };
    std::env::set_var("T", "t");
    for (backend, listen, other) in [
        ("127.0.0.1:9000", "127.0.0.1:9000", "api"),
        ("127.0.0.1:9000", "0.0.0.0:9000", "api"),
        ("127.0.0.1:9000", "[::]:9000", "api"),
    ] {
        let (parsed, text) = with(backend, listen);
        match parsed {
            Err(ConfigError::Invalid(p)) => {
                let e = p
                    .iter()
                    .find(|x| x.key == "groups.web.frontend.backends.b")
                    .unwrap_or_else(|| panic!("{backend} {listen}: {p:?}"));
                assert!(
                    e.message
                        .contains(&format!("frontend fe1 listens for group {other}"))
                        && e.message.contains("loop"),
                    "{e}"
                );
                assert_eq!(
                    (e.line, e.col),
                    pos(&text, &format!("\"{backend}\"")),
                    "{e}"
                );
            }
            other => panic!("{backend} {listen}: {other:?}"),
        }
    }
    for (backend, listen) in [
        ("127.0.0.1:9001", "0.0.0.0:9000"),
        ("10.9.9.9:9000", "0.0.0.0:9000"),
    ] {
        let (parsed, _) = with(backend, listen);
        parsed.unwrap_or_else(|e| panic!("{backend} {listen}: {e}"));
    }
}
