//! A lone agent's settings for tests against a fake orchestrator: site `a`
//! of group `web` (sites a and b, scheme dns, nothing sent to any DNS), its
//! token in a file, its state in the test's directory, and one promote hook.
//! Also the pieces a test writing its own config shares with it: the
//! orchestrator and detection tables, and a secret file.

use warden_agents::AgentSettings;

/// The agent token (the fakes do not check it).
const TOKEN: &str = "agent-token-lone-site-0123";

/// Site a's settings: the orchestrator at `base`, files in `dir`, and a
/// promote hook `mark` that runs `sh -c promote_sh`.
pub(crate) fn settings(base: &str, dir: &std::path::Path, promote_sh: &str) -> AgentSettings {
    settings_with(base, dir, promote_sh, "")
}

/// [`settings`] with `extra` TOML at the end of the config (a
/// `[groups.web.replication]` table).
pub(crate) fn settings_with(
    base: &str,
    dir: &std::path::Path,
    promote_sh: &str,
    extra: &str,
) -> AgentSettings {
    let token = dir.join("token");
    private_file(&token, &format!("{TOKEN}\n"));
    let text = format!(
        r#"{orchestrator}
[sites.a]
agent_token = {{ file = "{token}" }}
state_dir = "{state}"
promote = [
  {{ name = "mark", command = ["sh", "-c", {promote}] }},
]

[sites.b]
agent_token = {{ env = "WARDEN_TEST_B_TOKEN_UNUSED" }}

[groups.web]
sites = ["a", "b"]
scheme = "dns"

[groups.web.dns]
provider = "noip"
name = "web.example.org"
credentials = {{ env = "WARDEN_TEST_DNS_CREDENTIALS_UNUSED" }}
addresses = {{ a = "198.51.100.1", b = "198.51.100.2" }}
{extra}
"#,
        orchestrator = orchestrator_tables(base, dir),
        token = token.display(),
        state = dir.join("state").display(),
        promote = toml_string(promote_sh),
    );
    let cfg = warden_config::parse(&text, std::path::Path::new("test.conf")).unwrap();
    AgentSettings::from_config(&cfg, "a").unwrap()
}

/// The `[orchestrator]` and `[detection]` tables of a test's config: the
/// orchestrator (a fake) at `base`, its data in `data_dir`, and short
/// intervals (reports every 100 ms, long polls of 300 ms).
pub(crate) fn orchestrator_tables(base: &str, data_dir: &std::path::Path) -> String {
    format!(
        r#"
[orchestrator]
listen = "127.0.0.1:9"
url = "{base}/"
data_dir = "{data}"
operator_token = {{ env = "WARDEN_TEST_OPERATOR_TOKEN_UNUSED" }}
long_poll = "300ms"

[detection]
interval = "100ms"
agent_timeout = "1s"
probe_timeout = "300ms"
"#,
        data = data_dir.display(),
    )
}

/// Writes `text` to `path`, readable by its owner only (as a secret file
/// must be).
pub(crate) fn private_file(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
