//! A built-in frontend's backend that is another group's `listen` address
//! on the same frontend (its own group's is refused with the group's
//! scheme, `schemes.rs`): each connection the frontend
//! forwards there comes back to it and is forwarded again, in a loop until
//! its client slots run out, and no user reaches a site. Compared as
//! addresses: the same address, or a port a wildcard `listen` binds
//! reached at the loopback or at the frontend's own `control` IP.

use super::*;
use std::net::SocketAddr;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_looping_backends(
        &mut self,
        groups: &BTreeMap<String, GroupConfig>,
        frontends: &BTreeMap<String, FrontendConfig>,
    ) {
        // (frontend, group, its listen) for every built-in group.
        let mut listens: Vec<(String, String, SocketAddr)> = Vec::new();
        for (g, gc) in groups {
            let Some(fs) = builtin(gc) else { continue };
            let Some(listen) = fs.listen else { continue };
            for fe in fs.frontend_names() {
                listens.push((fe, g.clone(), super::schemes::canonical(listen)));
            }
        }
        for (g, gc) in groups {
            let Some(fs) = builtin(gc) else { continue };
            let key = format!("groups.{g}.frontend.backends");
            for (site, addr) in &fs.backends {
                let Ok(backend) = addr.get_ref().parse::<SocketAddr>() else {
                    continue; // a host name: not judged here
                };
                let backend = super::schemes::canonical(backend);
                let looped = fs.frontend_names().into_iter().find_map(|fe| {
                    let own = frontends.get(&fe).map(|f| f.control.ip().to_canonical());
                    listens
                        .iter()
                        .filter(|(f, other, _)| *f == fe && other != g)
                        .find(|(_, _, l)| reaches(*l, backend, own))
                        .map(|(_, other, l)| (fe.clone(), other.clone(), *l))
                });
                if let Some((fe, other, listen)) = looped {
                    let k = fmt_path(&key, &[Seg::Key(site.get_ref().clone())]);
                    self.push(
                        addr.span(),
                        &k,
                        Some(format!("{:?}", addr.get_ref())),
                        format!(
                            "is where frontend {fe} listens for group {other} ({listen}): each \
                             connection it forwards here would come back to it and be forwarded \
                             again, in a loop, and no user would reach site {}; give the \
                             address of the site's service",
                            site.get_ref()
                        ),
                    );
                }
            }
        }
    }
}

/// The group's built-in frontend scheme, if it has one.
fn builtin(gc: &GroupConfig) -> Option<&FrontendScheme> {
    if gc.scheme() == Scheme::Dns {
        return None;
    }
    let fs = gc.frontend_scheme()?;
    (fs.driver() == FrontendDriverKind::Builtin).then_some(fs)
}

/// Whether a connection to `backend` reaches a socket bound at `listen`
/// on the frontend host whose own address is `own`.
fn reaches(listen: SocketAddr, backend: SocketAddr, own: Option<std::net::IpAddr>) -> bool {
    if listen.port() != backend.port() {
        return false;
    }
    let ip = backend.ip();
    if listen.ip() == ip {
        return true;
    }
    let wildcard = listen.ip().is_unspecified() && (listen.is_ipv6() || backend.is_ipv4());
    wildcard && (ip.is_loopback() || Some(ip) == own)
}
