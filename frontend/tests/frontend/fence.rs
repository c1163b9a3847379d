//! The fence across restarts: the highest epoch a frontend accepted is kept
//! in its state directory, so that once restarted it still refuses what a
//! deposed orchestrator sends below it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{ask_new, echo, group, settings, start_settings, Frontend};
use crate::kept::{echo_web_kept_in, restarted_after_route, stop};

#[tokio::test]
async fn a_restarted_frontend_refuses_orders_below_the_epoch_it_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _a, _b) = echo_web_kept_in(dir.path()).await;

    // Restarted: no route (until the orchestrator sends it), but the fence
    // stands at 6.
    let fe = restarted_after_route(&s, "b", 6).await;
    let route = fe.route("web").await;
    assert_eq!(route["site"], serde_json::Value::Null, "{route}");
    assert_eq!(route["epoch"], 6, "{route}");
    // A deposed orchestrator's route and hold at 5 are refused ...
    let (status, body) = fe.put("web", "a", 5, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 6, "{body}");
    let (status, body) = fe.pause("web", 5, 10_000).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(ask_new(fe.listen("web")).await, None, "nobody routed to a");
    // ... another site at 6 too; the current one's route at 6 is taken.
    let (status, body) = fe.put("web", "a", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    // A hold order's epoch is kept too: it fences routes below it.
    assert_eq!(fe.hold("web", 8, 10_000).await.0, StatusCode::OK);
    stop(fe).await;

    let fe = start_settings(s.clone()).await;
    let (status, body) = fe.put("web", "a", 7, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 8, "{body}");
    let kept = std::fs::read_to_string(dir.path().join("fe-test/fence.json")).expect("fence file");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    // The hold raised the epoch; the site named at 6 is not the site at 8.
    assert_eq!(
        kept["groups"]["web"],
        serde_json::json!({ "epoch": 8 }),
        "{kept}"
    );
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    stop(fe).await;

    // The fence file is lost (a disk restored without it): the frontend
    // cannot refuse what it forgot, but says so until an order is kept.
    std::fs::remove_file(dir.path().join("fe-test/fence.json")).expect("remove");
    let fe = start_settings(s.clone()).await;
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "1");
    assert_eq!(fe.put("web", "b", 9, "immediate").await.0, StatusCode::OK);
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    stop(fe).await;

    // A fence file it cannot read stops the frontend at start.
    std::fs::write(dir.path().join("fe-test/fence.json"), "{\"frontend\":").expect("write");
    let err = warden_frontend::run(s, tokio_util::sync::CancellationToken::new(), None)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("fence.json"), "{err}");
}

/// A fence.json that fences web at an epoch no orchestrator decides
/// (u64::MAX: forged, corrupt, or kept by an older frontend that took such
/// an order) beside db at 4. The frontend starts with web's fence
/// forgotten, as if fence.json were lost for web (route epoch 0,
/// `warden_frontend_fence_lost` 1), takes the orchestrator's route of web
/// at 7 and keeps it; db's fence stands. Before, web stayed fenced at
/// u64::MAX: every later order of web was refused as stale (409) until
/// someone edited the file.
#[tokio::test]
async fn a_kept_epoch_no_orchestrator_decides_is_forgotten_and_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (echo("a").await, echo("b").await);
    let both = || group(&[("a", a.addr), ("b", b.addr)], Duration::from_secs(1));
    let groups = BTreeMap::from([("web".to_string(), both()), ("db".to_string(), both())]);
    let mut s = settings(groups);
    let state = dir.path().join("fe-test");
    s.state_dir = Some(state.clone());
    std::fs::create_dir_all(&state).expect("state dir");
    let file = serde_json::json!({
        "frontend": "fe-test",
        "groups": {
            "web": { "epoch": u64::MAX, "site": "a" },
            "db": { "epoch": 4, "site": "b" },
        },
    });
    std::fs::write(state.join("fence.json"), file.to_string()).expect("write");

    let fe = start_settings(s.clone()).await;
    let route = fe.route("web").await;
    assert_eq!(route["epoch"], 0, "{route}");
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "1");
    let (status, body) = fe.put("web", "b", 7, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    let (status, body) = fe.put("db", "a", 3, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "db's fence stands: {body}");
    stop(fe).await;

    let kept = std::fs::read_to_string(state.join("fence.json")).expect("fence file");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    assert_eq!(
        kept["groups"],
        serde_json::json!({
            "web": { "epoch": 7, "site": "b" },
            "db": { "epoch": 4, "site": "b" },
        }),
        "{kept}"
    );
    let fe = start_settings(s).await;
    assert_eq!(metric(&fe, "warden_frontend_fence_lost").await, "0");
    let (status, body) = fe.put("web", "a", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    stop(fe).await;
}

/// A state_dir whose writes do not return — a network filesystem that
/// stopped answering, a dying disk; stood for here by a FIFO where the
/// fence's temporary file goes, which a write opens and then waits on for
/// a reader — stops no order: it takes effect from memory once its write
/// has taken too long, under the unsaved alert, and the control API keeps
/// answering. Before, the order waited for the write for good (on a thread
/// of the control API's runtime, holding the fence's lock, so every later
/// order waited too) and the orchestrator's switch timed out, again and
/// again. Once the disk answers, the next order writes the fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_write_that_hangs_stops_no_order() {
    // Kept past the test: removed by the thread that lets a hung write go.
    let root = tempfile::tempdir().expect("tempdir").keep();
    let (s, _a, _b) = echo_web_kept_in(&root).await;
    let fe = start_settings(s).await;
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);

    let (fifo, _ended) = hang_writes(&root);

    let t = std::time::Instant::now();
    let (status, body) = fe.put("web", "a", 7, "immediate").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the order waited {:?} for a disk that does not answer",
        t.elapsed()
    );
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
    assert_eq!(metric(&fe, "warden_frontend_fence_unsaved").await, "1");
    // The fence in memory refuses what is older, and later orders are
    // not held up behind the hung write.
    let (status, body) = fe.put("web", "b", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(fe.hold("web", 8, 10_000).await.0, StatusCode::OK);

    // The disk answers again (the hung write ends; the FIFO goes): the
    // next order writes the fence.
    let reader = {
        let f = fifo.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(f))
            .await
            .expect("joined")
            .expect("open the FIFO's read end")
    };
    std::fs::remove_file(&fifo).expect("remove the FIFO");
    assert_eq!(fe.put("web", "b", 9, "immediate").await.0, StatusCode::OK);
    crate::assert_eventually!(
        metric(&fe, "warden_frontend_fence_unsaved").await == "0",
        Duration::from_secs(5),
        "the fence is written again"
    );
    drop(reader);
    let kept = std::fs::read_to_string(root.join("fe-test/fence.json")).expect("fence file");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    assert_eq!(
        kept["groups"]["web"],
        serde_json::json!({ "epoch": 9, "site": "b" }),
        "{kept}"
    );
    stop(fe).await;
}

/// Make the fence writes of the frontend `fe-test` under `root` hang: a
/// FIFO where the fence's temporary file goes (returned), which a write
/// opens and then waits on for a reader. Should an order wait for the write
/// for good (it holds a thread of the runtime, which then cannot stop), the
/// disk answers once the returned sender is dropped (the test ends, passed
/// or failed): the FIFO's read end is opened (without waiting) now and then
/// for a while; then `root` goes.
fn hang_writes(root: &std::path::Path) -> (std::path::PathBuf, std::sync::mpsc::Sender<()>) {
    let fifo = root.join(format!("fe-test/fence.json.tmp.{}", std::process::id()));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let (ended, end) = std::sync::mpsc::channel::<()>();
    let (late, dir) = (fifo.clone(), root.to_path_buf());
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = end.recv();
        for _ in 0..40 {
            if !late.exists() {
                break;
            }
            let _open = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&late);
            std::thread::sleep(Duration::from_millis(250));
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    (fifo, ended)
}

/// An order whose sender gives up while the order waits for its fence
/// write (a disk that does not answer; the orchestrator's client timing
/// out, or its connection dropped) still takes effect: its fence was
/// already raised, in memory and on its way to disk. Before, the order
/// was abandoned with its request mid-wait: the fence said epoch 7 while
/// the route stayed at 6 — a late order at 6 (a deposed orchestrator's)
/// was then taken by the running frontend, though a restart would refuse
/// it, and the route the fence names never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_sender_left_during_its_fence_write_takes_effect() {
    let root = tempfile::tempdir().expect("tempdir").keep();
    let (s, _a, _b) = echo_web_kept_in(&root).await;
    let fe = start_settings(s).await;
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
    let (_fifo, _ended) = hang_writes(&root);

    // The sender gives up long before the write's patience (1 s) is over.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .no_proxy()
        .build()
        .expect("client");
    let sent = impatient
        .put(fe.url("/v1/routes/web"))
        .bearer_auth(crate::harness::TOKEN)
        .json(&serde_json::json!({ "site": "a", "epoch": 7, "mode": "immediate" }))
        .send()
        .await;
    assert!(sent.is_err(), "answered within 200 ms: {sent:?}");

    crate::assert_eventually!(
        {
            let r = fe.route("web").await;
            r["site"] == "a" && r["epoch"] == 7
        },
        Duration::from_secs(5),
        "the order its fence names took effect"
    );
    let (status, body) = fe.put("web", "b", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 7, "{body}");
    stop(fe).await;
}

/// The value of the unlabelled gauge `name` on `/metrics`.
async fn metric(fe: &Frontend, name: &str) -> String {
    let text = crate::harness::http_client()
        .get(fe.url("/metrics"))
        .bearer_auth(crate::harness::TOKEN)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
        .to_string()
}

/// What the orchestrator's reconciliation relies on while a failback's
/// resync runs (runbook at epoch 7, users on b routed at 6): a frontend
/// restarted then (fence kept at 6, no route) takes b again at 6 and
/// serves users; the runbook's cut-over hold at 7 fences a late copy of
/// that route; its switch to a at 7 is taken. Had b been routed at the
/// runbook's own epoch 7, the restarted frontend would refuse the switch
/// to a at 7 (another site at an epoch a route already named).
#[tokio::test]
async fn a_restarted_frontend_takes_the_route_from_before_a_runbook_and_then_its_switch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _a, _b) = echo_web_kept_in(dir.path()).await;
    let fe = restarted_after_route(&s, "b", 6).await;
    assert_eq!(ask_new(fe.listen("web")).await, None, "restarted: no route");
    // Reconciliation before the cut-over: b at the epoch before the runbook's.
    assert_eq!(fe.put("web", "b", 6, "immediate").await.0, StatusCode::OK);
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("b"));
    // The demote's cut-over hold at 7; a late copy of the route at 6 is stale.
    assert_eq!(fe.pause("web", 7, 10_000).await.0, StatusCode::OK);
    let (status, body) = fe.put("web", "b", 6, "immediate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["seen_epoch"], 7, "{body}");
    // The switch.
    let (status, body) = fe.put("web", "a", 7, "drain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ask_new(fe.listen("web")).await.as_deref(), Some("a"));
    stop(fe).await;

    // b routed at the runbook's epoch instead: the switch is refused.
    std::fs::remove_dir_all(dir.path().join("fe-test")).expect("fresh state");
    let fe = restarted_after_route(&s, "b", 6).await;
    assert_eq!(fe.put("web", "b", 7, "immediate").await.0, StatusCode::OK);
    let (status, body) = fe.put("web", "a", 7, "drain").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    stop(fe).await;
}
