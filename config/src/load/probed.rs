//! The check of `warden check-config` ([`super::check_deployment`]) that
//! what other hosts probe or forward to is not a wildcard IP (`0.0.0.0`,
//! `::`, `::ffff:0.0.0.0`): a site's endpoints (its `tcp` address, `http`
//! URL; a `dns` server is refused by every load), probed by the orchestrator and the peer sites'
//! agents, and a built-in group's backends, dialled by its frontends. A
//! wildcard is every address of the host that listens; dialled, it is the
//! dialler itself: the orchestrator judged the site by a service on its
//! own host, a peer agent by its own site's (a dead site seen healthy), a
//! frontend sent the site's users to itself. Loopback stays allowed (a
//! deployment on one host).

use std::net::{IpAddr, SocketAddr};

use super::dial::wildcard;
use super::*;

/// The wildcard IP `c` (an endpoint) dials, if any.
fn probed_wildcard(c: &CheckSpec) -> Option<IpAddr> {
    let ip = match c.kind.get_ref() {
        CheckKind::Tcp => c
            .address
            .as_ref()?
            .get_ref()
            .parse::<SocketAddr>()
            .ok()?
            .ip(),
        CheckKind::Http => match url::Url::parse(c.url.as_ref()?.get_ref()).ok()?.host()? {
            url::Host::Ipv4(a) => IpAddr::V4(a),
            url::Host::Ipv6(a) => IpAddr::V6(a),
            url::Host::Domain(_) => return None,
        },
        _ => return None,
    };
    wildcard(ip).then_some(ip)
}

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_probed_addrs(
        &mut self,
        sites: &BTreeMap<String, SiteConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        for (name, s) in sites {
            for (i, c) in s.endpoints.iter().enumerate() {
                let Some(ip) = probed_wildcard(c) else {
                    continue;
                };
                let field = match c.kind.get_ref() {
                    CheckKind::Tcp => "address",
                    _ => "url",
                };
                let key = format!("sites.{name}.endpoints[{i}].{field}");
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    format!(
                        "{ip} is every address of its host, and dialled from another host it is \
                         that host itself; the orchestrator and the peer sites' agents probe this \
                         endpoint from theirs, and would judge site {name} by their own: give the \
                         address the site's service is reached at"
                    ),
                );
            }
        }
        for (g, gc) in groups {
            let Some(fs) = gc.frontend_scheme() else {
                continue;
            };
            if fs.driver() != FrontendDriverKind::Builtin {
                continue;
            }
            for (site, v) in &fs.backends {
                let Ok(a) = v.get_ref().parse::<SocketAddr>() else {
                    continue;
                };
                if !wildcard(a.ip()) {
                    continue;
                }
                let key = fmt_path(
                    &format!("groups.{g}.frontend.backends"),
                    &[Seg::Key(site.get_ref().clone())],
                );
                self.push(
                    v.span(),
                    &key,
                    Some(format!("{:?}", v.get_ref())),
                    format!(
                        "{} is every address of its host, and dialled it is the dialler itself: \
                         each frontend would forward site {}'s users to its own host; give the \
                         address of the site's service",
                        a.ip(),
                        site.get_ref()
                    ),
                );
            }
        }
    }
}
