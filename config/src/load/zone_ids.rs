//! An IPv6 address with a zone id (`[fe80::1%2]:7000`, a link-local
//! address on one link of this host) parses as a socket address and can be
//! bound, but no URL can carry one (the URL parser the services use, like
//! every WHATWG parser, refuses `%` in an IPv6 host), and an address built
//! again from its IP loses it. So an address warden reaches by URL or
//! probes from its IP must not have one: the orchestrator's API when no
//! `url` says where it is reached (each node's), a built-in frontend's
//! control API, and a frontend group's `listen` (the verify step's entry).
//! And a link-local address without its zone (`[fe80::1]:7000`) cannot be
//! bound at all (the kernel refuses it: "Invalid argument"), nor reached:
//! refused wherever a process binds it.
//! Checked by every load: no process could use such a config.

use std::net::SocketAddr;

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_zone_ids(
        &mut self,
        o: &OrchestratorConfig,
        frontends: &BTreeMap<String, FrontendConfig>,
        groups: &BTreeMap<String, GroupConfig>,
    ) {
        let api =
            "agents, frontends and the CLI reach the API by URL (http://{listen} when no url \
                   is set): set url = \"http://HOST:PORT\" beside it, with a name or an address \
                   without a zone";
        if o.nodes.is_empty() && o.url.is_none() {
            self.zone_id("orchestrator.listen", o.listen, api);
        }
        for (i, n) in o.nodes.iter().enumerate() {
            if n.url.is_none() {
                self.zone_id(&format!("orchestrator.nodes[{i}].listen"), n.listen, api);
            }
        }
        for (name, f) in frontends {
            self.zone_id(
                &format!("frontends.{name}.control"),
                f.control,
                "the orchestrator reaches the control API by URL (http://{control}): give an \
                 address without a zone",
            );
        }
        // What a process binds: a link-local address needs its zone there.
        let mut binds: Vec<(String, SocketAddr)> = Vec::new();
        if o.nodes.is_empty() {
            binds.push(("orchestrator.listen".into(), o.listen));
        }
        for (i, n) in o.nodes.iter().enumerate() {
            binds.push((format!("orchestrator.nodes[{i}].listen"), n.listen));
        }
        for (name, f) in frontends {
            binds.push((format!("frontends.{name}.control"), f.control));
        }
        for (name, g) in groups {
            let listen = g.frontend_scheme().filter(|_| g.scheme() != Scheme::Dns);
            if let Some(l) = listen.and_then(|f| f.listen) {
                binds.push((format!("groups.{name}.frontend.listen"), l));
            }
        }
        for (key, addr) in binds {
            self.link_local(&key, addr);
        }
        for (name, g) in groups {
            // (A frontend table a dns group has is reported as unused.)
            let used = g.scheme() != Scheme::Dns;
            if let Some(listen) = g.frontend_scheme().and_then(|f| f.listen).filter(|_| used) {
                self.zone_id(
                    &format!("groups.{name}.frontend.listen"),
                    listen,
                    "the verify step of every failover reaches the group's users' entry at this \
                     address, without the zone (and by URL with an identity), and would fail: \
                     give an address without a zone",
                );
            }
        }
    }

    /// Report `addr` at `key` if it is link-local without a zone.
    fn link_local(&mut self, key: &str, addr: SocketAddr) {
        let SocketAddr::V6(v6) = addr else { return };
        if v6.scope_id() != 0 || v6.ip().segments()[0] & 0xffc0 != 0xfe80 {
            return;
        }
        self.push(
            self.at(key),
            key,
            self.value_at(key),
            "is a link-local address without its zone: no socket can be bound there (the \
             kernel refuses it), and none reached; give an address that is not link-local",
        );
    }

    /// Report `addr` at `key` if it has a zone id; `why` says what reaches it.
    fn zone_id(&mut self, key: &str, addr: SocketAddr, why: &str) {
        let SocketAddr::V6(v6) = addr else { return };
        if v6.scope_id() == 0 {
            return;
        }
        self.push(
            self.at(key),
            key,
            self.value_at(key),
            format!(
                "has a zone id (%{}), which no URL can carry; {why}",
                v6.scope_id()
            ),
        );
    }
}
