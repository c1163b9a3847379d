//! A `dns`-scheme deployment on lab hosts: sites `a` and `b` (echo service +
//! agent), `ctl` (orchestrator), `dns` (real BIND9 or Knot serving the zone),
//! `cli` (users). Shared by the DNS integration tests and the DNS benchmark.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dnsd::{self, Kind, Prepared, Zone};
use crate::lab::{self, secs, Lab};
use anyhow::{bail, Result};
use serde_json::Value;

pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub(crate) const HOSTS: &[&str] = &["a", "b", "ctl", "dns", "cli"];
pub(crate) const SVC_PORT: u16 = 8080;
pub(crate) const API_PORT: u16 = 7000;
pub(crate) const ZONE: &str = "dr.example.test";
pub(crate) const NAME: &str = "app.dr.example.test";

pub(crate) struct Dep {
    pub lab: Lab,
    pub config: PathBuf,
    pub server: Prepared,
    pub ttl_s: u64,
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
        let opf = lab.write_file("operator.token", format!("operator-{}", lab.prefix()))?;
        let taf = lab.write_file("a.token", format!("agent-a-{}", lab.prefix()))?;
        let tbf = lab.write_file("b.token", format!("agent-b-{}", lab.prefix()))?;
        let conf = format!(
            r#"[orchestrator]
listen = "{ctl}:{API_PORT}"
data_dir = "{data}"
operator_token = {{ file = "{opf}" }}
reconcile_interval = "1s"
long_poll = "2s"

[detection]
interval = "250ms"
fall = 3
rise = 3
hold_down = "{hold_down}"
agent_timeout = "1500ms"
probe_timeout = "500ms"
max_failovers = 1000

[sites.a]
agent_token = {{ file = "{taf}" }}
checks = [{{ name = "web", kind = "http", url = "http://{a}:{SVC_PORT}/", body_contains = "a", timeout = "500ms" }}]
endpoints = [{{ name = "web", kind = "http", url = "http://{a}:{SVC_PORT}/", timeout = "500ms" }}]

[sites.b]
agent_token = {{ file = "{tbf}" }}
checks = [{{ name = "web", kind = "http", url = "http://{b}:{SVC_PORT}/", body_contains = "b", timeout = "500ms" }}]
endpoints = [{{ name = "web", kind = "http", url = "http://{b}:{SVC_PORT}/", timeout = "500ms" }}]

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
"#,
            ctl = ip("ctl"),
            a = ip("a"),
            b = ip("b"),
            dns = ip("dns"),
            data = lab.dir().join("data").display(),
            opf = opf.display(),
            taf = taf.display(),
            tbf = tbf.display(),
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

    pub(crate) fn cfg(&self) -> String {
        self.config.display().to_string()
    }

    /// The operator's CLI on the orchestrator host.
    pub(crate) fn operator(&self) -> lab::Operator<'_> {
        lab::Operator {
            lab: &self.lab,
            host: "ctl",
            warden: WARDEN,
            config: &self.config,
        }
    }

    pub(crate) fn cli_ok(&self, args: &[&str]) -> Result<String> {
        self.operator().cli_ok(args)
    }

    pub(crate) fn group(&self) -> Result<Value> {
        self.operator().group()
    }

    pub(crate) fn wait_verdict(&self, site: &str, verdict: &str, limit: Duration) -> Result<()> {
        self.operator().wait_verdict(site, verdict, limit)
    }

    pub(crate) fn events(&self) -> Result<Vec<Value>> {
        self.operator().events()
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

    /// warden's processes of this deployment (debug logs: the tests search them).
    pub(crate) fn warden(&self) -> lab::Warden<'_> {
        lab::Warden {
            lab: &self.lab,
            warden: WARDEN,
            config: &self.config,
            env: &[("WARDEN_LOG", "debug")],
        }
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
