//! The checks of one check or probe (`[[sites.NAME.checks]]`,
//! `endpoints`): the keys its kind needs, its interval, and the label
//! every check, endpoint and hook is named by.

use super::*;

/// The longest name of a check, an endpoint or a hook, in characters.
const MAX_LABEL_CHARS: usize = 128;

impl<'t, 'r> Cx<'t, 'r> {
    /// Report the name of a check, an endpoint or a hook at `key` unless it
    /// is a label: it is written into reports, events, alerts and log
    /// lines, so it must say something (not empty or blank), stay one line
    /// (no control characters: a newline in a name would forge a log line
    /// of its own) and stay short.
    pub(super) fn check_label(&mut self, key: &str, label: &str) {
        let why = if label.trim().is_empty() {
            "must name it: not empty or blank"
        } else if label.chars().any(char::is_control) {
            "must be one line of text: no control characters (a newline, a tab, an escape)"
        } else if label.chars().count() > MAX_LABEL_CHARS {
            "is too long: at most 128 characters"
        } else {
            return;
        };
        self.push(self.at(key), key, Some(format!("{label:?}")), why);
    }

    pub(super) fn check_check(&mut self, key: &str, c: &CheckSpec) {
        let kspan = c.kind.span();
        match c.kind.get_ref() {
            CheckKind::Http => match &c.url {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.url"),
                    None,
                    "kind \"http\" needs url = \"http://host:port/path\"",
                ),
                Some(u) => {
                    let s = u.get_ref();
                    if let Some((why, echo)) = http_url_problem(s) {
                        self.push(
                            u.span(),
                            &format!("{key}.url"),
                            echo.then(|| format!("{s:?}")),
                            why,
                        );
                    }
                }
            },
            CheckKind::Tcp => match &c.address {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.address"),
                    None,
                    "kind \"tcp\" needs address = \"host:port\"",
                ),
                Some(a) => {
                    if !host_port(a.get_ref()) {
                        self.push(
                            a.span(),
                            &format!("{key}.address"),
                            Some(format!("{:?}", a.get_ref())),
                            "must be host:port, e.g. \"db.ca.example.net:5432\"",
                        );
                    }
                }
            },
            CheckKind::Command => match &c.command {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.command"),
                    None,
                    "kind \"command\" needs command = [\"/path/to/prog\", \"arg\", ...]",
                ),
                Some(cmd) => {
                    if let Some(why) = argv_problem(cmd.get_ref()) {
                        self.push(
                            cmd.span(),
                            &format!("{key}.command"),
                            self.snippet(&cmd.span()),
                            why,
                        );
                    }
                }
            },
            CheckKind::Dns => {
                match &c.server {
                    None => self.push(
                        kspan.clone(),
                        &format!("{key}.server"),
                        None,
                        "kind \"dns\" needs server = \"IP[:PORT]\" (the DNS server asked)",
                    ),
                    Some(sv) if c.dns_server().is_none() => self.push(
                        sv.span(),
                        &format!("{key}.server"),
                        Some(format!("{:?}", sv.get_ref())),
                        "must be an IP address with an optional port other than 0 (53 when left out), e.g. \"10.1.0.53\" or \"[2001:db8::53]:5353\"",
                    ),
                    Some(sv) => {
                        let why = c.dns_server().and_then(|a| dns_server_wildcard(a.ip()));
                        if let Some(why) = why {
                            self.push(
                                sv.span(),
                                &format!("{key}.server"),
                                Some(format!("{:?}", sv.get_ref())),
                                why,
                            );
                        }
                    }
                }
                match &c.query {
                    None => self.push(
                        kspan.clone(),
                        &format!("{key}.query"),
                        None,
                        "kind \"dns\" needs query = \"name.example.org\" (the name asked for)",
                    ),
                    Some(q) if !dns_name(q) => {
                        let k = format!("{key}.query");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{q:?}")),
                            "must be a DNS name: labels of 1-63 letters, digits, '-' or '_', 253 characters at most",
                        )
                    }
                    Some(_) => {}
                }
                // An A answer is an IPv4 address, an AAAA answer an IPv6
                // one: any other `expect` matches no answer, and the check
                // would fail at every run.
                let rtype = c
                    .record_type
                    .as_deref()
                    .unwrap_or("A")
                    .to_ascii_uppercase();
                if let Some(want) = &c.expect {
                    let ip = want.trim().parse::<std::net::IpAddr>().ok();
                    let fits = match rtype.as_str() {
                        "A" => ip.is_some_and(|ip| ip.is_ipv4()),
                        "AAAA" => ip.is_some_and(|ip| ip.is_ipv6()),
                        _ => true,
                    };
                    if !fits {
                        let k = format!("{key}.expect");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{want:?}")),
                            format!(
                                "a {rtype} record holds an {} address, and this is none: no \
                                 answer could match it, so the check would fail at every run \
                                 (give the address, or the record_type whose value this is)",
                                if rtype == "A" { "IPv4" } else { "IPv6" }
                            ),
                        );
                    }
                }
                if let Some(t) = &c.record_type {
                    if !CheckSpec::DNS_TYPES.contains(&t.to_ascii_uppercase().as_str()) {
                        let k = format!("{key}.record_type");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{t:?}")),
                            format!("must be one of {}", CheckSpec::DNS_TYPES.join(", ")),
                        );
                    }
                }
            }
            kind @ (CheckKind::Keystone | CheckKind::Swift) => match &c.keystone {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.keystone"),
                    None,
                    format!(
                        "kind \"{}\" needs keystone = {{ auth_url = \"http://host:5000/v3\", user = …, \
                         password = {{ file = … }}, project = … }} (or an application credential)",
                        if *kind == CheckKind::Swift { "swift" } else { "keystone" }
                    ),
                ),
                Some(k) => self.check_keystone(&format!("{key}.keystone"), k),
            },
        }
        let kind = *c.kind.get_ref();
        self.refuse_unread(
            key,
            [
            ("url", c.url.is_some(), kind == CheckKind::Http),
            ("address", c.address.is_some(), kind == CheckKind::Tcp),
            ("command", c.command.is_some(), kind == CheckKind::Command),
            (
                "keystone",
                c.keystone.is_some(),
                matches!(kind, CheckKind::Keystone | CheckKind::Swift),
            ),
            ("container", c.container.is_some(), kind == CheckKind::Swift),
            ("server", c.server.is_some(), kind == CheckKind::Dns),
            ("query", c.query.is_some(), kind == CheckKind::Dns),
            (
                "record_type",
                c.record_type.is_some(),
                kind == CheckKind::Dns,
            ),
            ("expect", c.expect.is_some(), kind == CheckKind::Dns),
            (
                "expect_status",
                c.expect_status.is_some(),
                kind == CheckKind::Http,
            ),
            (
                "body_contains",
                c.body_contains.is_some(),
                kind == CheckKind::Http,
            ),
        ],
            "not used by this kind (url, expect_status, body_contains: http; address: tcp; command: command; keystone: keystone and swift; container: swift; server, query, record_type, expect: dns); remove it",
        );
        if let Some(cn) = &c.container {
            if cn.is_empty()
                || cn == "."
                || cn == ".."
                || cn.contains('/')
                || cn.len() > 256
                || cn.chars().any(char::is_control)
            {
                let k = format!("{key}.container");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{cn:?}")),
                    "must be a Swift container name: 1-256 bytes, not \".\" or \"..\", no '/', no control characters",
                );
            }
        }
        if c.body_contains.as_deref() == Some("") {
            let k = format!("{key}.body_contains");
            self.push(
                self.at(&k),
                &k,
                Some("\"\"".into()),
                "empty: every body holds it, so it tells nothing (and an empty body would fail); \
                 give the text a healthy answer holds, or leave the key out",
            );
        }
        if let Some(s) = c.expect_status {
            if !(100..=599).contains(&s) {
                let k = format!("{key}.expect_status");
                self.push(
                    self.at(&k),
                    &k,
                    Some(s.to_string()),
                    "must be an HTTP status code (100-599)",
                );
            }
        }
        if c.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        self.timeout_floor(&format!("{key}.timeout"), c.timeout);
        if c.interval.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("{key}.interval"));
        }
        if c.interval.is_some_and(|d| d > MAX_CHECK_INTERVAL) {
            let k = format!("{key}.interval");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "at most 5m: the reports between two runs repeat the last result, so a longer one \
                 would hide a failure for that long",
            );
        }
    }
}

/// The longest `interval` a check may have.
const MAX_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// A DNS name as a `dns` check may ask for it (a trailing dot allowed).
fn dns_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
