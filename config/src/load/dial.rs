//! The check of `warden check-config` ([`super::check_deployment`]) that
//! every address another host *dials* can be dialled: the orchestrator's
//! API (each node's) when no `url` says where it is reached, a built-in
//! frontend's `control` (the orchestrator's driver dials it) and an
//! HAProxy's TCP runtime API. Such an address must name one host and one
//! port. Port 0 picks a free port when the process starts, which no other
//! process can know; a wildcard IP (`0.0.0.0`, `::`) is every address of
//! the listening host, and dialled from another host it means the dialler
//! itself (`[::ffff:0.0.0.0]`, the IPv4 wildcard written as IPv6, too).
//! Listening on a wildcard stays possible for the orchestrator: its
//! `url` then says where it is reached (and must itself name one host and
//! port). With `nodes`, each node's `listen` and `url` are the ones
//! dialled (the top-level ones are unused). A group's `listen`, where its
//! users (and the hybrid probe) reach each frontend, needs its port too;
//! its wildcard is the frontend's own host. A single process's own tests
//! may use port 0 (`parse`/`load` accept it); a deployment may not. A
//! frontend's control or runtime address must not be an orchestrator's own
//! (it would dial itself, and the frontend could not bind), nor may a
//! group's `listen` be an orchestrator's API on its host; frontends whose
//! control APIs share an IP (one host) must not bind one port twice.

use std::net::{IpAddr, SocketAddr};

use super::schemes::{binds_clash, canonical};
use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_dial_addrs(
        &mut self,
        o: &OrchestratorConfig,
        frontends: &BTreeMap<String, FrontendConfig>,
        haproxy: &BTreeMap<String, HaproxyFrontendConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        let api = "agents, frontends' owners and the CLI reach the API there";
        // With nodes, each node's own address is the one dialled.
        if o.nodes.is_empty() {
            self.dialled("orchestrator.listen", o.listen, o.url.is_some(), api);
            if let Some(u) = &o.url {
                self.dialled_url("orchestrator.url", u);
            }
        }
        for (i, n) in o.nodes.iter().enumerate() {
            let key = format!("orchestrator.nodes[{i}].listen");
            self.dialled(&key, n.listen, n.url.is_some(), api);
            if let Some(u) = &n.url {
                self.dialled_url(&format!("orchestrator.nodes[{i}].url"), u);
            }
        }
        // Where each orchestrator listens (each node's, with nodes).
        let apis: Vec<(String, SocketAddr)> = if o.nodes.is_empty() {
            vec![("orchestrator.listen".into(), o.listen)]
        } else {
            o.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("orchestrator.nodes[{i}].listen"), n.listen))
                .collect()
        };
        // Nodes on several hosts (one not on loopback): whichever leads
        // drives every frontend, so a control or runtime API only its own
        // host reaches (a UNIX socket, a loopback address) would be another
        // frontend, or none, under each leader — the frontends users enter
        // through keeping the route of a deposed leader.
        let spread = o.nodes.iter().any(|n| !n.listen.ip().is_loopback());
        for (name, f) in frontends {
            let key = format!("frontends.{name}.control");
            self.dialled(&key, f.control, false, "the orchestrator dials it");
            self.not_an_api(&key, f.control, &apis);
            if spread && f.control.ip().is_loopback() {
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    "only this host reaches it, and with orchestrator.nodes on several hosts \
                     whichever node leads drives the frontend: give its control API an address \
                     every node reaches",
                );
            }
        }
        for (name, h) in haproxy {
            let key = format!("frontends.{name}.runtime");
            let local = match &h.runtime {
                RuntimeAddr::Tcp(a) => {
                    self.dialled(&key, *a, false, "the orchestrator dials it");
                    self.not_an_api(&key, *a, &apis);
                    a.ip().is_loopback()
                }
                RuntimeAddr::Unix(_) => true,
            };
            if spread && local {
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    "only this host reaches it, and with orchestrator.nodes on several hosts \
                     whichever node leads drives the HAProxy: give its runtime API a TCP address \
                     every node reaches (`stats socket ipv4@IP:PORT level admin`, on a private \
                     network)",
                );
            }
        }
        for (name, g) in groups {
            let Some(fs) = g.frontend_scheme() else {
                continue;
            };
            let Some(listen) = fs.listen else {
                continue;
            };
            if fs.driver() == FrontendDriverKind::Builtin {
                let controls: Vec<SocketAddr> = fs
                    .frontends
                    .iter()
                    .filter_map(|f| frontends.get(f.get_ref()).map(|c| c.control))
                    .collect();
                self.listen_not_an_api(name, listen, &controls, &apis);
            }
            if listen.port() == 0 {
                let key = format!("groups.{name}.frontend.listen");
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    "port 0 takes a free port when the frontend starts, which nothing else can know; \
                     the group's users (and warden's probes) connect to this port: give it",
                );
            }
        }
    }

    /// Built-in frontends whose control APIs are on one IP are on one host
    /// (each binds its `control` itself, and the orchestrator dials that
    /// IP): what one binds (its control API, each of its groups' `listen`)
    /// the other cannot bind too — two frontends of one group there both
    /// bind the group's `listen` — and whichever starts second stops.
    /// Reported at the later `listen` (two control APIs on one port are
    /// `check_frontend_binds`' to report, in every load). Nor can two of
    /// them keep their fences in one `state_dir` there: each would
    /// overwrite the other's epochs, and refuse to start on the other's
    /// file.
    pub(super) fn check_shared_hosts(
        &mut self,
        data_dir: &std::path::Path,
        frontends: &BTreeMap<String, FrontendConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        // What each frontend binds: (address, key, frontend).
        let mut binds: Vec<(SocketAddr, String, &str)> = Vec::new();
        let mut reported = BTreeSet::new();
        let state_dir = |fe: &str, c: &FrontendConfig| {
            c.state_dir
                .clone()
                .unwrap_or_else(|| data_dir.join(format!("frontend-{fe}")))
        };
        for (fe, c) in frontends {
            let mine = binds.len();
            let same_host = |other: &str| {
                frontends
                    .get(other)
                    .is_some_and(|o| o.control.ip().to_canonical() == c.control.ip().to_canonical())
            };
            let dir = state_dir(fe, c);
            if let Some((other, _)) = frontends
                .range::<String, _>(..fe.clone())
                .find(|(o, oc)| same_host(o) && state_dir(o, oc) == dir)
            {
                let key = format!("frontends.{fe}.state_dir");
                self.push(
                    self.at(&key),
                    &key,
                    Some(format!("{:?}", dir.display().to_string())),
                    format!(
                        "is frontend {other}'s state_dir too, and both are on one host (both \
                         control APIs are on {}): each would overwrite the other's fence (the \
                         highest epoch it accepted per group) and refuse to start on the \
                         other's; give each frontend its own",
                        c.control.ip()
                    ),
                );
            }
            let control_key = format!("frontends.{fe}.control");
            // Another's group listen at this control API's address.
            if let Some((_, first, other)) = binds.iter().find(|(a, k, other)| {
                !k.ends_with(".control") && same_host(other) && binds_clash(*a, c.control)
            }) {
                self.push(
                    self.at(&control_key),
                    &control_key,
                    self.value_at(&control_key),
                    format!(
                        "frontends {other} and {fe} are on one host (both control APIs are on {}), \
                         and {other} binds this port already for {first}: one host cannot bind it \
                         twice, and whichever frontend starts second stops; give the control API \
                         another port",
                        c.control.ip()
                    ),
                );
            }
            binds.push((c.control, control_key, fe.as_str()));
            for (g, gc) in groups {
                let Some(fs) = gc.frontend_scheme() else {
                    continue;
                };
                if fs.driver() != FrontendDriverKind::Builtin || !fs.is_served_by(fe) {
                    continue;
                }
                let Some(listen) = fs.listen else { continue };
                let key = format!("groups.{g}.frontend.listen");
                let other = binds[..mine]
                    .iter()
                    .find(|(a, _, other)| same_host(other) && binds_clash(*a, listen));
                if let Some((_, first, other)) = other {
                    if reported.insert(key.clone()) {
                        let what = if *first == key {
                            "binds it too".to_string()
                        } else {
                            format!("binds this port already for {first}")
                        };
                        self.push(
                            self.at(&key),
                            &key,
                            self.value_at(&key),
                            format!(
                                "frontends {other} and {fe} are on one host (both control APIs are \
                                 on {}), and {other} {what}: one host cannot bind it twice, and \
                                 whichever frontend starts second stops; give each frontend its \
                                 own host (control IP), or the group another port",
                                c.control.ip()
                            ),
                        );
                    }
                }
                binds.push((listen, key, fe.as_str()));
            }
        }
    }

    /// A `url` is where the API is dialled: a wildcard IP there is as
    /// unreachable as in `listen` (its form, port 0 included, is checked by
    /// every load: see `http_url_problem`).
    fn dialled_url(&mut self, key: &str, u: &str) {
        let Ok(parsed) = url::Url::parse(u) else {
            return;
        };
        let wildcard = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => wildcard(ip.into()),
            Some(url::Host::Ipv6(ip)) => wildcard(ip.into()),
            _ => false,
        };
        if wildcard {
            self.push(
                self.at(key),
                key,
                self.value_at(key),
                "a wildcard IP dialled from another host is that host itself; the url says where \
                 agents, frontends' owners and the CLI reach the API: give this host's name or address",
            );
        }
        let link_local = matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.segments()[0] & 0xffc0 == 0xfe80);
        if link_local {
            self.push(
                self.at(key),
                key,
                self.value_at(key),
                "a link-local address is reached only with its zone (the interface), which no URL \
                 can carry: every connection to it fails; give this host's name or another address",
            );
        }
    }

    /// A frontend's control or runtime address, dialled by the
    /// orchestrator, must not be where an orchestrator listens: the same
    /// IP and port (or a loopback IP and the port of an orchestrator
    /// listening on a wildcard) is the orchestrator's own socket — it
    /// would send its orders to itself, and the frontend could not bind.
    fn not_an_api(&mut self, key: &str, addr: SocketAddr, apis: &[(String, SocketAddr)]) {
        if addr.port() == 0 {
            return;
        }
        let addr = canonical(addr);
        let same = |api: &SocketAddr| {
            let api = canonical(*api);
            api.port() == addr.port()
                && (api.ip() == addr.ip() || (wildcard(api.ip()) && addr.ip().is_loopback()))
        };
        if let Some((api_key, _)) = apis.iter().find(|(_, api)| same(api)) {
            self.push(
                self.at(key),
                key,
                self.value_at(key),
                format!(
                    "is where the orchestrator's API listens ({api_key}): the orchestrator would \
                     send the frontend's orders to itself, and the frontend could not bind it; \
                     give the frontend its own address or port"
                ),
            );
        }
    }

    /// A built-in frontend binds its group's `listen` on its own host: on
    /// an orchestrator's host, at the port of its API, one of the two
    /// cannot bind (whichever starts second stops). That host is certain
    /// when the listen is the API's own IP (a loopback IP with an API
    /// listening on a wildcard), or, for a wildcard listen, when the
    /// frontend's `control` is the API's IP (or loopback, with the API on
    /// loopback or a wildcard): the orchestrator dials it there.
    fn listen_not_an_api(
        &mut self,
        group: &str,
        listen: SocketAddr,
        controls: &[SocketAddr],
        apis: &[(String, SocketAddr)],
    ) {
        if listen.port() == 0 {
            return;
        }
        let listen = canonical(listen);
        let on_api_host = |ip: IpAddr, api: IpAddr| {
            ip == api || (ip.is_loopback() && (api.is_loopback() || wildcard(api)))
        };
        let clash = |api: &SocketAddr| {
            let api = canonical(*api);
            api.port() == listen.port()
                && (listen.ip() == api.ip()
                    || (wildcard(api.ip()) && listen.ip().is_loopback())
                    || (wildcard(listen.ip())
                        && controls
                            .iter()
                            .any(|c| on_api_host(c.ip().to_canonical(), api.ip()))))
        };
        if let Some((api_key, _)) = apis.iter().find(|(_, api)| clash(api)) {
            let key = format!("groups.{group}.frontend.listen");
            self.push(
                self.at(&key),
                &key,
                self.value_at(&key),
                format!(
                    "is where the orchestrator's API listens ({api_key}), on the same host: the \
                     frontend that binds it for the group's users and the orchestrator cannot \
                     both bind one port, and whichever starts second stops; give the group \
                     another port"
                ),
            );
        }
    }

    /// `addr` at `key` is dialled by other hosts (`why`); `url` gives where
    /// it is reached instead, which frees the IP (not the port).
    fn dialled(&mut self, key: &str, addr: SocketAddr, url: bool, why: &str) {
        let message = if addr.port() == 0 {
            format!(
                "port 0 takes a free port when the process starts, which nothing else can know; \
                 {why}: give the port"
            )
        } else if wildcard(addr.ip()) && !url {
            let fix = if key.starts_with("orchestrator.") {
                "listen on this host's address, or keep the wildcard and set url = \"http://HOST:PORT\" beside it"
            } else {
                "give this host's address"
            };
            format!(
                "{} is every address of its host, and dialled from another host it is that host \
                 itself; {why}: {fix}",
                addr.ip()
            )
        } else {
            return;
        };
        self.push(self.at(key), key, self.value_at(key), message);
    }
}

/// Every address of the host: `0.0.0.0`, `::`, or the IPv4 one written as
/// an IPv4-mapped IPv6 address (`::ffff:0.0.0.0`, bound as IPv4's on Linux).
pub(super) fn wildcard(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified())
        }
    }
}
