//! What two groups' replication plans cannot share at one site: for rsync
//! a directory (the same one, or one inside the other) or a daemon module
//! (the same host, port and module, however written: `host/m` is
//! `host:873/m`). Every push carries `--delete`: one group's replication
//! into a directory that holds another group's data deletes that data at
//! the standby, and its source pushes the other group's files as its own.
//! And the site's rsync gate, which judges a push by the role of the group
//! it writes into, would have two groups' roles to judge one push by (it
//! refuses the push unless the site is a standby of both).
//!
//! For the Swift plans (`swift`, `swift-container-sync`) a container of
//! the placement list in one account of one cluster: a promote's fence
//! mark on it carries one group's epoch, which stops the other group's
//! copier for good (its epoch is counted apart), the two copiers running
//! in opposite directions copy back what the other's users deleted, and
//! container-sync's keys (derived from group and epoch) overwrite each
//! other. The account is told by the login (its URL, and the tempauth
//! account, the Keystone project or application credential, or `account`).
//!
//! Reported at the later one in the file, naming the first.

use super::*;

/// What a group's rsync plan uses at one site.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Used {
    /// Its directory there.
    Dir(PathBuf),
    /// The daemon module that receives its pushes there (host and module
    /// lower case, the port written or 873).
    Module(String),
    /// A Swift container of its placement list in one account there: the
    /// account (its login, lower case) and the container.
    Container(String, String),
    /// Its pair manifest there, when written (any plan): one record of
    /// what was last in sync cannot be two groups'.
    Manifest(PathBuf),
}

impl Used {
    fn overlaps(&self, other: &Used) -> bool {
        match (self, other) {
            (Used::Dir(a), Used::Dir(b)) => a.starts_with(b) || b.starts_with(a),
            (Used::Module(a), Used::Module(b)) => a == b,
            (Used::Container(a, c), Used::Container(b, d)) => a == b && c == d,
            (Used::Manifest(a), Used::Manifest(b)) => a == b,
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
            for (site, rs) in &r.sites {
                if let Some(m) = rs.manifest.as_ref().filter(|m| m.is_absolute()) {
                    let k = format!("groups.{g}.replication.sites.{site}.manifest");
                    let at = self.at(&k).start;
                    all.push((at, k, g.clone(), site.clone(), Used::Manifest(m.clone())));
                }
            }
            if matches!(
                r.plan,
                ReplicationPlan::Swift | ReplicationPlan::SwiftContainerSync
            ) {
                for (site, rs) in &r.sites {
                    let Some(account) = swift_account(rs) else {
                        continue;
                    };
                    for (i, c) in r.containers.iter().enumerate() {
                        let k = format!("groups.{g}.replication.containers[{i}]");
                        let at = self.at(&k).start;
                        let used = Used::Container(account.clone(), c.clone());
                        all.push((at, k, g.clone(), site.clone(), used));
                    }
                }
                continue;
            }
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
                    // As the push dials it; one that does not parse is
                    // reported already, and compared as written.
                    let m = match rs.rsync_target() {
                        Some((host, port, module)) => format!(
                            "{}:{port}/{}",
                            host.to_ascii_lowercase(),
                            module.to_ascii_lowercase()
                        ),
                        None => m.trim().to_ascii_lowercase(),
                    };
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
                Used::Manifest(_) => format!(
                    "is the manifest of {first} too: each group's replication would take the \
                     other's record of what was last in sync at site {site} for its own (a \
                     failback would keep deleted files or drop acknowledged writes); give each \
                     group a manifest of its own"
                ),
                Used::Container(_, c) => format!(
                    "container {c} is in {first} too, in the same account at site {site}: a \
                     promote's fence mark on it carries one group's epoch and stops the other's \
                     copier for good, and each group's replication copies back what the other's \
                     users deleted; give each group containers of its own (or one group both \
                     containers)"
                ),
            };
            self.push(self.at(key), key, self.value_at(key), message);
        }
    }
}

/// The Swift account a site's login reaches, as far as the config tells
/// it: the login URL with the explicit `account`, else the tempauth
/// account (`account:user`), the Keystone project (with its domain) or
/// application credential. `None` without a login (reported already).
fn swift_account(rs: &ReplicationSite) -> Option<String> {
    let lower = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let (url, who) = match (&rs.keystone, &rs.auth_url) {
        (Some(k), _) => {
            let who = match (&k.project, &k.application_credential_id) {
                (Some(p), _) => format!("project {}/{p}", k.project_domain()),
                (None, Some(id)) => format!("application credential {id}"),
                (None, None) => return None,
            };
            (lower(&k.auth_url), who)
        }
        (None, Some(url)) => {
            let user = rs.user.as_deref()?;
            let account = user.split(':').next().unwrap_or(user);
            (lower(url), format!("account {account}"))
        }
        (None, None) => return None,
    };
    Some(match &rs.account {
        Some(a) => format!("{url} account {}", a.trim()),
        None => format!("{url} {}", who.to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The orchestrator, sites a and b and frontend fe1 the groups below
    /// are written after.
    const HEAD: &str = r#"[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/var/lib/warden"
operator_token = { env = "T" }

[sites.a]
agent_token = { env = "T" }

[sites.b]
agent_token = { env = "T" }

[frontends.fe1]
control = "127.0.0.1:7100"
token = { env = "T" }
"#;

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
            "{HEAD}{}{}",
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

    /// One module written two ways (the default port left out, then
    /// written) is one module: refused. Before, the texts differed and
    /// both groups pushed into one directory, each deleting the other's
    /// files. Another port is another daemon: fine.
    #[test]
    fn a_module_written_with_its_default_port_is_the_same_module() {
        std::env::set_var("T", "t");
        let text = two_groups("path = \"/srv/b/api\"\nmodule = \"10.2.0.10:873/web\"");
        match parse(&text, Path::new("shared.conf")) {
            Err(ConfigError::Invalid(p)) => {
                let e = p
                    .iter()
                    .find(|x| x.key == "groups.api.replication.sites.b.module")
                    .unwrap_or_else(|| panic!("{p:?}"));
                assert!(e.message.contains("is the module of groups.web"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let text = two_groups("path = \"/srv/b/api\"\nmodule = \"10.2.0.10:8873/web\"");
        parse(&text, Path::new("shared.conf")).unwrap_or_else(|e| panic!("{e}"));
    }

    /// rsync: a manifest or quarantine inside the replicated path (or
    /// holding it) is refused where it is written; so is a manifest two
    /// groups name at one site. Before, all were taken: the quarantine was
    /// replicated into the peer's live data, each manifest save was a
    /// change to push, and two groups read one record of what was in sync.
    #[test]
    fn an_rsync_manifest_or_quarantine_in_the_data_or_shared_is_refused() {
        std::env::set_var("T", "t");
        let base = "path = \"/srv/b/api\"\nmodule = \"10.2.0.10/api\"";
        for (extra, key, says) in [
            (
                "manifest = \"/srv/b/api/.manifest.json\"",
                "groups.api.replication.sites.b.manifest",
                "is inside the replicated path /srv/b/api",
            ),
            (
                "quarantine = \"/srv/b/api/.quarantine\"",
                "groups.api.replication.sites.b.quarantine",
                "is inside the replicated path /srv/b/api",
            ),
            (
                "quarantine = \"/srv/b\"",
                "groups.api.replication.sites.b.quarantine",
                "holds the replicated path /srv/b/api",
            ),
        ] {
            let text = two_groups(&format!("{base}\n{extra}"));
            match parse(&text, Path::new("shared.conf")) {
                Err(ConfigError::Invalid(p)) => {
                    let e = p
                        .iter()
                        .find(|x| x.key == key)
                        .unwrap_or_else(|| panic!("{extra}: {p:?}"));
                    assert!(e.message.contains(says), "{e}");
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        let shared = "manifest = \"/var/lib/warden/b.json\"";
        let text = two_groups(&format!("{base}\n{shared}")).replacen(
            "path = \"/srv/b/web\"",
            &format!("path = \"/srv/b/web\"\n{shared}"),
            1,
        );
        match parse(&text, Path::new("shared.conf")) {
            Err(ConfigError::Invalid(p)) => {
                let e = p
                    .iter()
                    .find(|x| x.key == "groups.api.replication.sites.b.manifest")
                    .unwrap_or_else(|| panic!("{p:?}"));
                assert!(
                    e.message
                        .contains("is the manifest of groups.web.replication.sites.b.manifest too"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Beside the path, its own: fine.
        let text = two_groups(&format!(
            "{base}\nmanifest = \"/srv/b/api.m.json\"\nquarantine = \"/srv/b/api.q\""
        ));
        parse(&text, Path::new("shared.conf")).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Groups web and api with Swift plans between a and b, api's login
    /// at b being `api_b_user` at `api_b_url`, and api's containers `containers`.
    fn two_swift_groups(api_b_url: &str, api_b_user: &str, containers: &str) -> String {
        let group = |name: &str, port: u16, b_url: &str, b_user: &str, containers: &str| {
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
plan = "swift"
containers = {containers}

[groups.{name}.replication.sites.a]
auth_url = "http://10.1.0.10:8080/auth/v1.0"
user = "app:replicator"
key = {{ env = "T" }}
manifest = "/var/lib/warden/{name}.a.json"

[groups.{name}.replication.sites.b]
auth_url = "{b_url}"
user = "{b_user}"
key = {{ env = "T" }}
manifest = "/var/lib/warden/{name}.b.json"
"#
            )
        };
        format!(
            "{HEAD}{}{}",
            group(
                "web",
                8000,
                "http://10.2.0.10:8080/auth/v1.0",
                "app:replicator",
                "[\"photos\", \"docs\"]"
            ),
            group("api", 8001, api_b_url, api_b_user, containers),
        )
    }

    /// A container of two groups' Swift plans in one account is refused
    /// where the later group names it. Before, both were taken: a
    /// promote's fence mark of one group's epoch stopped the other's
    /// copier for good, and each copied back what the other's users
    /// deleted. Another account (another tempauth account, another
    /// cluster) or other containers: fine.
    #[test]
    fn a_swift_container_two_groups_share_in_one_account_is_refused() {
        std::env::set_var("T", "t");
        let text = two_swift_groups(
            "http://10.2.0.10:8080/auth/v1.0/",
            "app:other-user",
            "[\"videos\", \"photos\"]",
        );
        match parse(&text, Path::new("swift.conf")) {
            Err(ConfigError::Invalid(p)) => {
                let e = p
                    .iter()
                    .find(|x| x.key == "groups.api.replication.containers[1]")
                    .unwrap_or_else(|| panic!("{p:?}"));
                assert!(
                    e.message.contains(
                        "container photos is in groups.web.replication.containers[0] too"
                    ),
                    "{e}"
                );
                assert!(e.to_string().contains("swift.conf:"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        for (url, user, containers) in [
            (
                "http://10.2.0.10:8080/auth/v1.0",
                "other:replicator",
                "[\"photos\"]",
            ),
            (
                "http://10.2.0.99:8080/auth/v1.0",
                "app:replicator",
                "[\"photos\"]",
            ),
            (
                "http://10.2.0.10:8080/auth/v1.0",
                "app:replicator",
                "[\"videos\"]",
            ),
        ] {
            // At a, both groups share app's account: a must differ too.
            let text = two_swift_groups(url, user, containers).replacen(
                "user = \"app:replicator\"\nkey = { env = \"T\" }\nmanifest = \"/var/lib/warden/api.a.json\"",
                "user = \"apia:replicator\"\nkey = { env = \"T\" }\nmanifest = \"/var/lib/warden/api.a.json\"",
                1,
            );
            parse(&text, Path::new("swift.conf")).unwrap_or_else(|e| panic!("{url} {user}: {e}"));
        }
    }
}
