//! The dashboard at `/` in a real browser: headless Chromium, driven
//! through chromedriver (W3C WebDriver, `fantoccini`), both on the client
//! host; the WebDriver client runs in a thread moved into that host's
//! network namespace, so every packet of the test stays in the lab. The
//! page asks for a token, refuses a wrong one, shows the group, and
//! follows a failover as it happens.

use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};

use crate::deploy::{Knobs, API_PORT};
use crate::lab::{self, secs, Deploy};

const DRIVER_PORT: u16 = 9515;

/// What the browser thread tells the test, and is told.
enum Step {
    /// The page shows the group on `a` (the test kills a's service now).
    ShowsA,
}

/// Runs `f` on a new thread inside network namespace `ns`, on a runtime
/// of its own (every socket it opens is in `ns`).
fn in_namespace<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}"))
            .with_context(|| format!("namespace {ns}"))?;
        // This thread only (a network namespace is a thread's own).
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .with_context(|| format!("setns {ns}"))?;
        f()
    })
}

/// The text of the first element at `css`, once it contains `want`.
async fn wait_text(c: &Client, css: &str, want: &str, limit: Duration) -> Result<String> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            let t = e.text().await.unwrap_or_default();
            if t.contains(want) {
                return Ok(t);
            }
            if start.elapsed() > limit {
                bail!("{css} says {t:?}, not {want:?}");
            }
        } else if start.elapsed() > limit {
            bail!("no {css} on the page");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn browse(
    url: String,
    token: String,
    shows_a: mpsc::Sender<Step>,
) -> Result<(String, String)> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,800"]
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
        .await
        .context("WebDriver session")?;
    let run = async {
        c.goto(&url).await?;
        // No token yet: the form. A wrong token is refused and forgotten.
        let field = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("token"))
            .await?;
        field.send_keys("not-a-token-of-this-orchestrator").await?;
        c.find(Locator::Id("show")).await?.click().await?;
        let refused = wait_text(&c, "#login-msg", "refused", secs(10)).await?;
        // The right one: the group's card, on a.
        c.find(Locator::Id("token"))
            .await?
            .send_keys(&token)
            .await?;
        c.find(Locator::Id("show")).await?.click().await?;
        wait_text(&c, "section[data-group='web'] .active", "a", secs(15)).await?;
        wait_text(
            &c,
            "section[data-group='web'] tr[data-site='b'] .verdict",
            "healthy",
            secs(15),
        )
        .await?;
        // Text from the orchestrator (agents' words, names) is shown as
        // text: a status carrying markup, rendered by the page's own code
        // in the real browser, creates no element and runs nothing.
        let hostile = "<img src=x onerror=\"window.pwned=1\">";
        let forged = serde_json::json!({ "isolated": false, "groups": [{
            "name": "web", "scheme": "frontend", "primary": "a", "active": hostile,
            "epoch": 1, "phase": "steady", "maintenance": false,
            "alerts": [hostile], "sites": [{ "name": "a", "verdict": "healthy", "reason": hostile }],
        }]});
        let seen = c
            .execute(
                "render(arguments[0]); \
                 return [document.querySelectorAll('#groups img').length, \
                         typeof window.pwned, \
                         document.querySelector(\"section[data-group='web'] .alert\").textContent];",
                vec![forged],
            )
            .await?;
        if seen != serde_json::json!([0, "undefined", format!("ALERT {hostile}")]) {
            bail!("markup in the status was not shown as text: {seen}");
        }
        // A site confirmed down whose last round was healthy (recovering:
        // rise rounds and hold_down to go) is still down for the
        // orchestrator: the page says so, as `warden status` marks it
        // (`healthy*`), and names what a pending decision is.
        let recovering = serde_json::json!({ "isolated": false, "groups": [{
            "name": "web", "scheme": "frontend", "primary": "a", "active": "b",
            "epoch": 2, "phase": "pending_approval", "maintenance": false,
            "pending": { "kind": "failback", "to": "a", "reason": "automatic = false",
                         "since_unix_ms": 1 },
            "alerts": [], "sites": [
                { "name": "a", "verdict": "healthy", "confirmed_down": true, "reason": "" },
                { "name": "b", "verdict": "healthy", "confirmed_down": false, "reason": "" },
            ],
        }]});
        let seen = c
            .execute(
                "render(arguments[0]); \
                 const v = (s) => document.querySelector(\"tr[data-site='\" + s + \"'] .verdict\").textContent; \
                 return [v('a'), v('b'), document.querySelector('.pending').textContent];",
                vec![recovering],
            )
            .await?;
        let shown: Vec<String> = serde_json::from_value(seen.clone())?;
        if !shown[0].contains("confirmed down")
            || shown[1].contains("confirmed down")
            || !shown[2].contains("failback → a")
        {
            bail!("the page does not say what the status says: {seen}");
        }
        // A site whose agent took a higher leader term than this leader's
        // (the orchestrators' terms started over) refuses its orders: the
        // page says so under the sites, as `warden status` does; a site
        // at or below this leader's term is not named.
        let refusing = serde_json::json!({ "isolated": false,
            "leadership": { "is_leader": true, "term": 3 },
            "groups": [{
            "name": "web", "scheme": "frontend", "primary": "a", "active": "a",
            "epoch": 2, "phase": "steady", "maintenance": false, "alerts": [], "sites": [
                { "name": "a", "verdict": "healthy", "reason": "", "taken_term": 17 },
                { "name": "b", "verdict": "healthy", "reason": "", "taken_term": 3 },
            ],
        }]});
        let seen = c
            .execute(
                "render(arguments[0]); \
                 return Array.from(document.querySelectorAll('.refuses')).map((p) => p.textContent);",
                vec![refusing],
            )
            .await?;
        if seen
            != serde_json::json!([
                "site a REFUSES THIS LEADER'S ORDERS: its agent took leader term 17, this \
                 leader's is 3 (the alert says what to do)"
            ])
        {
            bail!("the page does not say which site refuses this leader's orders: {seen}");
        }
        shows_a.send(Step::ShowsA)?;
        // a's service dies: the page follows the failover by itself.
        wait_text(&c, "section[data-group='web'] .active", "b", secs(60)).await?;
        let runbook = wait_text(
            &c,
            "section[data-group='web'] .runbook",
            "succeeded",
            secs(30),
        )
        .await?;
        // The token stays in this tab only, never in the page or the URL.
        let html = c.source().await?;
        if html.contains(&token) || c.current_url().await?.as_str().contains(&token) {
            bail!("the token is in the page or its URL");
        }
        Ok::<_, anyhow::Error>((refused, runbook))
    };
    let r = run.await;
    let _ = c.close().await;
    r
}

#[test]
fn the_dashboard_follows_a_failover_in_a_real_browser() -> Result<()> {
    if !lab::Lab::has_program("chromedriver", "chromium-driver")
        || !lab::Lab::has_program("chromium", "chromium")
    {
        return Ok(());
    }
    let Some(d) = crate::deployment(Knobs::default()) else {
        return Ok(());
    };
    d.start_all()?;
    d.wait_verdict("b", "healthy", secs(30))?;
    let home = d.lab.dir().join("browser-home");
    std::fs::create_dir_all(home.join("tmp"))?;
    d.lab.spawn_env(
        "cli",
        "chromedriver",
        "chromedriver",
        [format!("--port={DRIVER_PORT}")],
        [
            ("HOME", home.display().to_string()),
            ("TMPDIR", home.join("tmp").display().to_string()),
        ],
    )?;
    d.lab.wait_tcp(
        "cli",
        ([127, 0, 0, 1], DRIVER_PORT).into(),
        lab::patient(secs(10)),
    )?;
    // The page's headers: a strict policy, no caching, no token needed.
    let (status, head) = d.lab.curl(
        "cli",
        &[
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://{}:{API_PORT}/", d.lab.ip("ctl")),
        ],
        secs(5),
    )?;
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(
        head.contains("x-content-type-options: nosniff")
            && head.contains("cache-control: no-store"),
        "{head}"
    );

    let url = format!("http://{}:{API_PORT}/", d.lab.ip("ctl"));
    let token = d.operator_token.clone();
    let (tx, rx) = mpsc::channel();
    let ns = format!("{}-cli", d.lab.prefix());
    let browser = in_namespace(ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(browse(url, token, tx))
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(Step::ShowsA) => {}
        Err(_) => {
            let r = browser
                .join()
                .map_err(|_| anyhow::anyhow!("browser thread panicked"))?;
            bail!("the page never showed the group on a: {:?}", r.err());
        }
    }
    d.lab.kill("svc-a")?;
    let (refused, runbook) = browser
        .join()
        .map_err(|_| anyhow::anyhow!("browser thread panicked"))??;
    assert!(refused.contains("401"), "{refused}");
    assert!(runbook.contains("failover a → b succeeded"), "{runbook}");
    Ok(())
}
