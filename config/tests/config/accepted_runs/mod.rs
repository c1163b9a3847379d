//! Whatever check-config accepts must run: values a service would refuse
//! when it starts (a URL its HTTP client cannot parse, a DNS name its DNS
//! code cannot, an address it cannot connect to or bind) are refused here,
//! at their key and line:col, and never echo what may be a credential.
//!
//! `dns_and_urls.rs` DNS names, URLs, DNS servers; `addresses.rs` HOST:PORT
//! and dialled addresses; `binding.rs` one port or state_dir bound twice;
//! `tokens.rs` a token shared between roles; `nul.rs` NUL in commands, paths;
//! `programs.rs` a program or a file named by a relative path; `report_size.rs`
//! a site's report within the body limit.

mod addresses;
mod binding;
mod dns_and_urls;
mod nul;
mod programs;
mod report_size;
mod tokens;

use crate::{find, pos_of_nth, problems, BASE};

pub(super) const RFC2136: &str = r#"
[groups.www]
sites = ["ca", "tx"]
scheme = "dns"

[groups.www.dns]
provider = "rfc2136"
name = "www.example.net"
aliases = ["shop.example.net"]
server = "127.0.0.1:53"
zone = "example.net"
credentials = { file = "/etc/warden/tsig.key" }
key_name = "warden-key"
addresses = { ca = "10.1.0.10", tx = "10.2.0.10" }
"#;

pub(super) fn with_dns(from: &str, to: &str) -> String {
    let dns = RFC2136.replace(from, to);
    assert!(from.is_empty() || dns != RFC2136, "{from} not in the base");
    format!("{BASE}{dns}")
}

/// The problem at `key`, at the last occurrence of `needle` (the second
/// of two addresses is the one reported).
pub(super) fn at(text: &str, key: &str, needle: &str) -> String {
    let p = problems(text);
    let found = find(&p, key);
    let last = text.matches(needle).count().saturating_sub(1);
    assert_eq!(
        (found.line, found.col),
        pos_of_nth(text, needle, last),
        "{found}"
    );
    found.message.clone()
}

pub(super) const WEB2: &str = r#"
[groups.web2]
sites = ["ca", "tx"]
scheme = "frontend"

[groups.web2.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "LISTEN"
backends = { ca = "10.1.0.10:8444", tx = "10.2.0.10:8444" }
"#;

/// The problems `check_deployment` (what `warden check-config` runs)
/// finds in `text`, written to a file of its own; none when it passes.
pub(super) fn deployment_problems(text: &str) -> Vec<warden_config::Problem> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failover.conf");
    std::fs::write(&path, text).unwrap();
    match warden_config::check_deployment(&path) {
        Ok(_) => Vec::new(),
        Err(warden_config::ConfigError::Invalid(ps)) => ps,
        Err(e) => panic!("{e}"),
    }
}
