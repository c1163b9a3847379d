//! A two-site deployment on lab hosts: sites `a` (primary) and `b` with an
//! echo service and an agent each, the orchestrator on `ctl`, a built-in
//! frontend on `fe`, and a client host `cli`. The config is generated with
//! the lab's addresses; knobs for what each test varies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::lab::{self, secs, Deploy, Lab, Tokens};

pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub(crate) const HOSTS: &[&str] = &["a", "b", "ctl", "fe", "cli"];
pub(crate) const SVC_PORT: u16 = 8080;
pub(crate) const API_PORT: u16 = 7000;
pub(crate) const CONTROL_PORT: u16 = 7100;
pub(crate) const ENTRY_PORT: u16 = 8000;
pub(crate) const HAPROXY_RUNTIME_PORT: u16 = 9999;

/// What a test may change in the generated config.
#[derive(Clone)]
pub(crate) struct Knobs {
    pub failback: &'static str,
    pub hold_down: &'static str,
    pub max_failovers: u32,
    /// Promote hook of site b: a shell snippet.
    pub promote_b: String,
    pub promote_a: String,
    /// Demote hooks: shell snippets run after the hook logs its run.
    pub demote_a: String,
    pub demote_b: String,
    /// TOML keys added to `[groups.web]` (e.g. `fencing = "required"`).
    pub group_extra: String,
    /// TOML appended to the generated config (e.g. a `[groups.web.replication]` table).
    pub extra: String,
    /// The frontend host runs a real HAProxy (driver "haproxy", runtime API
    /// on TCP) instead of `warden frontend`.
    pub haproxy: bool,
    /// `[groups.web] step_timeout`.
    pub step_timeout: &'static str,
    /// `[groups.web.frontend] drain_timeout`.
    pub drain_timeout: &'static str,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            failback: "auto",
            hold_down: "3s",
            max_failovers: 5,
            promote_b: "true".into(),
            promote_a: "true".into(),
            demote_a: "true".into(),
            demote_b: "true".into(),
            group_extra: String::new(),
            extra: String::new(),
            haproxy: false,
            step_timeout: "30s",
            drain_timeout: "2s",
        }
    }
}

pub(crate) struct Deployment {
    pub lab: Lab,
    /// The frontend is HAProxy: its config file (see [`Knobs::haproxy`]).
    pub haproxy_cfg: Option<PathBuf>,
    pub config: PathBuf,
    pub operator_token: String,
    pub frontend_token: String,
}

impl Deploy for Deployment {
    fn lab(&self) -> &Lab {
        &self.lab
    }
    fn config(&self) -> &std::path::Path {
        &self.config
    }
    fn warden_bin(&self) -> &'static str {
        WARDEN
    }
    /// The frontend's data path at debug: every connection it closes
    /// because its backend failed is a line (at info only some are, not to
    /// let users fill the log), which hold.rs reads.
    fn warden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("WARDEN_LOG", "info,warden_frontend::proxy=debug")]
    }
}

impl Deployment {
    /// Build hosts, write config and tokens; start nothing yet.
    pub(crate) fn new(lab: Lab, knobs: Knobs) -> Result<Deployment> {
        let ip = |h: &str| lab.ip(h);
        let tokens = Tokens::new(&lab, &["a", "b"])?;
        let fe = format!("frontend-{}", lab.prefix());
        let fef = lab.write_file("frontend.token", &fe)?;
        let hooks = lab.dir().join("hooks.log").display().to_string();
        let hook = |kind: &str, site: &str, then: &str, timeout: &str| {
            format!(
                r#"{kind} = [{{ name = "{kind}-{site}", command = ["/bin/sh", "-c", "echo {kind} {site} $WARDEN_EPOCH >> {hooks}; {then}"], timeout = "{timeout}" }}]"#
            )
        };
        let site = |s: &str, promote: &str, demote: &str| {
            // Each site's service names it in X-Served-By: every runbook's
            // verify step checks that users reach the site they should.
            let extra = format!(
                "{}\n{}\nstate_dir = \"{}\"\n[sites.{s}.identity]\nheader = \"X-Served-By\"\nvalue = \"{s}\"\n",
                hook("promote", s, promote, "20s"),
                hook("demote", s, demote, "10s"),
                lab.dir().join(format!("state-{s}")).display()
            );
            tokens.site(&lab, s, SVC_PORT, &extra)
        };
        let (frontend, driver) = if knobs.haproxy {
            (
                format!(
                    "kind = \"haproxy\"\nruntime = \"{}:{HAPROXY_RUNTIME_PORT}\"",
                    ip("fe")
                ),
                "driver = \"haproxy\"\nbackend = \"be_web\"".to_string(),
            )
        } else {
            (
                format!("control = \"{}:{CONTROL_PORT}\"\ntoken = {{ file = \"{}\" }}", ip("fe"), fef.display()),
                format!("driver = \"builtin\"\nbackends = {{ a = \"{}:{SVC_PORT}\", b = \"{}:{SVC_PORT}\" }}", ip("a"), ip("b")),
            )
        };
        let haproxy_cfg = if knobs.haproxy {
            let cfg = format!(
                "global\n    stats socket ipv4@{fe}:{HAPROXY_RUNTIME_PORT} level admin\n    stats timeout 30s\n\n\
                 defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
                 frontend fe_web\n    bind 0.0.0.0:{ENTRY_PORT}\n    default_backend be_web\n\n\
                 backend be_web\n    balance first\n    server a {a}:{SVC_PORT}\n    server b {b}:{SVC_PORT}\n",
                fe = ip("fe"),
                a = ip("a"),
                b = ip("b"),
            );
            Some(lab.write_file("haproxy.cfg", cfg)?)
        } else {
            None
        };
        let conf = format!(
            r#"{orchestrator}
{detection}
{site_a}
{site_b}
[frontends.fe1]
{frontend}

[groups.web]
sites = ["a", "b"]
scheme = "frontend"
failback = "{fb}"
step_timeout = "{st}"
{gx}
[groups.web.frontend]
{driver}
frontends = ["fe1"]
listen = "0.0.0.0:{ENTRY_PORT}"
drain_timeout = "{drain}"
{extra}"#,
            orchestrator = tokens.orchestrator(&lab, "ctl", API_PORT),
            detection = lab::detection(
                knobs.hold_down,
                knobs.max_failovers,
                "failover_window = \"1h\"\n"
            ),
            site_a = site("a", &knobs.promote_a, &knobs.demote_a),
            site_b = site("b", &knobs.promote_b, &knobs.demote_b),
            fb = knobs.failback,
            st = knobs.step_timeout,
            drain = knobs.drain_timeout,
            gx = knobs.group_extra,
            extra = knobs.extra,
        );
        let config = lab.write_file("failover.conf", conf)?;
        Ok(Deployment {
            lab,
            haproxy_cfg,
            config,
            operator_token: tokens.operator,
            frontend_token: fe,
        })
    }

    pub(crate) fn start_service(&self, site: &str) -> Result<()> {
        self.warden().service(site, SVC_PORT)
    }

    pub(crate) fn start_agent(&self, site: &str) -> Result<()> {
        self.warden().agent(site)
    }

    pub(crate) fn start_orchestrator(&self) -> Result<()> {
        self.warden().orchestrator("ctl")
    }

    pub(crate) fn start_frontend(&self) -> Result<()> {
        let Some(cfg) = &self.haproxy_cfg else {
            return self.warden().frontend("fe", "fe1", "frontend");
        };
        let cfg = cfg.display().to_string();
        self.lab
            .spawn("fe", "frontend", "haproxy", ["-db", "-f", cfg.as_str()])?;
        let fe = self.lab.ip("fe");
        for port in [ENTRY_PORT, HAPROXY_RUNTIME_PORT] {
            self.lab
                .wait_tcp("fe", (fe, port).into(), lab::patient(secs(10)))?;
        }
        Ok(())
    }

    /// One command to the HAProxy's runtime API (over TCP, from the fe host).
    pub(crate) fn haproxy_cmd(&self, line: &str) -> Result<String> {
        let script = format!(
            "exec 3<>/dev/tcp/{}/{HAPROXY_RUNTIME_PORT}; printf '%s\\n' \"$0\" >&3; cat <&3",
            self.lab.ip("fe")
        );
        self.lab.run_ok("fe", "bash", ["-c", script.as_str(), line])
    }

    /// Everything up, and users reach site a through the frontend.
    pub(crate) fn start_all(&self) -> Result<()> {
        self.start_service("a")?;
        self.start_service("b")?;
        self.start_frontend()?;
        self.start_orchestrator()?;
        self.start_agent("a")?;
        self.start_agent("b")?;
        self.wait_users_on("a", secs(20))
            .context("initial route to a")?;
        // Let the detector see every vantage point healthy before faults.
        self.wait_verdict("a", "healthy", secs(15))?;
        self.wait_verdict("b", "healthy", secs(15))?;
        Ok(())
    }

    pub(crate) fn entry_url(&self) -> String {
        format!("http://{}:{ENTRY_PORT}/", self.lab.ip("fe"))
    }

    /// One request from the client host through the frontend.
    pub(crate) fn user_get(&self) -> Result<String> {
        let (status, body) = self.lab.http_get("cli", &self.entry_url(), secs(2))?;
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

    pub(crate) fn events_of(&self, kind: &str) -> Result<Vec<Value>> {
        Ok(self
            .events()?
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect())
    }

    pub(crate) fn wait_event(&self, kind: &str, limit: Duration) -> Result<Value> {
        lab::eventually(limit, secs(0.25), || {
            self.events_of(kind)?
                .into_iter()
                .next()
                .with_context(|| format!("no {kind} event yet"))
        })
    }

    /// GET a JSON document from the ctl host with a bearer token.
    fn get_json(&self, token: &str, url: &str) -> Result<Value> {
        let auth = self.lab.auth_header(token)?;
        let out = self
            .lab
            .run_ok("ctl", "curl", ["-s", "-m", "5", "-H", &auth, url])?;
        serde_json::from_str(&out).with_context(|| format!("GET {url}: {out}"))
    }

    pub(crate) fn runbooks(&self) -> Result<Vec<Value>> {
        let url = format!("http://{}:{API_PORT}/v1/runbooks", self.lab.ip("ctl"));
        let v = self.get_json(&self.operator_token, &url)?;
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

    /// `curl -s -m 5 ARGS` from the `cli` host: curl's exit code, the
    /// HTTP status (0 without an answer) and the body.
    pub(crate) fn curl(&self, args: &[&str]) -> Result<(i32, u16, String)> {
        let mut all = vec!["-s", "-m", "5", "-w", "\n%{http_code}"];
        all.extend_from_slice(args);
        let out = self.lab.run("cli", "curl", all)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text
            .trim_end()
            .rsplit_once('\n')
            .unwrap_or(("", text.trim()));
        Ok((
            out.status.code().unwrap_or(-1),
            code.parse().unwrap_or(0),
            body.to_string(),
        ))
    }

    /// `METHOD path` on the orchestrator's (plain HTTP) API with `token` and
    /// a JSON `body`: the status and the body; an error if curl failed.
    pub(crate) fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String)> {
        let auth = self.lab.auth_header(token)?;
        let url = format!("http://{}:{API_PORT}{path}", self.lab.ip("ctl"));
        let (rc, status, text) = self.curl(&[
            "-X",
            method,
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
            &url,
        ])?;
        if rc != 0 {
            bail!("curl {method} {url}: exit {rc}");
        }
        Ok((status, text))
    }

    pub(crate) fn hook_log(&self) -> String {
        std::fs::read_to_string(self.lab.dir().join("hooks.log")).unwrap_or_default()
    }
}
