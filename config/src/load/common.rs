//! The checks of values many tables hold, the same everywhere: a secret
//! reference (and the variable it names, gathered for
//! [`Config::secret_vars`]), an http(s) URL, a state directory.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// A directory of durable state (the orchestrator's store, an agent's
    /// authority, a frontend's fence) must not depend on the directory a
    /// process happens to start in: a restart from elsewhere would forget
    /// every epoch it holds.
    pub(super) fn check_state_dir(&mut self, key: &str, dir: &std::path::Path) {
        if dir.as_os_str().as_encoded_bytes().contains(&0) {
            self.push(
                self.at(key),
                key,
                self.value_at(key),
                "holds a NUL character (\\u0000), which no file name can hold: the directory could \
                 never be created or opened; remove it",
            );
        } else if !dir.is_absolute() {
            self.push(
                self.at(key),
                key,
                Some(format!("{:?}", dir.display().to_string())),
                "must be an absolute path: durable state (epochs, roles) must not depend on the directory a process starts in",
            );
        }
    }

    /// Report `u` at `key` unless it is an http(s) URL the services accept
    /// (see [`http_url_problem`]); `example` ends the message. True when it
    /// was reported.
    pub(super) fn check_url(&mut self, key: &str, u: &str, example: &str) -> bool {
        let Some((why, echo)) = http_url_problem(u) else {
            return false;
        };
        self.push(
            self.at(key),
            key,
            echo.then(|| format!("{u:?}")),
            format!("{why}; {example}"),
        );
        true
    }

    pub(super) fn check_secret(&mut self, key: &str, s: &SecretRef) {
        if let Some(var) = &s.env {
            self.secret_vars.insert(var.clone());
        }
        // Where the key is only when something is wrong: finding it is a
        // walk of its tables, and a config names a secret per site.
        match (&s.file, &s.env) {
            (Some(_), Some(_)) => self.push(
                self.at(key),
                key,
                None,
                "give exactly one of `file` or `env`, not both",
            ),
            (None, None) => self.push(
                self.at(key),
                key,
                None,
                "give where the secret comes from: { file = \"/path\" } or { env = \"VAR\" }",
            ),
            // The value is not echoed: a secret pasted here by mistake
            // must not reach a terminal or a log.
            (None, Some(e))
                if !e.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let k = format!("{key}.env");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "must name an environment variable (letters, digits and _, not starting with a digit), \
                     e.g. \"WARDEN_TOKEN\"",
                )
            }
            (Some(f), None) if f.as_os_str().as_encoded_bytes().contains(&0) => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "holds a NUL character (\\u0000), which no file name can hold: the secret \
                     could never be read; remove it",
                )
            }
            (Some(f), None) if !f.as_os_str().is_empty() && !f.is_absolute() => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "must be an absolute path (a relative one would depend on the directory \
                     each service starts in), e.g. \"/etc/warden/NAME.token\"",
                )
            }
            (Some(f), None) if f.as_os_str().is_empty() => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    Some("\"\"".into()),
                    "must be the path of a file holding the secret",
                )
            }
            // Only a file has readers to allow: with `env` it was taken
            // and said nothing.
            (None, Some(_)) if s.others_may_read => {
                let k = format!("{key}.others_may_read");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "only a secret `file` is read with its permissions checked; an `env` \
                     secret has none to allow: remove this key",
                )
            }
            _ => {}
        }
    }
}
