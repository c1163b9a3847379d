//! The shapes of values many tables take, checked the same everywhere: a
//! command's argv, an http(s) URL, a DNS name (and its zone), `host:port`.

/// Why an argv (a `command` check, a hook, `fence_command`, a notify or
/// replication command) cannot be run, or `None`: it names no program,
/// names it by a relative path (`./fence.sh`: found or not depending on
/// the directory the process started in; a bare name is looked up in
/// PATH), or holds a NUL character, which no argument of a started program can (the
/// C strings of `execve` end at it) — every run would fail to start, a
/// hook's at the failover that needs it.
pub(in crate::load) fn argv_problem(argv: &[String]) -> Option<&'static str> {
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Some("must name a program: [\"/path/to/prog\", \"arg\", ...]");
    }
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        return Some(
            "names its program by a relative path, which is looked up from the directory the \
             service happens to start in (\"/\" under systemd): every run could fail to find it; \
             give its absolute path (or a bare name, looked up in PATH)",
        );
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Some(
            "holds a NUL character (\\u0000), which no program's argument can hold: every run \
             would fail to start; remove it",
        );
    }
    None
}

/// Is `s` a plausible `host:port`?
/// Why `s` is not an `http://` or `https://` URL the services can use
/// (parsed by the `url` crate, as reqwest parses it when the service
/// starts), or `None`. The flag says whether the value may be echoed: not
/// when it holds credentials.
pub(in crate::load) fn http_url_problem(s: &str) -> Option<(String, bool)> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Some(("must be an http:// or https:// URL".into(), true));
    }
    match url::Url::parse(s) {
        Err(e) => Some((format!("is not a URL: {e}"), true)),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Some((
            "holds credentials (user:password@): they are never written in a URL; \
             give them as a secret reference"
                .into(),
            false,
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(("names no host".into(), true)),
        // The URL crate takes port 0, and every request to it fails.
        Ok(u) if u.port() == Some(0) => Some((
            "has port 0, where nothing can be reached: give the port the service listens on \
             (or none for the scheme's own, 80 or 443)"
                .into(),
            true,
        )),
        Ok(_) => None,
    }
}

/// A DNS name as the DNS code takes it: ASCII letters, digits, `-` and
/// `_`, labels of 1 to 63 characters, 253 in all (a trailing dot allowed).
pub(in crate::load) fn dns_name_problem(s: &str) -> Option<String> {
    let n = s.strip_suffix('.').unwrap_or(s);
    if n.is_empty() {
        return Some("is empty".into());
    }
    if n.len() > 253 {
        return Some(format!(
            "is {} characters long; a DNS name has at most 253",
            n.len()
        ));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "has a label of {} characters; at most 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!(
                "holds {c:?}: a DNS name has ASCII letters, digits, '-' and '_' \
                 (an internationalised name in its xn-- form)"
            ));
        }
    }
    None
}

/// Whether DNS name `name` is `zone` or inside it (case and a trailing dot ignored).
pub(in crate::load) fn in_zone(name: &str, zone: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    n == z || n.ends_with(&format!(".{z}"))
}

/// `host:port` with a port of 1-65535 and a host that is an IPv4 address, a
/// bracketed IPv6 address or a DNS name (no scheme, path or spaces).
pub(in crate::load) fn host_port(s: &str) -> bool {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return a.port() > 0;
    }
    s.rsplit_once(':').is_some_and(|(h, p)| {
        p.parse::<u16>().is_ok_and(|p| p > 0) && !h.contains(':') && dns_name_problem(h).is_none()
    })
}
