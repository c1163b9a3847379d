//! A built-in group's backends: no two sites of the group forwarded to one
//! backend (the same IP and port, an IPv4-mapped address as its IPv4 one,
//! a host name in any case, with or without its final dot). A failover
//! between them changed nothing for users: the frontend sent them on to
//! the backend they had, and the runbook's verify step, which sees the
//! route and the group's entry accept, reported it done.
//!
//! Reported at the later one in the file, naming the first.

use std::net::SocketAddr;

use super::schemes::canonical;
use super::*;

/// One backend as it is reached: an address, or a host name and port.
fn reached(v: &str) -> Option<String> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Some(canonical(a).to_string());
    }
    let (host, port) = v.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!(
        "{}:{port}",
        host.trim_end_matches('.').to_ascii_lowercase()
    ))
}

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_shared_site_backends(&mut self, group: &str, f: &FrontendScheme) {
        if f.driver() != FrontendDriverKind::Builtin {
            return;
        }
        let mut backends: Vec<_> = f.backends.iter().collect();
        backends.sort_by_key(|(_, v)| v.span().start);
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (site, v) in backends {
            let Some(r) = reached(v.get_ref()).filter(|_| host_port(v.get_ref())) else {
                continue;
            };
            match seen.get(&r) {
                None => {
                    seen.insert(r, site.get_ref());
                }
                Some(first) => {
                    let key = fmt_path(
                        &format!("groups.{group}.frontend.backends"),
                        &[Seg::Key(site.get_ref().clone())],
                    );
                    self.push(
                        v.span(),
                        &key,
                        Some(format!("{:?}", v.get_ref())),
                        format!(
                            "is site {first:?}'s backend too: a failover between them would leave \
                             users where they are; give each site the address of its own service"
                        ),
                    );
                }
            }
        }
    }
}
