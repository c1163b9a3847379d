//! The `warden` binary's command line, run as a user runs it: which file
//! `check-config` checks (FILE, `--config`, `WARDEN_CONFIG`), `rsync-gate`
//! as an rsync daemon runs it, the operator commands against a fake API
//! (what they send, and bad `--url`, `--token-file`, `drill --timeout`
//! refused before anything is sent), `probe`'s refusals and duration, and
//! an unknown `orchestrator --node` said before any secret is read.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// `good.conf` (valid: one site, no group) and `bad.conf` (its detection
/// has `fall = 0`) in a fresh directory.
fn configs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["op", "a"] {
        std::fs::write(d.join(f), format!("{f}-secret-token")).unwrap();
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = format!(
        r#"[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
[detection]
fall = 3
[sites.a]
agent_token = {{ file = "{d}/a" }}
"#,
        d = d.display()
    );
    let (good, bad) = (d.join("good.conf"), d.join("bad.conf"));
    std::fs::write(&good, &text).unwrap();
    std::fs::write(&bad, text.replace("fall = 3", "fall = 0")).unwrap();
    (dir, good, bad)
}

/// `warden ARGS` with `WARDEN_CONFIG` set to `env` (or unset), in `cwd`.
fn warden(args: &[&Path], env: Option<&Path>, cwd: &Path) -> Output {
    let mut cmd = Command::new(WARDEN);
    cmd.args(args).current_dir(cwd).env("WARDEN_LOG", "error");
    for v in [
        "WARDEN_CONFIG",
        "WARDEN_URL",
        "WARDEN_TOKEN_FILE",
        "WARDEN_CA",
        "WARDEN_CLIENT_CERT",
        "WARDEN_CLIENT_KEY",
    ] {
        cmd.env_remove(v);
    }
    if let Some(f) = env {
        cmd.env("WARDEN_CONFIG", f);
    }
    cmd.output().expect("run warden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `file: ok (…)` on stdout, exit 0.
fn checked_ok(out: &Output, file: &Path) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("{}: ok (1 sites, 0 groups", file.display())),
        "{stdout}{stderr}"
    );
}

/// `file`'s problem on stdout, exit 64.
fn checked_bad(out: &Output, file: &Path) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(64), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("{}:", file.display())) && stdout.contains("detection.fall"),
        "{stdout}{stderr}"
    );
}

#[test]
fn check_config_takes_a_file_argument() {
    let (dir, good, bad) = configs();
    let cc = Path::new("check-config");
    checked_ok(&warden(&[cc, &good], None, dir.path()), &good);
    checked_bad(&warden(&[cc, &bad], None, dir.path()), &bad);
}

#[test]
fn check_config_takes_the_config_option() {
    let (dir, good, bad) = configs();
    let (cc, opt) = (Path::new("check-config"), Path::new("--config"));
    checked_ok(&warden(&[cc, opt, &good], None, dir.path()), &good);
    checked_bad(&warden(&[cc, opt, &bad], None, dir.path()), &bad);
    // Before the subcommand too (a global option).
    checked_ok(&warden(&[opt, &good, cc], None, dir.path()), &good);
    // The same file both ways (once by another path) is one file.
    checked_ok(&warden(&[cc, opt, &good, &good], None, dir.path()), &good);
    checked_ok(
        &warden(&[cc, opt, Path::new("good.conf"), &good], None, dir.path()),
        &good,
    );
}

/// What check-config accepts must run: a config whose roles share one
/// token reference (the orchestrator refuses to start on it) is refused,
/// each sharing key at its line and column, the secret never shown; the
/// same file with references of their own is accepted, and the
/// orchestrator's start refuses the shared one too.
#[test]
fn check_config_refuses_a_token_reference_shared_between_roles() {
    let (dir, good, _) = configs();
    let d = dir.path();
    for f in ["b", "fe"] {
        std::fs::write(d.join(f), format!("{f}-secret-token")).unwrap();
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Site b's agent token and frontend fe1's token, from `b_file`, `fe_file`.
    let with = |name: &str, b_file: &str, fe_file: &str| {
        let conf = d.join(name);
        let text = std::fs::read_to_string(&good).unwrap()
            + &format!(
                "[sites.b]\nagent_token = {{ file = \"{d}/{b_file}\" }}\n\
                 [frontends.fe1]\ncontrol = \"127.0.0.1:7100\"\ntoken = {{ file = \"{d}/{fe_file}\" }}\n",
                d = d.display()
            );
        std::fs::write(&conf, text).unwrap();
        conf
    };
    let shared = with("shared.conf", "a", "op");
    let out = warden(&[Path::new("check-config"), &shared], None, d);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(64), "{stdout}{stderr}");
    let f = shared.display();
    assert!(
        stdout.contains(&format!(
            "{f}:10:15: sites.b.agent_token: the same secret as sites.a.agent_token"
        )) && stdout.contains(&format!(
            "{f}:13:9: frontends.fe1.token: the same secret as orchestrator.operator_token"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("secret-token"), "{stdout}");
    // The orchestrator's start refuses it too (by the secrets' values).
    let out = warden(
        &[Path::new("--config"), &shared, Path::new("orchestrator")],
        None,
        d,
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("same secret"),
        "{}",
        text(&out.stderr)
    );
    // References of their own: accepted.
    let own = with("own.conf", "b", "fe");
    let out = warden(&[Path::new("check-config"), &own], None, d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// What check-config accepts must run: an orchestrator API that agents
/// on other hosts could not dial (port 0, or a wildcard without `url`) is
/// refused at its line and column; with `url` the wildcard passes.
#[test]
fn check_config_refuses_an_api_address_other_hosts_cannot_dial() {
    let (dir, good, _) = configs();
    let d = dir.path();
    let good_text = std::fs::read_to_string(&good).unwrap();
    for (name, listen, why) in [
        ("zero.conf", "127.0.0.1:0", "port 0"),
        ("wild.conf", "0.0.0.0:7000", "set url"),
    ] {
        let conf = d.join(name);
        std::fs::write(&conf, good_text.replace("127.0.0.1:7000", listen)).unwrap();
        let out = warden(&[Path::new("check-config"), &conf], None, d);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(64), "{stdout}");
        assert!(
            stdout.contains(&format!("{}:2:10: orchestrator.listen", conf.display()))
                && stdout.contains(why),
            "{stdout}"
        );
    }
    let conf = d.join("url.conf");
    std::fs::write(
        &conf,
        good_text.replace(
            "listen = \"127.0.0.1:7000\"",
            "listen = \"0.0.0.0:7000\"\nurl = \"http://127.0.0.1:7000\"",
        ),
    )
    .unwrap();
    let out = warden(&[Path::new("check-config"), &conf], None, d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// A secret reference that check-config accepts must load: the read-only
/// token and the named operators' tokens get the same checks as every
/// other reference (no source, a relative file, a bad variable name), at
/// their line and column — before, check-config passed them and the
/// orchestrator's start refused (or read a file relative to where it
/// started).
#[test]
fn check_config_checks_every_token_reference() {
    let (dir, good, _) = configs();
    let d = dir.path();
    let good_text = std::fs::read_to_string(&good).unwrap();
    for (name, extra, want) in [
        (
            "read-none.conf",
            "read_token = { }",
            "5:14: orchestrator.read_token: give where the secret comes from",
        ),
        (
            "read-rel.conf",
            "read_token = { file = \"read.token\" }",
            "5:23: orchestrator.read_token.file: must be an absolute path",
        ),
        (
            "ops-env.conf",
            "operators = [{ name = \"ann\", token = { env = \"1X\" } }]",
            "orchestrator.operators[0].token.env: must name an environment variable",
        ),
    ] {
        let conf = d.join(name);
        let text = good_text.replacen("\n[detection]", &format!("\n{extra}\n[detection]"), 1);
        std::fs::write(&conf, text).unwrap();
        let out = warden(&[Path::new("check-config"), &conf], None, d);
        let stdout = text_of(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {stdout}");
        assert!(
            stdout.contains(&format!("{}:", conf.display())) && stdout.contains(want),
            "{name}: {stdout}"
        );
    }
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// A variable that a secret reference names never reaches a child, even
/// when the agent's `pass_env` lists it and the secret is another role's
/// (the operator's token, set in the environment of a host that runs both):
/// the agent's command check sees neither it nor its value.
#[test]
fn agent_children_never_get_another_roles_secret_variable() {
    let (dir, good, _) = configs();
    let d = dir.path();
    let dump = d.join("env.txt");
    let text = std::fs::read_to_string(&good).unwrap().replace(
        &format!("operator_token = {{ file = \"{}/op\" }}", d.display()),
        "operator_token = { env = \"WARDEN_TEST_OP_TOKEN\" }",
    ) + &format!(
        r#"pass_env = ["WARDEN_TEST_OP_TOKEN", "WARDEN_TEST_PLAIN"]
[[sites.a.checks]]
name = "env"
kind = "command"
command = ["/bin/sh", "-c", "env > {0}.tmp && mv {0}.tmp {0}"]
"#,
        dump.display()
    );
    assert!(text.contains("WARDEN_TEST_OP_TOKEN\" }"), "{text}");
    let conf = d.join("env.conf");
    std::fs::write(&conf, text).unwrap();
    let mut agent = Command::new(WARDEN)
        .args(["agent", "--site", "a", "--config"])
        .arg(&conf)
        .env("WARDEN_LOG", "error")
        .env("WARDEN_TEST_OP_TOKEN", "operator-secret-in-env")
        .env("WARDEN_TEST_PLAIN", "plain-value")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dump.exists() && std::time::Instant::now() < deadline {
        if agent.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = agent.kill();
    let out = agent.wait_with_output().unwrap();
    let env = std::fs::read_to_string(&dump)
        .unwrap_or_else(|e| panic!("the check never ran ({e}): {}", text_of(&out)));
    assert!(env.contains("WARDEN_TEST_PLAIN=plain-value"), "{env}");
    assert!(
        !env.contains("WARDEN_TEST_OP_TOKEN") && !env.contains("operator-secret-in-env"),
        "{env}"
    );
}

/// SIGHUP (a certificate renewal's `kill -HUP`, a `systemctl reload`, a
/// log rotation; the docs give it as the reload of TLS files) leaves a
/// long-running process running: an agent, which serves no API and no
/// TLS, carries on. Before, only a TLS listener caught the signal, and its
/// default action ended every other process.
#[test]
fn a_hangup_does_not_end_an_agent() {
    use std::time::{Duration, Instant};
    /// The agent, killed and reaped however the test ends (a failed
    /// assertion included).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    impl std::ops::Deref for Killed {
        type Target = std::process::Child;
        fn deref(&self) -> &std::process::Child {
            &self.0
        }
    }
    impl std::ops::DerefMut for Killed {
        fn deref_mut(&mut self) -> &mut std::process::Child {
            &mut self.0
        }
    }
    let (dir, good, _) = configs();
    let mut agent = Killed(
        Command::new(WARDEN)
            .args(["agent", "--site", "a", "--config"])
            .arg(&good)
            .current_dir(dir.path())
            .env("WARDEN_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Started: its first log line is out (read on a thread: no deadlock
    // on a full pipe).
    let stderr = agent.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    assert!(
        first.is_ok(),
        "the agent said nothing: {:?}",
        agent.try_wait()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.try_wait().unwrap().is_none(), "the agent stopped");
    let sent = Command::new("kill")
        .args(["-HUP", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut ended = None;
    while Instant::now() < deadline && ended.is_none() {
        ended = agent.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        ended.is_none(),
        "SIGHUP ended the agent: {ended:?}; it said {said:?}"
    );
}

/// A frontend's control address that is the orchestrator's own API
/// address (or loopback at the port of an orchestrator listening on a
/// wildcard) is refused at its line and column: the orchestrator would
/// dial itself and the frontend could not bind (`warden frontend`
/// failed with "Address already in use" on a file check-config passed).
#[test]
fn check_config_refuses_a_frontend_control_at_the_api_address() {
    let (dir, good, _) = configs();
    let d = dir.path();
    std::fs::write(d.join("fe"), "fe-secret-token").unwrap();
    std::fs::set_permissions(d.join("fe"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let good_text = std::fs::read_to_string(&good).unwrap();
    for (name, listen, control) in [
        ("same.conf", "listen = \"127.0.0.1:7000\"", "127.0.0.1:7000"),
        (
            "wild.conf",
            "listen = \"0.0.0.0:7000\"\nurl = \"http://10.0.0.2:7000\"",
            "127.0.0.1:7000",
        ),
    ] {
        let text = good_text.replace("listen = \"127.0.0.1:7000\"", listen)
            + &format!(
                "[frontends.fe1]\ncontrol = \"{control}\"\ntoken = {{ file = \"{}/fe\" }}\n",
                d.display()
            );
        let conf = d.join(name);
        std::fs::write(&conf, &text).unwrap();
        let out = warden(&[Path::new("check-config"), &conf], None, d);
        let stdout = text_of(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {stdout}");
        let line = text.lines().position(|l| l.starts_with("control")).unwrap() + 1;
        assert!(
            stdout.contains(&format!(
                "{}:{line}:11: frontends.fe1.control",
                conf.display()
            )) && stdout.contains("where the orchestrator's API listens"),
            "{name}: {stdout}"
        );
    }
    // Another port of the same host is fine.
    let text = good_text
        + &format!(
            "[frontends.fe1]\ncontrol = \"127.0.0.1:7100\"\ntoken = {{ file = \"{}/fe\" }}\n",
            d.display()
        );
    let conf = d.join("other.conf");
    std::fs::write(&conf, &text).unwrap();
    let out = warden(&[Path::new("check-config"), &conf], None, d);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
}

/// The API's base URL gets the API's paths appended: one with a query or
/// a fragment is refused at its place (before, check-config passed it and
/// `warden status`, like every agent's command poll, got the dashboard at
/// `/`: "orchestrator sent malformed JSON"). A path stays allowed.
#[test]
fn check_config_refuses_an_api_url_that_would_swallow_its_paths() {
    let (dir, good, _) = configs();
    let d = dir.path();
    let good_text = std::fs::read_to_string(&good).unwrap();
    for (name, url, why) in [
        ("query.conf", "http://10.0.0.2:7000/?x=1", "holds a query"),
        ("frag.conf", "http://10.0.0.2:7000/#top", "holds a fragment"),
    ] {
        let conf = d.join(name);
        let text = good_text.replacen(
            "listen = \"127.0.0.1:7000\"",
            &format!("listen = \"127.0.0.1:7000\"\nurl = \"{url}\""),
            1,
        );
        std::fs::write(&conf, text).unwrap();
        let out = warden(&[Path::new("check-config"), &conf], None, d);
        let stdout = text_of(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {stdout}");
        assert!(
            stdout.contains(&format!("{}:3:7: orchestrator.url", conf.display()))
                && stdout.contains(why),
            "{name}: {stdout}"
        );
    }
    let conf = d.join("path.conf");
    let text = good_text.replacen(
        "listen = \"127.0.0.1:7000\"",
        "listen = \"127.0.0.1:7000\"\nurl = \"https://proxy.example.net/warden\"",
        1,
    );
    std::fs::write(&conf, text).unwrap();
    let out = warden(&[Path::new("check-config"), &conf], None, d);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
}

#[test]
fn check_config_takes_warden_config() {
    let (dir, good, bad) = configs();
    let cc = Path::new("check-config");
    checked_ok(&warden(&[cc], Some(&good), dir.path()), &good);
    checked_bad(&warden(&[cc], Some(&bad), dir.path()), &bad);
    // FILE on the command line wins over the environment.
    checked_bad(&warden(&[cc, &bad], Some(&good), dir.path()), &bad);
}

#[test]
fn check_config_refuses_two_different_files_and_none() {
    let (dir, good, bad) = configs();
    let (cc, opt) = (Path::new("check-config"), Path::new("--config"));
    for args in [[cc, opt, &good, &bad], [opt, &good, cc, &bad]] {
        let out = warden(&args, None, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "FILE {} and --config {} are different files",
                bad.display(),
                good.display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing was checked");
    }
    let out = warden(&[cc], None, dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("FILE, --config FILE or WARDEN_CONFIG is required"),
        "{stderr}"
    );
}

/// `warden status | head`: a reader that stops reading ends the output
/// quietly, not with a panic on the broken pipe.
#[test]
fn status_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let (dir, good, _) = configs();
    let conf = dir.path().join("live.conf");
    let status = |stdout: Stdio| {
        Command::new(WARDEN)
            .args(["status", "--config"])
            .arg(&conf)
            .env("WARDEN_LOG", "error")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A port free when picked may be taken by another test before the
    // orchestrator binds it: it then exits, and starts again on another.
    let mut orch = None;
    for _ in 0..3 {
        let port = warden_testkit::net::daemon_port();
        std::fs::write(
            &conf,
            std::fs::read_to_string(&good)
                .unwrap()
                .replace("127.0.0.1:7000", &format!("127.0.0.1:{port}")),
        )
        .unwrap();
        let mut child = Command::new(WARDEN)
            .args(["orchestrator", "--config"])
            .arg(&conf)
            .env("WARDEN_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let answered = loop {
            if status(Stdio::null()).wait().unwrap().success() {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the orchestrator never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        if answered {
            orch = Some(child);
            break;
        }
    }
    let mut orch = orch.expect("the orchestrator exited at start on three ports");
    // The read end is closed before the answer comes back.
    let mut child = status(Stdio::piped());
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let _ = orch.kill();
    let _ = orch.wait();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

/// `warden ARGS --url URL --token-file TOKEN`, as an operator runs it: no
/// config from the environment, only errors logged.
fn operator_cli(args: &[&str], url: &str, token: &Path) -> Output {
    Command::new(WARDEN)
        .args(args)
        .args(["--url", url, "--token-file"])
        .arg(token)
        .env("WARDEN_LOG", "error")
        .env_remove("WARDEN_CONFIG")
        .output()
        .unwrap()
}

/// A fake orchestrator API on 127.0.0.1: `GET /v1/groups/web` answers the
/// group on `a` at epoch 7, any other request 202 `{"runbook": 1}`; each
/// request ("METHOD PATH", body) is sent to the receiver. Its URL.
fn fake_api() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    fake_api_answering("202 Accepted", r#"{"runbook":1}"#)
}

/// [`fake_api`] whose answer to every request but `GET /v1/groups/web`
/// (which also shows a pending failover to b) is `status` with `answer`.
fn fake_api_answering(
    status: &'static str,
    answer: &'static str,
) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    fake_server(move |req| {
        if req == "GET /v1/groups/web" {
            (
                "200 OK",
                r#"{"name":"web","primary":"a","active":"a","epoch":7,"pending":{"kind":"failover","to":"b","reason":"automatic = false","since_unix_ms":5}}"#,
            )
        } else {
            (status, answer)
        }
    })
}

/// A fake HTTP server on 127.0.0.1 answering each request ("METHOD PATH")
/// as `route` says (status line, JSON body); each request (and its body)
/// is sent to the receiver. Its URL.
fn fake_server(
    route: impl Fn(&str) -> (&'static str, &'static str) + Send + 'static,
) -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let req: Vec<&str> = line.split_whitespace().take(2).collect();
            let req = req.join(" ");
            let (status, answer) = route(&req);
            // Recorded before the answer: the CLI has exited only after it.
            if tx.send((req, text(&body))).is_err() {
                return;
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, rx)
}

/// A move's confirmation printed into a closed pipe (the reader of
/// `warden failover … | tee` gone): the move was started, and the CLI
/// says so by its exit code — no panic (exit 101), which a script takes
/// for a failed move.
#[test]
fn a_move_confirmed_into_a_closed_pipe_is_no_failure() {
    use std::process::Stdio;
    let (dir, _, _) = configs();
    let (url, requests) = fake_api();
    let token = dir.path().join("op");
    let mut child = Command::new(WARDEN)
        .args([
            "failover",
            "web",
            "--to",
            "b",
            "--url",
            &url,
            "--token-file",
        ])
        .arg(&token)
        .env("WARDEN_LOG", "error")
        .env_remove("WARDEN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
    let sent: Vec<String> = requests.try_iter().map(|(r, _)| r).collect();
    assert!(
        sent.contains(&"POST /v1/groups/web/failover".to_string()),
        "{sent:?}"
    );
}

/// `warden failover`, `failback`, `switchover` and `resync` read the group
/// first and send what they read (its active site and epoch): the
/// orchestrator refuses the move (409) if the group moved on before it
/// arrives. Before,
/// a failover (and a failback, a switchover) carried no expectation and
/// ran against whatever the group had become.
#[test]
fn moves_are_sent_for_the_group_as_read() {
    let (dir, _, _) = configs();
    let (url, requests) = fake_api();
    let token = dir.path().join("op");
    for (args, path, mut want) in [
        (
            vec!["failover", "web", "--to", "b"],
            "/v1/groups/web/failover",
            serde_json::json!({ "to": "b" }),
        ),
        (
            vec!["failback", "web"],
            "/v1/groups/web/failback",
            serde_json::json!({}),
        ),
        (
            vec!["switchover", "web", "--to", "b"],
            "/v1/groups/web/switchover",
            serde_json::json!({ "to": "b" }),
        ),
        (
            vec!["resync", "web"],
            "/v1/groups/web/resync",
            serde_json::json!({}),
        ),
    ] {
        let out = operator_cli(&args, &url, &token);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let mut sent: Vec<(String, String)> = requests.try_iter().collect();
        assert_eq!(sent.len(), 2, "{args:?}: {sent:?}");
        let (post, body) = sent.pop().unwrap();
        assert_eq!(sent[0].0, "GET /v1/groups/web", "{args:?}: read first");
        assert_eq!(post, format!("POST {path}"), "{args:?}");
        want["from"] = "a".into();
        want["epoch"] = 7.into();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(body, want, "{args:?}: the move carries the group as read");
    }
}

/// `warden maintenance` reads the group first and names the maintenance
/// change it read, so an order sent before another operator's change is
/// refused by the orchestrator, not applied over it; an orchestrator that
/// shows no such change (older) gets the order without it.
#[test]
fn maintenance_is_sent_as_read() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    for (group, want) in [
        (
            r#"{"name":"web","active":"a","epoch":7,"maintenance":true,"maintenance_seq":3}"#,
            serde_json::json!({ "on": false, "maintenance_seq": 3 }),
        ),
        (
            r#"{"name":"web","active":"a","epoch":7,"maintenance":true}"#,
            serde_json::json!({ "on": false }),
        ),
    ] {
        let (url, requests) = fake_server(move |req| {
            if req == "GET /v1/groups/web" {
                ("200 OK", group)
            } else {
                ("200 OK", r#"{"maintenance":false,"maintenance_seq":4}"#)
            }
        });
        let out = operator_cli(&["maintenance", "web", "off"], &url, &token);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "maintenance off for web");
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0].0, "GET /v1/groups/web", "read first");
        assert_eq!(sent[1].0, "POST /v1/groups/web/maintenance");
        let body: serde_json::Value = serde_json::from_str(&sent[1].1).unwrap_or_default();
        assert_eq!(body, want);
    }
    // An older orchestrator answers 204 once stored: the group read
    // again shows it, and that is taken.
    let posted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = posted.clone();
    let (url, _requests) = fake_server(move |req| {
        use std::sync::atomic::Ordering::SeqCst;
        if req == "GET /v1/groups/web" {
            if seen.load(SeqCst) {
                (
                    "200 OK",
                    r#"{"name":"web","active":"a","epoch":7,"maintenance":false,"maintenance_seq":4}"#,
                )
            } else {
                (
                    "200 OK",
                    r#"{"name":"web","active":"a","epoch":7,"maintenance":true,"maintenance_seq":3}"#,
                )
            }
        } else {
            seen.store(true, SeqCst);
            ("204 No Content", "")
        }
    });
    let out = operator_cli(&["maintenance", "web", "off"], &url, &token);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "maintenance off for web");
    // An answer that does not say maintenance is what was asked (a
    // proxy's empty 2xx, an orchestrator that answered before storing)
    // is no success. Before, any 2xx printed "maintenance off for web".
    for answer in [
        ("204 No Content", ""),
        ("200 OK", "{}"),
        ("200 OK", r#"{"maintenance":true}"#),
    ] {
        let (url, _requests) = fake_server(move |req| {
            if req == "GET /v1/groups/web" {
                (
                    "200 OK",
                    r#"{"name":"web","active":"a","epoch":7,"maintenance":true,"maintenance_seq":3}"#,
                )
            } else {
                answer
            }
        });
        let out = operator_cli(&["maintenance", "web", "off"], &url, &token);
        assert!(!out.status.success(), "{answer:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("does not say maintenance is off for web"),
            "{answer:?}: {}",
            text(&out.stderr)
        );
    }
}

/// With `--epoch N` (the operator's own reading of `warden status`), a
/// move is sent only while the group is at epoch N: one re-run later from
/// shell history, after the group moved on, is refused here with what the
/// group is now, and nothing is posted. Before, there was no such option:
/// a re-run read the group again and was taken.
#[test]
fn a_move_with_an_epoch_is_sent_only_while_the_group_is_at_it() {
    let (dir, _, _) = configs();
    let (url, requests) = fake_api();
    let token = dir.path().join("op");
    let run = |args: &[&str]| operator_cli(args, &url, &token);
    for (args, path) in [
        (
            vec!["failover", "web", "--to", "b"],
            "/v1/groups/web/failover",
        ),
        (vec!["failback", "web"], "/v1/groups/web/failback"),
        (
            vec!["switchover", "web", "--to", "b"],
            "/v1/groups/web/switchover",
        ),
        (vec!["resync", "web"], "/v1/groups/web/resync"),
    ] {
        // The group (at epoch 7) moved on since the operator read epoch 6.
        let stale: Vec<&str> = args.iter().copied().chain(["--epoch", "6"]).collect();
        let out = run(&stale);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{stale:?}: {}{err}",
            text(&out.stdout)
        );
        assert!(
            err.contains("epoch 7")
                && err.contains("not at epoch 6")
                && err.contains("nothing sent"),
            "{stale:?}: {err}"
        );
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert_eq!(
            sent.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["GET /v1/groups/web"],
            "{stale:?}: read, never posted"
        );
        // At the epoch the group is at: sent, with that epoch.
        let current: Vec<&str> = args.iter().copied().chain(["--epoch", "7"]).collect();
        let out = run(&current);
        assert!(
            out.status.success(),
            "{current:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert_eq!(sent.len(), 2, "{current:?}: {sent:?}");
        assert_eq!(sent[1].0, format!("POST {path}"), "{current:?}");
        let body: serde_json::Value = serde_json::from_str(&sent[1].1).unwrap_or_default();
        assert_eq!(
            (body["from"].as_str(), body["epoch"].as_u64()),
            (Some("a"), Some(7)),
            "{current:?}"
        );
    }
}

/// An answer that says nothing of what was done — `{}`, an empty body, a
/// JSON array, as a proxy, a wrong URL or a broken orchestrator may give
/// with a 2xx status — is not taken for success: each action exits 1,
/// saying the answer does not name what it started, and `warden status
/// --json` does not print it as the status. Before, the CLI printed
/// "failover of web to b started (runbook null)" and exited 0.
#[test]
fn an_answer_that_names_nothing_done_is_no_success() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    for (status, answer) in [("200 OK", "{}"), ("200 OK", ""), ("202 Accepted", "[1]")] {
        let (url, _requests) = fake_api_answering(status, answer);
        for args in [
            vec!["failover", "web", "--to", "b"],
            vec!["failback", "web"],
            vec!["switchover", "web", "--to", "b"],
            vec!["resync", "web"],
            vec!["approve", "web"],
            vec!["adopt-epoch", "web"],
            vec!["clear", "web"],
            vec!["status", "--json"],
        ] {
            let out = operator_cli(&args, &url, &token);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(
                out.status.code(),
                Some(1),
                "{args:?} answered {status} {answer:?}: {stdout}{stderr}"
            );
            assert!(
                !stdout.contains("null") && !stdout.contains("started"),
                "{args:?} answered {status} {answer:?}: {stdout}"
            );
            assert!(
                stderr.contains("the orchestrator's answer"),
                "{args:?} answered {status} {answer:?}: {stderr}"
            );
        }
    }
}

/// With several orchestrators, `warden approve` reads the pending decision
/// from the leader, as the moves read the group: a follower's mirror may
/// lag (or not read etcd at all), and an approval naming its older
/// decision would be refused by the leader again and again (or the CLI
/// would say nothing is pending). Before, it read from the first URL.
#[test]
fn approve_reads_the_pending_decision_from_the_leader() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    let node = |leader: bool, since: u64| {
        let view: &'static str = if leader {
            r#"{"node":"o2","is_leader":true,"leader":"o2"}"#
        } else {
            r#"{"node":"o1","is_leader":false,"leader":"o2"}"#
        };
        let group: &'static str = Box::leak(
            format!(r#"{{"name":"web","primary":"a","active":"a","epoch":7,"phase":"pending_approval","pending":{{"kind":"failover","to":"b","reason":"automatic = false","since_unix_ms":{since}}}}}"#)
                .into_boxed_str(),
        );
        fake_server(move |req| match req {
            "GET /v1/leader" if leader => ("200 OK", view),
            "GET /v1/leader" => ("503 Service Unavailable", view),
            "GET /v1/groups/web" => ("200 OK", group),
            _ => ("202 Accepted", r#"{"runbook":3}"#),
        })
    };
    // The follower still shows the decision withdrawn since (5); the
    // leader the one pending now (9).
    let (follower, at_follower) = node(false, 5);
    let (leader, _at_leader) = node(true, 9);
    let out = Command::new(WARDEN)
        .args([
            "approve",
            "web",
            "--url",
            &format!("{follower},{leader}"),
            "--token-file",
        ])
        .arg(&token)
        .env("WARDEN_LOG", "error")
        .env_remove("WARDEN_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, body) = at_follower
        .try_iter()
        .find(|(r, _)| r == "POST /v1/groups/web/approve")
        .expect("the approval was posted");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(
        body["since_unix_ms"], 9,
        "the approval names the decision the leader has: {body}"
    );
}

/// `warden events` shows every event after `--after`, to the newest: the
/// API answers a page at a time (oldest first, 1000 by default), and the
/// events of the incident at hand are the last ones. Before, the CLI asked
/// once and showed the oldest 1000, saying nothing of the rest: with more
/// stored, the newest (a pending decision, a failed runbook's detail, which
/// the procedures send the operator to read there) were never shown.
#[test]
fn events_are_shown_to_the_newest() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    let page = |ids: std::ops::RangeInclusive<u64>| -> &'static str {
        let events: Vec<serde_json::Value> = ids
            .map(|id| {
                serde_json::json!({
                    "id": id, "time_unix_ms": id, "kind": "site_down", "group": "web",
                    "site": "a", "message": format!("event number {id}"),
                })
            })
            .collect();
        Box::leak(serde_json::to_string(&events).unwrap().into_boxed_str())
    };
    let (first, second) = (page(1..=1000), page(1001..=1003));
    let (url, requests) = fake_server(move |req| {
        let after = req
            .split_once("after=")
            .map(|(_, a)| a.split('&').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        match after.as_str() {
            "0" => ("200 OK", first),
            "1000" => ("200 OK", second),
            _ => ("200 OK", "[]"),
        }
    });
    for json in [false, true] {
        let out = Command::new(WARDEN)
            .args(["events", "--group", "web", "--url", &url, "--token-file"])
            .arg(&token)
            .args(json.then_some("--json"))
            .env("WARDEN_LOG", "error")
            .env_remove("WARDEN_CONFIG")
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let asked: Vec<String> = requests.try_iter().map(|(r, _)| r).collect();
        if json {
            let v: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("one JSON array");
            let ids: Vec<u64> = v.iter().map(|e| e["id"].as_u64().unwrap()).collect();
            assert_eq!(ids, (1..=1003).collect::<Vec<_>>(), "{asked:?}");
        } else {
            assert!(
                stdout.contains("event number 1003") && stdout.contains("event number 1\n"),
                "the newest event is not shown ({asked:?}): …{}",
                &stdout[stdout.len().saturating_sub(300)..]
            );
            assert_eq!(stdout.lines().count(), 1003, "{asked:?}");
        }
    }
}

/// A group argument no group can have (a `/`, a `?`) is refused before
/// anything is sent: it is put in the request's path, where
/// `web/approve?` made `warden resync` post an approval of whatever was
/// pending.
#[test]
fn a_group_argument_that_is_no_group_name_sends_nothing() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    let (url, requests) = fake_api();
    for args in [
        vec!["resync", "web/approve?x="],
        vec!["maintenance", "web/approve?", "on"],
        vec!["events", "--group", "web&after=9"],
    ] {
        let out = operator_cli(&args, &url, &token);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("is not a group name"), "{args:?}: {stderr}");
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert!(sent.is_empty(), "{args:?}: sent {sent:?}");
    }
}

/// A refusal whose body is not the API's JSON (a proxy's HTML page, with
/// whatever it holds) is shown escaped and cut short: it reaches the
/// terminal as no escape sequence and no screenful. Before, it was
/// printed as it came.
#[test]
fn a_refusal_that_is_not_json_is_shown_escaped_and_short() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    const PAGE: &str = concat!(
        "<html>\u{1b}]0;owned\u{7}\u{1b}[2J<body>bad gateway</body>",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "</html>"
    );
    let (url, _requests) = fake_api_answering("502 Bad Gateway", PAGE);
    let out = operator_cli(&["failover", "web", "--to", "b"], &url, &token);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("502 Bad Gateway"), "{stderr}");
    assert!(
        !stderr.trim_end().chars().any(char::is_control),
        "a control character reached the terminal: {stderr:?}"
    );
    assert!(stderr.contains(r"\u{1b}"), "shown escaped: {stderr}");
    assert!(
        stderr.len() < 600 && !stderr.contains("</html>"),
        "not cut short ({} bytes): {stderr}",
        stderr.len()
    );
}

/// `good`'s config (site a, its `state_dir` in `d`) with site b
/// (`b_extra` its own lines), frontend fe1 and group web replicating with
/// the rsync plan between `d/a-data` and `d/b-data`, each site's table
/// ending with `transport(site)` (a daemon module, or ssh).
fn web_rsync_conf(
    good: &Path,
    d: &Path,
    b_extra: &str,
    transport: impl Fn(&str) -> String,
) -> String {
    std::fs::read_to_string(good).unwrap()
        + &format!(
            r#"state_dir = "{d}/state-a"
[sites.b]
agent_token = {{ file = "{d}/a" }}
{b_extra}[frontends.fe1]
control = "127.0.0.1:7100"
token = {{ file = "{d}/op" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = {{ a = "127.0.0.1:8080", b = "127.0.0.1:8081" }}
[groups.web.replication]
plan = "rsync"
[groups.web.replication.sites.a]
path = "{d}/a-data"
{a}[groups.web.replication.sites.b]
path = "{d}/b-data"
{b}"#,
            d = d.display(),
            a = transport("a"),
            b = transport("b"),
        )
}

/// `warden rsync-gate ARGS` in `dir` with the rsync daemon's variables
/// `vars` (and no others).
fn gate(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(WARDEN);
    cmd.args(args).current_dir(dir).env("WARDEN_LOG", "error");
    for (k, _) in std::env::vars() {
        if k.starts_with("RSYNC_") || k.starts_with("WARDEN_CONFIG") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("run warden")
}

/// The gate as the rsync daemon runs it: the verdict on stdout (what rsync
/// shows the pusher) and in the exit status; anything it cannot judge is
/// refused.
#[test]
fn rsync_gate_says_its_verdict_and_fails_closed() {
    let (dir, good, _) = configs();
    let d = dir.path();
    let conf = d.join("gate.conf");
    let text_of = web_rsync_conf(&good, d, "", |site| {
        let n = if site == "a" { 1 } else { 2 };
        format!(
            "module = \"10.{n}.0.10/appdata\"\nuser = \"warden\"\npassword = {{ file = \"{}/op\" }}\n",
            d.display()
        )
    });
    std::fs::write(&conf, text_of).unwrap();
    let conf = conf.to_str().unwrap();
    let push = [
        ("RSYNC_MODULE_NAME", "appdata"),
        ("RSYNC_HOST_ADDR", "10.2.0.10"),
        ("RSYNC_ARG0", "rsyncd"),
        ("RSYNC_ARG1", "--server"),
        ("RSYNC_ARG2", "--delete"),
    ];
    let args = ["--config", conf, "rsync-gate", "--site", "a"];

    // Not run by an rsync daemon.
    let out = gate(d, &args, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("RSYNC_MODULE_NAME is not set"),
        "{}",
        text(&out.stdout)
    );
    // The agent of site a never ran: its role is unknown.
    let out = gate(d, &args, &push);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("cannot be known"),
        "{}",
        text(&out.stdout)
    );
    // Site a is active (as its agent wrote): the push is refused, with why.
    std::fs::create_dir_all(d.join("state-a")).unwrap();
    std::fs::write(
        d.join("state-a/authority.json"),
        r#"{"site": "a", "groups": {"web": {"epoch": 6, "role": "active"}}}"#,
    )
    .unwrap();
    let out = gate(d, &args, &push);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(
            "warden rsync-gate: refused a push into module \"appdata\" of site a from \
             10.2.0.10: site a is the active site of group web (epoch 6)"
        ),
        "{}",
        text(&out.stdout)
    );
    // A read of the same module passes.
    let mut read = push.to_vec();
    read[4] = ("RSYNC_ARG2", "--sender");
    assert_eq!(gate(d, &args, &read).status.code(), Some(0));
    // An agent that lost its state file does not know its role: refused.
    std::fs::write(
        d.join("state-a/authority.json"),
        r#"{"site": "a", "groups": {"web": {"epoch": 6, "role": "unknown"}}}"#,
    )
    .unwrap();
    let out = gate(d, &args, &push);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("site a's role in group web is unknown"),
        "{}",
        text(&out.stdout)
    );
    // Demoted: pushes land again.
    std::fs::write(
        d.join("state-a/authority.json"),
        r#"{"site": "a", "groups": {"web": {"epoch": 7, "role": "standby", "demoted_at": 7}}}"#,
    )
    .unwrap();
    let out = gate(d, &args, &push);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // A site the config does not have, and a config that does not load.
    let out = gate(d, &["--config", conf, "rsync-gate", "--site", "zz"], &push);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("\"zz\" is not a site"),
        "{}",
        text(&out.stdout)
    );
    let missing = d.join("missing.conf");
    let out = gate(
        d,
        &[
            "--config",
            missing.to_str().unwrap(),
            "rsync-gate",
            "--site",
            "a",
        ],
        &push,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("refused the transfer"),
        "{}",
        text(&out.stdout)
    );
}

/// `warden clear GROUP --deletions SITE` names back the held pass it read
/// (`replication.held`), so the orchestrator releases that one only: a
/// copy that arrives after the hold changed (delayed in transit) releases
/// nothing. (A re-run from shell history reads the group again.)
/// Every clear names back the alerts and the count of divergent items it
/// read, so one raised or grown since is not lifted.
#[test]
fn clear_names_back_the_hold_it_read() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    let (url, seen) = fake_server(|req| match req {
        "GET /v1/leader" => ("200 OK", r#"{"node":"o1","is_leader":true,"leader":"o1"}"#),
        "GET /v1/groups/web" => (
            "200 OK",
            r#"{"name":"web","primary":"a","active":"a","epoch":7,"phase":"steady","alerts":["replication at a: a pass would delete 700 of b's 1000 items"],"replication":{"divergent_total":2,"held":{"a":"a pass would delete 700 of b's 1000 items"}}}"#,
        ),
        _ => (
            "200 OK",
            r#"{"cleared":["the mass-delete guard at a lets the held pass go ahead once"]}"#,
        ),
    });
    let out = operator_cli(&["clear", "web", "--deletions", "a"], &url, &token);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, body) = seen
        .try_iter()
        .find(|(r, _)| r == "POST /v1/groups/web/clear")
        .expect("a clear was sent");
    let body: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(
        body,
        serde_json::json!({
            "deletions": ["a"],
            "seen": {"a": "a pass would delete 700 of b's 1000 items"},
            "alerts": ["replication at a: a pass would delete 700 of b's 1000 items"],
            "divergent": 2,
        })
    );
}

/// `warden probe` refuses what it cannot measure with, saying so, exit 64:
/// `--interval 0s` (it panicked: "`period` must be non-zero").
#[test]
fn probe_refuses_a_zero_interval() {
    let out = Command::new(WARDEN)
        .args([
            "probe",
            "127.0.0.1:9",
            "--interval",
            "0s",
            "--duration",
            "1s",
        ])
        .env("WARDEN_LOG", "error")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--interval must be above zero") && !err.contains("panicked"),
        "{err}"
    );
}

/// `warden probe` refuses a target no attempt can reach — a URL that does
/// not parse, a port 0 — saying so, exit 64, instead of measuring a 100 %
/// outage that is only the typo's (it printed "outage started: request
/// failed" and exited 0).
#[test]
fn probe_refuses_a_target_that_cannot_be_reached() {
    for (target, says) in [
        ("http://[::1", "is not a URL"),
        ("http://127.0.0.1:0/", "port 0"),
        ("tcp://127.0.0.1:0", "give http://host:port/path"),
        ("127.0.0.1:0", "give http://host:port/path"),
    ] {
        let out = Command::new(WARDEN)
            .args([
                "probe",
                target,
                "--interval",
                "100ms",
                "--duration",
                "300ms",
            ])
            .env("WARDEN_LOG", "error")
            .output()
            .unwrap();
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(64), "{target}: {o}{e}");
        assert!(
            e.contains(says) && !o.contains("outage"),
            "{target}: {o}{e}"
        );
    }
}

/// `warden drill GROUP --timeout 0s` is refused before anything is sent:
/// with no time to wait, the drill would start its switchover and stop
/// waiting at once, leaving users on the standby with no failback (it read
/// the group and went on).
#[test]
fn drill_refuses_a_zero_timeout_before_sending_anything() {
    let (dir, _, _) = configs();
    let (url, requests) = fake_api();
    let token = dir.path().join("op");
    let out = operator_cli(&["drill", "web", "--timeout", "0s"], &url, &token);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--timeout") && err.contains("above zero"),
        "{err}"
    );
    let sent: Vec<(String, String)> = requests.try_iter().collect();
    assert!(sent.is_empty(), "nothing is sent: {sent:?}");
    // A stay or a timeout of ages overflowed the drill's clock after its
    // switchover had started (a panic, users left on the standby).
    for (flag, value) in [
        ("--stay", "300000000years"),
        ("--timeout", "300000000years"),
    ] {
        let out = operator_cli(&["drill", "web", flag, value], &url, &token);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("at most 30 days"),
            "{err}"
        );
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert!(sent.is_empty(), "{flag}: nothing is sent: {sent:?}");
    }
}

/// A `--url` the API's paths cannot be added to — a query (`/?x` asked
/// `/?x/v1/status`, the dashboard's page), another scheme, credentials —
/// is refused with what is wrong, exit 64, before anything is sent (it
/// was sent, and the answer reported as "not what this CLI reads"); a
/// password in it is never echoed.
#[test]
fn a_url_the_api_paths_cannot_be_added_to_is_refused() {
    let (dir, _, _) = configs();
    let (url, requests) = fake_api();
    let token = dir.path().join("op");
    let port = url.rsplit(':').next().unwrap().to_string();
    for (bad, says) in [
        (format!("{url}/?x"), "query or fragment"),
        (format!("{url}/#top"), "query or fragment"),
        (format!("ftp://127.0.0.1:{port}"), "http:// or https://"),
        (format!("http://op:hunter2@127.0.0.1:{port}"), "credentials"),
    ] {
        let out = operator_cli(&["status"], &bad, &token);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bad}: {err}");
        assert!(
            err.contains(says) && !err.contains("hunter2"),
            "{bad}: {err}"
        );
        let sent: Vec<(String, String)> = requests.try_iter().collect();
        assert!(sent.is_empty(), "{bad}: nothing is sent: {sent:?}");
    }
}

/// A `--token-file` every user can read is refused with the `chmod` that
/// fixes it, and nothing else to do: a file named on the command line has
/// no reference where `others_may_read = true` could be set (the message
/// advised it).
#[test]
fn a_token_file_every_user_can_read_is_refused_with_the_fix_that_applies() {
    let (dir, _, _) = configs();
    let token = dir.path().join("op");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = operator_cli(&["status"], "http://127.0.0.1:9", &token);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--token-file")
            && err.contains("chmod 600")
            && !err.contains("others_may_read"),
        "{err}"
    );
}

/// `warden probe --duration D` stops when D is up, also with an interval
/// longer than D (it ran until the next tick: `--interval 1h --duration
/// 300ms` measured for an hour).
#[test]
fn probe_stops_when_its_duration_is_up() {
    let mut child = Command::new(WARDEN)
        .args([
            "probe",
            "127.0.0.1:9",
            "--interval",
            "1h",
            "--duration",
            "300ms",
        ])
        .env("WARDEN_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: the run is 300 ms; an hour is what is ruled out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warden probe --duration 300ms still ran after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let o = text(&out.stdout);
    assert!(out.status.success(), "{o}{}", text(&out.stderr));
    assert!(o.contains("1 attempts"), "{o}");
}

/// A mistyped `--node` is said first, before the config's secrets are
/// read: examples/ha.conf names secret files and variables this machine
/// does not have, and the operator who typed `o-nowhere` learns the node
/// names, not a missing token file (which would be fixed in vain).
#[test]
fn orchestrator_names_an_unknown_node_before_reading_secrets() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ha.conf");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(WARDEN)
        .args(["orchestrator", "--config"])
        .arg(&example)
        .args(["--node", "o-nowhere"])
        .current_dir(dir.path())
        .env("WARDEN_LOG", "error")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_CA_AGENT_TOKEN")
        .output()
        .expect("run warden");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--node o-nowhere: no such node in [[orchestrator.nodes]] (known: o-ca, o-tx, o-witness)"),
        "{err}"
    );
    assert!(!err.contains("operator.token"), "{err}");
}

/// `rsync-gate --ssh` runs rsync's server in the group's directory (a
/// fake `rsync` first in `PATH` says where it was started). A promote
/// finds the pushes still running into a directory by their working
/// directory, and rsync's server moves into its destination only once the
/// client's file list has come: started in the login's home, a push let in
/// just before a promote was missed by it, and applied after it (users'
/// first writes at the new active site overwritten).
#[test]
fn the_ssh_gate_runs_rsync_in_the_groups_directory() {
    let (dir, good, _) = configs();
    let d = dir.path();
    for f in ["key", "known"] {
        std::fs::write(d.join(f), "x\n").unwrap();
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::create_dir_all(d.join("b-data")).unwrap();
    let conf = d.join("ssh.conf");
    let text = web_rsync_conf(
        &good,
        d,
        &format!("state_dir = \"{}/state-b\"\n", d.display()),
        |site| {
            let n = if site == "a" { 1 } else { 2 };
            format!(
                "ssh = \"10.{n}.0.10:2222\"\nuser = \"root\"\nssh_key = \"{d}/key\"\nknown_hosts = \"{d}/known\"\n",
                d = d.display()
            )
        },
    );
    std::fs::write(&conf, text).unwrap();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cwd = d.join("cwd");
    std::fs::write(
        bin.join("rsync"),
        format!("#!/bin/sh\npwd > '{}'\n", cwd.display()),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("rsync"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let read = format!(
        "rsync --server --sender -lde.LsfxCIvu --list-only --timeout=30 . {}/b-data/",
        d.display()
    );
    let out = Command::new(WARDEN)
        .args([
            "--config",
            conf.to_str().unwrap(),
            "rsync-gate",
            "--site",
            "b",
            "--ssh",
        ])
        .current_dir("/")
        .env("WARDEN_LOG", "error")
        .env("SSH_ORIGINAL_COMMAND", &read)
        .env("SSH_CLIENT", "10.1.0.10 40022 22")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("run warden");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started_in = std::fs::read_to_string(&cwd).expect("the fake rsync ran");
    assert_eq!(
        std::path::Path::new(started_in.trim()),
        d.join("b-data").canonicalize().unwrap(),
        "rsync's server was not started in the group's directory"
    );
}
