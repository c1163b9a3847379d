//! How a replication site is reached: a Swift site's login (tempauth or
//! Keystone) and an rsync site's transport (a daemon module or ssh).

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
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
                            "the site logs in with its keystone table; auth_url, user and key are                              tempauth's: remove it",
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
                                "missing: plan {shown} needs {name} for every site of the group                                  (tempauth: auth_url, user, key), or a keystone table instead"
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
