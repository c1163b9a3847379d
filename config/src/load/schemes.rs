//! The checks of `[frontends.NAME]` and of the groups' `frontend` and `dns`
//! schemes: drivers, frontends, backends, HAProxy names, DNS providers.

use super::*;
use std::net::SocketAddr;

impl<'t, 'r> Cx<'t, 'r> {
    /// Check a `[frontends.NAME]` entry against its kind: the keys that kind
    /// needs are there, the other kind's keys are not. The typed entry when
    /// nothing is missing.
    pub(super) fn check_frontend(
        &mut self,
        name: &str,
        fe: &FrontendEntry,
    ) -> Option<CheckedFrontend> {
        let key = fmt_path("frontends", &[Seg::Key(name.to_string())]);
        let kind = fe.kind.as_ref().map(|k| *k.get_ref()).unwrap_or_default();
        let foreign: &[(&str, bool, &str)] = match kind {
            FrontendDriverKind::Builtin => &[(
                "runtime",
                fe.runtime.is_some(),
                "only kind = \"haproxy\" is reached through a runtime API; this frontend is kind \"builtin\" (the default: `warden frontend`, which needs control and token). Add kind = \"haproxy\" or remove this key",
            )],
            FrontendDriverKind::Haproxy => &[
                (
                    "tls",
                    fe.tls.is_some(),
                    "kind \"haproxy\" is driven through its runtime API; tls is only for kind \"builtin\" (`warden frontend`'s control API): remove this key",
                ),
                (
                    "control",
                    fe.control.is_some(),
                    "kind \"haproxy\" is reached through runtime; control is only for kind \"builtin\" (`warden frontend`): remove this key",
                ),
                (
                    "token",
                    fe.token.is_some(),
                    "kind \"haproxy\" takes no token (HAProxy's runtime API has no authentication: keep it on a UNIX socket or a loopback address): remove this key",
                ),
                (
                    "state_dir",
                    fe.state_dir.is_some(),
                    "kind \"haproxy\" keeps warden's fence in HAProxy itself (a process variable); state_dir is only for kind \"builtin\" (`warden frontend`): remove this key",
                ),
            ],
        };
        for (field, present, message) in foreign {
            if *present {
                let k = format!("{key}.{field}");
                self.push(self.at(&k), &k, None, *message);
            }
        }
        match kind {
            FrontendDriverKind::Builtin => {
                if fe.control.is_none() {
                    let k = format!("{key}.control");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `control`: a kind \"builtin\" frontend (the default) needs the IP:PORT of its control API, e.g. control = \"10.0.0.5:7100\"",
                    );
                }
                match &fe.token {
                    None => {
                        let k = format!("{key}.token");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "missing required key `token`: a kind \"builtin\" frontend (the default) needs token = { file = \"/etc/warden/NAME.token\" } or { env = \"VAR\" }",
                        );
                    }
                    Some(t) => self.check_secret(&format!("{key}.token"), t),
                }
                let (Some(control), Some(token)) = (fe.control, fe.token.clone()) else {
                    return None;
                };
                if let Some(t) = &fe.tls {
                    self.check_tls(&format!("{key}.tls"), t);
                }
                if let Some(d) = &fe.state_dir {
                    self.check_state_dir(&format!("{key}.state_dir"), d);
                }
                Some(CheckedFrontend::Builtin(FrontendConfig {
                    control,
                    token,
                    tls: fe.tls.clone(),
                    state_dir: fe.state_dir.clone(),
                }))
            }
            FrontendDriverKind::Haproxy => {
                let k = format!("{key}.runtime");
                let Some(r) = &fe.runtime else {
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `runtime`: a kind \"haproxy\" frontend needs the address of HAProxy's runtime API (a `stats socket ... level admin` line of haproxy.cfg), e.g. runtime = \"/run/haproxy/admin.sock\" or \"127.0.0.1:9999\"",
                    );
                    return None;
                };
                match RuntimeAddr::parse(r.get_ref()) {
                    Ok(runtime) => {
                        Some(CheckedFrontend::Haproxy(HaproxyFrontendConfig { runtime }))
                    }
                    Err(e) => {
                        self.push(r.span(), &k, Some(format!("{:?}", r.get_ref())), e);
                        None
                    }
                }
            }
        }
    }

    /// Every address a built-in frontend binds (its control API, each of
    /// its groups' `listen`) must be its own: two on one port where one
    /// covers the other (the same IP, or a wildcard) cannot both be bound,
    /// and the frontend would stop at start. Two frontends with the same
    /// control address are one host's port twice. Port 0 (any free port)
    /// never clashes. Reported at the second address.
    pub(super) fn check_frontend_binds(
        &mut self,
        frontends: &BTreeMap<String, FrontendConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        let clash = binds_clash;
        let mut controls: Vec<(SocketAddr, String)> = Vec::new();
        for (fe, c) in frontends {
            let key = format!("frontends.{fe}.control");
            if let Some((_, first)) = controls.iter().find(|(a, _)| clash(*a, c.control)) {
                self.push(
                    self.at(&key),
                    &key,
                    Some(format!("{:?}", c.control.to_string())),
                    format!(
                        "is the address of {first} too: two frontends cannot share a control port"
                    ),
                );
            }
            controls.push((c.control, key.clone()));
            let mut binds = vec![(c.control, key)];
            for (g, gc) in groups {
                let Some(fs) = gc.frontend.as_ref().map(|f| f.get_ref()) else {
                    continue;
                };
                if *fs.driver.get_ref() != FrontendDriverKind::Builtin
                    || !fs.frontends.iter().any(|f| f.get_ref() == fe)
                {
                    continue;
                }
                let Some(listen) = fs.listen else { continue };
                let key = format!("groups.{g}.frontend.listen");
                if let Some((_, first)) = binds.iter().find(|(a, _)| clash(*a, listen)) {
                    self.push(
                        self.at(&key),
                        &key,
                        Some(format!("{:?}", listen.to_string())),
                        format!("frontend {fe} binds this port already for {first}: give each group (and the control API) its own"),
                    );
                }
                binds.push((listen, key));
            }
        }
    }

    pub(super) fn check_frontend_scheme(
        &mut self,
        name: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        frontends: &BTreeSet<String>,
        frontend_kinds: &BTreeMap<String, FrontendDriverKind>,
    ) {
        let f = fs.get_ref();
        let key = format!("groups.{name}.frontend");
        let driver = *f.driver.get_ref();
        let dname = driver.as_str();
        if f.frontends.is_empty() {
            self.push(
                fs.span(),
                &format!("{key}.frontends"),
                None,
                format!("driver \"{dname}\" needs frontends = [\"NAME\", ...] naming [frontends.NAME] tables of kind \"{dname}\""),
            );
        }
        match driver {
            FrontendDriverKind::Builtin => {
                if f.listen.is_none() {
                    self.push(
                        fs.span(),
                        &format!("{key}.listen"),
                        None,
                        "driver \"builtin\" needs listen = \"ADDR:PORT\" (where each frontend accepts this group's users)",
                    );
                }
                for (field, present) in [
                    ("backend", f.backend.is_some()),
                    ("servers", !f.servers.is_empty()),
                ] {
                    if present {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("only driver \"haproxy\" uses {field}; driver \"builtin\" forwards to backends = {{ SITE = \"host:port\", ... }}: remove this key"),
                        );
                    }
                }
            }
            FrontendDriverKind::Haproxy => self.check_haproxy_scheme(&key, fs, list),
        }
        let mut seen = Vec::new();
        for (i, fe) in f.frontends.iter().enumerate() {
            let k = format!("{key}.frontends[{i}]");
            if !frontends.contains(fe.get_ref()) {
                let known: Vec<_> = frontends.iter().cloned().collect();
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "unknown frontend; defined frontends: [{}]",
                        known.join(", ")
                    ),
                );
            }
            if let Some(kind) = frontend_kinds.get(fe.get_ref()).filter(|k| **k != driver) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "frontend {:?} is kind \"{}\" but this group's driver is \"{dname}\"; list only frontends with kind = \"{dname}\", or change the driver",
                        fe.get_ref(),
                        kind.as_str()
                    ),
                );
            }
            if seen.contains(fe.get_ref()) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    "frontend listed twice",
                );
            }
            seen.push(fe.get_ref().clone());
        }
        if driver == FrontendDriverKind::Builtin {
            // (An unknown site is reported already; asking for its backend would mislead.)
            for s in list.iter().filter(|s| sites.contains(s.get_ref())) {
                if !f.backends.keys().any(|k| k.get_ref() == s.get_ref()) {
                    let k = format!("{key}.backends");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        format!(
                            "no backend for site {:?}; give one \"host:port\" per site of the group",
                            s.get_ref()
                        ),
                    );
                }
            }
            for (k, v) in &f.backends {
                let bkey = fmt_path(&format!("{key}.backends"), &[Seg::Key(k.get_ref().clone())]);
                if !list.iter().any(|s| s.get_ref() == k.get_ref()) {
                    let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                    self.push(
                        k.span(),
                        &bkey,
                        None,
                        format!(
                            "not a site of this group; the group's sites: [{}]",
                            sites.join(", ")
                        ),
                    );
                }
                if !host_port(v.get_ref()) {
                    self.push(
                        v.span(),
                        &bkey,
                        Some(format!("{:?}", v.get_ref())),
                        "must be host:port, e.g. \"10.1.0.10:8080\"",
                    );
                } else if let (Some(listen), Ok(b)) = (f.listen, v.get_ref().parse()) {
                    if own_listen(listen, b) {
                        self.push(
                            v.span(),
                            &bkey,
                            Some(format!("{:?}", v.get_ref())),
                            format!(
                                "is the group's own listen address ({listen}): each frontend would \
                                 forward a user's connection to itself, again and again, until its \
                                 connection cap is spent; give the site's service address"
                            ),
                        );
                    }
                }
            }
        }
        if f.drain_timeout.is_zero() {
            self.positive(&format!("{key}.drain_timeout"));
        }
        self.at_most(
            &format!("{key}.connect_retry"),
            f.connect_retry,
            crate::model::MAX_CONNECT_RETRY,
            "a refused connection is retried no longer); \"0s\" fails it at once",
        );
        self.at_most(
            &format!("{key}.hold_connections"),
            f.hold_connections,
            MAX_HOLD_CONNECTIONS,
            "a user's connection is held no longer); \"0s\" turns holding off",
        );
    }

    /// The keys of `[groups.NAME.frontend]` with driver "haproxy": `backend`,
    /// `servers`, and none of the builtin driver's.
    pub(super) fn check_haproxy_scheme(
        &mut self,
        key: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
    ) {
        const NAMES: &str = "HAProxy names use only ASCII letters, digits, '-', '_', '.' and ':'";
        let f = fs.get_ref();
        let bkey = format!("{key}.backend");
        match &f.backend {
            None => self.push(
                fs.span(),
                &bkey,
                None,
                "driver \"haproxy\" needs backend = \"NAME\": the backend of haproxy.cfg that holds one server per site",
            ),
            Some(b) if !valid_haproxy_name(b.get_ref()) => self.push(
                b.span(),
                &bkey,
                Some(format!("{:?}", b.get_ref())),
                format!("not an HAProxy backend name; {NAMES}"),
            ),
            Some(_) => {}
        }
        // `listen` is optional here: where haproxy.cfg's `bind` accepts this
        // group's users. warden does not configure it; it probes it (hybrid
        // frontend health, the verify step through the entry).
        if f.listen.is_some_and(|l| l.port() == 0) {
            let k = format!("{key}.listen");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "driver \"haproxy\": listen is the address of haproxy.cfg's `bind` for this group (probed by warden); it needs a port",
            );
        }
        if !f.backends.is_empty() {
            let k = format!("{key}.backends");
            self.push(
                self.at(&k),
                &k,
                None,
                "driver \"haproxy\" does not use backends: the server addresses are in haproxy.cfg (one `server` per site in the backend); name each site's server with servers = { SITE = \"SERVER\" } instead",
            );
        }
        if !f.connect_retry.is_zero() {
            let k = format!("{key}.connect_retry");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "driver \"haproxy\" retries in haproxy.cfg (`retries`, `option redispatch`); connect_retry is the built-in frontend's",
            );
        }
        let skey = format!("{key}.servers");
        for (site, server) in &f.servers {
            let k = fmt_path(&skey, &[Seg::Key(site.get_ref().clone())]);
            if !list.iter().any(|s| s.get_ref() == site.get_ref()) {
                let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                self.push(
                    site.span(),
                    &k,
                    None,
                    format!(
                        "not a site of this group; the group's sites: [{}]",
                        sites.join(", ")
                    ),
                );
            }
            if !valid_haproxy_name(server.get_ref()) {
                self.push(
                    server.span(),
                    &k,
                    Some(format!("{:?}", server.get_ref())),
                    format!("not an HAProxy server name; {NAMES}"),
                );
            }
        }
        let mut taken: Vec<(&str, &str)> = Vec::new();
        for site in list {
            let site = site.get_ref().as_str();
            let server = f.server_of(site);
            if let Some((other, _)) = taken.iter().find(|(_, s)| *s == server) {
                let k = fmt_path(&skey, &[Seg::Key(site.to_string())]);
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{server:?}")),
                    format!("sites {other:?} and {site:?} both map to HAProxy server {server:?}; each site needs its own server (a site not listed in servers uses its own name)"),
                );
            }
            taken.push((site, server));
        }
    }

    pub(super) fn check_dns(
        &mut self,
        name: &str,
        scheme: Scheme,
        d: &Spanned<DnsScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        fe_names: Option<Vec<String>>,
    ) {
        let dns = d.get_ref();
        let key = format!("groups.{name}.dns");
        if let Some(c) = &dns.credentials {
            self.check_secret(&format!("{key}.credentials"), c);
        }
        if dns.name.trim().is_empty() {
            let k = format!("{key}.name");
            self.push(
                self.at(&k),
                &k,
                Some("\"\"".into()),
                "must be the record users resolve, e.g. \"www.example.net\"",
            );
        } else if let Some(why) = dns_name_problem(&dns.name) {
            let k = format!("{key}.name");
            self.push(self.at(&k), &k, Some(format!("{:?}", dns.name)), why);
        } else if dns.provider == DnsProviderKind::Rfc2136
            && dns.name.trim_end_matches('.').len() > 245
        {
            let k = format!("{key}.name");
            self.push(
                self.at(&k),
                &k,
                Some(format!("{:?}", dns.name)),
                "is too long for its marker record _warden.NAME (a DNS name has at most 253 characters)",
            );
        }
        if let Some(ua) = &dns.user_agent {
            if ua.chars().any(char::is_control) {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "holds a control character (a line break?): it cannot be sent as a User-Agent header",
                );
            }
        }
        if dns.ttl.is_zero() {
            self.positive(&format!("{key}.ttl"));
        }
        // A record's TTL is a number of seconds: "1500ms" was written as 1s
        // and "1ns" as 1s, nothing said.
        if dns.ttl.subsec_nanos() != 0 {
            let k = format!("{key}.ttl");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "must be whole seconds (a DNS TTL is a number of seconds; a fraction would be \
                 dropped), e.g. \"60s\"",
            );
        }
        match dns.provider {
            DnsProviderKind::Rfc2136 => {
                for (field, val, example) in [
                    ("server", &dns.server, "\"ns1.example.net:53\""),
                    ("zone", &dns.zone, "\"example.net\""),
                ] {
                    if val.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("provider \"rfc2136\" needs {field} = {example}"),
                        );
                    }
                }
            }
            DnsProviderKind::Noip | DnsProviderKind::Dyndns2 => {
                if dns.credentials.is_none() {
                    let k = format!("{key}.credentials");
                    self.push(self.at(&k), &k, None, "this provider needs credentials = { file = \"/etc/warden/NAME\" } or { env = \"VAR\" }");
                }
                if dns.provider == DnsProviderKind::Dyndns2 && dns.server.is_none() {
                    let k = format!("{key}.server");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "provider \"dyndns2\" needs server = \"https://members.example.net/nic/update\" (the update URL)",
                    );
                }
                if let Some(url) = &dns.server {
                    self.check_url(
                        &format!("{key}.server"),
                        url,
                        "the update URL, e.g. \"https://dynupdate.no-ip.com/nic/update\"",
                    );
                }
                for (field, v) in [("key_name", &dns.key_name), ("algorithm", &dns.algorithm)] {
                    if v.is_some() {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "only provider \"rfc2136\" uses a TSIG key; remove this key",
                        );
                    }
                }
            }
        }
        if dns.provider == DnsProviderKind::Rfc2136 {
            if let Some(zone) = dns.zone.as_deref().filter(|z| !z.trim().is_empty()) {
                let k = format!("{key}.zone");
                if let Some(why) = dns_name_problem(zone) {
                    self.push(self.at(&k), &k, Some(format!("{zone:?}")), why);
                } else {
                    // The update names only records of its zone.
                    let names = std::iter::once((format!("{key}.name"), &dns.name)).chain(
                        dns.aliases
                            .iter()
                            .enumerate()
                            .map(|(i, a)| (format!("{key}.aliases[{i}]"), a)),
                    );
                    for (k, n) in names {
                        if dns_name_problem(n).is_none() && !in_zone(n, zone) {
                            self.push(
                                self.at(&k),
                                &k,
                                Some(format!("{n:?}")),
                                format!("is not inside zone {zone:?}: an update may only name records of its zone"),
                            );
                        }
                    }
                }
            }
            if let Some(kn) = &dns.key_name {
                if let Some(why) = dns_name_problem(kn) {
                    let k = format!("{key}.key_name");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{kn:?}")),
                        format!(
                            "{why} (the TSIG key's name, as in the server's `key \"NAME\"` clause)"
                        ),
                    );
                }
            }
            if let Some(server) = &dns.server {
                if let Err(e) = crate::model::dns_server_syntax(server) {
                    let k = format!("{key}.server");
                    self.push(self.at(&k), &k, Some(format!("{server:?}")), e);
                }
            }
            if let Some(alg) = &dns.algorithm {
                if !crate::model::TSIG_ALGORITHMS.contains(&alg.as_str()) {
                    let k = format!("{key}.algorithm");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{alg:?}")),
                        format!(
                            "unknown TSIG algorithm; expected one of {}",
                            crate::model::TSIG_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if dns.user_agent.is_some() {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "only providers \"noip\" and \"dyndns2\" send a User-Agent; remove this key",
                );
            }
        }
        if let Some(ua) = &dns.user_agent {
            // No-IP: "Company NameOfProgram/Version contact@example".
            let parts: Vec<&str> = ua.split_whitespace().collect();
            if parts.len() < 3 || !parts[1].contains('/') {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{ua:?}")),
                    "must have the form \"Company NameOfProgram/Version contact@example\" (No-IP blocks other forms)",
                );
            }
        }
        for (i, ns) in dns.nameservers.iter().enumerate() {
            if let Err(e) = crate::model::dns_server_syntax(ns) {
                let k = format!("{key}.nameservers[{i}]");
                self.push(self.at(&k), &k, Some(format!("{ns:?}")), e);
            }
        }
        for (i, a) in dns.aliases.iter().enumerate() {
            if let Some(why) = dns_name_problem(a) {
                let k = format!("{key}.aliases[{i}]");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{a:?}")),
                    format!("must be a hostname, e.g. \"www2.example.net\": it {why}"),
                );
            }
        }
        if dns.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        self.timeout_floor(&format!("{key}.timeout"), dns.timeout);
        if let Some(port) = dns.entry_port {
            let k = format!("{key}.entry_port");
            if scheme == Scheme::Hybrid {
                self.push(
                    self.at(&k),
                    &k,
                    Some(port.to_string()),
                    "a hybrid group's users enter through its frontends' listen port; remove this key",
                );
            } else if port == 0 {
                self.push(
                    self.at(&k),
                    &k,
                    Some(port.to_string()),
                    "must be the port users connect to, 1-65535",
                );
            }
        }
        // Which names `addresses` is keyed by: sites (dns) or the group's
        // frontends (hybrid: users resolve to a frontend, which picks the site).
        let (what, expected): (&str, Vec<String>) = match scheme {
            Scheme::Hybrid => match fe_names {
                Some(f) => ("frontend", f),
                None => return, // already reported: hybrid needs a frontend table
            },
            _ => ("site", list.iter().map(|s| s.get_ref().clone()).collect()),
        };
        let akey = format!("{key}.addresses");
        // (An unknown site is reported already; asking for its address would mislead.)
        for n in expected
            .iter()
            .filter(|n| what != "site" || sites.contains(*n))
        {
            if !dns.addresses.contains_key(n) {
                self.push(
                    self.at(&akey),
                    &akey,
                    None,
                    format!(
                        "no address for {what} {n:?}; give one address per {what} of the group"
                    ),
                );
            }
        }
        // Each target's records, to find two that are one: the record read
        // back could not say which of them it names.
        let mut parsed: Vec<(&String, _)> = Vec::new();
        for (k, v) in &dns.addresses {
            let ak = fmt_path(&akey, &[Seg::Key(k.clone())]);
            if let Ok(p) = crate::model::parse_record_addresses(v) {
                if let Some((first, _)) = parsed.iter().find(|(_, q)| *q == p) {
                    self.push(
                        self.at(&ak),
                        &ak,
                        Some(format!("{v:?}")),
                        format!(
                            "is the address of {what} {first:?} too: the name's records could not \
                             tell which {what} they point to (a move between them would change \
                             nothing and never be confirmed); give each {what} its own"
                        ),
                    );
                }
                parsed.push((k, p));
            }
            if !expected.contains(k) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("not a {what} of this group; keys of addresses are the group's {what}s: [{}]", expected.join(", ")),
                );
            }
            if v.trim().is_empty() {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some("\"\"".into()),
                    "must be an address, e.g. \"10.1.0.10\"",
                );
            } else if let Err(e) = crate::model::parse_record_addresses(v) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("{e}; expected \"10.1.0.10\", \"fd00::10\" or \"10.1.0.10, fd00::10\""),
                );
            }
        }
        // A dyndns2 update sets the addresses it names and leaves the other
        // family as it was (No-IP: A and AAAA are "updated individually"):
        // a move to a target without an IPv6 address would leave the old
        // target's AAAA in place, users on IPv6 sent to it, and the
        // server's answer (naming only what was sent) taken as success.
        if matches!(
            dns.provider,
            DnsProviderKind::Noip | DnsProviderKind::Dyndns2
        ) {
            let families = |p: &(Option<_>, Option<_>)| (p.0.is_some(), p.1.is_some());
            if let Some((first, p0)) = parsed.first() {
                for (k, p) in &parsed[1..] {
                    if families(p) != families(p0) {
                        let ak = fmt_path(&akey, &[Seg::Key((*k).clone())]);
                        let said = |f: (bool, bool)| match f {
                            (true, true) => "an IPv4 and an IPv6 address",
                            (true, false) => "only an IPv4 address",
                            _ => "only an IPv6 address",
                        };
                        self.push(
                            self.at(&ak),
                            &ak,
                            dns.addresses.get(*k).map(|v| format!("{v:?}")),
                            format!(
                                "has {} but {what} {first:?} has {}: provider \"{}\" cannot remove an address (an update sets the addresses it names and leaves the other family as it was), so a move between them would leave the other {what}'s address in the name; give every {what} the same families",
                                said(families(p)),
                                said(families(p0)),
                                if dns.provider == DnsProviderKind::Noip { "noip" } else { "dyndns2" }
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Whether a backend `b` is the group's own `listen` on the frontend's
/// host: the same IP and port, or a loopback IP at the port of a wildcard
/// listen.
fn own_listen(listen: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    let (listen, b) = (canonical(listen), canonical(b));
    let wildcard = match listen.ip() {
        std::net::IpAddr::V4(v4) => v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified())
        }
    };
    listen.port() != 0
        && b.port() == listen.port()
        && (b.ip() == listen.ip() || (wildcard && b.ip().is_loopback()))
}

/// `a` with an IPv4-mapped IPv6 address (`[::ffff:10.0.0.5]:443`) as the
/// IPv4 address it is: a dual-stack socket bound there binds the IPv4
/// one (`[::ffff:0.0.0.0]` is the IPv4 wildcard), and a connection to it
/// reaches it.
pub(super) fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Whether one host cannot bind both `a` and `b`: one port (not 0, any
/// free one), and the same IP or a wildcard covering the other.
pub(super) fn binds_clash(a: SocketAddr, b: SocketAddr) -> bool {
    let (a, b) = (canonical(a), canonical(b));
    // A v6 wildcard is dual-stack (Linux's default): it covers v4 too.
    let covers =
        |w: SocketAddr, o: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4());
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}
