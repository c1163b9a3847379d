//! Each group's orders run in a lane of their own: a site that takes over
//! two groups at once runs their promote hooks side by side, as separate
//! hosts would — one group's slow hook does not hold the other's promote
//! while its step clock runs at the orchestrator — and one group's orders
//! still run one at a time, in arrival order. A fake orchestrator on
//! 127.0.0.1:0 hands out the orders.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use tokio_util::sync::CancellationToken;
use warden_agents::run;
use warden_agents::wire::{AgentReport, Command, CommandKind, CommandOutcome, ReportResponse};

#[path = "support/fake_orchestrator.rs"]
#[allow(dead_code)]
mod fake_orchestrator;

#[path = "support/lone_site.rs"]
#[allow(dead_code)]
mod lone_site;

#[derive(Default)]
struct Fake {
    reports: usize,
    next: Vec<Command>,
    outcomes: Vec<CommandOutcome>,
}

type Shared = Arc<Mutex<Fake>>;

async fn report(State(fake): State<Shared>, Json(r): Json<AgentReport>) -> Json<ReportResponse> {
    let mut f = fake.lock().unwrap();
    f.reports += 1;
    let mut resp = ReportResponse::default();
    for o in r.outcomes {
        resp.acked.push(o.id.clone());
        if !f.outcomes.iter().any(|seen| seen.id == o.id) {
            f.outcomes.push(o);
        }
    }
    resp.commands = std::mem::take(&mut f.next);
    Json(resp)
}

async fn poll() -> Json<ReportResponse> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Json(ReportResponse::default())
}

fn order(group: &str, epoch: u64, kind: CommandKind, id: &str) -> Command {
    let mut c = Command::new(group, epoch, kind).to_site("a");
    c.id = id.into();
    c
}

/// Group `api` beside `web`, on the same two sites.
const API: &str = r#"
[groups.api]
sites = ["a", "b"]
scheme = "dns"

[groups.api.dns]
provider = "noip"
name = "api.example.org"
credentials = { env = "WARDEN_TEST_DNS_CREDENTIALS_UNUSED" }
addresses = { a = "198.51.100.3", b = "198.51.100.4" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_promote_side_by_side_and_one_groups_orders_stay_in_order() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = fake_orchestrator::temp_dir();
    let fake: Shared = Arc::default();
    let base = fake_orchestrator::serve(post(report), get(poll), fake.clone()).await;
    let log = tmp.path().join("hooks.log");
    let hook = format!(
        "echo \"start $WARDEN_GROUP $WARDEN_ACTION\" >> '{log}'; sleep 1.5; \
         echo \"end $WARDEN_GROUP $WARDEN_ACTION\" >> '{log}'",
        log = log.display()
    );
    let mut settings = lone_site::settings_with(&base, tmp.path(), &hook, API);
    // The demote runs the same hook (its order behind the promote's).
    settings.demote = settings.promote.clone();
    warden_agents::authority::Authority::open(
        &tmp.path().join("state"),
        "a",
        &[("web".into(), "b".into()), ("api".into(), "b".into())],
    )
    .expect("authority");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(run(settings, shutdown.clone()));
    fake_orchestrator::until(&fake, "a first report", Duration::from_secs(30), |f| {
        f.reports > 0
    })
    .await;

    fake.lock().unwrap().next = vec![
        order("web", 2, CommandKind::Promote, "web:2:promote"),
        order("api", 2, CommandKind::Promote, "api:2:promote"),
        order("web", 3, CommandKind::Demote, "web:3:demote"),
    ];
    fake_orchestrator::until(&fake, "the three outcomes", Duration::from_secs(30), |f| {
        ["web:2:promote", "api:2:promote", "web:3:demote"]
            .iter()
            .all(|id| f.outcomes.iter().any(|o| o.id == *id))
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;

    {
        let f = fake.lock().unwrap();
        for o in &f.outcomes {
            assert!(o.ok, "{o:?}");
        }
    }
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} not in {lines:#?}"))
    };
    // Side by side: api's promote began before web's ended.
    assert!(
        at("start api promote") < at("end web promote"),
        "api's promote waited for web's hook: {lines:#?}"
    );
    // In order within a group: web's demote after its promote ended.
    assert!(
        at("end web promote") < at("start web demote"),
        "web's demote ran beside its promote: {lines:#?}"
    );
}
