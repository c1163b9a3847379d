//! What two groups' rsync plans cannot share at one site: a directory (the
//! same one, or one inside the other) or a daemon module. Every push
//! carries `--delete`: one group's replication into a directory that holds
//! another group's data deletes that data at the standby, and its source
//! pushes the other group's files as its own. And the site's rsync gate,
//! which judges a push by the role of the group it writes into, would
//! have two groups' roles to judge one push by (it refuses the push unless
//! the site is a standby of both).
//!
//! Reported at the later one in the file, naming the first.

use super::*;

/// What a group's rsync plan uses at one site.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Used {
    /// Its directory there.
    Dir(PathBuf),
    /// The daemon module that receives its pushes there (`HOST[:PORT]/MODULE`, lower case).
    Module(String),
}

impl Used {
    fn overlaps(&self, other: &Used) -> bool {
        match (self, other) {
            (Used::Dir(a), Used::Dir(b)) => a.starts_with(b) || b.starts_with(a),
            (Used::Module(a), Used::Module(b)) => a == b,
            _ => false,
        }
    }
}

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_shared_data(&mut self, groups: &BTreeMap<String, GroupConfig>) {
        // (where in the file, key, group, site, what) of every use.
        let mut all: Vec<(usize, String, String, String, Used)> = Vec::new();
        for (g, gc) in groups {
            let Some(r) = gc.replication() else { continue };
            if r.plan != ReplicationPlan::Rsync {
                continue;
            }
            for (site, rs) in &r.sites {
                let skey = format!("groups.{g}.replication.sites.{site}");
                // A relative path is reported already.
                if let Some(p) = rs.path.as_ref().filter(|p| p.is_absolute()) {
                    let k = format!("{skey}.path");
                    let at = self.at(&k).start;
                    all.push((at, k, g.clone(), site.clone(), Used::Dir(p.clone())));
                }
                if let Some(m) = &rs.module {
                    let k = format!("{skey}.module");
                    let at = self.at(&k).start;
                    let m = m.trim().to_ascii_lowercase();
                    all.push((at, k, g.clone(), site.clone(), Used::Module(m)));
                }
            }
        }
        all.sort();
        for (i, (_, key, group, site, used)) in all.iter().enumerate() {
            let first = all[..i]
                .iter()
                .find(|(_, _, g, s, u)| g != group && s == site && u.overlaps(used));
            let Some((_, first, other, ..)) = first else {
                continue;
            };
            let message = match used {
                Used::Dir(_) => format!(
                    "overlaps {first} (the same directory, or one inside the other): group \
                     {other}'s and group {group}'s replication would each push the other's files \
                     at site {site} and delete them (--delete); give each group a directory of \
                     its own"
                ),
                Used::Module(_) => format!(
                    "is the module of {first} too: both groups would push into one directory at \
                     site {site}, each deleting the other's files (--delete); give each group a \
                     module of its own"
                ),
            };
            self.push(self.at(key), key, self.value_at(key), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups web and api with rsync plans; `api_b` is api's table at b.
    fn two_groups(api_b: &str) -> String {
        let group = |name: &str, port: u16, b: &str| {
            format!(
                r#"
[groups.{name}]
sites = ["a", "b"]
scheme = "frontend"

[groups.{name}.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:{port}"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081" }}

[groups.{name}.replication]
plan = "rsync"

[groups.{name}.replication.sites.a]
path = "/srv/a/{name}"
module = "10.1.0.10/{name}"
user = "warden"
password = {{ env = "T" }}

[groups.{name}.replication.sites.b]
user = "warden"
password = {{ env = "T" }}
{b}
"#
            )
        };
        format!(
            r#"[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/var/lib/warden"
operator_token = {{ env = "T" }}

[sites.a]
agent_token = {{ env = "T" }}

[sites.b]
agent_token = {{ env = "T" }}

[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ env = "T" }}
{}{}"#,
            group(
                "web",
                8000,
                "path = \"/srv/b/web\"\nmodule = \"10.2.0.10/web\""
            ),
            group("api", 8001, api_b),
        )
    }

    /// A directory or a module another group's plan uses at the same site
    /// is refused where it is written (the later one), naming the first.
    /// Before, both were taken: each group's pushes deleted the other's
    /// files at the standby, and the site's gate judged a push by one
    /// group's role.
    #[test]
    fn a_directory_or_module_two_groups_share_at_a_site_is_refused() {
        std::env::set_var("T", "t");
        for (api_b, key, says) in [
            (
                "path = \"/srv/b/web/api\"\nmodule = \"10.2.0.10/api\"",
                "groups.api.replication.sites.b.path",
                "overlaps groups.web.replication.sites.b.path",
            ),
            (
                "path = \"/srv/b/api\"\nmodule = \"10.2.0.10/WEB\"",
                "groups.api.replication.sites.b.module",
                "is the module of groups.web.replication.sites.b.module too",
            ),
        ] {
            let text = two_groups(api_b);
            match parse(&text, Path::new("shared.conf")) {
                Err(ConfigError::Invalid(p)) => {
                    let e = p
                        .iter()
                        .find(|x| x.key == key)
                        .unwrap_or_else(|| panic!("{api_b}: {p:?}"));
                    assert!(e.message.contains(says), "{e}");
                }
                other => panic!("{api_b}: {other:?}"),
            }
        }
        // Directories side by side, modules of their own: fine.
        let text = two_groups("path = \"/srv/b/api\"\nmodule = \"10.2.0.10/api\"");
        parse(&text, Path::new("shared.conf")).unwrap_or_else(|e| panic!("{e}"));
    }
}
