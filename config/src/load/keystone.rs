//! The checks of a `keystone = { … }` table (a Swift site's login, the
//! `keystone` and `swift` checks): an http(s) identity URL, one way to log
//! in and all of it, secrets from files or the environment, a known
//! catalog interface.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_keystone(&mut self, key: &str, k: &KeystoneConfig) {
        let url_key = format!("{key}.auth_url");
        let bad_url = self.check_url(
            &url_key,
            &k.auth_url,
            "e.g. \"http://10.0.0.5:5000/v3\" (the identity v3 URL)",
        );
        if !bad_url && (k.auth_url.contains('?') || k.auth_url.contains('#')) {
            self.push(
                self.at(&url_key),
                &url_key,
                Some(format!("{:?}", k.auth_url)),
                "must have no query or fragment: warden adds /auth/tokens to it",
            );
        }
        let password = [
            ("user", k.user.is_some()),
            ("password", k.password.is_some()),
            ("project", k.project.is_some()),
        ];
        let app = [
            (
                "application_credential_id",
                k.application_credential_id.is_some(),
            ),
            (
                "application_credential_secret",
                k.application_credential_secret.is_some(),
            ),
        ];
        let by_password = password.iter().any(|(_, p)| *p);
        let by_app = app.iter().any(|(_, p)| *p);
        const WAYS: &str = "a password scoped to a project (user, password, project) or an \
                            application credential (application_credential_id, \
                            application_credential_secret)";
        match (by_password, by_app) {
            (true, true) => {
                let k2 = format!("{key}.application_credential_id");
                let at = if k.application_credential_id.is_some() {
                    k2
                } else {
                    format!("{key}.application_credential_secret")
                };
                self.push(
                    self.at(&at),
                    &at,
                    None,
                    format!("Keystone logs in one way: {WAYS}, not both; remove one set"),
                );
            }
            (false, false) => self.push(
                self.at(key),
                key,
                None,
                format!("missing: how to log in, {WAYS}"),
            ),
            (true, false) | (false, true) => {
                let (set, what) = if by_password {
                    (&password[..], "a password login")
                } else {
                    (&app[..], "an application credential login")
                };
                for (name, present) in set {
                    if !present {
                        self.push(
                            self.at(key),
                            &format!("{key}.{name}"),
                            None,
                            format!("missing: {what} needs {name}"),
                        );
                    }
                }
            }
        }
        if by_app && !by_password {
            for (name, present) in [
                ("user_domain", k.user_domain.is_some()),
                ("project_domain", k.project_domain.is_some()),
            ] {
                if present {
                    let at = format!("{key}.{name}");
                    self.push(
                        self.at(&at),
                        &at,
                        None,
                        "an application credential carries its user and project: remove it",
                    );
                }
            }
        }
        for (name, v) in [
            ("user", &k.user),
            ("user_domain", &k.user_domain),
            ("project", &k.project),
            ("project_domain", &k.project_domain),
            ("application_credential_id", &k.application_credential_id),
            ("region", &k.region),
        ] {
            if v.as_deref()
                .is_some_and(|v| v.trim().is_empty() || v.chars().any(char::is_control))
            {
                let at = format!("{key}.{name}");
                self.push(
                    self.at(&at),
                    &at,
                    self.value_at(&at),
                    "must be a name: not empty, no control characters",
                );
            }
        }
        if let Some(i) = &k.interface {
            if !["public", "internal", "admin"].contains(&i.as_str()) {
                let at = format!("{key}.interface");
                self.push(
                    self.at(&at),
                    &at,
                    Some(format!("{i:?}")),
                    "must be \"public\", \"internal\" or \"admin\" (the catalog interface)",
                );
            }
        }
        if let Some(p) = &k.password {
            self.check_secret(&format!("{key}.password"), p);
        }
        if let Some(s) = &k.application_credential_secret {
            self.check_secret(&format!("{key}.application_credential_secret"), s);
        }
    }
}
