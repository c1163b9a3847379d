//! The checks of `[[orchestrator.notify]]`: a unique name, exactly one of
//! a webhook `url` (http(s), no credentials in it) or a `command`, a
//! `secret` only with a webhook, known event kinds, bounded times.

use super::*;
use std::time::Duration;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_notify(&mut self, list: &[NotifyConfig]) {
        let mut names = BTreeSet::new();
        for (i, n) in list.iter().enumerate() {
            let key = format!("orchestrator.notify[{i}]");
            let ok_name = (1..=64).contains(&n.name.len())
                && n.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok_name {
                let k = format!("{key}.name");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{:?}", n.name)),
                    "must be 1 to 64 of letters, digits, '.', '_', '-'",
                );
            } else if !names.insert(n.name.clone()) {
                let k = format!("{key}.name");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{:?}", n.name)),
                    "is the name of another notify entry; give each its own",
                );
            }
            match (&n.url, &n.command) {
                (Some(_), Some(_)) => {
                    let k = format!("{key}.command");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "a notify entry is a webhook (url) or a command, not both; give each its own entry",
                    );
                }
                (None, None) => self.push(
                    self.at(&key),
                    &key,
                    None,
                    "missing: url (a webhook, e.g. \"https://hooks.example.net/warden\") or command ([\"/path/to/prog\", \"arg\"])",
                ),
                (Some(u), None) => {
                    // Never echoed: a webhook's URL is often its secret.
                    if let Some((why, _)) = http_url_problem(u) {
                        let k = format!("{key}.url");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("{why} (not shown: a webhook URL may hold its token); e.g. \"https://hooks.example.net/warden\""),
                        );
                    }
                }
                (None, Some(cmd)) => {
                    if let Some(why) = argv_problem(cmd) {
                        let k = format!("{key}.command");
                        self.push(self.at(&k), &k, self.value_at(&k), why);
                    }
                    if n.secret.is_some() {
                        let k = format!("{key}.secret");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "signs a webhook's body; a command gets no secret: remove it",
                        );
                    }
                }
            }
            if let Some(s) = &n.secret {
                self.check_secret(&format!("{key}.secret"), s);
            }
            if let Some(kinds) = &n.kinds {
                if kinds.is_empty() {
                    let k = format!("{key}.kinds");
                    self.push(
                        self.at(&k),
                        &k,
                        Some("[]".into()),
                        "lists no event kind: remove the key (the default kinds) or give [\"*\"] for all",
                    );
                }
                for (j, kind) in kinds.iter().enumerate() {
                    if kind != "*" && !EVENT_KINDS.contains(&kind.as_str()) {
                        let k = format!("{key}.kinds[{j}]");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{kind:?}")),
                            format!(
                                "is not an event kind; one of {} or \"*\"",
                                EVENT_KINDS.join(", ")
                            ),
                        );
                    }
                }
            }
            for (name, v, min, max) in [
                (
                    "timeout",
                    n.timeout,
                    Duration::from_millis(100),
                    Duration::from_secs(300),
                ),
                (
                    "retry_for",
                    n.retry_for,
                    Duration::from_secs(1),
                    Duration::from_secs(7 * 24 * 3600),
                ),
            ] {
                let k = format!("{key}.{name}");
                if v.is_zero() {
                    self.positive(&k);
                } else if v < min {
                    self.push(
                        self.at(&k),
                        &k,
                        self.value_at(&k),
                        format!("must be at least {}", humantime::format_duration(min)),
                    );
                } else if v > max {
                    self.push(
                        self.at(&k),
                        &k,
                        self.value_at(&k),
                        format!("must be at most {}", humantime::format_duration(max)),
                    );
                }
            }
        }
    }
}
