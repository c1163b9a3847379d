//! The configs the gate's tests judge by: sites a, b and c (b's agent state in
//! a directory of the test's), one frontend, and groups with an rsync plan
//! whose site tables the tests write.

use std::path::Path;

use warden_config::Config;

/// A config of sites a, b and c, b's state in `state_dir`, and `groups`
/// (made with [`group`]).
pub(super) fn config(state_dir: &Path, groups: &[String]) -> Config {
    let text = format!(
        r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/nonexistent/warden-gate-test"
operator_token = {{ file = "/nonexistent/never-read" }}

[sites.a]
agent_token = {{ file = "/nonexistent/never-read" }}

[sites.b]
agent_token = {{ file = "/nonexistent/never-read" }}
state_dir = "{}"

[sites.c]
agent_token = {{ file = "/nonexistent/never-read" }}

[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ file = "/nonexistent/never-read" }}
{}"#,
        state_dir.display(),
        groups.concat()
    );
    warden_config::parse(&text, Path::new("gate-test.conf")).unwrap_or_else(|e| panic!("{e}"))
}

/// Group `name` of sites a and b behind fe1 (listening on `port`), with an
/// rsync plan whose site tables are `a` and `b` (their keys, one a line).
pub(super) fn group(name: &str, port: u16, a: &str, b: &str) -> String {
    group_of(name, port, false, a, b)
}

/// [`group`], of sites a, b and c when `three` (c's site table a daemon
/// module of its own).
pub(super) fn group_of(name: &str, port: u16, three: bool, a: &str, b: &str) -> String {
    let (sites, c, c_table) = if three {
        let table = daemon_site("/srv/c", "10.3.0.10/appdata-c", "");
        (
            r#""a", "b", "c""#,
            r#", c = "127.0.0.1:8082""#,
            format!("\n[groups.{name}.replication.sites.c]\n{table}"),
        )
    } else {
        (r#""a", "b""#, "", String::new())
    };
    format!(
        r#"
[groups.{name}]
sites = [{sites}]
scheme = "frontend"

[groups.{name}.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:{port}"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081"{c} }}

[groups.{name}.replication]
plan = "rsync"

[groups.{name}.replication.sites.a]
{a}

[groups.{name}.replication.sites.b]
{b}
{c_table}"#
    )
}

/// A site's table for a daemon module: `path`, `module`, and `extra`.
pub(super) fn daemon_site(path: &str, module: &str, extra: &str) -> String {
    format!(
        "path = \"{path}\"\nmodule = \"{module}\"\nuser = \"warden\"\n\
         password = {{ file = \"/nonexistent/never-read\" }}\n{extra}"
    )
}
