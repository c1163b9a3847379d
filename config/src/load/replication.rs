//! The checks of `[groups.NAME.replication]`: every plan's keys, the sites
//! it names, and the limits of the mass-delete guard.

use super::*;

mod site;

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
        self.timeout_floor(&format!("{base}.resync_timeout"), r.resync_timeout);
        if r.audit_every.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("{base}.audit_every"));
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
                let k = fmt_path(&format!("{base}.sites"), &[Seg::Key(site.clone())]);
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
        self.check_plan_keys(&base, r, &shown);
        let plan_key = format!("{base}.plan");
        // Per-site keys.
        let (needed, allowed): (&[&str], &[&str]) = match plan {
            // `module` + `password` or `ssh` + `ssh_key` + `known_hosts`:
            // the transport's own check below.
            P::Rsync => (
                &["path", "user"],
                &[
                    "path",
                    "module",
                    "user",
                    "password",
                    "ssh",
                    "ssh_key",
                    "known_hosts",
                    "manifest",
                    "quarantine",
                    "mount_point",
                ],
            ),
            // `auth_url` + `user` + `key` (tempauth) or `keystone`: the
            // login's own check below.
            P::Swift => (
                &[],
                &["auth_url", "user", "key", "keystone", "manifest", "account"],
            ),
            P::SwiftContainerSync => (
                &["cluster"],
                &[
                    "auth_url", "user", "key", "keystone", "cluster", "account", "manifest",
                ],
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
            self.check_replication_site(&skey, rs, plan, &shown, needed, allowed);
        }
    }

    /// The group-level keys of the plan: those it needs (containers, a
    /// realm and sync key, a command plan's programs) and those it does
    /// not read.
    fn check_plan_keys(&mut self, base: &str, r: &crate::model::ReplicationConfig, shown: &str) {
        use crate::model::ReplicationPlan as P;
        let plan = r.plan;
        let swift = matches!(plan, P::Swift | P::SwiftContainerSync);
        // Group-level keys only some plans use.
        let group_keys: [(&str, bool, bool); 12] = [
            ("xattrs", r.xattrs.is_some(), plan == P::Rsync),
            ("audit_every", r.audit_every.is_some(), plan == P::Rsync),
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
        // Keys with a default: given when the file writes them.
        let defaulted = [
            ("interval", self.written(&format!("{base}.interval")), swift),
            (
                "concurrency",
                self.written(&format!("{base}.concurrency")),
                swift,
            ),
            ("lag", r.lag.is_some(), plan == P::Command),
        ];
        let why = format!("plan {shown} does not use this key; remove it");
        self.refuse_unread(base, group_keys.into_iter().chain(defaulted), &why);
        let plan_key = format!("{base}.plan");
        // At the key with its value when it is written (`containers = []`),
        // else at the plan, which shows no value of the missing key.
        let need = |this: &mut Self, key: &str, what: &str| {
            let k = format!("{base}.{key}");
            let (at, value) = match this.value_at(&k) {
                Some(v) => (this.at(&k), Some(v)),
                None => (this.at(&plan_key), None),
            };
            this.push(at, &k, value, format!("plan {shown} needs {key} = {what}"));
        };
        match plan {
            P::Swift | P::SwiftContainerSync => {
                if r.containers.is_empty() {
                    need(self, "containers", "[\"name\", ...] (the placement list)");
                }
                for (i, c) in r.containers.iter().enumerate() {
                    if let Some(why) = placement_container_problem(c) {
                        let k = format!("{base}.containers[{i}]");
                        self.push(self.at(&k), &k, Some(format!("{c:?}")), why);
                    }
                }
                // Named in every X-Container-Sync-To (`//REALM/CLUSTER/…`).
                let names = std::iter::once((format!("{base}.realm"), r.realm.as_ref())).chain(
                    r.sites
                        .iter()
                        .map(|(s, rs)| (format!("{base}.sites.{s}.cluster"), rs.cluster.as_ref())),
                );
                for (k, v) in names {
                    let Some(v) = v.filter(|_| plan == P::SwiftContainerSync) else {
                        continue;
                    };
                    if v.is_empty() || v.contains('/') || v.chars().any(char::is_control) {
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{v:?}")),
                            "must be a realm or cluster name from container-sync-realms.conf \
                             (not empty, no '/' or control character)",
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
                // start and resync are needed; stop, verify and lag, when
                // given, run as they are (stop at every move away).
                for (k, v, needed) in [
                    ("start", &r.start, true),
                    ("resync", &r.resync, true),
                    ("stop", &r.stop, false),
                    ("verify", &r.verify, false),
                    ("lag", &r.lag, false),
                ] {
                    match v {
                        None if needed => need(self, k, "[\"/path/to/prog\", \"arg\", ...]"),
                        None => {}
                        Some(argv) => {
                            if let Some(why) = argv_problem(argv) {
                                let key = format!("{base}.{k}");
                                self.push(self.at(&key), &key, self.value_at(&key), why);
                            }
                        }
                    }
                }
            }
            P::Rsync | P::None => {}
        }
    }
}

/// The suffix of the side container a quarantined object goes to
/// (`NAME.warden-quarantine`, the agents' `quarantine_container`).
const QUARANTINE_SUFFIX: &str = ".warden-quarantine";

/// Why `c` cannot be a container of a Swift plan's placement list, or
/// `None`: the agents' copier and resync refuse such a list when the
/// replication starts (at a failover) — an empty name, one with a '/' or
/// a control character, "." or ".." (URLs resolve them into another
/// path), or one whose quarantine container (`NAME.warden-quarantine`)
/// would pass Swift's 256 bytes.
fn placement_container_problem(c: &str) -> Option<String> {
    let max = 256 - QUARANTINE_SUFFIX.len();
    let why = if c.is_empty() {
        "is empty".to_string()
    } else if c.contains('/') {
        "holds a '/' (a container name is one path segment)".into()
    } else if c.chars().any(char::is_control) {
        "holds a control character".into()
    } else if c == "." || c == ".." {
        "is \".\" or \"..\", which a URL resolves into another path".into()
    } else if c.len() > max {
        format!(
            "is {} bytes long; at most {max}, so that its quarantine container \
             (NAME{QUARANTINE_SUFFIX}) fits Swift's 256",
            c.len()
        )
    } else {
        return None;
    };
    Some(format!(
        "{why}: not a usable container name: the agents would refuse the placement list when the replication \
         or its resync starts (a failover, a failback)"
    ))
}
