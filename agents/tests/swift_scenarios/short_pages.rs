//! A cluster that hands out shorter listing pages than asked for: a proxy
//! in front of A's real Swift passes every request on but caps a
//! listing's `limit` at 2 (as a load balancer, an S3/Swift gateway or a
//! middleware with a lower cap of its own may), so a page shorter than
//! asked for does not mean the listing ended.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

use super::*;

/// Listing pages cut to this many entries by the proxy.
const CAP: usize = 2;

struct Upstream {
    http: reqwest::Client,
    /// A's proxy (`http://127.0.0.1:PORT`).
    real: String,
    /// This proxy, as it rewrites the storage URL of a login.
    own: String,
}

/// Passes `req` on to A, a listing's `limit` capped at [`CAP`].
async fn forward(State(up): State<std::sync::Arc<Upstream>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("limit", n)) => {
                    let n: usize = n.parse().unwrap_or(CAP);
                    format!("limit={}", n.min(CAP))
                }
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let url = match query {
        Some(q) => format!("{}{}?{q}", up.real, parts.uri.path()),
        None => format!("{}{}", up.real, parts.uri.path()),
    };
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let mut out = up.http.request(parts.method.clone(), url).body(body);
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let Ok(resp) = out.send().await else {
        return Response::builder().status(502).body(Body::empty()).unwrap();
    };
    let mut answer = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k == "transfer-encoding" || k == "connection" {
            continue;
        }
        if k == "x-storage-url" {
            let url = v.to_str().unwrap_or_default().replace(&up.real, &up.own);
            answer = answer.header(k, url);
        } else {
            answer = answer.header(k, v);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    answer.body(Body::from(bytes)).unwrap()
}

/// Starts the capping proxy in front of `cl`; its settings for `test:tester`.
async fn capped(cl: &swiftd::Cluster) -> Result<SwiftSettings> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let own = format!("http://{}", listener.local_addr()?);
    let u = reqwest::Url::parse(&cl.auth_url)?;
    let up = std::sync::Arc::new(Upstream {
        http: reqwest::Client::builder().no_proxy().build()?,
        real: u.origin().ascii_serialization(),
        own: own.clone(),
    });
    let app = axum::Router::new().fallback(forward).with_state(up);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SwiftSettings::new(
        format!("{own}{}", u.path()),
        swiftd::USER,
        Secret::new(swiftd::KEY),
    ))
}

/// Seven objects at A, listed through the capping proxy in pages of 2
/// while 10 000 were asked for: a copier round carries all seven to B
/// (before, the first short page ended the listing: two reached B, and a
/// verification comparing through the same proxy saw nothing missing);
/// the failback's resync with A as the active peer fetches all of A's new
/// objects into B the same way.
pub(super) async fn short_pages(env: &Env<'_>) -> Result<()> {
    let (a, b) = (&env.a, &env.b);
    let c = "short";
    for cl in [a, b] {
        cl.put_container(c, &BTreeMap::new()).await?;
    }
    for i in 0..7 {
        put(a, c, &format!("o{i}"), &format!("body {i}")).await?;
    }
    let via = capped(&env.cl.a).await?;
    let s = SwiftReplicatorSettings::new(
        via.clone(),
        env.cl.b.settings(),
        vec![c.to_string()],
        env.cl.scratch().join("short.json"),
    );
    let repl = SwiftReplicator::new(s)?;
    repl.resync(CancellationToken::new(), None).await?;
    let at_a = etags(a, c).await?;
    let at_b = etags(b, c).await?;
    ensure!(at_b == at_a, "B {:?} of A {:?}", at_b.keys(), at_a.keys());
    ensure!(repl.verify().await?.is_empty());
    let through = SwiftClient::new(via.clone())?;
    let listed = through.list_objects(c).await?.context("the container")?;
    ensure!(listed.len() == 7, "listed through the proxy: {listed:?}");

    // Failback toward B: A active, written to; B resyncs from A.
    for i in 7..10 {
        put(a, c, &format!("o{i}"), &format!("body {i}")).await?;
    }
    let mut s = SwiftResyncerSettings::new(
        env.cl.b.settings(),
        via,
        vec![c.to_string()],
        env.cl.scratch().join("short.json"),
    );
    s.guard = DeleteGuard::default();
    let res = SwiftResyncer::new(s)?;
    let report = res
        .pass(DivergentPolicy::Quarantine, CancellationToken::new(), None)
        .await?;
    ensure!(
        report.fetched.items == 3 && report.peer_items == 10,
        "{report:?}"
    );
    let at_a = etags(a, c).await?;
    let at_b = etags(b, c).await?;
    ensure!(at_b == at_a, "B {:?} of A {:?}", at_b.keys(), at_a.keys());
    Ok(())
}
