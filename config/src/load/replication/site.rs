//! One site's table of a replication plan: the keys its plan needs and
//! uses, how the site is reached (a Swift site's login, tempauth or
//! Keystone; an rsync site's transport, a daemon module or ssh), its paths,
//! URL and secrets.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// One site's table of a plan: the keys the plan needs and uses
    /// (`needed`, `allowed`), how it is reached, and its paths, URL and
    /// secrets.
    pub(super) fn check_replication_site(
        &mut self,
        skey: &str,
        rs: &crate::model::ReplicationSite,
        plan: crate::model::ReplicationPlan,
        shown: &str,
        needed: &[&str],
        allowed: &[&str],
    ) {
        use crate::model::ReplicationPlan as P;
        let present: [(&str, bool); 15] = [
            ("path", rs.path.is_some()),
            ("module", rs.module.is_some()),
            ("ssh", rs.ssh.is_some()),
            ("ssh_key", rs.ssh_key.is_some()),
            ("known_hosts", rs.known_hosts.is_some()),
            ("user", rs.user.is_some()),
            ("password", rs.password.is_some()),
            ("manifest", rs.manifest.is_some()),
            ("quarantine", rs.quarantine.is_some()),
            ("auth_url", rs.auth_url.is_some()),
            ("key", rs.key.is_some()),
            ("keystone", rs.keystone.is_some()),
            ("cluster", rs.cluster.is_some()),
            ("account", rs.account.is_some()),
            ("mount_point", rs.mount_point.is_some()),
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
                    self.at(skey),
                    &key,
                    None,
                    format!("missing: plan {shown} needs {k} for every site of the group"),
                );
            }
        }
        if plan == P::Rsync {
            self.check_rsync_transport(skey, rs);
        }
        if matches!(plan, P::Swift | P::SwiftContainerSync) {
            self.check_swift_login(skey, rs, shown);
        }
        if let Some(m) = &rs.module {
            if let Err(e) = crate::model::parse_rsync_module(m) {
                let key = format!("{skey}.module");
                self.push(self.at(&key), &key, Some(format!("{m:?}")), e);
            }
        }
        if let Some(h) = &rs.ssh {
            if let Err(e) = crate::model::parse_ssh_host(h) {
                let key = format!("{skey}.ssh");
                self.push(self.at(&key), &key, Some(format!("{h:?}")), e);
            }
        }
        // (manifest, quarantine: where what was last confirmed in sync,
        // and what a failback moved aside, are kept across restarts.)
        for (k, p) in [
            ("path", &rs.path),
            ("ssh_key", &rs.ssh_key),
            ("known_hosts", &rs.known_hosts),
            ("manifest", &rs.manifest),
            ("quarantine", &rs.quarantine),
        ] {
            if p.as_ref().is_some_and(|p| !p.is_absolute()) {
                let key = format!("{skey}.{k}");
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    "must be an absolute path",
                );
            }
        }
        // rsync: the manifest and the quarantine are kept beside the
        // replicated directory, never in it — inside, the quarantine (the
        // writes a failback set aside) would be replicated into the peer's
        // live data, and each manifest save would be a change to push (and
        // overwrite the peer's own). Nor may the directory be inside them.
        if plan == P::Rsync {
            if let Some(path) = rs.path.as_ref().filter(|p| p.is_absolute()) {
                for (k, p) in [("manifest", &rs.manifest), ("quarantine", &rs.quarantine)] {
                    let Some(p) = p.as_ref().filter(|p| p.is_absolute()) else {
                        continue;
                    };
                    let why = if p.starts_with(path) {
                        Some(format!(
                            "is inside the replicated path {}: it would be replicated with the \
                             data; keep it beside the path (the default is PATH.warden-{k}{})",
                            path.display(),
                            if k == "manifest" { ".json" } else { "" }
                        ))
                    } else if path.starts_with(p) {
                        Some(format!(
                            "holds the replicated path {}: keep it beside the path",
                            path.display()
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        let key = format!("{skey}.{k}");
                        self.push(self.at(&key), &key, self.value_at(&key), why);
                    }
                }
            }
        }
        // The ssh client's `-e` string quotes these paths in double
        // quotes, and rsync's remote command names `path`: a quote, a
        // backslash or a control character cannot be carried faithfully.
        for (k, p) in [
            ("ssh_key", rs.ssh_key.as_ref()),
            ("known_hosts", rs.known_hosts.as_ref()),
        ] {
            if p.is_some_and(|p| {
                p.to_string_lossy()
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c.is_control())
            }) {
                let key = format!("{skey}.{k}");
                self.push(
                    self.at(&key),
                    &key,
                    self.value_at(&key),
                    "must not contain '\"', '\\' or control characters (it goes into ssh's command line)",
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

    /// A Swift site logs in one way: tempauth (`auth_url`, `user`, `key`)
    /// or Keystone (`keystone`), never both and never half of tempauth.
    pub(super) fn check_swift_login(
        &mut self,
        skey: &str,
        rs: &crate::model::ReplicationSite,
        shown: &str,
    ) {
        let tempauth = [
            ("auth_url", rs.auth_url.is_some()),
            ("user", rs.user.is_some()),
            ("key", rs.key.is_some()),
        ];
        match &rs.keystone {
            Some(k) => {
                for (name, present) in tempauth {
                    if present {
                        let key = format!("{skey}.{name}");
                        self.push(
                            self.at(&key),
                            &key,
                            None,
                            "the site logs in with its keystone table; auth_url, user and key are \
                             tempauth's: remove it",
                        );
                    }
                }
                self.check_keystone(&format!("{skey}.keystone"), k);
            }
            None => {
                for (name, present) in tempauth {
                    if !present {
                        let key = format!("{skey}.{name}");
                        self.push(
                            self.at(skey),
                            &key,
                            None,
                            format!(
                                "missing: plan {shown} needs {name} for every site of the group \
                                 (tempauth: auth_url, user, key), or a keystone table instead"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// An rsync site is reached one way: a daemon module (`module` +
    /// `password`) or ssh (`ssh` + `ssh_key` + `known_hosts`), never both
    /// and never half of one.
    pub(super) fn check_rsync_transport(&mut self, skey: &str, rs: &crate::model::ReplicationSite) {
        let daemon = rs.module.is_some() || rs.password.is_some();
        let ssh = rs.ssh.is_some() || rs.ssh_key.is_some() || rs.known_hosts.is_some();
        if daemon && ssh {
            let key = if rs.ssh.is_some() {
                format!("{skey}.ssh")
            } else if rs.ssh_key.is_some() {
                format!("{skey}.ssh_key")
            } else {
                format!("{skey}.known_hosts")
            };
            self.push(
                self.at(&key),
                &key,
                None,
                "a site is reached through a daemon module (module, password) or over ssh \
                 (ssh, ssh_key, known_hosts), not both: remove one set",
            );
            return;
        }
        let need: &[(&str, bool)] = if ssh {
            &[
                ("ssh", rs.ssh.is_some()),
                ("ssh_key", rs.ssh_key.is_some()),
                ("known_hosts", rs.known_hosts.is_some()),
            ]
        } else {
            &[
                ("module", rs.module.is_some()),
                ("password", rs.password.is_some()),
            ]
        };
        for (k, present) in need {
            if !present {
                let key = format!("{skey}.{k}");
                let how = if ssh {
                    format!("rsync over ssh needs {k} (with ssh, ssh_key and known_hosts)")
                } else {
                    format!(
                        "plan \"rsync\" needs {k} for a site reached through a daemon module \
                         (module, password), or ssh, ssh_key and known_hosts to reach it over ssh"
                    )
                };
                self.push(self.at(skey), &key, None, format!("missing: {how}"));
            }
        }
    }
}
