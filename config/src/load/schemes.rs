//! The checks of the groups' `frontend` scheme: drivers, frontends,
//! backends, HAProxy names; and the address rules the bind and loop
//! checks share ([`canonical`], [`binds_clash`]). `[frontends.NAME]` is
//! checked in `frontends.rs`, the `dns` scheme in `dns.rs`.

use super::*;
use std::net::SocketAddr;

impl<'t, 'r> Cx<'t, 'r> {
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
        // The built-in frontend holds users' connections; HAProxy cannot be
        // told to: given here, it was taken and did nothing.
        let hkey = format!("{key}.hold_connections");
        if self.written(&hkey) {
            self.push(
                self.at(&hkey),
                &hkey,
                self.value_at(&hkey),
                "driver \"haproxy\" holds no connection (haproxy.cfg's `timeout connect`, `retries` \
                 and `option redispatch` decide what a user whose server refuses sees); \
                 hold_connections is the built-in frontend's: remove this key",
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
