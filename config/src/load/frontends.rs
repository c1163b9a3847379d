//! The checks of `[frontends.NAME]`: an entry against its kind (the
//! keys a built-in frontend or an HAProxy needs, none of the other's),
//! and the addresses a built-in frontend binds (its control API, its
//! groups' `listen`) clashing on one port.

use super::schemes::binds_clash;
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
}
