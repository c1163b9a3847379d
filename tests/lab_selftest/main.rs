//! Self-test of the network-namespace lab harness (`tests/lab/`): builds
//! real labs, serves HTTP from one host, injects every fault kind and checks
//! that teardown leaves nothing behind. Needs root, `ip`, `iptables`, `curl`;
//! skipped otherwise unless `CI=true`.

#[path = "../lab/mod.rs"]
mod lab;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use lab::{secs, ClientLoop, CurlError, Lab};

/// Interpreter for the test web server; `/usr/bin/python3` avoids the
/// start-up cost of version-manager shims when present.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn start_web(lab: &Lab, host: &str, name: &str, text: &str) -> Result<String> {
    let dir = lab.write_file(&format!("www-{host}/index.html"), text)?;
    let ip = lab.ip(host);
    lab.spawn(
        host,
        name,
        python(),
        [
            "-m",
            "http.server",
            "8080",
            "--bind",
            &ip.to_string(),
            "--directory",
        ]
        .map(String::from)
        .into_iter()
        .chain([dir.parent().unwrap().display().to_string()]),
    )?;
    Ok(format!("http://{ip}:8080/"))
}

/// Names in the root namespace that belong to the lab with `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for args in [&["netns", "list"][..], &["-br", "link"][..]] {
        let out = Command::new("ip").args(args).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let name = name.split('@').next().unwrap();
            if name == prefix || name.starts_with(&format!("{prefix}-")) {
                found.push(name.to_string());
            }
        }
    }
    found
}

fn curl_error(e: &anyhow::Error) -> &CurlError {
    e.downcast_ref::<CurlError>()
        .unwrap_or_else(|| panic!("expected a curl failure, got {e:#}"))
}

#[test]
fn three_hosts_serve_cut_heal_isolate_teardown() -> Result<()> {
    let lab = lab::require!(&["a", "b", "c"], else Ok(()));
    let prefix = lab.prefix().to_string();
    assert_eq!(lab.hosts(), ["a", "b", "c"]);
    let base = lab.ip("a").octets();
    assert_eq!(&base[..2], &[10, 231]);
    assert_eq!(lab.ip("b").octets()[3], 3);
    assert_eq!(lab.ip("c").octets()[3], 4);

    // No default route: an outside address fails at once, inside the ns.
    let out = lab.run("b", "ip", ["route", "get", "192.0.2.1"])?;
    assert!(
        !out.status.success(),
        "namespace must have no default route"
    );

    let url = start_web(&lab, "a", "web-a", "hello from a")?;
    let addr: SocketAddr = format!("{}:8080", lab.ip("a")).parse()?;
    lab.wait_tcp("b", addr, secs(10))?;
    let (code, body) = lab.http_get("b", &url, secs(2))?;
    assert_eq!((code, body.as_str()), (200, "hello from a"));
    let (code, _) = lab.http_get("b", &format!("{url}missing"), secs(2))?;
    assert_eq!(code, 404);

    // cut: b loses a (timeout), c still reaches a.
    lab.cut("b", "a")?;
    lab.cut("b", "a")?; // idempotent
    let e = lab.http_get("b", &url, secs(0.5)).unwrap_err();
    assert!(curl_error(&e).is_timeout(), "{e:#}");
    assert!(!lab.tcp_connects("b", addr, secs(0.3))?);
    assert_eq!(lab.http_get("c", &url, secs(2))?.0, 200);
    lab.heal("b", "a")?;
    assert_eq!(lab.http_get("b", &url, secs(2))?.1, "hello from a");

    // isolate: nobody reaches a; heal.
    lab.isolate("a")?;
    for from in ["b", "c"] {
        let e = lab.http_get(from, &url, secs(0.5)).unwrap_err();
        assert!(curl_error(&e).is_timeout(), "{e:#}");
    }
    lab.unisolate("a")?;
    assert_eq!(lab.http_get("c", &url, secs(2))?.0, 200);

    // reject: refused at once.
    lab.reject("c", "a")?;
    let t = Instant::now();
    let e = lab.http_get("c", &url, secs(2)).unwrap_err();
    assert!(curl_error(&e).is_refused(), "{e:#}");
    assert!(t.elapsed() < secs(1));
    lab.heal_all("c")?;

    // link down / up.
    lab.link_down("a")?;
    assert!(lab.http_get("b", &url, secs(0.5)).is_err());
    lab.link_up("a")?;
    lab::eventually(secs(5), secs(0.1), || lab.http_get("b", &url, secs(1)))?;

    // process control: kill -> refused; restart -> serves again.
    let pid = lab.pid("web-a")?;
    assert!(lab.is_running("web-a"));
    lab.kill("web-a")?;
    assert!(!lab.is_running("web-a"));
    let e = lab.http_get("b", &url, secs(1)).unwrap_err();
    assert!(curl_error(&e).is_refused(), "{e:#}");
    let h = lab.restart("web-a")?;
    assert_ne!(h.pid, pid);
    lab.wait_tcp("b", addr, secs(10))?;
    lab.pause("web-a")?;
    assert!(lab.http_get("b", &url, secs(0.5)).is_err());
    lab.resume("web-a")?;
    assert_eq!(lab.http_get("b", &url, secs(2))?.0, 200);
    lab.stop("web-a")?;
    assert!(
        lab.log("web-a").contains("GET / HTTP"),
        "{}",
        lab.log("web-a")
    );
    assert_eq!(lab.log("web-a").matches("--- lab: web-a #").count(), 2);

    // wait_log: readiness line of the current incarnation.
    lab.spawn("c", "echo", "sh", ["-c", "echo ready port=1234; sleep 30"])?;
    let line = lab.wait_log("echo", "ready", secs(5))?;
    assert_eq!(line, "ready port=1234");
    let e = lab.spawn("c", "echo", "true", [""; 0]).unwrap_err();
    assert!(e.to_string().contains("already running"), "{e:#}");
    lab.spawn("c", "dies", "sh", ["-c", "exit 3"])?;
    assert!(lab.wait_log("dies", "never", secs(5)).is_err());
    assert_eq!(lab.exit_status("dies").and_then(|s| s.code()), Some(3));

    drop(lab);
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    assert!(!std::path::Path::new(&format!("/run/warden-lab/p-{prefix}")).exists());
    Ok(())
}

#[test]
fn client_loop_measures_an_outage() -> Result<()> {
    let lab = lab::require!(&["srv", "cli"], else Ok(()));
    let url = start_web(&lab, "srv", "web", "v1")?;
    lab.wait_tcp("cli", format!("{}:8080", lab.ip("srv")).parse()?, secs(10))?;
    let client = ClientLoop::start(&lab, "cli", &url, secs(0.05), secs(0.3))?;
    lab::assert_eventually!(client.samples().iter().any(|s| s.is_ok()), secs(5));
    lab.isolate("srv")?;
    std::thread::sleep(secs(1));
    lab.unisolate("srv")?;
    let healed = Instant::now();
    lab::assert_eventually!(
        client
            .samples()
            .last()
            .is_some_and(|s| s.is_ok() && s.at > healed),
        secs(5),
        "client never recovered: {:?}",
        client.samples().last()
    );
    let samples = client.stop();
    let outages = lab::outages(&samples);
    ensure!(outages.len() == 1, "outages {outages:?}");
    ensure!(
        outages[0] >= secs(0.9) && outages[0] < secs(2.5),
        "outage {:?}",
        outages[0]
    );
    ensure!(lab::bodies_after(&samples, healed)
        .iter()
        .all(|b| b == "v1"));
    Ok(())
}

#[test]
fn parallel_labs_are_distinct() {
    let l1 = lab::require!(&["x"]);
    let l2 = lab::require!(&["x"]);
    assert_ne!(l1.prefix(), l2.prefix());
    assert_ne!(l1.subnet_cidr(), l2.subnet_cidr());
    assert!(Lab::new(&["toolonghost"]).is_err());
    assert!(Lab::new(&["a", "a"]).is_err());
    // Files land in the lab dir; the dir goes away on teardown.
    let f = l1.write_file("conf/x.toml", "k = 1").unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "k = 1");
    let dir = l1.dir().to_path_buf();
    drop(l1);
    assert!(!dir.exists());
}

/// A bearer token reaches curl from a private header file: the argument
/// names the file, never the token, and curl sends the header from it.
#[test]
fn bearer_tokens_reach_curl_from_a_file_not_the_command_line() -> Result<()> {
    let lab = lab::require!(&["srv", "cli"], else Ok(()));
    let url = start_web(&lab, "srv", "web", "hello")?;
    let token = format!("selftest-token-{}", lab.prefix());
    let arg = lab.auth_header(&token)?;
    ensure!(arg.starts_with('@') && !arg.contains(&token), "{arg}");
    let file = std::path::Path::new(&arg[1..]);
    ensure!(
        std::fs::read_to_string(file)? == format!("Authorization: Bearer {token}\n"),
        "header file content"
    );
    use std::os::unix::fs::PermissionsExt;
    ensure!(
        std::fs::metadata(file)?.permissions().mode() & 0o077 == 0,
        "private"
    );
    // Asked again (as every helper call does): the same file, still whole.
    ensure!(lab.auth_header(&token)? == arg);
    lab::eventually(secs(10), secs(0.1), || {
        let out = lab.run("cli", "curl", ["-sv", "-m", "2", "-H", &arg, &url])?;
        let sent = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "curl: {sent}");
        ensure!(
            sent.contains(&format!("> Authorization: Bearer {token}")),
            "curl did not send the header from the file: {sent}"
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn eventually_reports_last_error() {
    let mut n = 0;
    let e = lab::eventually(secs(0.2), secs(0.05), || -> Result<()> {
        n += 1;
        anyhow::bail!("attempt {n}")
    })
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&format!("attempt {n}")) && msg.contains("still failing"),
        "{msg}"
    );
    let v = lab::eventually(secs(1), secs(0.01), || {
        n += 1;
        if n % 3 == 0 {
            Ok(n)
        } else {
            anyhow::bail!("no")
        }
    })
    .unwrap();
    assert_eq!(v % 3, 0);
}

#[test]
fn outage_arithmetic() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let s = |t: u64, ok: bool| lab::Sample {
        at: t0 + ms(t),
        latency: ms(10),
        status: ok.then_some(200),
        result: if ok {
            Ok(format!("b{t}"))
        } else {
            Err("x".into())
        },
    };
    let samples = [
        s(0, true),
        s(100, false),
        s(200, false),
        s(300, true),
        s(400, false),
    ];
    assert_eq!(lab::outages(&samples), [ms(200), ms(10)]);
    assert_eq!(lab::outage_windows(&samples)[0].failures, 2);
    assert_eq!(lab::bodies_after(&samples, t0 + ms(50)), ["b300"]);
}
