//! The checks of a group's `dns` scheme (`[groups.NAME.dns]`): the record's
//! name, each provider's keys (rfc2136's server, zone and TSIG key; noip's
//! and dyndns2's credentials and User-Agent), TTL and timeout, and the
//! addresses per site (or per frontend, hybrid).

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
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
        self.check_dns_record(&key, dns);
        self.check_dns_provider(&key, scheme, dns);
        self.check_dns_addresses(&key, scheme, dns, list, sites, fe_names);
    }

    /// The record itself: its name, TTL, the User-Agent's characters and
    /// the credentials' reference.
    fn check_dns_record(&mut self, key: &str, dns: &DnsScheme) {
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
    }

    /// Each provider's own keys (and those it does not read), the name
    /// servers asked, aliases, timeout and entry port.
    fn check_dns_provider(&mut self, key: &str, scheme: Scheme, dns: &DnsScheme) {
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
                self.refuse_unread(
                    key,
                    [
                        ("key_name", dns.key_name.is_some(), false),
                        ("algorithm", dns.algorithm.is_some(), false),
                    ],
                    "only provider \"rfc2136\" uses a TSIG key; remove this key",
                );
                self.refuse_unread(
                    key,
                    [("zone", dns.zone.is_some(), false)],
                    "only provider \"rfc2136\" updates a zone (this provider updates the host \
                     names themselves); remove this key",
                );
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
    }

    /// The addresses per site (or per frontend, hybrid): one per target,
    /// each its own, and the same address families where the provider
    /// cannot remove one.
    fn check_dns_addresses(
        &mut self,
        key: &str,
        scheme: Scheme,
        dns: &DnsScheme,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        fe_names: Option<Vec<String>>,
    ) {
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
