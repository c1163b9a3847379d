//! The `dns` check: one question to one DNS server, as a client asks it
//! (hickory's resolver pointed at that server alone: UDP, TCP when the
//! answer is truncated, no cache, no hosts file, one attempt within the
//! check's timeout). Healthy when the server answers records of the type
//! for the name, and, with `expect`, one of them is that value.

use std::str::FromStr;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::RecordType;
use warden_config::CheckSpec;

pub(crate) async fn dns_check(spec: &CheckSpec) -> (bool, String) {
    let Some(server) = spec.dns_server() else {
        return (false, "no server configured".into());
    };
    let Some(name) = spec.query.as_deref() else {
        return (false, "no query configured".into());
    };
    let rtype_text = spec
        .record_type
        .as_deref()
        .unwrap_or("A")
        .to_ascii_uppercase();
    let Ok(rtype) = RecordType::from_str(&rtype_text) else {
        return (false, format!("unknown record type {rtype_text}"));
    };
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = spec.timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    let resolver = match hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    {
        Ok(r) => r,
        Err(e) => return (false, format!("cannot ask {server}: {e}")),
    };
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let answers: Vec<String> = match resolver.lookup(fqdn.as_str(), rtype).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| one_line(&r.data.to_string()))
            .collect(),
        Err(e) => {
            return (
                false,
                format!(
                    "{server}: {name} {rtype_text}: {}",
                    one_line(&e.to_string())
                ),
            )
        }
    };
    if answers.is_empty() {
        return (
            false,
            format!("{server} has no {rtype_text} record for {name}"),
        );
    }
    let shown = answers.join(", ");
    match spec.expect.as_deref() {
        Some(want) if !answers.iter().any(|a| same(a, want)) => (
            false,
            format!("{server}: {name} {rtype_text} is {shown}, expected {want}"),
        ),
        _ => (true, format!("{name} {rtype_text} {shown}")),
    }
}

/// An answer equals the expected value: addresses compared as addresses
/// (`2001:db8::10` is `2001:0db8:0::10`), anything else as text without
/// case or final dot (an MX or SRV answer includes its numbers, as written
/// in a zone file: `10 mail.example.org`).
fn same(answer: &str, want: &str) -> bool {
    if let (Ok(a), Ok(b)) = (
        answer.trim().parse::<std::net::IpAddr>(),
        want.trim().parse::<std::net::IpAddr>(),
    ) {
        return a == b;
    }
    let norm = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    norm(answer) == norm(want)
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_match_as_addresses_or_names() {
        assert!(super::same("2001:db8::10", "2001:0db8:0::10"));
        assert!(super::same("ns1.example.org.", "NS1.example.org"));
        assert!(super::same("10 mail.example.org.", "10 mail.example.org"));
        assert!(!super::same("10.0.0.1", "10.0.0.10"));
    }
}
