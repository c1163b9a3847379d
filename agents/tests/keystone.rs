//! Swift replication and the OpenStack checks logged in with a real
//! Keystone v3 (started once for this binary by `keystoned`, in front of two
//! real Swift clusters whose proxies validate its tokens; stopped by PID at
//! the end, also on failure). Every scenario runs; the test fails listing
//! those that failed.

mod keystoned;
#[path = "support/scenarios.rs"]
mod scenarios;
mod swiftd;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use scenarios::{eventually, Scenarios};
use tokio_util::sync::CancellationToken;
use warden_agents::replicate::{
    ContainerSyncSettings, Replicator, SwiftClient, SwiftContainerSync, SwiftReplicator,
    SwiftReplicatorSettings, SwiftSettings,
};
use warden_agents::AgentError;
use warden_config::{CheckSpec, Secret};
use warden_openstack::{Credentials, KeystoneSettings};

use keystoned::{Deployment, TOKEN_LIFE_S};

struct Env {
    d: Deployment,
}

impl Env {
    fn password(&self, password: &str, region: &str) -> SwiftSettings {
        SwiftSettings::keystone(KeystoneSettings {
            auth_url: self.d.ks.url.clone(),
            credentials: Credentials::Password {
                user: "warden".into(),
                user_domain: "Default".into(),
                password: Secret::new(password),
                project: "dr".into(),
                project_domain: "Default".into(),
            },
            region: Some(region.into()),
            interface: "public".into(),
            secret_from: None,
        })
    }

    fn app_cred(&self, secret: &str, region: &str) -> SwiftSettings {
        SwiftSettings::keystone(KeystoneSettings {
            auth_url: self.d.ks.url.clone(),
            credentials: Credentials::ApplicationCredential {
                id: self.d.ks.app_cred_id.clone(),
                secret: Secret::new(secret),
            },
            region: Some(region.into()),
            interface: "public".into(),
            secret_from: None,
        })
    }

    fn warden(&self, region: &str) -> SwiftClient {
        SwiftClient::new(self.password(&self.d.ks.warden_password, region)).unwrap()
    }

    /// A check of `kind` (`keystone`, `swift`) from its TOML, with its
    /// login's secret in a 0600 file, as an operator writes it.
    fn check(&self, name: &str, kind: &str, login: &str) -> CheckSpec {
        let text = format!(
            "name = \"{name}\"\nkind = \"{kind}\"\ntimeout = \"10s\"\nkeystone = {{ auth_url = \"{}\", {login} }}\n",
            self.d.ks.url
        );
        toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }
}

async fn etags(c: &SwiftClient, cont: &str) -> Result<BTreeMap<String, String>> {
    Ok(c.list_objects(cont)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.hash))
        .collect())
}

/// Site a logs in with a password (region a), site b with an application
/// credential (region b): objects written at a reach b, in the project's
/// account of b's cluster.
async fn replication(env: &Env) -> Result<()> {
    let a = env.warden("a");
    let b = SwiftClient::new(env.app_cred(&env.d.ks.app_cred_secret, "b"))?;
    let (ua, ub) = (a.storage_url().await?, b.storage_url().await?);
    let account = format!("/v1/AUTH_{}", env.d.ks.dr_project_id);
    ensure!(
        ua == format!("{}{account}", env.d.ks.proxy_a)
            && ub == format!("{}{account}", env.d.ks.proxy_b),
        "storage URLs from the catalog: a {ua}, b {ub}"
    );
    a.put_container("photos", &BTreeMap::new()).await?;
    for i in 0..3 {
        a.put_object(
            "photos",
            &format!("p{i}.jpg"),
            Bytes::from(format!("photo {i}")),
            "image/jpeg",
            &BTreeMap::new(),
        )
        .await?;
    }
    let s = SwiftReplicatorSettings::new(
        env.password(&env.d.ks.warden_password, "a"),
        env.app_cred(&env.d.ks.app_cred_secret, "b"),
        vec!["photos".into()],
        env.d.scratch().join("photos.json"),
    );
    let repl = SwiftReplicator::new(s)?;
    repl.start(CancellationToken::new()).await?;
    let want = etags(&a, "photos").await?;
    ensure!(want.len() == 3, "{want:?}");
    let res = eventually("a's objects at b", Duration::from_secs(30), || async {
        Ok(etags(&b, "photos").await? == want)
    })
    .await;
    repl.stop().await;
    res?;
    let body = b.get_object("photos", "p2.jpg").await?.context("p2 at b")?;
    ensure!(body.1.as_ref() == b"photo 2", "{:?}", body.1);
    Ok(())
}

/// Swift's own container sync, set up by the `swift-container-sync` plan
/// logged in with Keystone (site a by password, b by application
/// credential): the sync headers name b's account (the project's), and an
/// object written at a reaches b by the clusters' sync daemons.
async fn container_sync(env: &Env) -> Result<()> {
    let c = "ksync";
    let plan = SwiftContainerSync::new(ContainerSyncSettings::new(
        env.password(&env.d.ks.warden_password, "a"),
        env.app_cred(&env.d.ks.app_cred_secret, "b"),
        "realm1",
        "clustera",
        "clusterb",
        Secret::new("sync-key-keystone"),
        vec![c.to_string()],
    ))?;
    plan.start(CancellationToken::new()).await?;
    let (a, b) = (env.warden("a"), env.warden("b"));
    let ha = a.head_container(c).await?.context("at a")?;
    let want = format!("//realm1/clusterb/AUTH_{}/{c}", env.d.ks.dr_project_id);
    ensure!(
        ha.get("x-container-sync-to") == Some(want.as_str()),
        "{ha:?}"
    );
    let e = a
        .put_object(
            c,
            "from-a",
            Bytes::from("a to b"),
            "text/plain",
            &BTreeMap::new(),
        )
        .await?;
    let res = eventually(
        "a → b by container sync",
        Duration::from_secs(90),
        || async { Ok(etags(&b, c).await?.get("from-a") == Some(&e)) },
    )
    .await;
    plan.stop().await;
    res
}

/// A user's password changed at Keystone (as its `password_expires_days`
/// would force) and in the file the config names: the next login of a
/// running client reads the file again and goes through, with no restart.
/// The password is put back at the end (the other scenarios use it).
async fn password_rotation(env: &Env) -> Result<()> {
    let old = env.d.ks.warden_password.clone();
    let new = "warden-rotated-123";
    let file = env.d.secret_file("rotating.pw", &old);
    let cfg: warden_config::KeystoneConfig = toml::from_str(&format!(
        "auth_url = \"{}\"\nuser = \"warden\"\nproject = \"dr\"\nregion = \"a\"\npassword = {{ file = \"{}\" }}",
        env.d.ks.url,
        file.display()
    ))?;
    let c = SwiftClient::new(SwiftSettings::keystone(KeystoneSettings::from_config(
        "groups.web.replication.sites.a.keystone",
        &cfg,
    )?))?;
    c.authenticate().await.context("the first login")?;
    change_password(env, &old, new).await?;
    std::fs::write(&file, new)?;
    // a password change revokes the user's tokens issued up to that second
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = async {
        c.authenticate()
            .await
            .context("a login after the rotation")?;
        eventually(
            "a call after the rotation",
            Duration::from_secs(15),
            || async { Ok(c.list_containers().await.is_ok()) },
        )
        .await
    }
    .await;
    // back to the old password whatever happened
    change_password(env, new, &old).await?;
    std::fs::write(&file, &old)?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    res
}

/// warden changes its own password at Keystone (`POST /v3/users/{id}/password`).
async fn change_password(env: &Env, from: &str, to: &str) -> Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let login = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "warden", "domain": {"name": "Default"}, "password": from}}},
        "scope": {"project": {"name": "dr", "domain": {"name": "Default"}}}}});
    let resp = http
        .post(format!("{}/auth/tokens", env.d.ks.url))
        .json(&login)
        .send()
        .await?;
    ensure!(
        resp.status() == 201,
        "login with the old password: {}",
        resp.status()
    );
    let token = resp
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .context("a token")?
        .to_string();
    let body: serde_json::Value = resp.json().await?;
    let user = body["token"]["user"]["id"]
        .as_str()
        .context("the user's id")?;
    let resp = http
        .post(format!("{}/users/{user}/password", env.d.ks.url))
        .header("X-Auth-Token", token)
        .json(&serde_json::json!({"user": {"password": to, "original_password": from}}))
        .send()
        .await?;
    ensure!(resp.status() == 204, "password change: {}", resp.status());
    Ok(())
}

/// A client used past its token's life never sends an expired token: it
/// logs in again before, and Swift refuses none of its tokens.
async fn token_renewal(env: &Env) -> Result<()> {
    let a = env.warden("a");
    let t0 = Instant::now();
    let mut calls = 0;
    while t0.elapsed() < Duration::from_secs(TOKEN_LIFE_S * 2 + 3) {
        a.list_containers()
            .await
            .context("a call past the token's life")?;
        calls += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (logins, refused) = a.logins().await;
    eprintln!(
        "token_renewal: {calls} calls over {:.0?}: {logins} logins, {refused} tokens refused",
        t0.elapsed()
    );
    ensure!(
        logins >= 3,
        "{logins} logins in {:?} of {TOKEN_LIFE_S} s tokens",
        t0.elapsed()
    );
    ensure!(
        refused == 0,
        "{refused} tokens refused: one was used after it expired"
    );
    Ok(())
}

/// Wrong credentials: refused, saying who and where, never the secret.
async fn refused_credentials(env: &Env) -> Result<()> {
    for (settings, who) in [
        (
            env.password("wrong-pass-123", "a"),
            "user warden (domain Default) in project dr",
        ),
        (
            env.app_cred("wrong-secret-456", "b"),
            "application credential",
        ),
    ] {
        let c = SwiftClient::new(settings)?;
        let e = c
            .authenticate()
            .await
            .expect_err("a wrong secret is refused");
        let text = e.to_string();
        ensure!(
            matches!(e, AgentError::SwiftAuth { status: 401, .. }),
            "{e:?}"
        );
        ensure!(
            !e.is_retryable(),
            "a refused login is the operator's to fix: {text}"
        );
        ensure!(text.contains(who) && text.contains(&env.d.ks.url), "{text}");
        ensure!(
            !text.contains("wrong-pass-123") && !text.contains("wrong-secret-456"),
            "{text}"
        );
        ensure!(!format!("{c:?}").contains("wrong-"), "{c:?}");
    }
    Ok(())
}

/// A wrong password seen by many calls at once makes one login, and the
/// calls that follow within the hold-off make none: warden does not count
/// towards Keystone's lockout at every call.
async fn no_login_storm(env: &Env) -> Result<()> {
    let c = SwiftClient::new(env.password("wrong-pass-storm", "a"))?;
    let before = env.d.token_requests();
    ensure!(
        before > 0,
        "the token requests are not counted from Keystone's log"
    );
    let calls = futures::future::join_all((0..20).map(|_| c.list_containers())).await;
    ensure!(
        calls
            .iter()
            .all(|r| matches!(r, Err(AgentError::SwiftAuth { .. }))),
        "{calls:?}"
    );
    // Keystone's server logs a request once it has answered it: wait for
    // the lines, then give a late one time to show
    eventually(
        "the burst's login in Keystone's log",
        Duration::from_secs(5),
        || async { Ok(env.d.token_requests() > before) },
    )
    .await?;
    let again = c.list_containers().await;
    ensure!(
        matches!(again, Err(AgentError::SwiftAuth { .. })),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logins = env.d.token_requests() - before;
    ensure!(
        logins == 1,
        "21 calls with a wrong password made {logins} logins"
    );
    Ok(())
}

/// A region the catalog lacks: said with what the catalog has.
async fn unknown_region(env: &Env) -> Result<()> {
    let c = SwiftClient::new(env.password(&env.d.ks.warden_password, "c"))?;
    let e = c.authenticate().await.expect_err("no region c");
    let text = e.to_string();
    ensure!(matches!(e, AgentError::SwiftLogin(_)), "{e:?}");
    ensure!(
        text.contains("no object-store endpoint in region c for interface public")
            && text.contains("a/public")
            && text.contains("b/public"),
        "{text}"
    );
    Ok(())
}

/// The `keystone` and `swift` checks: healthy, then what a failure says.
async fn checks(env: &Env) -> Result<()> {
    let http = warden_checks::probe_client()?;
    let pw = env.d.secret_file("warden.pw", &env.d.ks.warden_password);
    let ac = env.d.secret_file("app.secret", &env.d.ks.app_cred_secret);
    let bad = env.d.secret_file("bad.pw", "not-the-password-789");
    let by_pw = |file: &std::path::Path, region: &str| {
        format!(
            "user = \"warden\", project = \"dr\", password = {{ file = \"{}\" }}, region = \"{region}\"",
            file.display()
        )
    };
    let by_app = format!(
        "application_credential_id = \"{}\", application_credential_secret = {{ file = \"{}\" }}",
        env.d.ks.app_cred_id,
        ac.display()
    );
    // healthy
    let r = warden_checks::run_check(&env.check("identity", "keystone", &by_app), &http).await;
    ensure!(
        r.ok && r.detail.starts_with("token issued, valid for"),
        "{r:?}"
    );
    let canary_a = env.check("object store", "swift", &by_pw(&pw, "a"));
    let r = warden_checks::run_check(&canary_a, &http).await;
    ensure!(r.ok, "{r:?}");
    // the canary is not left behind
    let a = env.warden("a");
    ensure!(
        etags(&a, warden_checks::DEFAULT_CONTAINER)
            .await?
            .is_empty(),
        "a canary left in {}",
        warden_checks::DEFAULT_CONTAINER
    );
    // the same canary with a wrong (say, wrongly rotated) password: refused
    // at once, not passed on the session the right one left behind
    let r = warden_checks::run_check(
        &env.check("object store", "swift", &by_pw(&bad, "a")),
        &http,
    )
    .await;
    ensure!(
        !r.ok && r.detail.contains("refused the credentials of user warden"),
        "{r:?}"
    );
    ensure!(!r.detail.contains("not-the-password"), "{r:?}");
    // a wrong password: refused, said without the secret
    let r = warden_checks::run_check(&env.check("identity", "keystone", &by_pw(&bad, "a")), &http)
        .await;
    ensure!(
        !r.ok && r.detail.contains("refused the credentials of user warden"),
        "{r:?}"
    );
    ensure!(!r.detail.contains("not-the-password"), "{r:?}");
    // a dead Swift cluster fails its canary, and it passes again once back
    let canary_b = env.check("object store", "swift", &by_pw(&pw, "b"));
    ensure!(
        warden_checks::run_check(&canary_b, &http).await.ok,
        "b's canary before"
    );
    env.d.stop_swift("b");
    let r = warden_checks::run_check(&canary_b, &http).await;
    ensure!(!r.ok && r.detail.contains("PUT canary"), "{r:?}");
    env.d.start_swift("b");
    eventually(
        "b's canary once b is back",
        Duration::from_secs(30),
        || async { Ok(warden_checks::run_check(&canary_b, &http).await.ok) },
    )
    .await?;
    // Keystone down: the token check fails, and passes once it is back
    env.d.stop_keystone();
    let r = warden_checks::run_check(&env.check("identity", "keystone", &by_app), &http).await;
    ensure!(!r.ok && r.detail.contains("unreachable"), "{r:?}");
    env.d.start_keystone();
    let r = warden_checks::run_check(&env.check("identity", "keystone", &by_app), &http).await;
    ensure!(r.ok, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swift_and_checks_logged_in_with_a_real_keystone() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(d) = Deployment::start() else { return };
    let env = Env { d };
    let mut run = Scenarios::new("WARDEN_KEYSTONE_SCENARIOS");
    run.run("replication", replication(&env)).await;
    run.run("refused_credentials", refused_credentials(&env))
        .await;
    run.run("unknown_region", unknown_region(&env)).await;
    run.run("no_login_storm", no_login_storm(&env)).await;
    run.run("container_sync", container_sync(&env)).await;
    run.run("token_renewal", token_renewal(&env)).await;
    run.run("checks", checks(&env)).await;
    run.run("password_rotation", password_rotation(&env)).await;
    drop(env);
    run.finish();
}
