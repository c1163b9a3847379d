//! The orchestrator's commands across its own death, with the real
//! `warden` binary on loopback (no agents, no namespaces): a fence command
//! runs in its own process group, so an orchestrator killed with SIGKILL
//! during a failover's fence step leaves it running; the restarted process
//! resumes the runbook and runs the fence step again — and must first end
//! the old fence command, so that two never run at once against one site.
//! And a second process of one etcd node on the host is refused before it
//! ends anything of the running one's; and the runbook retention deletes
//! what is past `runbooks_keep` from the store file as the process starts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One etcd member on loopback, killed on drop (the orchestrator crate's
/// own etcd tests' starter).
#[allow(dead_code)]
#[path = "../orchestrator/tests/member/mod.rs"]
mod member;

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
const OPERATOR: &str = "op-secret-token";

fn secret(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `METHOD PATH` with the operator's token; the answer's status line and
/// body (`None`: no answer).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(String, String)> {
    let answer = http_answer(port, method, path, body)?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// [`http`]'s whole answer: status line, headers and body.
fn http_answer(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {OPERATOR}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// An orchestrator ended as its service manager ends it (SIGTERM), waited for.
fn stop(o: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &o.id().to_string()])
        .status();
    let _ = o.wait();
}

/// `d/data`, made, for a store file a test seeds; and the time now (ms).
fn seeded_dir(d: &Path) -> (std::path::PathBuf, u64) {
    let data = d.join("data");
    std::fs::create_dir(&data).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (data, now)
}

fn orchestrator(conf: &Path, log: &Path) -> Child {
    Command::new(WARDEN)
        .args(["orchestrator", "--config"])
        .arg(conf)
        .env("WARDEN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("not within {within:?}: {what}");
    false
}

/// Whether `pid` runs (a zombie, ended but not yet reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// An orchestrator SIGKILLed while a failover's fence command (a slow
/// power-off: 60 s) runs is restarted: the resumed runbook runs the fence
/// step again, and the first fence command is gone before the second one
/// starts (the second one looks, and says so if it is not); the
/// restarted orchestrator says what it ended, with its pid, in an event.
#[test]
fn a_killed_orchestrators_fence_command_is_ended_before_the_step_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret(d, "op", OPERATOR);
    for s in ["a", "b", "fe"] {
        secret(d, s, &format!("{s}-secret-token-of-this-test"));
    }
    let (pids_file, beside) = (d.join("fence.pids"), d.join("fence.beside"));
    let sleep_file = d.join("fence.sleep");
    let script = d.join("fence.sh");
    // Each run says which earlier run still lives as it starts; the first
    // is a slow power-off, the next ones are quick.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor p in $(cat {pids} 2>/dev/null); do\n\
             \x20 s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1)\n\
             \x20 if [ -n \"$s\" ] && [ \"$s\" != Z ]; then echo \"$$ started beside $p\" >> {beside}; fi\n\
             done\necho $$ >> {pids}\n\
             if [ $(wc -l < {pids}) -eq 1 ]; then sleep 60 & echo $! > {sleep}; wait $!; fi\nexit 0\n",
            pids = pids_file.display(),
            beside = beside.display(),
            sleep = sleep_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let conf = d.join("warden.conf");
    std::fs::write(
        &conf,
        format!(
            r#"[orchestrator]
listen = "127.0.0.1:{port}"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "127.0.0.1:1"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
automatic = false
step_timeout = "90s"
fencing = "required"
fence_command = ["{script}"]
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:0"
backends = {{ a = "127.0.0.1:1", b = "127.0.0.1:2" }}
"#,
            d = d.display(),
            script = script.display()
        ),
    )
    .unwrap();
    let (log1, log2) = (d.join("orchestrator-1.log"), d.join("orchestrator-2.log"));
    let mut first = orchestrator(&conf, &log1);
    let up = wait_for("the orchestrator answers", Duration::from_secs(30), || {
        http(port, "GET", "/v1/status", "").is_some_and(|(s, _)| s.contains(" 200 "))
    });
    let asked = up.then(|| http(port, "POST", "/v1/groups/web/failover", r#"{"to":"b"}"#));
    let fencing = wait_for(
        "the first fence command runs",
        Duration::from_secs(30),
        || pids(&pids_file).len() == 1 && pids(&sleep_file).len() == 1,
    );
    // SIGKILL: nothing of the orchestrator's own ends its commands
    let _ = first.kill();
    let _ = first.wait();
    let old = pids(&pids_file);
    let outlived = old.first().is_some_and(|&p| alive(p));
    let mut second = orchestrator(&conf, &log2);
    let again = wait_for(
        "the resumed fence step runs the fence command again",
        Duration::from_secs(60),
        || pids(&pids_file).len() >= 2,
    );
    let events = wait_for(
        "the orchestrator answers again",
        Duration::from_secs(30),
        || http(port, "GET", "/v1/events", "").is_some(),
    )
    .then(|| http(port, "GET", "/v1/events?limit=1000", ""))
    .flatten()
    .map(|(_, body)| body)
    .unwrap_or_default();
    let old_alive = old.first().is_some_and(|&p| alive(p));
    let _ = second.kill();
    let _ = second.wait();
    // what this test started ends with it, whatever it found
    for p in pids(&pids_file).into_iter().chain(pids(&sleep_file)) {
        if alive(p) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .status();
        }
    }
    let said = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    assert!(
        up && fencing,
        "no fence command ran (asked: {asked:?}): {}",
        said(&log1)
    );
    assert!(
        outlived,
        "the fence command did not outlive its orchestrator"
    );
    assert!(again, "the fence step did not run again: {}", said(&log2));
    assert_eq!(
        said(&beside),
        "",
        "a fence command started beside the killed orchestrator's"
    );
    assert!(
        !old_alive,
        "the killed orchestrator's fence command {old:?} still runs"
    );
    let pid = old[0];
    assert!(
        events.contains("ended 2 processes left by the previous orchestrator process")
            && events.contains(&format!("fence command pid {pid} (fence.sh)")),
        "no event says the fence command {pid} was ended: {events}"
    );
}

/// A store file (the local store) that holds 15 ended runbooks of group
/// web; the orchestrator started on it with `runbooks_keep = 10` shows the
/// newest 10 (the retention's first pass runs at start), and once it is
/// stopped the file holds those 10 alone.
#[test]
fn the_runbook_retention_deletes_the_oldest_from_the_store_file() {
    use warden_orchestrator::model::{GroupState, Runbook, RunbookKind, RunbookStatus};
    use warden_orchestrator::store::{LocalStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, now) = seeded_dir(d);
    {
        let store = LocalStore::open(&data).unwrap();
        for id in 1..=15 {
            let mut rb = Runbook::new(
                id,
                "web",
                RunbookKind::Switchover,
                "a",
                "b",
                id,
                "operator",
                now - 60_000,
                now - 60_000,
            );
            rb.status = RunbookStatus::Succeeded;
            rb.finished_unix_ms = Some(now - 50_000 + id);
            store.put_runbook(&rb).unwrap();
        }
        let mut g = GroupState::fresh("web", "b");
        g.epoch = 15;
        g.runbook = Some(15);
        store.put_group(&g).unwrap();
    }
    let port = free_port();
    let conf = plain_conf(d, &data, port, "runbooks_keep = 10\n");
    let log = d.join("orchestrator.log");
    let mut o = orchestrator(&conf, &log);
    let mut shown = String::new();
    let pruned = wait_for(
        "the API shows the newest 10 runbooks",
        Duration::from_secs(30),
        || {
            shown = http(port, "GET", "/v1/runbooks?group=web", "")
                .map(|(_, b)| b)
                .unwrap_or_default();
            shown.matches("\"id\":").count() == 10
        },
    );
    let gone = http(port, "GET", "/v1/runbooks/5", "");
    stop(&mut o);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(pruned, "the API shows {shown}; log: {said}");
    assert!(
        gone.as_ref()
            .is_some_and(|(s, b)| s.contains(" 404 ") && b.contains("no runbook 5")),
        "runbook 5: {gone:?}"
    );
    assert!(
        said.contains("finished runbooks past the retention deleted"),
        "{said}"
    );
    let store = LocalStore::open(&data).unwrap();
    let ids: Vec<u64> = store.runbooks().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, (6..=15).collect::<Vec<_>>(), "the store file");
}

/// A config of two sites and a built-in frontend group `web` that is never
/// reached (no agents, no frontend), with `orchestrator` (its listen,
/// data_dir, …, tables under it last) in `[orchestrator]`; written to
/// `d/file`, with the token files it names.
fn write_conf(d: &Path, file: &str, orchestrator: &str) -> std::path::PathBuf {
    secret(d, "op", OPERATOR);
    for s in ["a", "b", "fe"] {
        secret(d, s, &format!("{s}-secret-token-of-this-test"));
    }
    let conf = d.join(file);
    std::fs::write(
        &conf,
        format!(
            r#"[orchestrator]
operator_token = {{ file = "{d}/op" }}
{orchestrator}[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "127.0.0.1:1"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
automatic = false
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:0"
backends = {{ a = "127.0.0.1:1", b = "127.0.0.1:2" }}
"#,
            d = d.display(),
        ),
    )
    .unwrap();
    conf
}

/// [`write_conf`] of a local store in `data`, the API on `port`, `extra`
/// lines in `[orchestrator]`.
fn plain_conf(d: &Path, data: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    write_conf(
        d,
        "warden.conf",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}",
            data.display()
        ),
    )
}

/// A store of 45,000 events where group web has two, the 5th and the
/// 45,000th: a group-filtered `GET /v1/events` reads at most 20,000 of
/// them per request and says how far it read (`x-warden-scanned-through`)
/// — one request no longer reads the whole log — and `warden events
/// --group web` still shows both, asking on from where each scan stopped.
#[test]
fn a_group_filtered_event_scan_is_bounded_and_the_cli_reads_on() {
    use warden_orchestrator::model::{Event, EventKind};
    use warden_orchestrator::store::{LocalStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (data, now) = seeded_dir(d);
    {
        let store = LocalStore::open(&data).unwrap();
        let events: Vec<Event> = (1..=45_000u64)
            .map(|id| {
                let web = id == 5 || id == 45_000;
                Event {
                    id,
                    time_unix_ms: now - 60_000 + id,
                    kind: if web {
                        EventKind::Maintenance
                    } else {
                        EventKind::Started
                    },
                    group: web.then(|| "web".to_string()),
                    site: None,
                    message: format!("stored event {id}"),
                    evidence: vec![],
                    runbook: None,
                    epoch: None,
                    term: 0,
                }
            })
            .collect();
        store.put_events(&events).unwrap();
    }
    let port = free_port();
    let conf = plain_conf(d, &data, port, "");
    let log = d.join("orchestrator.log");
    let mut o = orchestrator(&conf, &log);
    let up = wait_for("the orchestrator answers", Duration::from_secs(30), || {
        http(port, "GET", "/v1/status", "").is_some_and(|(s, _)| s.contains(" 200 "))
    });
    let raw = |after: u64| {
        http_answer(
            port,
            "GET",
            &format!("/v1/events?group=web&after={after}"),
            "",
        )
        .unwrap_or_default()
    };
    let (first, second) = (raw(0), raw(20_000));
    let cli = Command::new(WARDEN)
        .args(["events", "--group", "web", "--json", "--config"])
        .arg(&conf)
        .env("WARDEN_LOG", "error")
        .output()
        .unwrap();
    stop(&mut o);
    assert!(up, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(
        first.contains("x-warden-scanned-through: 20000")
            && first.contains("stored event 5\"")
            && !first.contains("stored event 45000"),
        "{first}"
    );
    assert!(
        second.contains("x-warden-scanned-through: 40000") && second.ends_with("[]"),
        "{second}"
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let shown: Vec<serde_json::Value> =
        serde_json::from_slice(&cli.stdout).expect("one JSON array");
    let ids: Vec<u64> = shown.iter().filter_map(|e| e["id"].as_u64()).collect();
    assert!(
        ids.starts_with(&[5, 45_000]),
        "both stored events of web, in order: {ids:?}"
    );
    assert!(
        shown.iter().all(|e| e["group"] == "web"),
        "only web's: {ids:?}"
    );
}

fn free_port() -> u16 {
    warden_testkit::net::daemon_port()
}

/// A second `warden orchestrator --node n1` on the host (a second copy of
/// the config, n1 at another address; a unit started twice) while n1
/// runs: it exits non-zero saying another process runs as n1, naming the
/// lock file and that process's pid — and ends nothing: a process bound
/// to n1's run directory (as its fence command would be) still runs, and
/// n1 still leads.
#[test]
fn a_second_process_of_a_running_etcd_node_is_refused_and_ends_nothing() {
    let Some(etcd) = member::etcd() else {
        return;
    };
    let url = etcd.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = |name: &str, port: u16| {
        write_conf(
            d,
            name,
            &format!(
                r#"listen = "127.0.0.1:1"
data_dir = "{d}/data"
store = "etcd"
[orchestrator.etcd]
endpoints = ["{url}"]
lease_ttl = "2s"
[[orchestrator.nodes]]
name = "n1"
listen = "127.0.0.1:{port}"
"#,
                d = d.display()
            ),
        )
    };
    let port = free_port();
    let (one, other) = (conf("one.conf", port), conf("other.conf", free_port()));
    let start = |conf: &Path, log: &Path| {
        Command::new(WARDEN)
            .args(["orchestrator", "--node", "n1", "--config"])
            .arg(conf)
            .env("WARDEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    };
    let (log1, log2) = (d.join("n1-first.log"), d.join("n1-second.log"));
    let mut first = start(&one, &log1);
    let leads = wait_for("the first n1 leads", Duration::from_secs(30), || {
        http(port, "GET", "/v1/leader", "").is_some_and(|(s, _)| s.contains(" 200 "))
    });
    // A process bound to n1's run directory, as its fence command is.
    let run_dir = d.join("data").join("node-n1");
    let mut marked = Command::new("sleep")
        .arg("60")
        .env("WARDEN_RUN", format!("fence-test@{}", run_dir.display()))
        .spawn()
        .unwrap();
    let mut second = start(&other, &log2);
    let mut exit = None;
    wait_for("the second n1 exits", Duration::from_secs(30), || {
        exit = second.try_wait().ok().flatten();
        exit.is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    let marked_runs = marked.try_wait().ok().flatten().is_none();
    let still_leads = http(port, "GET", "/v1/leader", "").is_some_and(|(s, _)| s.contains(" 200 "));
    let first_pid = first.id();
    for c in [&mut first, &mut second, &mut marked] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let said = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    assert!(leads, "the first n1 did not lead: {}", said(&log1));
    let second_said = said(&log2);
    assert!(
        marked_runs,
        "the second n1 ended the first one's process: {second_said}"
    );
    assert!(
        exit.is_some_and(|e| !e.success()),
        "the second n1 did not exit with an error ({exit:?}): {second_said}"
    );
    assert!(still_leads, "the first n1 no longer leads: {}", said(&log1));
    let lock = run_dir.join("node.lock");
    assert!(
        second_said.contains("another orchestrator runs as node n1")
            && second_said.contains(&lock.display().to_string())
            && second_said.contains(&format!("pid {first_pid}")),
        "the second n1 did not say who holds n1: {second_said}"
    );
}
