//! The agent's hooks across its own death, with the real `warden` binary
//! and a fake orchestrator (plain HTTP on loopback, no namespaces): a hook
//! runs in its own process group, so an agent killed with SIGKILL leaves
//! it running; the agent's next process ends it before it takes any
//! command, so a demote's hooks never run beside the old promote's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// What the fake orchestrator answers to every report and poll, and the
/// reports it was sent.
#[derive(Default)]
struct Fake {
    answer: String,
    reports: Vec<String>,
}

fn serve(listener: TcpListener, fake: Arc<Mutex<Fake>>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let fake = fake.clone();
        std::thread::spawn(move || {
            let _ = answer(conn, &fake);
        });
    }
}

/// One request, one answer, connection closed.
fn answer(conn: TcpStream, fake: &Mutex<Fake>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, reply) = if line.contains("/v1/reports/stream") {
        ("404 Not Found", r#"{"error":"no stream here"}"#.to_string())
    } else {
        if line.starts_with("GET /v1/agents/commands") {
            // a long poll: not at once
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut f = fake.lock().unwrap();
        if line.starts_with("POST /v1/reports") {
            f.reports.push(String::from_utf8_lossy(&body).into_owned());
        }
        ("200 OK", f.answer.clone())
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{reply}",
        reply.len()
    )
}

fn order(kind: &str) -> String {
    format!(
        r#"{{"commands":[{{"id":"web:3:{kind}","group":"web","epoch":3,"kind":"{kind}","site":"a"}}],"epochs":{{"web":3}}}}"#
    )
}

fn agent(conf: &Path, log: &Path) -> Child {
    Command::new(WARDEN)
        .args(["agent", "--site", "a", "--config"])
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

/// `/proc/PID/stat`'s state letter, `None` when there is no such process.
fn state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(") ")?.1.chars().next()
}

/// The live (not zombie) processes of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut live = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = text.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() != Some(&"Z") && f.get(2) == Some(&pgid.to_string().as_str()) {
            live.push(pid);
        }
    }
    live
}

/// A lone agent's surroundings in `d`: the token files, a fake
/// orchestrator answering `answer` to every report and poll, and the
/// config (returned with the fake) of site `a`, whose hooks are `hooks`
/// (its `[[sites.a.promote]]` and `[[sites.a.demote]]` tables), beside a
/// site `b` and a built-in frontend group `web` that ends with `web_tail`.
fn lone_agent(
    d: &Path,
    answer: String,
    hooks: &str,
    web_tail: &str,
) -> (PathBuf, Arc<Mutex<Fake>>) {
    for f in ["op", "a", "b", "fe"] {
        std::fs::write(d.join(f), format!("{f}-secret-token")).unwrap();
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Mutex::new(Fake {
        answer,
        reports: vec![],
    }));
    let f = fake.clone();
    std::thread::spawn(move || serve(listener, f));
    let conf = d.join("warden.conf");
    std::fs::write(
        &conf,
        format!(
            r#"[orchestrator]
listen = "127.0.0.1:{port}"
data_dir = "{d}/data"
operator_token = {{ file = "{d}/op" }}
[detection]
interval = "200ms"
[sites.a]
agent_token = {{ file = "{d}/a" }}
{hooks}
[sites.b]
agent_token = {{ file = "{d}/b" }}
[frontends.fe1]
control = "127.0.0.1:9"
token = {{ file = "{d}/fe" }}
[groups.web]
sites = ["b", "a"]
scheme = "frontend"
step_timeout = "3m"
[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8"
backends = {{ a = "127.0.0.1:10", b = "127.0.0.1:11" }}
{web_tail}"#,
            d = d.display(),
        ),
    )
    .unwrap();
    (conf, fake)
}

/// Site a's demote hook `look`: writes to `saw` the state letter of the
/// process whose pid each of `pid_files` holds, `gone` where there is none.
fn look_hook(pid_files: [&Path; 2], saw: &Path) -> String {
    format!(
        r#"[[sites.a.demote]]
name = "look"
command = ["/bin/sh", "-c", "for f in {first} {second}; do p=$(cat $f); s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); echo ${{s:-gone}}; done > {saw}.tmp; mv {saw}.tmp {saw}"]
timeout = "30s""#,
        first = pid_files[0].display(),
        second = pid_files[1].display(),
        saw = saw.display(),
    )
}

/// The first agent, started on `conf` and left running once every one of
/// `files` (written by what it starts) is there; the test ends with its log
/// when it exits or `what` does not start first.
fn first_agent(conf: &Path, log: &Path, what: &str, files: &[&Path]) -> Child {
    let mut first = agent(conf, log);
    let all = || files.iter().all(|f| f.exists());
    let started = wait_for(&format!("{what} starts"), Duration::from_secs(30), || {
        all() || first.try_wait().unwrap().is_some()
    }) && all();
    if !started {
        let _ = first.kill();
        let _ = first.wait();
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{what} never started: {log}");
    }
    first
}

/// Kills `agent` with SIGKILL a moment after what it started recorded
/// itself, and gives the kernel a moment to reap it.
fn kill_hard(mut agent: Child) {
    std::thread::sleep(Duration::from_millis(300));
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

/// The restarted agent, ordered to demote: whether its demote hook wrote
/// `saw` and whether the demote's outcome was reported; the agent is ended
/// either way.
fn restart_to_demote(conf: &Path, log: &Path, fake: &Mutex<Fake>, saw: &Path) -> (bool, bool) {
    fake.lock().unwrap().answer = order("demote");
    let mut second = agent(conf, log);
    let looked = wait_for("the demote hook looks", Duration::from_secs(30), || {
        saw.exists() || second.try_wait().unwrap().is_some()
    }) && saw.exists();
    let reported = wait_for("the demote's outcome", Duration::from_secs(10), || {
        fake.lock()
            .unwrap()
            .reports
            .iter()
            .any(|r| r.contains("web:3:demote") && r.contains("\"outcomes\""))
    });
    let _ = second.kill();
    let _ = second.wait();
    (looked, reported)
}

/// The live members of the process groups led by `leaders`, each killed
/// (so the test leaves nothing behind) and returned for its assertion.
fn end_groups(leaders: &[u32]) -> Vec<u32> {
    let left: Vec<u32> = leaders.iter().flat_map(|&l| group_members(l)).collect();
    for pid in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    left
}

/// The last report about the demote.
fn demote_outcome(fake: &Mutex<Fake>) -> String {
    let reports = fake.lock().unwrap().reports.clone();
    reports
        .into_iter()
        .rev()
        .find(|r| r.contains("web:3:demote"))
        .unwrap()
}

/// An agent killed with SIGKILL while its promote hook sleeps: the hook
/// (its own process group) lives on. The restarted agent is asked to
/// demote: the old promote hook's group is gone before the demote's hook
/// starts (the demote hook looks), and the demote's outcome says what was
/// ended. So is a process the hook moved out of its group (`setsid`).
/// Before, the old promote hook still ran (state `S`) while the demote's
/// hook ran.
#[test]
fn a_hook_left_by_a_killed_agent_is_ended_before_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pid_file = d.join("promote.pid");
    // a process the hook moved out of its group (setsid)
    let stray_file = d.join("stray.pid");
    let saw = d.join("demote.saw");
    let hooks = format!(
        r#"[[sites.a.promote]]
name = "slow-promote"
command = ["/bin/sh", "-c", "setsid sh -c 'echo $$ > {stray}.tmp; mv {stray}.tmp {stray}; exec sleep 120' & echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; sleep 120; echo done"]
timeout = "2m"
{look}"#,
        pid = pid_file.display(),
        stray = stray_file.display(),
        look = look_hook([&pid_file, &stray_file], &saw),
    );
    let (conf, fake) = lone_agent(d, order("promote"), &hooks, "");

    let (log1, log2) = (d.join("agent1.log"), d.join("agent2.log"));
    let first = first_agent(&conf, &log1, "the promote hook", &[&pid_file, &stray_file]);
    let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let hook: u32 = text(&pid_file).trim().parse().unwrap();
    let stray: u32 = text(&stray_file).trim().parse().unwrap();
    kill_hard(first);
    let alive_after_kill = [hook, stray]
        .iter()
        .all(|&p| state(p).is_some_and(|s| s != 'Z'));

    let (looked, reported) = restart_to_demote(&conf, &log2, &fake, &saw);
    let left = end_groups(&[hook, stray]);

    assert!(
        alive_after_kill,
        "the promote hook did not outlive the agent's SIGKILL (the test proves nothing)"
    );
    assert!(looked, "the demote hook never ran: {}", text(&log2));
    let seen = text(&saw);
    let states: Vec<&str> = seen.lines().collect();
    assert!(
        states.len() == 2 && states.iter().all(|s| matches!(*s, "gone" | "Z")),
        "the previous agent's promote hook, or what it moved out of its group, was \
         still running (states {states:?}) when the demote's hook ran: {}",
        text(&log2)
    );
    assert!(left.is_empty(), "its group lives on: {left:?}");
    assert!(reported, "no outcome of the demote: {}", text(&log2));
    let outcome = demote_outcome(&fake);
    assert!(
        outcome.contains(
            "promote hook \\\"slow-promote\\\" of web:3:promote, left running by the \
             agent's previous process"
        ),
        "{outcome}"
    );
    let log = text(&log2);
    assert!(
        log.contains("left running by the agent's previous process")
            && log.contains("with 1 process it had moved out of its group"),
        "{log}"
    );
}

/// An agent killed with SIGKILL while its `command` plan's start script
/// runs (it writes a marker every 100 ms): the script, its own process
/// group, lives on and would go on pushing with no order behind it. The
/// restarted agent is asked to demote: the script is gone before the
/// demote's hook starts (the hook looks), and the demote's outcome says
/// what was ended. A daemon the promote hook started and left on purpose
/// (the hook ended in time) is not ended. Before, the script still ran
/// (state `S`) while the demote's hook ran.
#[test]
fn a_replication_script_left_by_a_killed_agent_is_ended_but_a_finished_hooks_daemon_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let promote_then_start = r#"{"commands":[{"id":"web:3:promote","group":"web","epoch":3,"kind":"promote","site":"a"},{"id":"web:3:start_replication","group":"web","epoch":3,"kind":"start_replication","site":"a","peer":"b"}],"epochs":{"web":3}}"#;
    let (script, daemon) = (d.join("script.pid"), d.join("daemon.pid"));
    let (pushed, saw) = (d.join("pushed"), d.join("demote.saw"));
    let hooks = format!(
        r#"[[sites.a.promote]]
name = "start-daemon"
command = ["/bin/sh", "-c", "setsid sh -c 'echo $$ > {daemon}.tmp; mv {daemon}.tmp {daemon}; exec sleep 120' </dev/null >/dev/null 2>&1 & exit 0"]
timeout = "30s"
{look}"#,
        daemon = daemon.display(),
        look = look_hook([&script, &daemon], &saw),
    );
    let replication = format!(
        r#"[groups.web.replication]
plan = "command"
start = ["/bin/sh", "-c", "[ -e {script} ] || {{ echo $$ > {script}.tmp && mv {script}.tmp {script}; }}; while :; do date >> {pushed}; sleep 0.1; done"]
stop = ["/bin/true"]
resync = ["/bin/true"]
"#,
        script = script.display(),
        pushed = pushed.display(),
    );
    let (conf, fake) = lone_agent(d, promote_then_start.into(), &hooks, &replication);

    let (log1, log2) = (d.join("agent1.log"), d.join("agent2.log"));
    let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let first = first_agent(
        &conf,
        &log1,
        "the promote's daemon or the start script",
        &[&script, &daemon],
    );
    let script_pid: u32 = text(&script).trim().parse().unwrap();
    let daemon_pid: u32 = text(&daemon).trim().parse().unwrap();
    // The promote hook's daemon is recorded kept once the hook has ended
    // (said in the log); killed before that, the agent never kept it — a
    // loaded machine can take longer than `kill_hard`'s moment.
    let kept = wait_for("the promote's daemon kept", Duration::from_secs(30), || {
        text(&log1).contains("left processes running (a daemon it started): kept")
    });
    kill_hard(first);
    if !kept {
        end_groups(&[script_pid, daemon_pid]);
    }
    assert!(
        kept,
        "the promote's daemon was never recorded kept: {}",
        text(&log1)
    );
    let alive = |p: u32| state(p).is_some_and(|s| s != 'Z');
    let alive_after_kill = alive(script_pid) && alive(daemon_pid);

    let (looked, reported) = restart_to_demote(&conf, &log2, &fake, &saw);
    let daemon_alive_at_end = alive(daemon_pid);
    end_groups(&[script_pid, daemon_pid]);

    assert!(
        alive_after_kill,
        "the start script or the promote's daemon did not outlive the agent's SIGKILL (the \
         test proves nothing): {}",
        text(&log1)
    );
    assert!(looked, "the demote hook never ran: {}", text(&log2));
    let seen = text(&saw);
    let states: Vec<&str> = seen.lines().collect();
    assert!(
        states.first().is_some_and(|s| matches!(*s, "gone" | "Z")),
        "the previous agent's replication start script was still running (state {states:?}) \
         when the demote's hook ran: {}",
        text(&log2)
    );
    assert!(
        states.get(1).is_some_and(|s| !matches!(*s, "gone" | "Z")) && daemon_alive_at_end,
        "the daemon a finished promote hook started was ended (state {states:?}): {}",
        text(&log2)
    );
    assert!(reported, "no outcome of the demote: {}", text(&log2));
    let outcome = demote_outcome(&fake);
    assert!(
        outcome.contains("left running by the agent's previous process (a push or pull of its"),
        "{outcome}"
    );
}

/// An agent logging at trace level (an operator chasing "report stream
/// ended"): its dependencies log what they send — tungstenite's handshake
/// the request with its `Authorization: Bearer` header — and nothing of
/// the agent's token may reach the log. Every line warden logs goes
/// through the masking of loaded secrets.
#[test]
fn a_trace_log_holds_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (conf, fake) = lone_agent(d, r#"{"commands":[],"epochs":{}}"#.into(), "", "");
    let log = d.join("agent.log");
    let mut child = Command::new(WARDEN)
        .args(["agent", "--site", "a", "--config"])
        .arg(&conf)
        .env("WARDEN_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let reported = wait_for("a report", Duration::from_secs(20), || {
        !fake.lock().unwrap().reports.is_empty()
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(reported, "the agent never reported: {text}");
    // The test proves something only if the handshake was logged.
    assert!(
        text.contains("authorization") || text.contains("Authorization"),
        "nothing logged the stream's request headers at trace"
    );
    assert!(
        !text.contains("a-secret-token"),
        "the agent's token is in its log:\n{}",
        text.lines()
            .filter(|l| l.contains("a-secret-token"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
