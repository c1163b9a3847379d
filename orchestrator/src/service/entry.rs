//! The verify step's end-to-end probe through a group's public entry (the
//! frontends' listeners; for a `dns` group with `entry_port`, the address
//! the authoritative servers were just seen answering): a TCP connect, or —
//! when the target site declares an [`Identity`](warden_config::Identity) —
//! an HTTP request on a new connection whose answer must identify that
//! site. An answer that identifies another site of the group says so by
//! name.

use super::*;

impl Shared {
    /// Probe `group`'s public entry for users reaching `site`; Ok(detail) when
    /// it answers as it should.
    pub(crate) async fn probe_entry(&self, group: &str, site: &str) -> Result<String, String> {
        let Some(g) = self.cfg.groups.get(group) else {
            return Err(format!("no group {group}"));
        };
        let addrs = match g.scheme() {
            Scheme::Dns => dns_entry(g, site).into_iter().map(|a| (a, false)).collect(),
            _ => self.entry_addrs(group),
        };
        if addrs.is_empty() {
            return Ok("no entry address to probe".into());
        }
        // Hybrid: users enter through whichever frontend DNS points at, and a
        // dead frontend is the frontend layer's business: one entry that
        // answers suffices, the others may be unreachable. One that answers
        // wrong (as another site, or as none) fails the step all the same:
        // users sent there (now, or after the DNS layer moves) reach the
        // wrong site.
        let any = g.scheme() == Scheme::Hybrid;
        let identity = self.cfg.sites.get(site).and_then(|s| s.identity.as_ref());
        let mut reached = Vec::new();
        let mut failed = Vec::new();
        // Guessed entries (an HAProxy on a UNIX socket, on this host's
        // loopback) that cannot be reached: not probed, said.
        let mut unprobed = Vec::new();
        for (a, guessed) in &addrs {
            let r = match identity {
                Some(id) => self.identify(g, *a, site, id).await,
                None => connect(*a).await.map_err(Missed::Unreached),
            };
            match r {
                Ok(d) => reached.push(d),
                Err(Missed::Unreached(e)) if *guessed => unprobed.push(format!(
                    "{e} (an HAProxy driven through a UNIX socket and listening on every \
                     address, looked for on this host's loopback): not probed"
                )),
                Err(Missed::Unreached(e)) if any => failed.push(e),
                Err(Missed::Unreached(e) | Missed::Wrong(e)) => return Err(e),
            }
        }
        if reached.is_empty() && !failed.is_empty() {
            return Err(failed.join("; "));
        }
        reached.extend(unprobed);
        Ok(reached.join("; "))
    }

    /// GET the identity path through entry `addr` on a new connection; Ok
    /// when the answer is `site`'s, else which site (if any) answered.
    async fn identify(
        &self,
        g: &warden_config::GroupConfig,
        addr: SocketAddr,
        site: &str,
        id: &warden_config::Identity,
    ) -> Result<String, Missed> {
        // A new connection every time (`entry_http` pools none).
        let url = format!("http://{addr}{}", id.path);
        let mut req = self
            .entry_http
            .get(&url)
            .timeout(id.timeout)
            .header(reqwest::header::CONNECTION, "close");
        // A `dns` group's users ask for its name (name-based virtual hosts).
        if let Some(dns) = g.dns_scheme().filter(|_| g.scheme() == Scheme::Dns) {
            req = req.header(reqwest::header::HOST, dns.name.as_str());
        }
        let resp = req.send().await.map_err(|e| {
            Missed::Unreached(format!(
                "entry {addr}: GET {}: {}",
                id.path,
                warden_checks::describe_http_error(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // Bounded: an identity is in the first 64 KiB or nowhere.
        let body = read_prefix(resp, 64 * 1024).await;
        let pairs = || headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
        if id.matches(pairs(), &body) {
            return Ok(format!(
                "entry {addr} answers as {site} (GET {} → {status}, {})",
                id.path,
                describe(id)
            ));
        }
        let other = g.site_names().into_iter().find(|s| {
            s != site
                && self
                    .cfg
                    .sites
                    .get(s)
                    .and_then(|c| c.identity.as_ref())
                    .is_some_and(|o| o.matches(pairs(), &body))
        });
        Err(Missed::Wrong(match other {
            Some(o) => format!(
                "entry {addr} answers as {o}, not {site} (GET {} → {status}; {site} is identified by {})",
                id.path,
                describe(id)
            ),
            None => format!(
                "entry {addr}: the answer does not identify {site} (GET {} → {status}; expected {})",
                id.path,
                describe(id)
            ),
        }))
    }
}

/// Why an entry did not answer as the target site.
enum Missed {
    /// It could not be reached (nothing answered).
    Unreached(String),
    /// It answered, but not as the target site.
    Wrong(String),
}

/// Where users of a `dns` group reach `site`: its record addresses on the
/// group's `entry_port` (none without one). The verify step asks only once
/// the authoritative servers answer exactly these addresses for the name
/// (the routing read-back before it), so this is "the answer, then a
/// connection to it".
fn dns_entry(g: &warden_config::GroupConfig, site: &str) -> Vec<SocketAddr> {
    let Some(dns) = g.dns_scheme() else {
        return vec![];
    };
    let (Some(port), Some(addresses)) = (dns.entry_port, dns.addresses.get(site)) else {
        return vec![];
    };
    match warden_config::parse_record_addresses(addresses) {
        Ok((v4, v6)) => v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(v6.map(IpAddr::V6))
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
        Err(_) => vec![],
    }
}

/// A TCP connect to `addr` within 2 s.
async fn connect(addr: SocketAddr) -> Result<String, String> {
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(format!("entry {addr} accepts connections")),
        Ok(Err(e)) => Err(format!("entry {addr}: {}", warden_checks::describe_io(&e))),
        Err(_) => Err(format!("entry {addr}: connect timed out")),
    }
}

/// How `id` tells its site (for messages; values are not secrets).
fn describe(id: &warden_config::Identity) -> String {
    match (&id.header, &id.value, &id.body_contains) {
        (Some(h), Some(v), _) => format!("header {h}: {v}"),
        (_, _, Some(b)) => format!("a body containing {b:?}"),
        _ => "nothing".into(),
    }
}

/// The first `limit` bytes of the body (lossy UTF-8); what could not be read is left out.
async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(limit - buf.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
