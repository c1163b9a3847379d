//! The report stream against a running orchestrator ([`crate::run`] on
//! loopback, a real WebSocket client): who may open one, what is answered
//! and what is not, forged, replayed and malformed reports on an open
//! stream, and the close at shutdown.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use warden_proto::agent::{StreamAnswer, REPORT_STREAM_PATH};

use crate::service::harness::{config_text, write_tokens};
use crate::{run, OrchestratorSettings};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

struct Running {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), crate::OrchestratorError>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Sites a and b in group web, no automatic decisions (routing is not
    // what these tests look at).
    write_tokens(d);
    let text = config_text(d, false, 3, "");
    let cfg = warden_config::parse(&text, &d.join("failover.conf")).expect("config");
    let settings = OrchestratorSettings::from_config(cfg).expect("settings");
    let (tx, rx) = oneshot::channel();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(settings, stop.clone(), Some(tx)));
    let addr = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("ready in time")
        .expect("ready");
    Running {
        addr,
        stop,
        task,
        _dir: dir,
    }
}

async fn open(addr: std::net::SocketAddr, token: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{addr}{REPORT_STREAM_PATH}")
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

fn report(site: &str, seq: u64) -> String {
    format!(
        r#"{{"site":"{site}","seq":{seq},"boot":"b1","checks":[{{"name":"web","ok":true,"critical":true,"detail":"200","elapsed_ms":1}}],"peers":[]}}"#
    )
}

/// The next message that is not a pong... or the pong: what came first.
async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message in time")
        .expect("the stream open")
        .expect("a readable message")
}

fn answer(m: Message) -> StreamAnswer {
    match m {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("a StreamAnswer"),
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Sends a ping and returns every message that came before its pong.
async fn before_pong(ws: &mut Ws) -> Vec<Message> {
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    let mut seen = Vec::new();
    loop {
        match next(ws).await {
            Message::Pong(p) if p.as_ref() == b"p" => return seen,
            m => seen.push(m),
        }
    }
}

async fn reports_taken(addr: std::net::SocketAddr) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth("operator-secret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("warden_agent_reports_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no warden_agent_reports_total in {text}"))
}

fn status_of(e: WsError) -> u16 {
    match e {
        WsError::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn only_an_agent_token_opens_a_stream_and_a_get_without_upgrade_is_told_why() {
    let o = start().await;
    assert_eq!(status_of(open(o.addr, None).await.unwrap_err()), 401);
    assert_eq!(
        status_of(open(o.addr, Some("not-a-token")).await.unwrap_err()),
        401
    );
    assert_eq!(
        status_of(open(o.addr, Some("operator-secret")).await.unwrap_err()),
        403
    );
    let plain = reqwest::Client::new()
        .get(format!("http://{}{REPORT_STREAM_PATH}", o.addr))
        .bearer_auth("agent-a-secret")
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());
    let body = plain.text().await.unwrap();
    assert!(body.contains("WebSocket"), "{body}");
    assert!(open(o.addr, Some("agent-a-secret")).await.is_ok());
    o.stop.cancel();
    o.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn reports_are_taken_answered_once_and_forged_or_replayed_ones_refused() {
    let o = start().await;
    let mut ws = open(o.addr, Some("agent-a-secret")).await.unwrap();
    let before = reports_taken(o.addr).await;

    // The first report is answered: its seq and the epochs of a's groups.
    ws.send(Message::text(report("a", 1))).await.unwrap();
    match answer(next(&mut ws).await) {
        StreamAnswer::Answer { seq, answer } => {
            assert_eq!(seq, 1);
            assert!(answer.epochs.contains_key("web"), "{answer:?}");
            assert!(answer.commands.is_empty() && answer.acked.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The same news again is not sent: nothing before the pong, yet both taken.
    ws.send(Message::text(report("a", 2))).await.unwrap();
    ws.send(Message::text(report("a", 3))).await.unwrap();
    assert_eq!(before_pong(&mut ws).await, Vec::<Message>::new());
    assert_eq!(reports_taken(o.addr).await, before + 3);

    // Replayed, forged for another site, malformed: each refused with the
    // status a POST would get, and the stream stays open.
    ws.send(Message::text(report("a", 3))).await.unwrap();
    match answer(next(&mut ws).await) {
        StreamAnswer::Refused { seq, status, error } => {
            assert_eq!((seq, status), (3, 409), "{error}");
        }
        other => panic!("{other:?}"),
    }
    ws.send(Message::text(report("b", 4))).await.unwrap();
    match answer(next(&mut ws).await) {
        StreamAnswer::Refused { seq, status, error } => {
            assert_eq!((seq, status), (4, 403), "{error}");
            assert!(error.contains("may only report for \"a\""), "{error}");
        }
        other => panic!("{other:?}"),
    }
    ws.send(Message::text("not json")).await.unwrap();
    match answer(next(&mut ws).await) {
        StreamAnswer::Refused { seq, status, error } => {
            assert_eq!((seq, status), (0, 400), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reports_taken(o.addr).await, before + 3);
    ws.send(Message::text(report("a", 5))).await.unwrap();
    assert_eq!(before_pong(&mut ws).await, Vec::<Message>::new());
    assert_eq!(reports_taken(o.addr).await, before + 4);

    // Site b's own stream is b's: its first report is answered.
    let mut wb = open(o.addr, Some("agent-b-secret")).await.unwrap();
    wb.send(Message::text(report("b", 1))).await.unwrap();
    assert!(matches!(
        answer(next(&mut wb).await),
        StreamAnswer::Answer { seq: 1, .. }
    ));

    // Shutdown closes both streams with "going away", and run ends.
    o.stop.cancel();
    for s in [&mut ws, &mut wb] {
        match next(s).await {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
            other => panic!("expected a close, got {other:?}"),
        }
    }
    tokio::time::timeout(Duration::from_secs(10), o.task)
        .await
        .expect("run ends with open streams")
        .unwrap()
        .unwrap();
}

/// A client that floods pings and never reads: the pongs waiting for it
/// are bounded by `WRITE_BUFFER_MAX` (the ones that do not fit are
/// dropped), not one kept for every ping until the orchestrator runs out
/// of memory. Measured by what the client gets once it reads: before, a
/// pong for every ping it sent.
#[tokio::test]
async fn a_client_that_sends_pings_and_never_reads_gets_a_bounded_number_of_pongs() {
    use tokio::io::AsyncWriteExt;
    const PAYLOAD: usize = 125; // the most a control frame carries
    let o = start().await;
    let mut ws = open(o.addr, Some("agent-a-secret")).await.unwrap();
    // Masked ping frames (mask 0: the payload as is), written straight to
    // the socket: three times what the write buffer may hold in pongs.
    let mut frame = vec![0x89, 0x80 | PAYLOAD as u8, 0, 0, 0, 0];
    frame.extend(std::iter::repeat_n(b'p', PAYLOAD));
    let chunk: Vec<u8> = frame.repeat(8192);
    let pings_sent = 3 * super::WRITE_BUFFER_MAX / PAYLOAD;
    let mut sent = 0;
    while sent < pings_sent {
        tokio::time::timeout(Duration::from_secs(60), ws.get_mut().write_all(&chunk))
            .await
            .expect("the orchestrator reads the pings")
            .unwrap();
        sent += 8192;
    }
    // A report, then read everything until its answer or the end.
    ws.send(Message::text(report("a", 1))).await.unwrap();
    let mut pong_bytes = 0usize;
    while let Some(Ok(Message::Pong(p))) = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .expect("the orchestrator answers or ends the stream in time")
    {
        pong_bytes += p.len();
    }
    // The write buffer, and what the kernel's socket buffers held besides
    // (a few MiB on loopback).
    let bound = super::WRITE_BUFFER_MAX + (8 << 20);
    assert!(
        pong_bytes < bound,
        "{} MiB of pongs were kept for a client that sent {} MiB of pings without reading \
         (bound {} MiB)",
        pong_bytes >> 20,
        (sent * PAYLOAD) >> 20,
        bound >> 20
    );
    o.stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), o.task)
        .await
        .expect("run ends")
        .unwrap()
        .unwrap();
}

/// One site's token cannot hold every connection with report streams (a
/// stream keeps its connection's place and is never displaced as an idle
/// connection is): a site's stream beyond `seats::PER_SITE` ends its
/// oldest one, with close code 1008 and why; the newer ones and another
/// site's stream go on.
#[tokio::test]
async fn a_site_opening_stream_after_stream_ends_its_own_oldest() {
    let o = start().await;
    let mut other = open(o.addr, Some("agent-b-secret"))
        .await
        .expect("b's stream");
    let mut streams = Vec::new();
    for _ in 0..crate::api::seats::PER_SITE {
        streams.push(
            open(o.addr, Some("agent-a-secret"))
                .await
                .expect("a's stream"),
        );
    }
    // Every stream is taken (each answers a first report).
    for (i, ws) in streams.iter_mut().enumerate() {
        ws.send(Message::text(report("a", 10 + i as u64)))
            .await
            .unwrap();
        assert!(matches!(
            answer(next(ws).await),
            StreamAnswer::Answer { .. }
        ));
    }
    let mut newest = open(o.addr, Some("agent-a-secret"))
        .await
        .expect("a's newest stream");
    match next(&mut streams[0]).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1008, "{f:?}");
            assert!(
                f.reason.contains("replaced by a newer report stream"),
                "{f:?}"
            );
        }
        other => panic!("a's oldest stream was not ended: {other:?}"),
    }
    newest.send(Message::text(report("a", 20))).await.unwrap();
    assert!(matches!(
        answer(next(&mut newest).await),
        StreamAnswer::Answer { .. }
    ));
    for ws in &mut streams[1..] {
        assert!(
            before_pong(ws).await.is_empty(),
            "a newer stream of a goes on"
        );
    }
    other.send(Message::text(report("b", 1))).await.unwrap();
    assert!(matches!(
        answer(next(&mut other).await),
        StreamAnswer::Answer { .. }
    ));
    o.stop.cancel();
    let _ = o.task.await;
}
