//! What two groups cannot share.
//!
//! A DNS record: a record name (a group's `dns.name` or one of its
//! `aliases`) given to two groups on one server (the same rfc2136 primary,
//! dyndns2 host, or No-IP) would be written by both, each group's moves
//! undoing the other's; with rfc2136 they would also share its marker
//! `_warden.NAME`, and whichever group's epochs are behind would be
//! refused as stale at every move. Names compare as DNS compares them:
//! without case and a final dot.
//!
//! An HAProxy backend: two groups driving one backend of one HAProxy (the
//! same runtime API) would each set its servers ready, drain or
//! maintenance for their own route, undoing the other's, each fenced only
//! against its own epochs.
//!
//! Reported at the later one in the file, naming the first.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_shared_records(&mut self, groups: &BTreeMap<String, GroupConfig>) {
        // (where in the file, key, (server, name)) of every record name.
        let mut all: Vec<(usize, String, (String, String))> = Vec::new();
        for (g, gc) in groups {
            if gc.scheme() == Scheme::Frontend {
                continue; // its dns table, if any, is reported as unused
            }
            let Some(d) = gc.dns_scheme() else { continue };
            let server = update_server(d);
            let key = format!("groups.{g}.dns");
            let names = std::iter::once((format!("{key}.name"), &d.name)).chain(
                d.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("{key}.aliases[{i}]"), a)),
            );
            for (k, n) in names {
                if dns_name_problem(n).is_some() {
                    continue; // reported already
                }
                let name = n.trim_end_matches('.').to_ascii_lowercase();
                all.push((self.at(&k).start, k, (server.clone(), name)));
            }
        }
        all.sort();
        for (i, (_, key, record)) in all.iter().enumerate() {
            let group = |k: &str| k.split('.').nth(1).unwrap_or_default().to_string();
            let first = all[..i]
                .iter()
                .find(|(_, k, r)| r == record && group(k) != group(key));
            if let Some((_, first, _)) = first {
                self.push(
                    self.at(key),
                    key,
                    self.value_at(key),
                    format!(
                        "is the record of {first} too, on the same server: two groups would both \
                         update it, each one's moves undoing the other's (with rfc2136 they would \
                         share its marker, and the group behind in epochs would be refused as \
                         stale at every move); give each group its own name"
                    ),
                );
            }
        }
    }
    pub(super) fn check_shared_backends(
        &mut self,
        groups: &BTreeMap<String, GroupConfig>,
        haproxy: &BTreeMap<String, HaproxyFrontendConfig>,
    ) {
        // (where in the file, key, (runtime API, backend)) of every use.
        let mut all: Vec<(usize, String, (String, String))> = Vec::new();
        for (g, gc) in groups {
            if gc.scheme() == Scheme::Dns {
                continue; // its frontend table, if any, is reported as unused
            }
            let Some(fs) = gc.frontend_scheme() else {
                continue;
            };
            let Some(backend) = fs.backend.as_ref().map(|b| b.get_ref().clone()) else {
                continue;
            };
            if fs.driver() != FrontendDriverKind::Haproxy {
                continue;
            }
            let key = format!("groups.{g}.frontend.backend");
            let at = self.at(&key).start;
            for fe in fs.frontend_names() {
                let Some(h) = haproxy.get(&fe) else { continue };
                let runtime = match &h.runtime {
                    RuntimeAddr::Tcp(a) => RuntimeAddr::Tcp(super::schemes::canonical(*a)),
                    other => other.clone(),
                };
                all.push((at, key.clone(), (runtime.to_string(), backend.clone())));
            }
        }
        all.sort();
        let mut reported = BTreeSet::new();
        for (i, (_, key, used)) in all.iter().enumerate() {
            let first = all[..i].iter().find(|(_, k, u)| u == used && k != key);
            if let Some((_, first, _)) = first {
                if !reported.insert(key.clone()) {
                    continue;
                }
                self.push(
                    self.at(key),
                    key,
                    self.value_at(key),
                    format!(
                        "is the backend of {first} too, on the same HAProxy ({}): two groups would \
                         each set its servers for their own route, undoing the other's moves; give \
                         each group its own backend",
                        used.0
                    ),
                );
            }
        }
    }
}

/// Where a group's record is updated, as comparable text: an rfc2136
/// primary with its port (53 when left out), a dyndns2 server's host, or
/// No-IP (one service, whichever of its URLs).
fn update_server(d: &DnsScheme) -> String {
    let server = d.server.as_deref().unwrap_or_default().trim();
    match d.provider {
        DnsProviderKind::Noip => "noip".into(),
        DnsProviderKind::Dyndns2 => url::Url::parse(server)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_else(|| server.to_ascii_lowercase()),
        DnsProviderKind::Rfc2136 => {
            if let Ok(a) = server.parse::<std::net::SocketAddr>() {
                a.to_string()
            } else if let Ok(ip) = server.parse::<std::net::IpAddr>() {
                std::net::SocketAddr::new(ip, 53).to_string()
            } else {
                let s = server.to_ascii_lowercase();
                match s.rsplit_once(':') {
                    Some(_) => s,
                    None => format!("{s}:53"),
                }
            }
        }
    }
}
