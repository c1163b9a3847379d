//! The config every test of one group `web` between sites `a` and `b` starts
//! from (orchestrator, sites, one builtin frontend, the group), every token
//! from the environment variable `token_env`, with `replication` as the
//! group's `[groups.web.replication]` table and anything after it.
#![allow(dead_code)]

pub(crate) fn config_text(token_env: &str, data_dir: &str, replication: &str) -> String {
    format!(
        r#"
[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "{data_dir}"
operator_token = {{ env = "{token_env}" }}

[sites.a]
agent_token = {{ env = "{token_env}" }}

[sites.b]
agent_token = {{ env = "{token_env}" }}

[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ env = "{token_env}" }}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081" }}

[groups.web.replication]
{replication}
"#
    )
}
