//! The verify step's probe through a `hybrid` group's entries (the
//! frontends' listeners): an entry that cannot be reached is the frontend
//! layer's business, one that answers as another site fails the probe.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::{hybrid_text, start_hybrid, test_dir};
use super::*;

/// An HTTP server at `addr` whose every answer says `X-Served-By: {site}`
/// (the site in `served`, changed at will); ended with the task.
async fn serving(addr: SocketAddr, served: Arc<Mutex<String>>) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let site = served.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nX-Served-By: {site}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = c.write_all(answer.as_bytes()).await;
            });
        }
    })
}

/// A free port on both 127.0.0.1 and 127.0.0.2.
fn port_on_both() -> u16 {
    for _ in 0..50 {
        let one = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = one.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// Group web on `hybrid` over fe1 (127.0.0.1) and fe2 (127.0.0.2), both
/// listening on one port for users; each site identified by the
/// `X-Served-By` header. After a failover to b, fe2 answers as b and fe1
/// (whose control API did not take the route, its data path still
/// working) as a: the probe fails, naming fe1's entry. Before, one entry
/// answering as b sufficed, whatever the other answered — users sent to
/// fe1 reached the site failed away from. An entry that cannot be reached
/// still does not fail the probe (a dead frontend: the DNS layer's
/// business), and with both answering as b it passes.
#[tokio::test]
async fn a_hybrid_entry_answering_as_another_site_fails_the_probe() {
    let dir = test_dir(true, 5);
    let port = port_on_both();
    let text = hybrid_text(&dir)
        .replace("control = \"127.0.0.1:3\"", "control = \"127.0.0.2:3\"")
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"0.0.0.0:{port}\""),
        )
        + "[sites.a.identity]\nheader = \"X-Served-By\"\nvalue = \"a\"\n"
        + "[sites.b.identity]\nheader = \"X-Served-By\"\nvalue = \"b\"\n";
    let (s, _dns) = start_hybrid(&text, &dir).unwrap();
    let fe1_says = Arc::new(Mutex::new("a".to_string()));
    let fe2_says = Arc::new(Mutex::new("b".to_string()));
    let fe1 = serving(([127, 0, 0, 1], port).into(), fe1_says.clone()).await;
    let _fe2 = serving(([127, 0, 0, 2], port).into(), fe2_says.clone()).await;

    let e = s.probe_entry("web", "b").await.unwrap_err();
    assert!(
        e.contains(&format!("entry 127.0.0.1:{port} answers as a, not b")),
        "{e}"
    );
    *fe1_says.lock().unwrap() = "b".into();
    let ok = s.probe_entry("web", "b").await.unwrap();
    assert!(ok.contains("answers as b"), "{ok}");
    fe1.abort();
    let _ = fe1.await;
    let ok = s.probe_entry("web", "b").await.unwrap();
    assert!(
        ok.contains(&format!("entry 127.0.0.2:{port} answers as b")),
        "an unreachable entry failed the probe: {ok}"
    );
}

/// Group web behind an HAProxy driven through a UNIX socket and listening
/// on every address (`0.0.0.0:PORT`): the verify step's probe goes to this
/// host's loopback on that port (the socket is a file here, so that
/// HAProxy most likely runs here) and judges the site that answers;
/// nothing there is "not probed", not a failure. Before, such an entry had
/// no address to probe: the step passed with "no entry address to probe",
/// whichever site answered.
#[tokio::test]
async fn an_haproxy_on_a_unix_socket_listening_everywhere_is_probed_on_loopback() {
    let dir = test_dir(true, 5);
    let port = warden_testkit::net::daemon_port();
    let d = dir.display();
    let text = format!(
        r#"{head}[sites.a]
agent_token = {{ file = "{d}/a" }}
[sites.a.identity]
header = "X-Served-By"
value = "a"
[sites.b]
agent_token = {{ file = "{d}/b" }}
[sites.b.identity]
header = "X-Served-By"
value = "b"
[frontends.hx1]
kind = "haproxy"
runtime = "/run/haproxy/admin.sock"
[groups.web]
sites = ["a", "b"]
scheme = "frontend"
[groups.web.frontend]
driver = "haproxy"
frontends = ["hx1"]
listen = "0.0.0.0:{port}"
backend = "be_web"
"#,
        head = super::harness::config_head(&dir, 5, "")
    );
    let s = super::harness::start_service(&text, &dir).expect("config");
    let says = Arc::new(Mutex::new("a".to_string()));
    let server = serving(([127, 0, 0, 1], port).into(), says.clone()).await;
    let e = s.probe_entry("web", "b").await.unwrap_err();
    assert!(
        e.contains(&format!("entry 127.0.0.1:{port} answers as a, not b")),
        "{e}"
    );
    *says.lock().unwrap() = "b".into();
    let ok = s.probe_entry("web", "b").await.unwrap();
    assert!(ok.contains("answers as b"), "{ok}");
    // Nothing there (the socket shared into another network namespace):
    // not probed, said — no failed step where nothing was seen.
    server.abort();
    let _ = server.await;
    let ok = s.probe_entry("web", "b").await.unwrap();
    assert!(
        ok.contains(&format!("127.0.0.1:{port}")) && ok.contains("not probed"),
        "{ok}"
    );
}
