//! The checks of `[groups.NAME.replication]`: every plan's keys, the sites
//! it names, and the limits of the mass-delete guard.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// `[groups.NAME.replication]`: the plan's keys are there for every site
    /// of the group, and keys of other plans are not.
    pub(super) fn check_replication(
        &mut self,
        name: &str,
        r: &crate::model::ReplicationConfig,
        list: &[Spanned<String>],
    ) {
        use crate::model::ReplicationPlan as P;
        let base = format!("groups.{name}.replication");
        let plan = r.plan;
        let shown = format!("\"{}\"", plan.as_str());
        for (k, d) in [
            ("resync_lag_max", r.resync_lag_max),
            ("resync_timeout", r.resync_timeout),
            ("interval", r.interval),
        ] {
            if d.is_zero() {
                self.positive(&format!("{base}.{k}"));
            }
        }
        if r.concurrency == 0 {
            let k = format!("{base}.concurrency");
            self.push(self.at(&k), &k, self.value_at(&k), "must be at least 1");
        }
        let share = r.max_delete_share;
        if !share.is_finite() || !(0.0..=1.0).contains(&share) {
            let k = format!("{base}.max_delete_share");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "must be a share from 0.0 to 1.0 (e.g. 0.10: a pass may delete up to 10 % of the peer's items)",
            );
        }
        if let Some(s) = &r.sync_key {
            self.check_secret(&format!("{base}.sync_key"), s);
        }
        let group_sites: Vec<String> = list.iter().map(|s| s.get_ref().clone()).collect();
        for site in r.sites.keys() {
            if !group_sites.contains(site) {
                let k = format!("{base}.sites.{site}");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    format!(
                        "not a site of group {name}; its sites: [{}]",
                        group_sites.join(", ")
                    ),
                );
            }
        }
        let swift = matches!(plan, P::Swift | P::SwiftContainerSync);
        // Group-level keys only some plans use.
        let group_keys: [(&str, bool, bool); 11] = [
            ("xattrs", r.xattrs.is_some(), plan == P::Rsync),
            ("acls", r.acls.is_some(), plan == P::Rsync),
            ("hard_links", r.hard_links.is_some(), plan == P::Rsync),
            ("sparse", r.sparse.is_some(), plan == P::Rsync),
            ("containers", !r.containers.is_empty(), swift),
            ("realm", r.realm.is_some(), plan == P::SwiftContainerSync),
            (
                "sync_key",
                r.sync_key.is_some(),
                plan == P::SwiftContainerSync,
            ),
            ("start", r.start.is_some(), plan == P::Command),
            ("stop", r.stop.is_some(), plan == P::Command),
            ("resync", r.resync.is_some(), plan == P::Command),
            ("verify", r.verify.is_some(), plan == P::Command),
        ];
        for (k, present, used) in group_keys {
            let key = format!("{base}.{k}");
            if present && !used {
                self.push(
                    self.at(&key),
                    &key,
                    None,
                    format!("plan {shown} does not use this key; remove it"),
                );
            }
        }
        if r.lag.is_some() && plan != P::Command {
            let key = format!("{base}.lag");
            self.push(
                self.at(&key),
                &key,
                None,
                format!("plan {shown} does not use this key; remove it"),
            );
        }
        let plan_key = format!("{base}.plan");
        let need = |this: &mut Self, key: &str, what: &str| {
            let k = format!("{base}.{key}");
            this.push(
                this.at(&plan_key),
                &k,
                Some(shown.clone()),
                format!("plan {shown} needs {key} = {what}"),
            );
        };
        match plan {
            P::Swift | P::SwiftContainerSync => {
                if r.containers.is_empty() {
                    need(self, "containers", "[\"name\", ...] (the placement list)");
                }
                for (i, c) in r.containers.iter().enumerate() {
                    if c.is_empty() || c.contains('/') {
                        let k = format!("{base}.containers[{i}]");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{c:?}")),
                            "must be a container name (no '/')",
                        );
                    }
                }
                if plan == P::SwiftContainerSync {
                    if r.realm.is_none() {
                        need(
                            self,
                            "realm",
                            "\"realm1\" (from container-sync-realms.conf)",
                        );
                    }
                    if r.sync_key.is_none() {
                        need(
                            self,
                            "sync_key",
                            "{ file = \"/path\" } (the X-Container-Sync-Key)",
                        );
                    }
                }
            }
            P::Command => {
                for (k, v) in [("start", &r.start), ("resync", &r.resync)] {
                    match v {
                        None => need(self, k, "[\"/path/to/prog\", \"arg\", ...]"),
                        Some(argv) if argv.is_empty() || argv[0].is_empty() => {
                            let key = format!("{base}.{k}");
                            self.push(
                                self.at(&key),
                                &key,
                                self.value_at(&key),
                                "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                            );
                        }
                        _ => {}
                    }
                }
            }
            P::Rsync | P::None => {}
        }
        // Per-site keys.
        let (needed, allowed): (&[&str], &[&str]) = match plan {
            P::Rsync => (
                &["path", "module", "user", "password"],
                &[
                    "path",
                    "module",
                    "user",
                    "password",
                    "manifest",
                    "quarantine",
                ],
            ),
            P::Swift => (
                &["auth_url", "user", "key"],
                &["auth_url", "user", "key", "manifest", "account"],
            ),
            P::SwiftContainerSync => (
                &["auth_url", "user", "key", "cluster"],
                &["auth_url", "user", "key", "cluster", "account"],
            ),
            P::None | P::Command => (&[], &[]),
        };
        for site in &group_sites {
            let skey = format!("{base}.sites.{site}");
            let Some(rs) = r.sites.get(site) else {
                if !needed.is_empty() {
                    self.push(
                        self.at(&plan_key),
                        &skey,
                        Some(shown.clone()),
                        format!(
                            "plan {shown} needs a [{skey}] table with {}",
                            needed.join(", ")
                        ),
                    );
                }
                continue;
            };
            let present: [(&str, bool); 10] = [
                ("path", rs.path.is_some()),
                ("module", rs.module.is_some()),
                ("user", rs.user.is_some()),
                ("password", rs.password.is_some()),
                ("manifest", rs.manifest.is_some()),
                ("quarantine", rs.quarantine.is_some()),
                ("auth_url", rs.auth_url.is_some()),
                ("key", rs.key.is_some()),
                ("cluster", rs.cluster.is_some()),
                ("account", rs.account.is_some()),
            ];
            for (k, p) in present {
                let key = format!("{skey}.{k}");
                if p && !allowed.contains(&k) {
                    self.push(
                        self.at(&key),
                        &key,
                        None,
                        format!("plan {shown} does not use this key; remove it"),
                    );
                }
                if !p && needed.contains(&k) {
                    self.push(
                        self.at(&skey),
                        &key,
                        None,
                        format!("missing: plan {shown} needs {k} for every site of the group"),
                    );
                }
            }
            if let Some(m) = &rs.module {
                if let Err(e) = crate::model::parse_rsync_module(m) {
                    let key = format!("{skey}.module");
                    self.push(self.at(&key), &key, Some(format!("{m:?}")), e);
                }
            }
            if let Some(p) = &rs.path {
                if !p.is_absolute() {
                    let key = format!("{skey}.path");
                    self.push(
                        self.at(&key),
                        &key,
                        self.value_at(&key),
                        "must be an absolute path",
                    );
                }
            }
            if let Some(u) = &rs.auth_url {
                self.check_url(
                    &format!("{skey}.auth_url"),
                    u,
                    "e.g. \"http://10.0.0.2:8080/auth/v1.0\"",
                );
            }
            if let Some(pw) = &rs.password {
                self.check_secret(&format!("{skey}.password"), pw);
            }
            if let Some(k) = &rs.key {
                self.check_secret(&format!("{skey}.key"), k);
            }
        }
    }
}
