//! The `dns` check: one question to one DNS server, as a client asks it
//! (hickory's resolver pointed at that server alone: UDP, TCP when the
//! answer is truncated, no cache, no hosts file, one attempt within the
//! check's timeout). Healthy when the server answers records of the type
//! for the name (or a name it is a CNAME of; records of other names in
//! the answer are none of its), and, with `expect`, one of them is that
//! value, compared whole.

use std::str::FromStr;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
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
    // whole, as answered: compared with `expect` so, and cut only to be shown
    let answers: Vec<String> = match resolver.lookup(fqdn.as_str(), rtype).await {
        Ok(lookup) => {
            let names = asked_names(&fqdn, rtype, lookup.answers());
            lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype && names.contains(&r.name))
                .map(|r| r.data.to_string())
                .collect()
        }
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
    let shown = answers
        .iter()
        .map(|a| one_line(a))
        .collect::<Vec<_>>()
        .join(", ");
    match spec.expect.as_deref() {
        Some(want) if !answers.iter().any(|a| same(a, want)) => (
            false,
            format!("{server}: {name} {rtype_text} is {shown}, expected {want}"),
        ),
        _ => (true, format!("{name} {rtype_text} {shown}")),
    }
}

/// The names whose records answer the question for `fqdn`: it, and the
/// names it is a CNAME of, link by link (asking for a CNAME, it alone).
/// A record of any other name in the answer section (a server that lies,
/// or mixes up its zones) is no answer to the question.
fn asked_names(fqdn: &str, rtype: RecordType, answers: &[Record]) -> Vec<Name> {
    let Ok(asked) = Name::from_ascii(fqdn) else {
        return Vec::new();
    };
    let mut names = vec![asked];
    if rtype == RecordType::CNAME {
        return names;
    }
    // each pass adds at least one link, or ends it
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if names.contains(&r.name) && !names.contains(&target.0) => {
                Some(target.0.clone())
            }
            _ => None,
        });
        match next {
            Some(n) => names.push(n),
            None => break,
        }
    }
    names
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
    use std::net::SocketAddr;

    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::rdata;

    use super::*;

    /// A DNS server on 127.0.0.1 that answers every question with
    /// `answers` (a name and its data each), as the question's answer.
    async fn answering(answers: Vec<(&'static str, RData)>) -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut m = Message::response(q.metadata.id, OpCode::Query);
                m.metadata.recursion_desired = q.metadata.recursion_desired;
                m.metadata.authoritative = true;
                m.add_queries(q.queries.clone());
                for (name, data) in &answers {
                    let name = Name::from_ascii(name).unwrap();
                    m.add_answer(Record::from_rdata(name, 60, data.clone()));
                }
                let _ = sock.send_to(&m.to_vec().unwrap(), from).await;
            }
        });
        addr
    }

    fn spec(server: SocketAddr, query: &str, rtype: &str, expect: &str) -> CheckSpec {
        toml::from_str(&format!(
            "name = \"dns\"\nkind = \"dns\"\ntimeout = \"5s\"\nserver = \"{server}\"\n\
             query = \"{query}\"\nrecord_type = \"{rtype}\"\nexpect = {expect:?}\n"
        ))
        .unwrap()
    }

    /// A TXT record longer than a detail shows of it (a DKIM key, a long
    /// SPF record) is compared whole with `expect`: the server answering
    /// exactly the expected value is healthy, one answering the expected
    /// value with more after it (its first 300 characters alike) is not.
    /// Before, each answer was cut to 300 characters (and its control
    /// characters made spaces) before the comparison: the expected value
    /// never matched, so a live server looked dead; and a value of 300
    /// characters matched any answer that began with it.
    #[tokio::test]
    async fn a_long_txt_answer_is_compared_whole() {
        let key = format!("v=DKIM1; k=rsa; p={}", "MIIBIjANBgkqhkiG9w0B".repeat(20));
        assert!(key.len() > 300);
        let server = answering(vec![(
            "sel._domainkey.example.org.",
            RData::TXT(rdata::TXT::new(vec![key[..255].into(), key[255..].into()])),
        )])
        .await;
        let r = dns_check(&spec(server, "sel._domainkey.example.org", "TXT", &key)).await;
        assert!(r.0, "{r:?}");
        let r = dns_check(&spec(
            server,
            "sel._domainkey.example.org",
            "TXT",
            &key[..300],
        ))
        .await;
        assert!(!r.0, "{r:?}");
    }

    /// Records of other names than the one asked, in the answer section
    /// beside its own (a server that lies, or one that answers from a
    /// zone it mixes up), are not its answer: a site whose name still
    /// points at the old address is not healthy because another name has
    /// the expected one. A name the asked one is a CNAME of, and its
    /// records, are its answer (names compared without case).
    #[tokio::test]
    async fn records_of_another_name_are_not_the_answer() {
        let a = |ip: &str| RData::A(rdata::A(ip.parse().unwrap()));
        let server = answering(vec![
            ("app.example.org.", a("10.0.0.5")),
            ("standby.example.org.", a("10.1.0.10")),
        ])
        .await;
        let r = dns_check(&spec(server, "app.example.org", "A", "10.1.0.10")).await;
        assert!(!r.0, "{r:?}");
        assert!(r.1.contains("A is 10.0.0.5, expected 10.1.0.10"), "{r:?}");
        let chained = answering(vec![
            (
                "app.example.org.",
                RData::CNAME(rdata::CNAME(Name::from_ascii("LB.example.net.").unwrap())),
            ),
            ("lb.example.net.", a("10.1.0.10")),
        ])
        .await;
        let r = dns_check(&spec(chained, "app.example.org", "A", "10.1.0.10")).await;
        assert!(r.0, "{r:?}");
    }

    #[test]
    fn answers_match_as_addresses_or_names() {
        assert!(super::same("2001:db8::10", "2001:0db8:0::10"));
        assert!(super::same("ns1.example.org.", "NS1.example.org"));
        assert!(super::same("10 mail.example.org.", "10 mail.example.org"));
        assert!(!super::same("10.0.0.1", "10.0.0.10"));
    }
}
