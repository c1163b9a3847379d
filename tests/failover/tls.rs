//! Issue 14, test 1: the control plane over TLS with client certificates
//! (mTLS) on namespace hosts. A test CA (openssl) signs the orchestrator's
//! and the frontend's server certificates (their IPs), one client
//! certificate per agent (naming its site), one for the orchestrator as the
//! frontend's client and one for the operator's CLI. Refused, with nothing
//! changed: no client certificate, one from another CA, an expired one, and
//! site b's certificate reporting for site a. A failover and a failback run
//! end to end over TLS, and `curl --cacert` reads the API.

use anyhow::{bail, Result};

use crate::deploy::{self, Knobs, WARDEN};
use crate::lab::{secs, Deploy};

/// Makes the CA and every certificate in `dir` (`$1`): `$2` the
/// orchestrator's IP, `$3` the frontend's. The expired certificate is
/// signed with explicit dates (`openssl ca -startdate -enddate`), not under
/// a faked clock: the `faketime` wrapper needs POSIX shared memory and a
/// semaphore of its own, and when it could not have them the whole script
/// failed with nothing said. openssl's messages go to `openssl.log`, shown
/// when the script fails.
const CERTS: &str = r#"
set -eu
cd "$1"
exec 2>>openssl.log
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ca() {
  key "$1"
  openssl req -x509 -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$1"
}
csr() {
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$2" > "$1.ext"
}
# leaf NAME SAN CA
leaf() {
  csr "$1" "$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
    -days 2 -out "$1.pem" -extfile "$1.ext"
}
# expired NAME SAN CA: valid for two days in January 2020
expired() {
  csr "$1" "$2"
  mkdir -p "$3-db"
  : > "$3-db/index.txt"
  printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\nnew_certs_dir = %s\nrand_serial = yes\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n' \
    "$3-db/index.txt" "$3-db" > "$3-db/ca.cnf"
  openssl ca -batch -config "$3-db/ca.cnf" -cert "$3.pem" -keyfile "$3.key" -in "$1.csr" \
    -out "$1.pem" -notext -startdate 20200101000000Z -enddate 20200103000000Z -extfile "$1.ext"
}
ca ca
ca other-ca
leaf orch "IP:$2" ca
leaf fe "IP:$3" ca
leaf agent-a "DNS:a" ca
leaf agent-b "DNS:b" ca
leaf orch-client "DNS:orchestrator" ca
leaf operator "DNS:operator" ca
leaf rogue-a "DNS:a" other-ca
expired expired-a "DNS:a" ca
chmod 600 ./*.key
"#;

#[test]
fn mtls_control_plane_refuses_wrong_certificates_and_fails_over() -> Result<()> {
    let Some(d) = crate::deployment(Knobs {
        failback: "manual",
        ..Knobs::default()
    }) else {
        return Ok(());
    };
    let dir = d.lab.dir().join("pki");
    std::fs::create_dir_all(&dir)?;
    let script = d.lab.write_file("certs.sh", CERTS)?;
    let (ctl, fe) = (d.lab.ip("ctl").to_string(), d.lab.ip("fe").to_string());
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([dir.to_str().unwrap(), &ctl, &fe])
        .output()?;
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.join("openssl.log")).unwrap_or_default();
        bail!(
            "certificates ({}): {}{log}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = |f: &str| dir.join(f).display().to_string();
    let api = format!("https://{ctl}:{}", deploy::API_PORT);

    // The deployment's config, over TLS with client certificates everywhere.
    let mut conf = std::fs::read_to_string(&d.config)?.replacen(
        &format!("listen = \"{ctl}:{}\"", deploy::API_PORT),
        &format!("listen = \"{ctl}:{}\"\nurl = \"{api}\"", deploy::API_PORT),
        1,
    );
    conf.push_str(&format!(
        r#"
[orchestrator.tls]
cert = "{orch}"
key = "{orch_key}"
ca = "{ca}"
client_ca = "{ca}"

[orchestrator.client_tls]
cert = "{oc}"
key = "{oc_key}"

[frontends.fe1.tls]
cert = "{fe_cert}"
key = "{fe_key}"
ca = "{ca}"
client_ca = "{ca}"

[sites.a.client_tls]
cert = "{a}"
key = "{a_key}"

[sites.b.client_tls]
cert = "{b}"
key = "{b_key}"
"#,
        orch = p("orch.pem"),
        orch_key = p("orch.key"),
        ca = p("ca.pem"),
        oc = p("orch-client.pem"),
        oc_key = p("orch-client.key"),
        fe_cert = p("fe.pem"),
        fe_key = p("fe.key"),
        a = p("agent-a.pem"),
        a_key = p("agent-a.key"),
        b = p("agent-b.pem"),
        b_key = p("agent-b.key"),
    ));
    std::fs::write(&d.config, conf)?;
    // The CLI (here and in the deployment's helpers) presents the
    // operator's certificate; only https URLs use these.
    std::env::set_var("WARDEN_CLIENT_CERT", p("operator.pem"));
    std::env::set_var("WARDEN_CLIENT_KEY", p("operator.key"));

    d.start_all()?;
    d.wait_verdict("a", "healthy", secs(20))?;
    d.wait_verdict("b", "healthy", secs(20))?;
    assert_eq!(d.user_get()?, "a");

    // curl --cacert reads the API (with the operator's certificate).
    let auth = d.lab.auth_header(&d.operator_token)?;
    // (curl's exit code, the body and the status on a last line)
    let curl = |extra: &[&str], path: &str, body: Option<&str>| -> Result<(i32, String)> {
        let url = format!("{api}{path}");
        let mut args: Vec<&str> = vec!["-H", &auth];
        args.extend_from_slice(extra);
        if let Some(b) = body {
            args.extend_from_slice(&["-H", "content-type: application/json", "--data-binary", b]);
        }
        args.push(&url);
        let (rc, status, text) = d.curl(&args)?;
        Ok((rc, format!("{text}\n{status}")))
    };
    let (ca, op, op_key) = (p("ca.pem"), p("operator.pem"), p("operator.key"));
    let (rc, text) = curl(
        &["--cacert", &ca, "--cert", &op, "--key", &op_key],
        "/v1/status",
        None,
    )?;
    assert!(
        rc == 0 && text.ends_with("200") && text.contains("\"groups\""),
        "{rc}: {text}"
    );
    // Both agents report on streams (wss, with their client certificates),
    // not by POST.
    let (rc, text) = curl(
        &["--cacert", &ca, "--cert", &op, "--key", &op_key],
        "/metrics",
        None,
    )?;
    assert!(
        rc == 0 && text.lines().any(|l| l == "warden_report_streams 2"),
        "{rc}: {text}"
    );

    // Refused at the handshake: no client certificate, one from another CA,
    // an expired one; and an API certificate not trusted by the client.
    let report = |seq: u64| {
        serde_json::json!({ "site": "a", "seq": seq, "boot": "forged",
            "checks": [{ "name": "web", "ok": false, "critical": true }] })
        .to_string()
    };
    let token_a = std::fs::read_to_string(d.lab.dir().join("a.token"))?;
    let auth_a = d.lab.auth_header(token_a.trim())?;
    let agent_curl = |cert: &str, key: &str, seq: u64| -> Result<(i32, String)> {
        let body = report(seq);
        let extra = [
            "--cacert",
            ca.as_str(),
            "--cert",
            cert,
            "--key",
            key,
            "-H",
            auth_a.as_str(),
        ];
        let url = format!("{api}/v1/reports");
        let mut args = extra.to_vec();
        args.extend_from_slice(&[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
            &url,
        ]);
        let (rc, status, text) = d.curl(&args)?;
        Ok((rc, format!("{text}\n{status}")))
    };
    let (rc, text) = curl(&["--cacert", &ca], "/v1/status", None)?;
    assert!(
        rc != 0 && !text.contains("groups"),
        "no client certificate: {rc} {text}"
    );
    let (rc, _) = agent_curl(&p("rogue-a.pem"), &p("rogue-a.key"), 1)?;
    assert_ne!(
        rc, 0,
        "a certificate from another CA is refused at the handshake"
    );
    let (rc, _) = agent_curl(&p("expired-a.pem"), &p("expired-a.key"), 2)?;
    assert_ne!(rc, 0, "an expired certificate is refused at the handshake");
    let (rc, text) = curl(
        &[
            "--cacert",
            &p("other-ca.pem"),
            "--cert",
            &op,
            "--key",
            &op_key,
        ],
        "/v1/status",
        None,
    )?;
    assert!(
        rc != 0 && !text.contains("groups"),
        "the API's certificate is not from other-ca: {rc} {text}"
    );
    // Site b's certificate with site a's token: the certificate does not name a.
    let (rc, text) = agent_curl(&p("agent-b.pem"), &p("agent-b.key"), 3)?;
    assert_eq!(rc, 0);
    assert!(
        text.ends_with("403") && text.contains("does not name site \\\"a\\\""),
        "{text}"
    );
    // The CLI with the wrong CA: a clear error.
    let out = d.lab.run(
        "cli",
        WARDEN,
        [
            "--config",
            d.config.to_str().unwrap(),
            "--ca",
            &p("other-ca.pem"),
            "status",
        ],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // None of that changed anything: a is still healthy and active.
    std::thread::sleep(secs(2));
    let g = d.group()?;
    assert_eq!(g["active"], "a", "{g}");
    d.wait_verdict("a", "healthy", secs(10))?;

    // An order to the frontend without the orchestrator's certificate:
    // the frontend's token and a newer epoch are not enough.
    let route = format!("https://{fe}:{}/v1/routes/web", deploy::CONTROL_PORT);
    let fe_auth = d.lab.auth_header(&d.frontend_token)?;
    for extra in [
        vec!["--cacert", ca.as_str()],
        vec![
            "--cacert",
            ca.as_str(),
            "--cert",
            op.as_str(),
            "--key",
            op_key.as_str(),
        ],
    ] {
        let mut args = extra.clone();
        args.extend_from_slice(&[
            "-X",
            "PUT",
            "-H",
            &fe_auth,
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"site":"b","epoch":99}"#,
            &route,
        ]);
        let (rc, status, body) = d.curl(&args)?;
        // Without a certificate: refused at the handshake. With one from the
        // same CA that does not name the orchestrator (the operator's):
        // 403, the route stays a.
        if extra.len() == 2 {
            assert_ne!(rc, 0, "no client certificate: {status} {body}");
        } else {
            assert_eq!(status, 403, "{body}");
            assert!(body.contains("does not name orchestrator"), "{body}");
        }
    }
    assert_eq!(d.user_get()?, "a", "no forged route switched the frontend");

    // A failover and a failback over TLS, end to end.
    d.cli_ok(&["failover", "web", "--to", "b"])?;
    d.wait_users_on("b", secs(30))?;
    // Users reach b at the switch, before the runbook has verified and
    // closed; the failback order waits for it.
    assert_eq!(d.wait_steady(secs(30))?["active"], "b");
    d.cli_ok(&["failback", "web"])?;
    d.wait_users_on("a", secs(60))?;
    assert_eq!(d.wait_steady(secs(30))?["active"], "a");
    Ok(())
}
