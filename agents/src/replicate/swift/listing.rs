//! Listings of the placement containers (paged, keyed `container/object`,
//! the refused names left out and logged once), and their comparison by
//! name and ETag.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::{names, Difference, DifferenceKind, ObjectEntry, SwiftClient};
use crate::AgentError;

/// A listing keyed `container/object`.
pub(crate) type Objects = BTreeMap<String, ObjectEntry>;

/// Both clusters' listings of `containers` (missing container = empty),
/// keyed `container/object`, without the refused names.
pub(crate) async fn list_pair(
    a: &SwiftClient,
    b: &SwiftClient,
    containers: &[String],
) -> Result<(Objects, Objects), AgentError> {
    let (la, lb, _) = list_pair_refused(a, b, containers).await?;
    Ok((la, lb))
}

/// [`list_pair`], and the names left out ([`names::refused_entry`], both
/// sides, sorted, each once).
pub(crate) async fn list_pair_refused(
    a: &SwiftClient,
    b: &SwiftClient,
    containers: &[String],
) -> Result<(Objects, Objects, Vec<String>), AgentError> {
    let mut la = BTreeMap::new();
    let mut lb = BTreeMap::new();
    let mut refused = BTreeSet::new();
    for c in containers {
        let (ea, eb) = tokio::try_join!(a.list_objects(c), b.list_objects(c))?;
        keep_listed(c, ea, &mut la, &mut refused);
        keep_listed(c, eb, &mut lb, &mut refused);
    }
    Ok((la, lb, refused.into_iter().collect()))
}

/// One cluster's placement containers as [`list_pair`] lists each side.
pub(crate) async fn list_one(
    cluster: &SwiftClient,
    containers: &[String],
) -> Result<Objects, AgentError> {
    let mut out = BTreeMap::new();
    let mut refused = BTreeSet::new();
    for c in containers {
        keep_listed(c, cluster.list_objects(c).await?, &mut out, &mut refused);
    }
    Ok(out)
}

/// A container's listing into `into` as `container/object`, the names a URL
/// would rewrite into `refused` instead.
fn keep_listed(
    c: &str,
    list: Option<Vec<ObjectEntry>>,
    into: &mut Objects,
    refused: &mut BTreeSet<String>,
) {
    for e in list.unwrap_or_default() {
        match names::object_problem(&e.name) {
            Some(reason) => {
                refused.insert(names::refused_entry(c, &e.name, reason));
            }
            None => {
                into.insert(format!("{c}/{}", e.name), e);
            }
        }
    }
}

/// Logs each refused name not in `before` once (the alert), returns `now`.
/// Logs each static link broken at the source not in `before` once, returns `now`.
pub(crate) fn note_broken(before: &[String], now: Vec<String>, side: &str) -> Vec<String> {
    for n in now.iter().filter(|n| !before.contains(n)) {
        warn!(link = %n, "{side}: a static symlink broken at the source is not copied (Swift refuses it anywhere else); it follows once mended there");
    }
    now
}

pub(crate) fn note_refused(before: &[String], now: Vec<String>, side: &str) -> Vec<String> {
    let new: Vec<&String> = now.iter().filter(|n| !before.contains(n)).collect();
    if !new.is_empty() {
        warn!(
            count = now.len(),
            new = ?new.iter().take(10).collect::<Vec<_>>(),
            "{side}: Swift objects with names that cannot be replicated safely are refused (never copied or deleted); rename them"
        );
    }
    now
}

/// Name + ETag comparison of two listings (`a` = source, `b` = target).
pub(crate) fn compare(
    a: &BTreeMap<String, ObjectEntry>,
    b: &BTreeMap<String, ObjectEntry>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, e) in a {
        match b.get(name) {
            None => out.push(Difference {
                path: name.into(),
                kind: DifferenceKind::MissingAtTarget,
            }),
            Some(f) if f.hash != e.hash => out.push(Difference {
                path: name.into(),
                kind: DifferenceKind::Changed,
            }),
            Some(_) => {}
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(Difference {
            path: name.into(),
            kind: DifferenceKind::ExtraAtTarget,
        });
    }
    out
}

/// `container/object` → (container, object).
pub(crate) fn split_name(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or((name, ""))
}
