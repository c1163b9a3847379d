//! A `dns`-scheme deployment on lab hosts: sites `a` and `b` (echo service +
//! agent), `ctl` (orchestrator), `dns` (real BIND9 or Knot serving the zone),
//! `cli` (users). Shared by the DNS integration tests and the DNS benchmark.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dnsd::{self, Kind, Prepared, Zone};
use crate::lab::{self, secs, Deploy, Lab, Tokens};
use anyhow::{bail, Result};

pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub(crate) const HOSTS: &[&str] = &["a", "b", "ctl", "dns", "cli"];
pub(crate) const SVC_PORT: u16 = 8080;
pub(crate) const API_PORT: u16 = 7000;
pub(crate) const ZONE: &str = "dr.example.test";
pub(crate) const NAME: &str = "app.dr.example.test";

/// `[sites.SITE.identity]`: the site's service names it in `X-Served-By`.
fn identity(site: &str) -> String {
    format!("[sites.{site}.identity]\nheader = \"X-Served-By\"\nvalue = \"{site}\"\n")
}

pub(crate) struct Dep {
    pub lab: Lab,
    pub config: PathBuf,
    pub server: Prepared,
    pub ttl_s: u64,
}

impl Deploy for Dep {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn config(&self) -> &std::path::Path {
        &self.config
    }
    fn warden_bin(&self) -> &'static str {
        WARDEN
    }
    /// Debug logs: the tests search them.
    fn warden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("WARDEN_LOG", "debug")]
    }
}

impl Dep {
    pub(crate) fn new(kind: Kind, ttl_s: u64, hold_down: &str) -> Option<Dep> {
        if !dnsd::require(kind) {
            return None;
        }
        let lab = Lab::new_or_skip(HOSTS)?;
        Some(Dep::build(lab, kind, ttl_s, hold_down).expect("deployment"))
    }

    fn build(lab: Lab, kind: Kind, ttl_s: u64, hold_down: &str) -> Result<Dep> {
        let ip = |h: &str| lab.ip(h);
        let dns_addr: SocketAddr = (ip("dns"), 53).into();
        let zone = Zone {
            origin: ZONE.into(),
            ttl: ttl_s as u32,
            records: vec![
                ("ns1".into(), "A".into(), ip("dns").to_string()),
                ("app".into(), "A".into(), ip("a").to_string()),
            ],
        };
        let server = dnsd::prepare(kind, &lab.dir().join(kind.label()), dns_addr, &zone)?;
        let tokens = Tokens::new(&lab, &["a", "b"])?;
        let conf = format!(
            r#"{orchestrator}
{detection}
{site_a}
{site_b}
[groups.web]
sites = ["a", "b"]
scheme = "dns"
failback = "auto"
step_timeout = "20s"

[groups.web.dns]
provider = "rfc2136"
name = "{NAME}"
ttl = "{ttl_s}s"
server = "{dns}:53"
zone = "{ZONE}"
credentials = {{ file = "{key}" }}
addresses = {{ a = "{a}", b = "{b}" }}
entry_port = {SVC_PORT}
"#,
            orchestrator = tokens.orchestrator(&lab, "ctl", API_PORT),
            detection = lab::detection(hold_down, 1000, ""),
            // Each site names itself in X-Served-By: the verify step
            // connects to the authoritative answer and checks who answers.
            site_a = tokens.site(&lab, "a", SVC_PORT, &identity("a")),
            site_b = tokens.site(&lab, "b", SVC_PORT, &identity("b")),
            a = ip("a"),
            b = ip("b"),
            dns = ip("dns"),
            key = server.key_file.display(),
        );
        let config = lab.write_file("failover.conf", conf)?;
        Ok(Dep {
            lab,
            config,
            server,
            ttl_s,
        })
    }

    pub(crate) fn start_dns(&self) -> Result<()> {
        let name = self.server.kind.label();
        self.lab
            .spawn("dns", name, &self.server.argv[0], &self.server.argv[1..])?;
        let want = self.lab.ip("a").to_string();
        lab::eventually(secs(10), secs(0.1), || {
            let got = self.dig(NAME)?;
            if got == want {
                Ok(())
            } else {
                bail!("{name} answers {got:?} (log: {})", self.lab.log(name))
            }
        })
    }

    /// The authoritative answer for `name`, asked from the users' host.
    pub(crate) fn dig(&self, name: &str) -> Result<String> {
        let out = self
            .lab
            .run_ok("cli", "dig", dnsd::dig_args(self.server.listen, name, "A"))?;
        Ok(out.trim().to_string())
    }

    /// Whether the server answers `NAME` with the AA bit.
    pub(crate) fn authoritative(&self) -> Result<bool> {
        let mut args: Vec<String> = dnsd::dig_args(self.server.listen, NAME, "A")
            .into_iter()
            .filter(|a| a != "+short")
            .collect();
        args.push("+norecurse".into());
        let out = self.lab.run_ok("cli", "dig", args)?;
        Ok(out
            .lines()
            .any(|l| l.contains(";; flags:") && l.contains(" aa")))
    }

    /// What a user sees: resolve through the authoritative server, then GET
    /// the service at the answer.
    pub(crate) fn user_get(&self) -> Result<String> {
        let ip = self.dig(NAME)?;
        if ip.is_empty() {
            bail!("{NAME} does not resolve");
        }
        let (status, body) =
            self.lab
                .http_get("cli", &format!("http://{ip}:{SVC_PORT}/"), secs(2))?;
        if status != 200 {
            bail!("status {status}");
        }
        Ok(body.trim().to_string())
    }

    pub(crate) fn wait_users_on(&self, site: &str, limit: Duration) -> Result<()> {
        lab::eventually(limit, secs(0.2), || {
            let b = self.user_get()?;
            if b == site {
                Ok(())
            } else {
                bail!("users reach {b:?}, want {site:?}")
            }
        })
    }

    pub(crate) fn start_service(&self, site: &str) -> Result<()> {
        self.warden().service(site, SVC_PORT)
    }

    pub(crate) fn start_all(&self) -> Result<()> {
        self.start_dns()?;
        self.start_service("a")?;
        self.start_service("b")?;
        self.warden().orchestrator("ctl")?;
        for s in ["a", "b"] {
            self.warden().agent(s)?;
        }
        self.wait_users_on("a", secs(20))?;
        self.wait_verdict("b", "healthy", secs(15))
    }
}
