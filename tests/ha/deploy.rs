//! An HA deployment on lab hosts: sites `a` (primary) and `b` and a witness
//! host `w`, each with an etcd member (a real three-member cluster) and an
//! orchestrator node (`o-a`, `o-b`, `o-w`, `store = "etcd"`); `a` and `b`
//! also run the service (an echo server) and an agent; users enter through a
//! built-in frontend on `fe`; the operator's CLI and the client probe run on
//! `ctl`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::lab::{self, patient, secs, Deploy, Lab, Tokens};

pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub(crate) const HOSTS: &[&str] = &["a", "b", "w", "fe", "ctl"];
pub(crate) const NODES: &[&str] = &["a", "b", "w"];
pub(crate) const SVC_PORT: u16 = 8080;
pub(crate) const API_PORT: u16 = 7000;
pub(crate) const CONTROL_PORT: u16 = 7100;
pub(crate) const ENTRY_PORT: u16 = 8000;
pub(crate) const ETCD_CLIENT: u16 = 2379;
pub(crate) const ETCD_PEER: u16 = 2380;
/// The leader lease of the tests.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(2);

/// `etcd` and `etcdctl`, or why the suite cannot run (a failure under CI).
pub(crate) fn etcd_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |n: &str| {
        ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
            .iter()
            .map(|d| PathBuf::from(d).join(n))
            .find(|p| p.is_file())
    };
    match (find("etcd"), find("etcdctl")) {
        (Some(e), Some(c)) => Some((e, c)),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "etcd and etcdctl are needed (apt-get install etcd-server etcd-client)"
            );
            eprintln!("skipped: etcd/etcdctl not installed");
            None
        }
    }
}

pub(crate) struct Ha {
    pub lab: Lab,
    pub config: PathBuf,
    pub operator_token: String,
    pub frontend_token: String,
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
}

impl Deploy for Ha {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn config(&self) -> &std::path::Path {
        &self.config
    }
    fn warden_bin(&self) -> &'static str {
        WARDEN
    }
}

impl Ha {
    /// Build hosts, write the config; start nothing. `promote_b` is a shell
    /// snippet run by b's promote hook after it logged its run.
    pub(crate) fn new(promote_b: &str) -> Option<Ha> {
        Self::with_budget(promote_b, 5)
    }

    /// As [`Ha::new`] with `max_failovers` automatic moves per hour.
    pub(crate) fn with_budget(promote_b: &str, max_failovers: u32) -> Option<Ha> {
        let (etcd, etcdctl) = etcd_tools()?;
        let lab = Lab::new_or_skip(HOSTS)?;
        let (config, operator_token, frontend_token) =
            write_config(&lab, promote_b, max_failovers).expect("ha config");
        Some(Ha {
            lab,
            config,
            operator_token,
            frontend_token,
            etcd,
            etcdctl,
        })
    }

    pub(crate) fn endpoints(&self) -> String {
        NODES
            .iter()
            .map(|h| format!("http://{}:{ETCD_CLIENT}", self.lab.ip(h)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// etcd member `e-HOST` on `host` (same command line for a restart).
    pub(crate) fn start_member(&self, host: &str) -> Result<()> {
        let ip = self.lab.ip(host);
        let cluster = NODES
            .iter()
            .map(|h| format!("e-{h}=http://{}:{ETCD_PEER}", self.lab.ip(h)))
            .collect::<Vec<_>>()
            .join(",");
        let data = self.lab.dir().join(format!("etcd-{host}"));
        let log = self.lab.dir().join(format!("etcd-{host}.zap.log"));
        self.lab.spawn(
            host,
            &format!("etcd-{host}"),
            &self.etcd,
            [
                "--name".to_string(),
                format!("e-{host}"),
                "--data-dir".into(),
                data.display().to_string(),
                "--listen-client-urls".into(),
                format!("http://{ip}:{ETCD_CLIENT}"),
                "--advertise-client-urls".into(),
                format!("http://{ip}:{ETCD_CLIENT}"),
                "--listen-peer-urls".into(),
                format!("http://{ip}:{ETCD_PEER}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://{ip}:{ETCD_PEER}"),
                "--initial-cluster".into(),
                cluster,
                "--initial-cluster-token".into(),
                self.lab.prefix().to_string(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--heartbeat-interval".into(),
                "100".into(),
                "--election-timeout".into(),
                "1000".into(),
                // A member back from a partition does not force an election
                // (the default from etcd 3.5 on).
                "--pre-vote".into(),
                "--logger".into(),
                "zap".into(),
                "--log-outputs".into(),
                log.display().to_string(),
            ],
        )?;
        Ok(())
    }

    /// `etcdctl` from `ctl` against the given endpoints (1 s per command).
    pub(crate) fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Result<String> {
        let mut all = vec![
            format!("--endpoints={endpoints}"),
            "--command-timeout=1s".into(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        self.lab.run_ok("ctl", &self.etcdctl, all)
    }

    /// The three members up and healthy.
    pub(crate) fn start_etcd(&self) -> Result<()> {
        for h in NODES {
            self.start_member(h)?;
        }
        lab::eventually(patient(secs(20)), secs(0.2), || {
            self.etcdctl(&self.endpoints(), &["endpoint", "health"])
                .map(|_| ())
        })
        .context("etcd cluster healthy")
    }

    /// The host whose etcd member is the raft leader.
    pub(crate) fn etcd_raft_leader(&self) -> Result<String> {
        for h in NODES {
            let ep = format!("http://{}:{ETCD_CLIENT}", self.lab.ip(h));
            let Ok(out) = self.etcdctl(&ep, &["endpoint", "status", "-w", "json"]) else {
                continue;
            };
            let v: Value = serde_json::from_str(&out)?;
            let s = &v[0]["Status"];
            if s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"] {
                return Ok(h.to_string());
            }
        }
        bail!("no etcd member says it leads")
    }

    /// Orchestrator node `o-HOST` on `host`, process `orch-HOST`.
    pub(crate) fn start_orchestrator(&self, host: &str) -> Result<()> {
        let name = format!("orch-{host}");
        self.lab.spawn_env(
            host,
            &name,
            WARDEN,
            [
                "orchestrator",
                "--config",
                &self.cfg(),
                "--node",
                &format!("o-{host}"),
            ],
            [("WARDEN_LOG", "info")],
        )?;
        self.lab
            .wait_log(&name, "orchestrator ready", patient(secs(15)))
            .map(|_| ())
    }

    pub(crate) fn api(&self, host: &str) -> String {
        format!("http://{}:{API_PORT}", self.lab.ip(host))
    }

    /// `GET /v1/leader` of the node on `host` (from `ctl`).
    pub(crate) fn leader_view(&self, host: &str) -> Result<(u16, Value)> {
        let (status, body) =
            self.lab
                .http_get("ctl", &format!("{}/v1/leader", self.api(host)), secs(2))?;
        Ok((status, serde_json::from_str(&body)?))
    }

    /// The host of the node that answers 200 to `/v1/leader`, waiting up to `limit`.
    pub(crate) fn wait_leader(&self, among: &[&str], limit: Duration) -> Result<String> {
        lab::eventually(limit, secs(0.1), || {
            for h in among {
                if let Ok((200, _)) = self.leader_view(h) {
                    return Ok(h.to_string());
                }
            }
            bail!("no orchestrator among {among:?} leads")
        })
    }

    /// How many nodes among `among` answer 200 to `/v1/leader` right now.
    pub(crate) fn leaders_now(&self, among: &[&str]) -> Vec<String> {
        among
            .iter()
            .filter(|h| matches!(self.leader_view(h), Ok((200, _))))
            .map(|h| h.to_string())
            .collect()
    }

    /// etcd, services, frontend, agents, then the orchestrators (`first`
    /// started first, so that it is elected); users reach a.
    pub(crate) fn start_all(&self, first: &str) -> Result<()> {
        self.start_etcd()?;
        self.warden().service("a", SVC_PORT)?;
        self.warden().service("b", SVC_PORT)?;
        self.warden().frontend("fe", "fe1", "frontend")?;
        self.start_orchestrator(first)?;
        self.wait_leader(&[first], patient(secs(10)))?;
        for h in NODES.iter().filter(|h| **h != first) {
            self.start_orchestrator(h)?;
        }
        self.warden().agent("a")?;
        self.warden().agent("b")?;
        self.wait_users_on("a", secs(30))
            .context("initial route to a")?;
        self.wait_verdict("a", "healthy", secs(20))?;
        self.wait_verdict("b", "healthy", secs(20))?;
        Ok(())
    }

    pub(crate) fn entry_url(&self) -> String {
        format!("http://{}:{ENTRY_PORT}/", self.lab.ip("fe"))
    }

    pub(crate) fn user_get(&self) -> Result<String> {
        let (status, body) = self.lab.http_get("ctl", &self.entry_url(), secs(2))?;
        if status != 200 {
            bail!("status {status}");
        }
        Ok(body.trim().to_string())
    }

    pub(crate) fn wait_users_on(&self, site: &str, limit: Duration) -> Result<()> {
        lab::eventually(limit, secs(0.1), || {
            let b = self.user_get()?;
            if b == site {
                Ok(())
            } else {
                bail!("users reach {b:?}, want {site:?}")
            }
        })
    }

    /// Lines of the hooks' log that start with `prefix` ("promote b").
    pub(crate) fn hook_runs(&self, prefix: &str) -> Vec<String> {
        std::fs::read_to_string(self.lab.dir().join("hooks.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    /// The group as the node on `host` reports it (operator token).
    pub(crate) fn group_at(&self, host: &str) -> Result<Value> {
        let v: Value = serde_json::from_str(&self.operator().cli_ok(&[
            "--url",
            &self.api(host),
            "status",
            "--json",
        ])?)?;
        v["groups"]
            .as_array()
            .and_then(|g| g.first())
            .cloned()
            .ok_or_else(|| anyhow!("no group in status: {v}"))
    }

    /// GET a JSON document from `ctl` with a bearer token.
    pub(crate) fn get_json(&self, token: &str, url: &str) -> Result<Value> {
        let auth = self.lab.auth_header(token)?;
        let out = self
            .lab
            .run_ok("ctl", "curl", ["-s", "-m", "5", "-H", &auth, url])?;
        serde_json::from_str(&out).with_context(|| format!("GET {url}: {out}"))
    }

    /// `curl -X METHOD` with a bearer token and a JSON body from `ctl`;
    /// what curl's `-w FORMAT` prints (e.g. `%{http_code}`).
    pub(crate) fn send(
        &self,
        method: &str,
        token: &str,
        url: &str,
        body: &str,
        format: &str,
    ) -> Result<String> {
        let auth = self.lab.auth_header(token)?;
        self.lab.run_ok(
            "ctl",
            "curl",
            [
                "-s",
                "-o",
                "/dev/null",
                "-w",
                format,
                "-X",
                method,
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                body,
                url,
            ],
        )
    }

    /// The runbooks as the node on `host` has them.
    pub(crate) fn runbooks_at(&self, host: &str) -> Result<Vec<Value>> {
        let v = self.get_json(
            &self.operator_token,
            &format!("{}/v1/runbooks", self.api(host)),
        )?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The frontend's own view of the route: (site, epoch, switches).
    pub(crate) fn frontend_route(&self) -> Result<(Value, u64, u64)> {
        let url = format!("http://{}:{CONTROL_PORT}/v1/routes", self.lab.ip("fe"));
        let v = self.get_json(&self.frontend_token, &url)?;
        let r = &v["web"];
        Ok((
            r["site"].clone(),
            r["epoch"].as_u64().unwrap_or(0),
            r["switches"].as_u64().unwrap_or(0),
        ))
    }

    /// Wait until `done` holds, reading the group from whichever node answers.
    pub(crate) fn wait_group(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let t = Instant::now();
        lab::eventually(limit, secs(0.2), || {
            let g = self.group()?;
            if done(&g) {
                Ok(g)
            } else {
                bail!("{what}: not yet after {:?}: {g}", t.elapsed())
            }
        })
    }
}

fn write_config(
    lab: &Lab,
    promote_b: &str,
    max_failovers: u32,
) -> Result<(PathBuf, String, String)> {
    let tokens = Tokens::new(lab, &["a", "b"])?;
    let opf = lab.write_file("ha-operator.token", &tokens.operator)?;
    let fe = format!("frontend-{}", lab.prefix());
    let fef = lab.write_file("frontend.token", &fe)?;
    let hooks = lab.dir().join("hooks.log").display().to_string();
    let hook = |kind: &str, site: &str, then: &str| {
        format!(
            r#"{kind} = [{{ name = "{kind}-{site}", command = ["/bin/sh", "-c", "echo {kind} {site} $WARDEN_EPOCH >> {hooks}; {then}"], timeout = "30s" }}]"#
        )
    };
    let site = |s: &str, promote: &str| {
        let extra = format!(
            "{}\n{}\nstate_dir = \"{}\"\n",
            hook("promote", s, promote),
            hook("demote", s, "true"),
            lab.dir().join(format!("state-{s}")).display()
        );
        tokens.site(lab, s, SVC_PORT, &extra)
    };
    let endpoints = NODES
        .iter()
        .map(|h| format!("\"http://{}:{ETCD_CLIENT}\"", lab.ip(h)))
        .collect::<Vec<_>>()
        .join(", ");
    let nodes: String = NODES
        .iter()
        .map(|h| {
            format!(
                "[[orchestrator.nodes]]\nname = \"o-{h}\"\nlisten = \"{}:{API_PORT}\"\n",
                lab.ip(h)
            )
        })
        .collect();
    let conf = format!(
        r#"[orchestrator]
listen = "{ctl}:{API_PORT}"
data_dir = "{data}"
operator_token = {{ file = "{opf}" }}
reconcile_interval = "1s"
long_poll = "2s"
store = "etcd"

[orchestrator.etcd]
endpoints = [{endpoints}]
prefix = "/warden-{prefix}/"
lease_ttl = "{ttl}s"
timeout = "500ms"

{nodes}
{detection}
{site_a}
{site_b}
[frontends.fe1]
control = "{fe_ip}:{CONTROL_PORT}"
token = {{ file = "{fef}" }}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
failback = "manual"
step_timeout = "30s"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "0.0.0.0:{ENTRY_PORT}"
drain_timeout = "1s"
backends = {{ a = "{a}:{SVC_PORT}", b = "{b}:{SVC_PORT}" }}
"#,
        ctl = lab.ip("ctl"),
        data = lab.dir().join("data").display(),
        opf = opf.display(),
        prefix = lab.prefix(),
        ttl = LEASE_TTL.as_secs(),
        detection = lab::detection("3s", max_failovers, "failover_window = \"1h\"\n"),
        site_a = site("a", "true"),
        site_b = site("b", promote_b),
        fe_ip = lab.ip("fe"),
        fef = fef.display(),
        a = lab.ip("a"),
        b = lab.ip("b"),
    );
    Ok((lab.write_file("ha.conf", conf)?, tokens.operator, fe))
}
