//! A `hybrid`-scheme deployment on lab hosts: sites `a` and `b` (echo
//! service + agent), frontends `fe1` and `fe2` (`warden frontend`), `dns`
//! (real BIND9 serving the zone; the name points at the active frontend),
//! `ctl` (orchestrator), `cli` (users, who resolve the name through BIND and
//! connect to the answer). Shared by the hybrid tests and the hybrid benchmark.

use std::path::PathBuf;
use std::time::Duration;

use crate::dnsd::{self, Kind, Prepared, Zone};
use crate::lab::{self, secs, Deploy, Lab, Tokens};
use anyhow::{bail, Context, Result};
use serde_json::Value;

pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub(crate) const HOSTS: &[&str] = &["a", "b", "fe1", "fe2", "ctl", "dns", "cli"];
pub(crate) const SVC_PORT: u16 = 8080;
pub(crate) const API_PORT: u16 = 7000;
pub(crate) const CONTROL_PORT: u16 = 7100;
pub(crate) const ENTRY_PORT: u16 = 8000;
pub(crate) const ZONE: &str = "dr.example.test";
pub(crate) const NAME: &str = "app.dr.example.test";
/// Where a hidden-primary layout ([`Dep::new_hidden_primary`]) reads the name.
pub(crate) const VERIFY_PORT: u16 = 5353;

pub(crate) struct Dep {
    pub lab: Lab,
    pub config: PathBuf,
    pub server: Prepared,
    pub operator_token: String,
    /// Control token of fe1, fe2.
    pub fe_tokens: [String; 2],
    pub ttl_s: u64,
    /// The frontends are real HAProxy processes (driver "haproxy"); their
    /// haproxy.cfg files, fe1's then fe2's.
    pub haproxy: Option<[PathBuf; 2]>,
}

/// The HAProxy runtime API port on fe1 and fe2 (HAProxy variant).
pub(crate) const HAPROXY_RUNTIME_PORT: u16 = 9999;

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
    /// `None` (skip) without root/netns or BIND, outside CI.
    pub(crate) fn new(ttl_s: u64) -> Option<Dep> {
        Dep::new_with(ttl_s, false)
    }

    /// [`Dep::new`]; with `haproxy`, fe1 and fe2 run real HAProxy processes.
    pub(crate) fn new_with(ttl_s: u64, haproxy: bool) -> Option<Dep> {
        Dep::lab_then_build(ttl_s, haproxy, false)
    }

    /// [`Dep::new`] laid out as a hidden primary: warden sends its updates
    /// to BIND on port 53 but reads the name where users' resolvers would,
    /// on [`VERIFY_PORT`] (`nameservers`; the same BIND listens there too),
    /// so the test can take the read path away and leave the update path.
    pub(crate) fn new_hidden_primary(ttl_s: u64) -> Option<Dep> {
        Dep::lab_then_build(ttl_s, false, true)
    }

    /// A lab (None when a prerequisite is missing outside CI), then the
    /// deployment on it.
    fn lab_then_build(ttl_s: u64, haproxy: bool, hidden_primary: bool) -> Option<Dep> {
        if !dnsd::require(Kind::Bind) {
            return None;
        }
        let lab = Lab::new_or_skip(HOSTS)?;
        Some(Dep::build(lab, ttl_s, haproxy, hidden_primary).expect("deployment"))
    }

    fn build(lab: Lab, ttl_s: u64, haproxy: bool, hidden_primary: bool) -> Result<Dep> {
        let ip = |h: &str| lab.ip(h);
        let zone = Zone {
            origin: ZONE.into(),
            ttl: ttl_s as u32,
            records: vec![
                ("ns1".into(), "A".into(), ip("dns").to_string()),
                ("app".into(), "A".into(), ip("fe1").to_string()),
            ],
        };
        let server = dnsd::prepare(
            Kind::Bind,
            &lab.dir().join("bind"),
            (ip("dns"), 53).into(),
            &zone,
        )?;
        let nameservers = if hidden_primary {
            dnsd::bind_also_listen_on(&server, VERIFY_PORT)?;
            format!("nameservers = [\"{}:{VERIFY_PORT}\"]\n", ip("dns"))
        } else {
            String::new()
        };
        let tokens = Tokens::new(&lab, &["a", "b"])?;
        let fe_tokens = [
            format!("fe1-{}", lab.prefix()),
            format!("fe2-{}", lab.prefix()),
        ];
        let f1f = lab.write_file("fe1.token", &fe_tokens[0])?;
        let f2f = lab.write_file("fe2.token", &fe_tokens[1])?;
        let (fe1_table, fe2_table, driver) = if haproxy {
            (
                format!(
                    "kind = \"haproxy\"\nruntime = \"{}:{HAPROXY_RUNTIME_PORT}\"",
                    ip("fe1")
                ),
                format!(
                    "kind = \"haproxy\"\nruntime = \"{}:{HAPROXY_RUNTIME_PORT}\"",
                    ip("fe2")
                ),
                "driver = \"haproxy\"\nbackend = \"be_web\"".to_string(),
            )
        } else {
            (
                format!("control = \"{}:{CONTROL_PORT}\"\ntoken = {{ file = \"{}\" }}", ip("fe1"), f1f.display()),
                format!("control = \"{}:{CONTROL_PORT}\"\ntoken = {{ file = \"{}\" }}", ip("fe2"), f2f.display()),
                format!("driver = \"builtin\"\nbackends = {{ a = \"{}:{SVC_PORT}\", b = \"{}:{SVC_PORT}\" }}", ip("a"), ip("b")),
            )
        };
        let haproxy_cfgs = if haproxy {
            let cfg = |fe: &str| {
                format!(
                    "global\n    stats socket ipv4@{ip}:{HAPROXY_RUNTIME_PORT} level admin\n    stats timeout 30s\n\n\
                     defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
                     frontend fe_web\n    bind 0.0.0.0:{ENTRY_PORT}\n    default_backend be_web\n\n\
                     backend be_web\n    balance first\n    server a {a}:{SVC_PORT}\n    server b {b}:{SVC_PORT}\n",
                    ip = ip(fe),
                    a = ip("a"),
                    b = ip("b"),
                )
            };
            Some([
                lab.write_file("haproxy-fe1.cfg", cfg("fe1"))?,
                lab.write_file("haproxy-fe2.cfg", cfg("fe2"))?,
            ])
        } else {
            None
        };
        let conf = format!(
            r#"{orchestrator}
{detection}
{site_a}
{site_b}
[frontends.fe1]
{fe1_table}

[frontends.fe2]
{fe2_table}

[groups.web]
sites = ["a", "b"]
scheme = "hybrid"
failback = "manual"
step_timeout = "20s"

[groups.web.frontend]
{driver}
frontends = ["fe1", "fe2"]
listen = "0.0.0.0:{ENTRY_PORT}"

[groups.web.dns]
provider = "rfc2136"
name = "{NAME}"
ttl = "{ttl_s}s"
server = "{dns}:53"
zone = "{ZONE}"
credentials = {{ file = "{key}" }}
addresses = {{ fe1 = "{fe1}", fe2 = "{fe2}" }}
{nameservers}"#,
            orchestrator = tokens.orchestrator(&lab, "ctl", API_PORT),
            detection = lab::detection("5s", 1000, ""),
            site_a = tokens.site(&lab, "a", SVC_PORT, ""),
            site_b = tokens.site(&lab, "b", SVC_PORT, ""),
            fe1 = ip("fe1"),
            fe2 = ip("fe2"),
            dns = ip("dns"),
            key = server.key_file.display(),
        );
        let config = lab.write_file("failover.conf", conf)?;
        Ok(Dep {
            lab,
            config,
            server,
            operator_token: tokens.operator,
            fe_tokens,
            ttl_s,
            haproxy: haproxy_cfgs,
        })
    }

    /// What BIND answers for the name, asked from the users' host.
    pub(crate) fn dig(&self) -> Result<String> {
        let out = self
            .lab
            .run_ok("cli", "dig", dnsd::dig_args(self.server.listen, NAME, "A"))?;
        Ok(out.trim().to_string())
    }

    /// The zone's SOA serial as BIND answers it to the users' host (every
    /// applied update raises it).
    pub(crate) fn soa_serial(&self) -> Result<u64> {
        let out = self.lab.run_ok(
            "cli",
            "dig",
            dnsd::dig_args(self.server.listen, ZONE, "SOA"),
        )?;
        out.split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no SOA serial in {out:?}"))
    }

    /// Which frontend the name resolves to (`fe1`, `fe2` or the raw answer).
    pub(crate) fn dns_frontend(&self) -> Result<String> {
        let ip = self.dig()?;
        Ok(["fe1", "fe2"]
            .into_iter()
            .find(|f| self.lab.ip(f).to_string() == ip)
            .map(str::to_string)
            .unwrap_or(ip))
    }

    /// What a user sees: resolve the name through BIND, then GET the service
    /// through the frontend at the answer.
    pub(crate) fn user_get(&self) -> Result<String> {
        let ip = self.dig()?;
        if ip.is_empty() {
            bail!("{NAME} does not resolve");
        }
        let (status, body) =
            self.lab
                .http_get("cli", &format!("http://{ip}:{ENTRY_PORT}/"), secs(2))?;
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

    pub(crate) fn wait_dns_on(&self, frontend: &str, limit: Duration) -> Result<()> {
        lab::eventually(limit, secs(0.2), || {
            let f = self.dns_frontend()?;
            if f == frontend {
                Ok(())
            } else {
                bail!("{NAME} resolves to {f}, want {frontend}")
            }
        })
    }

    pub(crate) fn start_service(&self, site: &str) -> Result<()> {
        self.warden().service(site, SVC_PORT)
    }

    pub(crate) fn start_frontend(&self, fe: &str) -> Result<()> {
        let Some(cfgs) = &self.haproxy else {
            return self.warden().frontend(fe, fe, &format!("frontend-{fe}"));
        };
        let cfg = cfgs[usize::from(fe == "fe2")].display().to_string();
        self.lab.spawn(
            fe,
            &format!("frontend-{fe}"),
            "haproxy",
            ["-db", "-f", cfg.as_str()],
        )?;
        let ip = self.lab.ip(fe);
        for port in [ENTRY_PORT, HAPROXY_RUNTIME_PORT] {
            self.lab
                .wait_tcp(fe, (ip, port).into(), lab::patient(secs(10)))?;
        }
        Ok(())
    }

    /// Everything up; users reach a through fe1.
    pub(crate) fn start_all(&self) -> Result<()> {
        let s = &self.server;
        self.lab.spawn("dns", "bind", &s.argv[0], &s.argv[1..])?;
        lab::eventually(secs(10), secs(0.1), || {
            if self.dig()? == self.lab.ip("fe1").to_string() {
                Ok(())
            } else {
                bail!("BIND not answering yet (log: {})", self.lab.log("bind"))
            }
        })?;
        self.start_service("a")?;
        self.start_service("b")?;
        self.start_frontend("fe1")?;
        self.start_frontend("fe2")?;
        self.warden().orchestrator("ctl")?;
        for site in ["a", "b"] {
            self.warden().agent(site)?;
        }
        self.wait_users_on("a", secs(20))
            .context("initial route to a through fe1")?;
        // (An HAProxy has no warden control API to read; users say it.)
        for fe in ["fe1", "fe2"]
            .into_iter()
            .filter(|_| self.haproxy.is_none())
        {
            lab::eventually(secs(15), secs(0.25), || {
                let (site, _) = self.frontend_route(fe)?;
                if site == "a" {
                    Ok(())
                } else {
                    bail!("{fe} routes to {site:?}")
                }
            })?;
        }
        self.wait_verdict("a", "healthy", secs(15))?;
        self.wait_verdict("b", "healthy", secs(15))?;
        Ok(())
    }

    /// The site dies: its service and its agent are gone.
    pub(crate) fn kill_site(&self, site: &str) -> Result<()> {
        self.lab.kill(&format!("svc-{site}"))?;
        self.lab.kill(&format!("agent-{site}"))?;
        Ok(())
    }

    /// A frontend's host dies: nothing reaches it any more (packets dropped).
    pub(crate) fn kill_frontend_host(&self, fe: &str) -> Result<()> {
        self.lab.isolate(fe)
    }

    fn get_json(&self, token: &str, url: &str) -> Result<Value> {
        let auth = self.lab.auth_header(token)?;
        let out = self
            .lab
            .run_ok("ctl", "curl", ["-s", "-m", "5", "-H", &auth, url])?;
        serde_json::from_str(&out).with_context(|| format!("GET {url}: {out}"))
    }

    /// A frontend's own view of the route: (site or "", epoch).
    pub(crate) fn frontend_route(&self, fe: &str) -> Result<(String, u64)> {
        let i = if fe == "fe1" { 0 } else { 1 };
        let url = format!("http://{}:{CONTROL_PORT}/v1/routes", self.lab.ip(fe));
        let v = self.get_json(&self.fe_tokens[i], &url)?;
        let r = &v["web"];
        Ok((
            r["site"].as_str().unwrap_or("").to_string(),
            r["epoch"].as_u64().unwrap_or(0),
        ))
    }

    /// Whether an event of `kind` whose message contains `needle` was recorded.
    pub(crate) fn has_event(&self, kind: &str, needle: &str) -> Result<bool> {
        Ok(self.events()?.iter().any(|e| {
            e["kind"] == kind && e["message"].as_str().is_some_and(|m| m.contains(needle))
        }))
    }
}
