//! Several problems at once, sorted by position; messages say what was found
//! and what is allowed; syntax errors carry line:col.

use std::path::Path;

use crate::{find, ok, one, pos_of, pos_of_nth, problems, show, BASE};

#[test]
fn several_problems_listed_at_once_sorted_by_line() {
    let text = BASE
        .replace("interval = \"500ms\"", "interval = \"soon\"")
        .replace("url = \"http://127.0.0.1:8080/healthz\"\n", "")
        .replace(
            "sites = [\"ca\", \"tx\"]",
            "sites = [\"ca\", \"tx\", \"zz\"]",
        );
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{}", show(&p));
    assert_eq!(p[0].key, "detection.interval");
    assert_eq!((p[0].line, p[0].col), pos_of(&text, "\"soon\""));
    assert_eq!(p[1].key, "sites.ca.checks[0].url");
    assert_eq!(p[1].line, pos_of(&text, "kind = \"http\"").0);
    assert!(p[1].message.contains("needs url"), "{}", p[1]);
    assert_eq!(p[2].key, "groups.web.sites[2]");
    assert_eq!((p[2].line, p[2].col), pos_of(&text, "\"zz\""));
    assert!(p
        .windows(2)
        .all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col)));

    // The error's text lists them all, one per line, in the documented format.
    let e = warden_config::parse(&text, Path::new("/etc/warden/failover.conf"))
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines[0], "3 problems in configuration:");
    let (l, c) = pos_of(&text, "\"soon\"");
    assert!(
        lines[1].trim_start().starts_with(&format!(
            "/etc/warden/failover.conf:{l}:{c}: detection.interval = \"soon\": "
        )),
        "{e}"
    );
}

#[test]
fn bad_duration_says_what_was_found_and_what_is_expected() {
    let text = BASE.replace("interval = \"500ms\"", "interval = \"5 parsecs\"");
    let p = one(&text);
    assert_eq!(p.key, "detection.interval");
    assert_eq!((p.line, p.col), pos_of(&text, "\"5 parsecs\""));
    assert_eq!(p.value.as_deref(), Some("\"5 parsecs\""));
    assert!(p.message.contains("\"500ms\""), "{p}");
    assert!(
        p.message.contains("parsecs"),
        "says which unit is unknown: {p}"
    );
    let shown = p.to_string();
    assert!(
        shown.contains("detection.interval = \"5 parsecs\": not a duration"),
        "{shown}"
    );

    // A number instead of a string.
    let p = one(&BASE.replace("interval = \"500ms\"", "interval = 500"));
    assert_eq!(p.value.as_deref(), Some("500"));
    assert!(
        p.message.contains("\"500ms\"") && p.message.contains("found an integer"),
        "{p}"
    );

    // Nested: a check's timeout.
    let text = BASE.replace(
        "kind = \"http\"",
        "kind = \"http\"\ntimeout = \"1 fortnight\"",
    );
    let p = one(&text);
    assert_eq!(p.key, "sites.ca.checks[0].timeout");
    assert_eq!((p.line, p.col), pos_of(&text, "\"1 fortnight\""));
}

#[test]
fn zero_durations_and_counts_are_rejected_at_their_position() {
    let text = BASE.replace(
        "interval = \"500ms\"",
        "interval = \"500ms\"\nfall = 0\nprobe_timeout = \"0s\"",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    let fall = find(&p, "detection.fall");
    assert_eq!((fall.line, fall.col), pos_of(&text, "0\nprobe"));
    let pt = find(&p, "detection.probe_timeout");
    assert_eq!((pt.line, pt.col), pos_of(&text, "\"0s\""));

    let text = BASE.replace("interval = \"500ms\"", "interval = \"3s\"");
    let p = one(&text);
    assert_eq!(p.key, "detection.agent_timeout");
    assert!(p.message.contains("longer than detection.interval"), "{p}");
}

/// Durations check-config used to accept and nothing can run with: a
/// detection round of 1 ns (the loop spins, every probe times out), a
/// request timeout of 1 ns (every request answered 408). Each is refused
/// at its position with the least it may be.
#[test]
fn durations_too_short_to_run_are_rejected_at_their_position() {
    let text = BASE.replace(
        "interval = \"500ms\"",
        "interval = \"1ns\"\nagent_timeout = \"1s\"\nprobe_timeout = \"2ms\"",
    );
    let p = problems(&text);
    let interval = find(&p, "detection.interval");
    assert_eq!((interval.line, interval.col), pos_of(&text, "\"1ns\""));
    assert!(interval.message.contains("at least \"10ms\""), "{interval}");
    let pt = find(&p, "detection.probe_timeout");
    assert_eq!((pt.line, pt.col), pos_of(&text, "\"2ms\""));

    let text = BASE.replace(
        "[orchestrator]\n",
        "[orchestrator]\nrequest_timeout = \"1ns\"\n",
    );
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.request_timeout", "{p}");
    assert!(p.message.contains("at least \"100ms\""), "{p}");
}

#[test]
fn wrong_types_name_the_expected_type() {
    let text = BASE.replace(
        "listen = \"10.0.0.2:7000\"",
        "listen = \"warden.example.net\"",
    );
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.listen");
    assert_eq!((p.line, p.col), pos_of(&text, "\"warden.example.net\""));
    assert!(p.message.contains("IP:PORT"), "{p}");

    let text = BASE.replace("scheme = \"frontend\"", "scheme = \"anycast\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.scheme");
    assert_eq!(p.value.as_deref(), Some("\"anycast\""));
    assert!(
        p.message.contains("\"dns\", \"frontend\", \"hybrid\""),
        "{p}"
    );

    let text = BASE.replace("kind = \"http\"", "kind = \"icmp\"");
    let p = one(&text);
    assert_eq!(p.key, "sites.ca.checks[0].kind");
    assert!(p.message.contains("\"http\", \"tcp\", \"command\""), "{p}");

    let text = BASE.replace("sites = [\"ca\", \"tx\"]", "sites = \"ca\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.sites");
    assert!(
        p.message.contains("expected an array, found a string"),
        "{p}"
    );

    let text = format!(
        "detection = 5\n{}",
        BASE.replace("[detection]\ninterval = \"500ms\"", "")
    );
    let p = one(&text);
    assert_eq!(p.key, "detection");
    assert!(p.message.contains("expected a table"), "{p}");
}

#[test]
fn missing_required_key_is_reported_once() {
    let text = BASE.replace("data_dir = \"/var/lib/warden\"\n", "");
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.data_dir");
    assert_eq!((p.line, p.col), pos_of(&text, "[orchestrator]"));
    assert!(p.message.contains("missing required key"), "{p}");

    // A required key with a bad value: reported as bad, not also as missing.
    let text = BASE.replace("listen = \"10.0.0.2:7000\"", "listen = 7000");
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.listen");
}

#[test]
fn missing_orchestrator_table() {
    let text = BASE.replace("[orchestrator]", "[orchestrator_x]");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    find(&p, "orchestrator");
    find(&p, "orchestrator_x");
}

#[test]
fn problems_in_many_tables_are_all_reported() {
    let text = BASE
        .replace(
            "listen = \"10.0.0.2:7000\"",
            "listen = \"10.0.0.2:7000\"\nport = 1",
        )
        .replace("[sites.tx]\n", "[sites.tx]\nreport_interval = \"often\"\n")
        .replace("control = \"10.0.0.5:7100\"", "control = \"fe1:7100\"")
        .replace("driver = \"builtin\"", "driver = \"nginx\"");
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "orchestrator.port",
            "sites.tx.report_interval",
            "frontends.fe1.control",
            "groups.web.frontend.driver"
        ],
        "{}",
        show(&p)
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let text = BASE
        .replace("fall = 3", "")
        .replace("interval = \"500ms\"", "interval = ");
    let p = problems(&text);
    assert_eq!(p[0].key, "(syntax)");
    assert_eq!(p[0].line, pos_of(&text, "interval = ").0);
    assert!(p[0].col > 1, "{}", show(&p));

    let text = BASE.replace("[sites.tx]", "[sites.tx");
    let p = problems(&text);
    assert_eq!(p[0].key, "(syntax)");
    assert_eq!(p[0].line, pos_of(&text, "[sites.tx").0, "{}", show(&p));

    // A table defined twice: said with the table and its first line.
    let text = format!("{BASE}\n[sites.ca]\nagent_token = {{ env = \"X\" }}\n");
    let p = problems(&text);
    assert_eq!(p[0].key, "(syntax)");
    assert!(p[0].message.contains("duplicate"), "{}", show(&p));
    assert_eq!(p[0].line, pos_of_last(&text, "[sites.ca]").0);
    let first = pos_of(&text, "[sites.ca]").0;
    assert!(
        p[0].message.contains(&format!(
            "the table [sites.ca] is written twice (first at line {first})"
        )),
        "{}",
        show(&p)
    );
    // A key set twice: said with the key.
    let text = BASE.replace(
        "interval = \"500ms\"",
        "interval = \"500ms\"\ninterval = \"1s\"",
    );
    let p = one(&text);
    assert_eq!(p.line, pos_of(&text, "interval = \"1s\"").0, "{p}");
    assert!(p.message.contains("interval is set twice"), "{p}");

    // Several syntax errors at once.
    let text = BASE
        .replace(
            "data_dir = \"/var/lib/warden\"",
            "data_dir = /var/lib/warden",
        )
        .replace("name = \"app\"", "name = \"app");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    assert_eq!(p[0].line, pos_of(&text, "data_dir").0);
    assert_eq!(p[1].line, pos_of(&text, "name = \"app").0);
}

/// A key or header nested past toml's recursion limit (toml gives that
/// error no place) is still reported at its own line, not at 1:1.
#[test]
fn a_key_nested_too_deep_is_placed_at_its_line() {
    let deep = vec!["a"; 300].join(".");
    for (line, needle) in [
        (format!("  {deep} = 1"), deep.clone()),
        (format!("[{deep}]"), format!("[{deep}]")),
    ] {
        let text = format!("{BASE}\n{line}\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{}", show(&p));
        assert_eq!(p[0].key, "(syntax)");
        assert!(p[0].message.contains("recursion"), "{}", show(&p));
        assert_eq!(
            (p[0].line, p[0].col),
            pos_of(&text, &needle),
            "{}",
            show(&p)
        );
    }
}

fn pos_of_last(text: &str, needle: &str) -> (usize, usize) {
    let n = text.matches(needle).count();
    crate::pos_of_nth(text, needle, n - 1)
}

#[test]
fn columns_count_characters() {
    // A multibyte character before the error on the same line.
    let text = BASE.replace(
        "data_dir = \"/var/lib/warden\"",
        "data_dir = \"/var/lib/wärden\" ; oops",
    );
    let p = problems(&text);
    assert_eq!(p[0].line, pos_of(&text, "; oops").0);
    assert_eq!(p[0].col, pos_of(&text, "; oops").1, "{}", show(&p));
}

#[test]
fn hold_connections_defaults_to_two_seconds_and_is_checked_where_it_is() {
    use std::time::Duration;
    let hold = |c: &warden_config::Config| {
        c.groups["web"]
            .frontend
            .as_ref()
            .expect("frontend table")
            .get_ref()
            .hold_connections
    };
    assert_eq!(hold(&crate::ok(BASE)), Duration::from_secs(2), "default");
    let set = |v: &str| {
        BASE.replace(
            "driver = \"builtin\"\n",
            &format!("driver = \"builtin\"\nhold_connections = {v}\n"),
        )
    };
    assert_eq!(
        hold(&crate::ok(&set("\"0s\""))),
        Duration::ZERO,
        "0 turns it off"
    );
    assert_eq!(
        hold(&crate::ok(&set("\"1500ms\""))),
        Duration::from_millis(1500)
    );

    // Not a duration: at its place, with what is expected.
    let text = set("\"two seconds\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.frontend.hold_connections");
    assert_eq!((p.line, p.col), pos_of(&text, "\"two seconds\""));
    assert!(p.message.contains("not a duration"), "{p}");

    // Longer than a user should wait: refused at its place, the bound named.
    let text = set("\"5m\"");
    let p = one(&text);
    assert_eq!(p.key, "groups.web.frontend.hold_connections");
    assert_eq!((p.line, p.col), pos_of(&text, "\"5m\""));
    assert_eq!(p.value.as_deref(), Some("\"5m\""));
    assert!(p.message.contains("at most \"30s\""), "{p}");
}

/// Two headers nested too deep, on different lines: each is reported at
/// its own line (toml gives neither a place, and both say the same).
#[test]
fn two_headers_nested_too_deep_are_each_placed_at_their_line() {
    let deep = vec!["a"; 300].join(".");
    let deeper = vec!["b"; 300].join(".");
    let text = format!("{BASE}\n[{deep}]\nx = 2\n[{deeper}]\ny = 3\n");
    let p = problems(&text);
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![pos_of(&text, &deep).0, pos_of(&text, &deeper).0],
        "{}",
        show(&p)
    );
}

/// Many headers nested too deep in a big file: reported in seconds, not
/// minutes (not a parse of the whole file per problem and per halving).
#[test]
fn many_headers_nested_too_deep_are_reported_quickly() {
    let deep = vec!["a"; 200].join(".");
    let mut text = BASE.to_string();
    for i in 0..2000 {
        text.push_str(&format!("k{i} = \"{}\"\n", "v".repeat(100)));
    }
    for i in 0..200 {
        text.push_str(&format!("[{deep}.x{i}]\n"));
    }
    let started = std::time::Instant::now();
    let p = problems(&text);
    let took = started.elapsed();
    assert!(!p.is_empty());
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// A byte order mark at the start of the file (some editors write one;
/// toml skips it) is no column: a problem on the first line was placed
/// one column to the right of where an editor shows it. Later lines, and
/// a file without one, are unchanged.
#[test]
fn a_byte_order_mark_is_not_a_column() {
    let text = format!("\u{feff}[orchestratorx]\n{BASE}");
    let p = problems(&text);
    let found = find(&p, "orchestratorx");
    assert_eq!((found.line, found.col), (1, 2), "{}", show(&p));
    let text = format!(
        "\u{feff}{}",
        BASE.replace("interval = \"500ms\"", "interval = \"5xx\"")
    );
    let found = one(&text);
    assert_eq!((found.line, found.col), pos_of(&text, "\"5xx\""), "{found}");
    // Bytes that are not UTF-8 on the first line, after the mark.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.conf");
    std::fs::write(&path, b"\xef\xbb\xbfab\xff\n").unwrap();
    let e = warden_config::load(&path).unwrap_err().to_string();
    assert!(e.contains("bom.conf:1:3: (file): not UTF-8"), "{e}");
}

/// A problem under a key that had to be quoted (`"t.x"`, not a name) was
/// placed at the table around it (its path was split at the quoted dot),
/// and a stranger site of a replication table was named `sites.c.a` and
/// placed at its `sites` table.
#[test]
fn a_problem_under_a_quoted_key_is_placed_at_that_key() {
    let text = format!(
        "{BASE}\n[groups.www]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.www.dns]\nprovider = \"rfc2136\"\n\
         name = \"www.example.net\"\nserver = \"127.0.0.1:53\"\nzone = \"example.net\"\n\
         credentials = {{ file = \"/etc/warden/tsig.key\" }}\nkey_name = \"k\"\n\
         addresses = {{ ca = \"10.1.0.10\", tx = \"10.2.0.11\", \"t.x\" = \"10.2.0.10\" }}\n\
         [groups.www.replication]\nplan = \"none\"\n[groups.www.replication.sites.\"c.a\"]\n"
    );
    let p = problems(&text);
    let a = find(&p, "groups.www.dns.addresses.\"t.x\"");
    assert_eq!(
        (a.line, a.col),
        pos_of(&text, "\"10.2.0.10\""),
        "{}",
        show(&p)
    );
    let r = find(&p, "groups.www.replication.sites.\"c.a\"");
    // (A [header] table is placed at its header.)
    assert_eq!(
        (r.line, r.col),
        (pos_of(&text, "\"c.a\"]").0, 1),
        "{}",
        show(&p)
    );
}

/// A problem showed its value whole however long it was: a relative
/// data_dir of 100,000 characters made a problem line of 100 KB (in
/// check-config's output and each service's log). A long value is cut,
/// saying how long it is; a short one is shown whole.
#[test]
fn a_long_value_is_shown_cut() {
    let long = "a".repeat(100_000);
    let text = BASE.replace("\"/var/lib/warden\"", &format!("\"{long}\""));
    let p = one(&text);
    let line = p.to_string();
    assert!(line.len() < 1000, "{} bytes", line.len());
    assert!(
        line.contains("(100002 characters)") && line.contains("absolute path"),
        "{line}"
    );
    let p = one(&BASE.replace("\"/var/lib/warden\"", "\"var/lib/warden\""));
    assert_eq!(p.value.as_deref(), Some("\"var/lib/warden\""));
}

/// A time allowed for an answer shorter than 10 ms (`"1ns"`, `"500us"`:
/// a unit mistaken) was accepted for a check or endpoint, a hook, a
/// runbook step, an identity request, a DNS update, an etcd request and
/// a resync; each run it bounds is cut off before any host or process can
/// answer (a site's checks failing every round, a promote or a failover's
/// DNS update failing at every try). Each is refused at its position with
/// the least it may be; 10 ms passes.
#[test]
fn timeouts_nothing_can_answer_within_are_rejected_at_their_position() {
    let dns = "\n[groups.www]\nsites = [\"ca\", \"tx\"]\nscheme = \"dns\"\n[groups.www.dns]\n\
               provider = \"rfc2136\"\nname = \"www.example.net\"\nserver = \"ns1.example.net:53\"\n\
               zone = \"example.net\"\naddresses = { ca = \"10.1.0.10\", tx = \"10.2.0.10\" }\n\
               timeout = \"T\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            BASE.replace(
                "url = \"http://127.0.0.1:8080/healthz\"",
                "url = \"http://127.0.0.1:8080/healthz\"\ntimeout = \"T\"",
            ),
            "sites.ca.checks[0].timeout",
        ),
        (
            BASE.replace(
                "[sites.tx]",
                "[[sites.ca.promote]]\nname = \"db\"\ncommand = [\"/usr/bin/true\"]\ntimeout = \"T\"\n\n[sites.tx]",
            ),
            "sites.ca.promote[0].timeout",
        ),
        (
            BASE.replace("scheme = \"frontend\"", "scheme = \"frontend\"\nstep_timeout = \"T\""),
            "groups.web.step_timeout",
        ),
        (
            BASE.replace(
                "[sites.tx]",
                "[sites.ca.identity]\nheader = \"X-Site\"\nvalue = \"ca\"\ntimeout = \"T\"\n\n[sites.tx]",
            ),
            "sites.ca.identity.timeout",
        ),
        (format!("{BASE}{dns}"), "groups.www.dns.timeout"),
        (
            format!(
                "{BASE}\n[groups.web.replication]\nplan = \"command\"\nstart = [\"/usr/bin/true\"]\n\
                 resync = [\"/usr/bin/true\"]\nresync_timeout = \"T\"\n"
            ),
            "groups.web.replication.resync_timeout",
        ),
        (
            BASE.replace(
                "[detection]",
                "store = \"etcd\"\n[orchestrator.etcd]\nendpoints = [\"http://10.0.0.9:2379\"]\ntimeout = \"T\"\n\n[detection]",
            ),
            "orchestrator.etcd.timeout",
        ),
    ];
    for (text, key) in cases {
        for short in ["1ns", "500us", "9ms"] {
            let t = text.replace("\"T\"", &format!("\"{short}\""));
            let p = problems(&t);
            let e = find(&p, key);
            assert_eq!(
                (e.line, e.col),
                pos_of(&t, &format!("\"{short}\"")),
                "{}",
                show(&p)
            );
            assert!(e.message.contains("at least \"10ms\""), "{e}");
        }
        let fine = text.replace("\"T\"", "\"10ms\"");
        let p = warden_config::parse(&fine, Path::new("test.conf"));
        let p = match p {
            Ok(_) => vec![],
            Err(warden_config::ConfigError::Invalid(p)) => p,
            Err(e) => panic!("{e}"),
        };
        assert!(p.iter().all(|x| x.key != key), "{key}: {}", show(&p));
    }
}

/// A table written as a list of tables (`[[KEY]]` for `[KEY]`) was
/// refused with nonsense (serde builds a struct from an array, its
/// elements taken as the fields in order): `[[orchestrator]]` read
/// "orchestrator[0]: expected an IP:PORT address such as \"10.0.0.1:7000\",
/// found a table", `[[groups.web.frontend]]` "wanted exactly 1 element,
/// more than 1 element", and every key of `[[sites.tx]]` was an unknown
/// key of a secret reference. Each is now reported once, at its header,
/// saying what it is and how to write it; real lists are untouched.
#[test]
fn a_table_written_as_a_list_of_tables_is_said_to_be_one() {
    for (header, key) in [
        ("[orchestrator]", "orchestrator"),
        ("[detection]", "detection"),
        ("[sites.tx]", "sites.tx"),
        ("[frontends.fe1]", "frontends.fe1"),
        ("[groups.web.frontend]", "groups.web.frontend"),
    ] {
        let text = BASE.replacen(&format!("\n{header}\n"), &format!("\n[{header}]\n"), 1);
        let text = if header == "[orchestrator]" {
            text.replacen("[orchestrator]\n", "[[orchestrator]]\n", 1)
        } else {
            text
        };
        assert!(text.contains(&format!("[{header}]")), "{header}");
        let p = crate::one(&text);
        assert_eq!(p.key, key, "{p}");
        assert_eq!(
            (p.line, p.col),
            pos_of(&text, &format!("[{header}]")),
            "{p}"
        );
        assert!(
            p.message.contains(&format!(
                "[[{key}]] starts a list of tables, and {key} is not one"
            )),
            "{p}"
        );
        assert!(p.message.contains(&format!("write [{key}]")), "{p}");
    }
    crate::ok(&BASE.replace(
        "[sites.tx]",
        "[[sites.ca.promote]]\nname = \"p\"\ncommand = [\"/usr/bin/true\"]\n\n[sites.tx]",
    ));
    // An inline array of arrays is no list of tables: its own message.
    let text = BASE.replace("sites = [\"ca\", \"tx\"]", "sites = [[]]");
    let p = crate::one(&text);
    assert_eq!(p.key, "groups.web.sites[0]", "{p}");
    assert!(
        p.message.contains("expected a string, found an array"),
        "{p}"
    );
}

/// A path of the wrong type was refused with serde's "expected path
/// string, found an integer"; it now asks for a path, as every other
/// type's message says what it takes.
#[test]
fn a_path_of_the_wrong_type_asks_for_a_path() {
    let text = BASE.replace("data_dir = \"/var/lib/warden\"", "data_dir = 7");
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.data_dir", "{p}");
    assert_eq!((p.line, p.col), pos_of(&text, "7\n"), "{p}");
    assert!(
        p.message
            .contains("expected a path (a string) such as \"/var/lib/warden\", found an integer"),
        "{p}"
    );
}

/// The name of a check, an endpoint or a hook is written into reports,
/// events, alerts and log lines: one that is blank says nothing, one with a
/// newline or an escape forges a line of its own in the log (`name =
/// "app\nERROR site tx confirmed down"`), one of 70,000 characters fills a
/// report. Each is refused at its position, saying why; a name with
/// spaces or non-ASCII letters stays fine. Before, every one was accepted.
#[test]
fn a_name_that_is_no_one_line_label_is_refused_at_its_position() {
    let with_hook = BASE.replace(
        "[sites.tx]",
        "[[sites.ca.promote]]\nname = \"db\"\ncommand = [\"/usr/bin/true\"]\n\n[sites.tx]",
    );
    let places = [
        (
            BASE.to_string(),
            "sites.ca.checks[0].name",
            "name = \"app\"",
        ),
        (with_hook, "sites.ca.promote[0].name", "name = \"db\""),
    ];
    let long = format!("\"{}\"", "n".repeat(129));
    let bad = [
        ("\"  \"", "not empty or blank"),
        (
            "\"app\\nERROR site tx confirmed down\"",
            "no control characters",
        ),
        ("\"app\\u001b[31m\"", "no control characters"),
        (long.as_str(), "at most 128 characters"),
    ];
    for (text, key, written) in &places {
        for (name, why) in bad {
            let t = text.replacen(written, &format!("name = {name}"), 1);
            let p = problems(&t);
            let e = find(&p, key);
            assert_eq!((e.line, e.col), pos_of(&t, name), "{}", show(&p));
            assert!(e.message.contains(why), "{key} = {name}: {e}");
        }
        for fine in ["\"app health\"", "\"santé\""] {
            let t = text.replacen(written, &format!("name = {fine}"), 1);
            let p = match warden_config::parse(&t, Path::new("test.conf")) {
                Ok(_) => vec![],
                Err(warden_config::ConfigError::Invalid(p)) => p,
                Err(e) => panic!("{e}"),
            };
            assert!(p.iter().all(|x| x.key != *key), "{fine}: {}", show(&p));
        }
    }
}

/// A key only `http` checks read, on a check of another kind, was taken
/// and ignored: `body_contains = "ok"` on a `tcp` check looked like a
/// check of the page while only the port was tried. Each is refused at
/// its place; so is an empty `body_contains` (every body holds it, and an
/// empty body failed it).
#[test]
fn http_keys_on_other_kinds_and_an_empty_body_match_are_refused_at_their_place() {
    let tcp = BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        "kind = \"tcp\"\naddress = \"127.0.0.1:8080\"\nexpect_status = 204\nbody_contains = \"ok\"",
    );
    let p = problems(&tcp);
    for key in ["expect_status", "body_contains"] {
        let e = find(&p, &format!("sites.ca.checks[0].{key}"));
        assert!(e.message.contains("not used by this kind"), "{}", show(&p));
        assert!(e.message.contains("body_contains: http"), "{}", show(&p));
    }
    assert_eq!(
        (
            find(&p, "sites.ca.checks[0].body_contains").line,
            find(&p, "sites.ca.checks[0].body_contains").col
        ),
        pos_of(&tcp, "\"ok\"")
    );
    let empty = BASE.replace(
        "url = \"http://127.0.0.1:8080/healthz\"",
        "url = \"http://127.0.0.1:8080/healthz\"\nbody_contains = \"\"",
    );
    let p = problems(&empty);
    let e = find(&p, "sites.ca.checks[0].body_contains");
    assert!(e.message.contains("every body holds it"), "{}", show(&p));
    // what stays accepted: both on an http check
    ok(&BASE.replace(
        "url = \"http://127.0.0.1:8080/healthz\"",
        "url = \"http://127.0.0.1:8080/healthz\"\nexpect_status = 204\nbody_contains = \"ok\"",
    ));
}

/// What one kind reads, given to another, is refused at its place, not
/// ignored: a `url` on a `tcp` check (the port of `address` is tried, not
/// the page), an `address` or a `command` on an `http` check, a `url` on a
/// `command` check — each looked like part of the check and was not.
#[test]
fn the_target_of_one_kind_on_another_is_refused_at_its_place() {
    for (from, to, key) in [
        (
            "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
            "kind = \"tcp\"\naddress = \"127.0.0.1:8080\"\nurl = \"http://127.0.0.1:8080/\"",
            "url",
        ),
        (
            "url = \"http://127.0.0.1:8080/healthz\"",
            "url = \"http://127.0.0.1:8080/healthz\"\naddress = \"127.0.0.1:8080\"",
            "address",
        ),
        (
            "url = \"http://127.0.0.1:8080/healthz\"",
            "url = \"http://127.0.0.1:8080/healthz\"\ncommand = [\"/bin/true\"]",
            "command",
        ),
        (
            "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
            "kind = \"command\"\ncommand = [\"/bin/true\"]\nurl = \"http://127.0.0.1:8080/\"",
            "url",
        ),
    ] {
        let text = BASE.replace(from, to);
        let p = problems(&text);
        let e = find(&p, &format!("sites.ca.checks[0].{key}"));
        assert!(
            e.message.contains("not used by this kind"),
            "{key}: {}",
            show(&p)
        );
        assert_eq!(p.len(), 1, "{key}: {}", show(&p));
    }
}

/// An operator's name that is not allowed — given twice, the reserved
/// `operator`, a space in it — is said at the name, showing it: a name is
/// no secret (its actions' events carry it), so the message is not masked
/// into "oper****tor n****me" as it was when the name was taken for one.
#[test]
fn an_operator_name_problem_is_said_at_the_name_and_shows_it() {
    let with = |list: &str| {
        BASE.replace(
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            &format!("operator_token = {{ file = \"/etc/warden/operator.token\" }}\n{list}"),
        )
    };
    // Given twice: said at the second, naming the first.
    let t = with(
        "operators = [{ name = \"a\", token = { file = \"/etc/warden/a.token\" } }, \
         { name = \"a\", token = { file = \"/etc/warden/b.token\" } }]",
    );
    let p = one(&t);
    assert_eq!(p.key, "orchestrator.operators[1].name", "{p}");
    assert_eq!((p.line, p.col), pos_of_nth(&t, "\"a\"", 1), "{p}");
    assert_eq!(p.value.as_deref(), Some("\"a\""), "{p}");
    assert!(
        p.message.contains("orchestrator.operators[0] too") && !p.message.contains("****"),
        "{p}"
    );
    // The reserved name, and one with a space.
    for (name, says) in [
        ("\"operator\"", "orchestrator.operator_token"),
        ("\"al ice\"", "1 to 64 of letters, digits"),
    ] {
        let t = with(&format!(
            "operators = [{{ name = {name}, token = {{ file = \"/etc/warden/a.token\" }} }}]"
        ));
        let p = one(&t);
        assert_eq!(p.key, "orchestrator.operators[0].name", "{p}");
        assert_eq!((p.line, p.col), pos_of(&t, name), "{p}");
        assert_eq!(p.value.as_deref(), Some(name), "{p}");
        assert!(
            p.message.contains(says) && !p.message.contains("****"),
            "{p}"
        );
    }
    // A token pasted in place of the list is still never echoed.
    let t = with("operators = [\"s3cret-token-value\"]");
    let shown = show(&problems(&t));
    assert!(!shown.contains("s3cret"), "{shown}");
}

/// ` = VALUE` is what the file says, as written (quoted, as every other
/// problem shows a string): an http:// url beside orchestrator.tls, and a
/// node's listen given twice, were shown bare (`orchestrator.url =
/// http://…`, `orchestrator.nodes[1].listen = 10.0.1.2:7000`).
#[test]
fn a_value_is_shown_as_written_in_the_file() {
    let tls = BASE.replace(
        "listen = \"10.0.0.2:7000\"\n",
        "listen = \"10.0.0.2:7000\"\nurl = \"http://warden.example.net:7000\"\n\
         tls = { cert = \"/etc/warden/tls/orch.pem\", key = \"/etc/warden/tls/orch.key\" }\n",
    );
    let p = one(&tls);
    assert_eq!(p.key, "orchestrator.url", "{p}");
    assert_eq!(
        p.value.as_deref(),
        Some("\"http://warden.example.net:7000\""),
        "{p}"
    );
    let nodes = BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }\n",
        "operator_token = { file = \"/etc/warden/operator.token\" }\nstore = \"etcd\"\n\
         etcd = { endpoints = [\"http://10.0.1.5:2379\"] }\n\
         nodes = [{ name = \"a\", listen = \"10.0.1.2:7000\" }, { name = \"b\", listen = \"10.0.1.2:7000\" }]\n",
    );
    let p = problems(&nodes);
    let e = find(&p, "orchestrator.nodes[1].listen");
    assert_eq!(
        e.value.as_deref(),
        Some("\"10.0.1.2:7000\""),
        "{}",
        show(&p)
    );
}

/// The runbook retention's bounds: at least 10 kept per group and a day of
/// age, said at the key's value; within them the values are taken.
#[test]
fn runbook_retention_out_of_bounds_is_refused_at_its_value() {
    let with = |keep: &str, age: &str| {
        BASE.replace(
            "data_dir = \"/var/lib/warden\"\n",
            &format!("data_dir = \"/var/lib/warden\"\nrunbooks_keep = {keep}\nrunbooks_max_age = {age}\n"),
        )
    };
    let text = with("3", "\"2h\"");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{}", show(&p));
    let keep = find(&p, "orchestrator.runbooks_keep");
    assert_eq!(keep.line, pos_of(&text, "runbooks_keep = 3").0);
    assert!(keep.message.contains("between 10 and 1000000"), "{keep}");
    let age = find(&p, "orchestrator.runbooks_max_age");
    assert_eq!((age.line, age.col), pos_of(&text, "\"2h\""));
    assert!(age.message.contains("at least 1d"), "{age}");

    let c = ok(&with("10", "\"30d\""));
    assert_eq!(c.orchestrator.runbooks_keep, 10);
    assert_eq!(
        c.orchestrator.runbooks_max_age,
        std::time::Duration::from_secs(30 * 24 * 3600)
    );
    let d = ok(BASE);
    assert_eq!(d.orchestrator.runbooks_keep, 1000, "the default");
    assert_eq!(
        d.orchestrator.runbooks_max_age,
        std::time::Duration::from_secs(365 * 24 * 3600)
    );
}
