//! `[[orchestrator.notify]]` as deployed: the real orchestrator tells a
//! webhook receiver on the client host (a small HTTP server written for
//! the test: the user's own system, not a stand-in for a named component)
//! and a notify command of a failover, signed, in order, retried after a
//! failure, without its secrets reaching the command or the log.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::deploy::{Deployment, Knobs};
use crate::lab::{self, secs, Lab};

const HOOK_PORT: u16 = 9500;

/// The receiver: answers 500 to the first request (so warden retries),
/// 200 after; one JSON line per request with the event, its delivery
/// header and whether `X-Warden-Signature-256` is the body's HMAC-SHA256
/// under the secret in `secret_file`.
const RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, sys
ip, port, secret_file, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
secret = open(secret_file, "rb").read().strip()
seen = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        seen[0] += 1
        status = 500 if seen[0] == 1 else 200
        with open(out, "a") as f:
            f.write(json.dumps({
                "status": status,
                "path": self.path,
                "delivery": self.headers.get("X-Warden-Delivery"),
                "kind_header": self.headers.get("X-Warden-Event"),
                "sig_ok": hmac.compare_digest(self.headers.get("X-Warden-Signature-256", ""), want),
                "event": json.loads(body),
            }) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((ip, port), H).serve_forever()
"#;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A failover: the webhook gets the confirmation, the runbook's start and
/// its success, in event order, each signed; the first delivery (answered
/// 500) is retried under the same delivery id. The command entry gets only
/// the kinds it asked for, the event on stdin and in its environment, and
/// none of warden's secrets.
#[test]
fn a_failover_is_told_to_a_webhook_and_a_command() -> Result<()> {
    let Some(lab) = Lab::new_or_skip(crate::HOSTS) else {
        return Ok(());
    };
    let secret = format!("hook-secret-{}", lab.prefix());
    let secret_file = lab.write_file("hook.secret", &secret)?;
    let received = lab.dir().join("received.jsonl");
    let receiver = lab.write_file("receiver.py", RECEIVER)?;
    let told = lab.dir().join("told.log");
    let script = lab.write_file(
        "notify.sh",
        format!(
            "#!/bin/sh\n{{ echo \"$WARDEN_EVENT_KIND $WARDEN_EVENT_ID $WARDEN_GROUP $WARDEN_SITE\"; cat; env | sort | sed 's/^/env /'; }} >> {}\n",
            told.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let hook_ip = lab.ip("cli");
    let extra = format!(
        r#"
[[orchestrator.notify]]
name = "pager"
url = "http://{hook_ip}:{HOOK_PORT}/hook"
secret = {{ file = "{}" }}

[[orchestrator.notify]]
name = "runbooks"
command = ["{}"]
kinds = ["runbook_started", "runbook_succeeded"]
"#,
        secret_file.display(),
        script.display()
    );
    let d = Deployment::new(
        lab,
        Knobs {
            extra,
            ..Knobs::default()
        },
    )?;
    d.lab.spawn(
        "cli",
        "hook",
        "python3",
        [
            receiver.display().to_string(),
            hook_ip.to_string(),
            HOOK_PORT.to_string(),
            secret_file.display().to_string(),
            received.display().to_string(),
        ],
    )?;
    d.lab
        .wait_tcp("cli", (hook_ip, HOOK_PORT).into(), lab::patient(secs(10)))?;
    d.start_all()?;
    d.lab.kill("svc-a")?;
    d.wait_users_on("b", secs(60))?;
    let done = lab::eventually(secs(60), secs(0.3), || {
        let got = lines(&received);
        let ok: Vec<&Value> = got.iter().filter(|r| r["status"] == 200).collect();
        let kinds: Vec<&str> = ok
            .iter()
            .map(|r| r["event"]["kind"].as_str().unwrap_or_default())
            .collect();
        if kinds.contains(&"runbook_succeeded") {
            Ok(got)
        } else {
            bail!("webhook so far: {kinds:?}")
        }
    })?;
    // Every request signed, the kind in its header, the path as configured.
    for r in &done {
        assert_eq!(r["sig_ok"], true, "{r}");
        assert_eq!(r["path"], "/hook");
        assert_eq!(r["kind_header"], r["event"]["kind"], "{r}");
        // BOOT-ID: the process's tag, then the event id
        let delivery = r["delivery"].as_str().unwrap_or_default();
        assert!(
            delivery.len() > 9
                && delivery == format!("{}-{}", &delivery[..8], r["event"]["id"])
                && delivery[..8].chars().all(|c| c.is_ascii_hexdigit()),
            "{r}"
        );
    }
    // The first, answered 500, came again under the same delivery id.
    assert_eq!(done[0]["status"], 500);
    assert_eq!(done[1]["status"], 200);
    assert_eq!(done[0]["delivery"], done[1]["delivery"], "{done:#?}");
    let ok: Vec<&Value> = done.iter().filter(|r| r["status"] == 200).collect();
    let ids: Vec<u64> = ok
        .iter()
        .filter_map(|r| r["event"]["id"].as_u64())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, once each: {ids:?}"
    );
    let kinds: Vec<&str> = ok
        .iter()
        .map(|r| r["event"]["kind"].as_str().unwrap_or_default())
        .collect();
    for k in [
        "started",
        "site_confirmed_down",
        "runbook_started",
        "runbook_succeeded",
    ] {
        assert!(kinds.contains(&k), "{k} not told: {kinds:?}");
    }
    assert!(
        !kinds.contains(&"step_started") && !kinds.contains(&"site_down"),
        "the default kinds are state changes only: {kinds:?}"
    );
    let confirmed = ok
        .iter()
        .find(|r| r["event"]["kind"] == "site_confirmed_down")
        .context("confirmed")?;
    assert_eq!(confirmed["event"]["site"], "a");
    let succeeded = ok
        .iter()
        .find(|r| r["event"]["kind"] == "runbook_succeeded")
        .context("succeeded")?;
    assert_eq!(succeeded["event"]["group"], "web");
    // A group's events name the epoch they are about: the failover's
    // runbook is at the epoch its message names. A site's confirmation
    // is of no one group: no epoch. A local store: no leader term (0,
    // left out).
    assert!(confirmed["event"].get("epoch").is_none(), "{confirmed}");
    let started = ok
        .iter()
        .find(|r| r["event"]["kind"] == "runbook_started")
        .context("runbook started")?;
    assert_eq!(started["event"]["epoch"], 2, "{started}");
    assert_eq!(succeeded["event"]["epoch"], 2, "{succeeded}");
    assert!(succeeded["event"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("at epoch 2"));
    assert!(succeeded["event"].get("term").is_none(), "{succeeded}");
    assert!(succeeded["event"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("RTO"));

    // The command: its two kinds, each as a line, the JSON and its env.
    let text = lab::eventually(secs(30), secs(0.3), || {
        let t = std::fs::read_to_string(&told).unwrap_or_default();
        if t.contains("runbook_succeeded ") {
            Ok(t)
        } else {
            bail!("command told so far: {t}")
        }
    })?;
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("runbook_")).collect();
    assert_eq!(heads.len(), 2, "{text}");
    assert!(
        heads[0].starts_with("runbook_started ") && heads[0].ends_with(" web b"),
        "{heads:?}"
    );
    assert!(heads[1].starts_with("runbook_succeeded "), "{heads:?}");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[1]["kind"], "runbook_succeeded");
    assert_eq!(events[1]["epoch"], 2, "{text}");
    assert!(
        text.lines().any(|l| l == "env WARDEN_EPOCH=2") && text.contains("env WARDEN_TERM=0"),
        "the command is told the epoch and the term: {text}"
    );
    assert!(
        !text.contains(&secret),
        "the webhook secret reached the command"
    );
    assert!(
        !text.contains(&d.operator_token),
        "a token reached the command"
    );
    let log = d.lab.log("orchestrator");
    assert!(!log.contains(&secret));
    assert!(!log.contains("/hook"), "the webhook's URL is never logged");
    Ok(())
}
