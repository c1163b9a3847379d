//! Integration tests of warden-config: examples parse, every table rejects
//! unknown keys, every problem is reported at once with file:line:col, secrets
//! are never echoed, cross-references are checked.

mod accepted_runs;
mod crossref;
mod dns_check;
mod examples;
mod ha;
mod haproxy;
mod identity;
mod keystone;
mod mutations;
mod notify;
mod problems;
mod replication;
mod secrets;
mod unknown_keys;

use std::path::Path;

use warden_config::{parse, Config, ConfigError, Problem};

/// A small valid config (frontend scheme) that tests modify.
pub const BASE: &str = r#"[orchestrator]
listen = "10.0.0.2:7000"
data_dir = "/var/lib/warden"
operator_token = { file = "/etc/warden/operator.token" }

[detection]
interval = "500ms"

[sites.ca]
agent_token = { env = "WARDEN_CA_TOKEN" }

[[sites.ca.checks]]
name = "app"
kind = "http"
url = "http://127.0.0.1:8080/healthz"

[sites.tx]
agent_token = { env = "WARDEN_TX_TOKEN" }

[frontends.fe1]
control = "10.0.0.5:7100"
token = { file = "/etc/warden/fe1.token" }

[groups.web]
sites = ["ca", "tx"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "10.0.0.5:443"
backends = { ca = "10.1.0.10:8443", tx = "10.2.0.10:8443" }
"#;

/// Parse text that must be valid.
pub fn ok(text: &str) -> Config {
    match parse(text, Path::new("test.conf")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}\n--- config:\n{text}"),
    }
}

/// Parse text that must be invalid; its problems.
pub fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("test.conf")) {
        Ok(_) => panic!("expected problems, but the config is valid:\n{text}"),
        Err(ConfigError::Invalid(p)) => {
            assert!(!p.is_empty(), "Invalid with no problems");
            p
        }
        Err(e) => panic!("expected ConfigError::Invalid, got {e:?}"),
    }
}

/// The whole error message for invalid text.
pub fn error_text(text: &str) -> String {
    match parse(text, Path::new("test.conf")) {
        Ok(_) => panic!("expected problems, but the config is valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Exactly one problem; returns it.
pub fn one(text: &str) -> Problem {
    let p = problems(text);
    assert_eq!(
        p.len(),
        1,
        "expected exactly one problem, got:\n{}",
        show(&p)
    );
    p.into_iter().next().unwrap()
}

/// 1-based line and column (characters) of the `nth` (0-based) occurrence of `needle`.
pub fn pos_of_nth(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let (offset, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} occurs fewer than {} times", nth + 1));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// Line and column of the first occurrence of `needle`.
pub fn pos_of(text: &str, needle: &str) -> (usize, usize) {
    pos_of_nth(text, needle, 0)
}

/// Problems one per line, for assertion messages.
pub fn show(p: &[Problem]) -> String {
    p.iter().map(|x| format!("  {x}\n")).collect()
}

/// The problem with exactly this key, or a panic listing all of them.
pub fn find<'a>(p: &'a [Problem], key: &str) -> &'a Problem {
    p.iter()
        .find(|x| x.key == key)
        .unwrap_or_else(|| panic!("no problem with key {key:?} in:\n{}", show(p)))
}

#[test]
fn base_is_valid() {
    let c = ok(BASE);
    assert_eq!(c.groups["web"].primary(), "ca");
    assert_eq!(c.orchestrator.base_url(), "http://10.0.0.2:7000");
}
