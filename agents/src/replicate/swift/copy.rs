//! One object copied from one cluster to the other as what it is, with its
//! content type, metadata (`X-Object-Meta-*`, and `Content-Encoding`,
//! `Content-Disposition`, `X-Delete-At`, `Cache-Control`,
//! `Content-Language`, `Expires`, `X-Robots-Tag`:
//! [`OBJECT_HEADERS`](super::client::OBJECT_HEADERS)) and origin timestamp
//! ([`ORIGIN_TS_HEADER`]; left out of an object whose own metadata is all
//! Swift takes, which the header would push past its limits); used by the
//! copier's rounds and the resyncer's fetches alike.
//!
//! - A plain object is streamed: the GET's body is the PUT's body, read as
//!   the PUT sends it (memory stays a few chunks whatever the size), with
//!   the source's `Content-Length` and, when it is an MD5, its ETag as the
//!   PUT's `ETag`: Swift refuses (422) a body that did not arrive whole or
//!   changed on the way, and a body cut short ends the PUT with an error.
//! - A DLO manifest is streamed the same way, with its `X-Object-Manifest`
//!   (its own body, usually none, is kept: Swift lists its MD5).
//! - An SLO manifest or a symlink is written as itself
//!   ([`super::large`]), never as the content it stands for. An SLO whose
//!   segments are not (yet) at the destination is refused by Swift: the
//!   copy fails saying so and the next round tries again.
//! - A streamed body cannot be sent twice: when the destination's token
//!   expired (401), the token is renewed and the copy starts again once.
//! - [`apply`] runs a round's or a pass's copies and deletes (deletes only
//!   once the source answers 404: [`delete_if_gone`]), `concurrency` at a
//!   time, manifests and links last; the copier and the resync keep only
//!   their own bookkeeping of the results.

use futures::StreamExt;
use reqwest::header::{HeaderValue, ETAG};
use tracing::debug;

use super::client::{format_x_timestamp, object_headers, SendBody, SwiftClient};
use super::client::{ObjectEntry, ObjectInfo};
use super::large::{self, Kind, MAX_MANIFEST_BYTES, READ_AS_STORED, SLO_PUT};
use super::{cluster_label, names, split_name, version, Item, ORIGIN_TS_HEADER};
use crate::AgentError;

mod apply;

pub(crate) use apply::{apply, Done, Op, Pace, Recheck};

/// Copies one object `from` → `to` (module docs); `None` when it vanished
/// at `from` meanwhile. The returned version's ETag is the one both
/// clusters' listings show for it ([`super::client::ObjectEntry::hash`]).
pub(crate) async fn copy_object(
    from: &SwiftClient,
    to: &SwiftClient,
    container: &str,
    object: &str,
) -> Result<Option<Item>, AgentError> {
    let same = (container, object);
    copy_renamed(from, to, same, same, &|_| None).await
}

/// Names of objects moved elsewhere: `container/object` → the new
/// (container, object), for the segments an SLO manifest and the target a
/// symlink names (the quarantine moves them in the same pass).
pub(crate) type Rename<'a> = &'a (dyn Fn(&str) -> Option<(String, String)> + Sync);

/// [`copy_object`] of `from`'s `src` to `to`'s `dst` (`(container,
/// object)`), an SLO's segments and a symlink's target (in its own account)
/// named as `rename` says.
pub(crate) async fn copy_renamed(
    from: &SwiftClient,
    to: &SwiftClient,
    src: (&str, &str),
    dst: (&str, &str),
    rename: Rename<'_>,
) -> Result<Option<Item>, AgentError> {
    let mut renewed = false;
    let mut origin = true;
    loop {
        match copy_once(from, to, src, dst, rename, origin).await {
            Err(AgentError::SwiftStatus { status: 401, .. }) if !renewed => renewed = true,
            // The object's own metadata is as large as Swift takes (90
            // items, or within 25 bytes of 4 KiB): the origin header is
            // one too many, and the copy would be refused every round.
            // Copied whole without it (the manifest still records the
            // origin; only a HEAD of this copy then tells its copy time).
            Err(AgentError::SwiftStatus {
                status: 400,
                detail,
                ..
            }) if origin && detail.to_ascii_lowercase().contains("metadata") => {
                debug!(object = %names::display(dst.1), cause = %detail, "copied without warden's origin header: Swift takes no more metadata");
                origin = false;
            }
            r => return r,
        }
    }
}

/// One try of [`copy_renamed`]; `origin`: with [`ORIGIN_TS_HEADER`].
async fn copy_once(
    from: &SwiftClient,
    to: &SwiftClient,
    (src_container, src_object): (&str, &str),
    (container, object): (&str, &str),
    rename: Rename<'_>,
    origin_header: bool,
) -> Result<Option<Item>, AgentError> {
    let Some(src) = from
        .open_object(src_container, src_object, &READ_AS_STORED)
        .await?
    else {
        return Ok(None);
    };
    let kind = Kind::of(&src.headers);
    let info = src.info.clone();
    let origin = info.origin_us();
    let mut meta = info.meta.clone();
    if origin_header {
        meta.insert(ORIGIN_TS_HEADER.into(), format_x_timestamp(origin));
    }
    let mismatch = |detail: String| AgentError::SwiftBadResponse {
        url: format!(
            "{}, {}/{}",
            cluster_label(to.settings()),
            names::display(container),
            names::display(object)
        ),
        detail,
    };
    match &kind {
        Kind::Plain | Kind::Dlo { .. } => {
            let mut headers = object_headers(&info.content_type, &meta)?;
            // a DLO manifest's body (usually none) is its own: Swift lists its MD5
            headers.extend(kind.put_headers(None)?);
            let md5 = is_md5(&info.etag);
            if md5 {
                if let Ok(v) = HeaderValue::from_str(&info.etag) {
                    headers.insert(ETAG, v);
                }
            }
            let length = src.content_length();
            let body = SendBody::Stream(Some(src.into_body()));
            let etag = to
                .put_object_with(container, object, &[], headers, body, length)
                .await
                .map_err(|e| explain(e, &kind))?;
            if md5 && etag != info.etag {
                return Err(mismatch(format!(
                    "copy stored ETag {etag}, the source has {}",
                    info.etag
                )));
            }
            Ok(Some(Item {
                size: length.unwrap_or(info.length),
                version: version(&info.etag, origin),
            }))
        }
        Kind::Slo => {
            let raw = src
                .read_bounded(MAX_MANIFEST_BYTES, "a static large object manifest")
                .await?;
            let mut manifest = large::slo_manifest(&raw).map_err(&mismatch)?;
            manifest.body = large::rename_segments(&manifest.body, rename).map_err(&mismatch)?;
            let mut content_type = info.content_type.clone();
            if manifest.was_stored_form {
                // an older Swift answered JSON as the type: the object's own, from a HEAD
                content_type = from
                    .head_object(src_container, src_object)
                    .await?
                    .map(|i| i.content_type)
                    .unwrap_or_default();
            }
            let headers = object_headers(&content_type, &meta)?;
            let body = SendBody::Bytes(manifest.body.into());
            let etag = to
                .put_object_with(container, object, &SLO_PUT, headers, body, None)
                .await
                .map_err(|e| explain(e, &kind))?;
            let size = match manifest.size {
                Some(n) => n,
                None => to
                    .head_object(container, object)
                    .await?
                    .map_or(0, |i| i.length),
            };
            // Swift answers the SLO's ETag (MD5 of its segments' ETags): the
            // listings' `slo_etag` on both sides
            Ok(Some(Item {
                size,
                version: version(&etag, origin),
            }))
        }
        Kind::Symlink {
            target,
            account,
            etag: target_etag,
        } => {
            // zero bytes as stored; read them so the connection is reused
            let _ = src.read_bounded(64 << 10, "a symlink").await;
            let (src_account, dst_account) = (from.account().await?, to.account().await?);
            let own = account.as_ref().is_none_or(|a| *a == src_account);
            let renamed = own.then(|| large::rename_target(target, rename)).flatten();
            let kind = match &renamed {
                Some(t) => Kind::Symlink {
                    target: t.clone(),
                    account: account.clone(),
                    etag: target_etag.clone(),
                },
                None => kind.clone(),
            };
            let at_source = target.clone();
            let target = renamed.as_ref().unwrap_or(target);
            let mut headers = object_headers(&info.content_type, &meta)?;
            headers.extend(kind.put_headers(Some((&src_account, &dst_account)))?);
            let etag = match to
                .put_object_with(container, object, &[], headers, SendBody::Empty, None)
                .await
            {
                Ok(etag) => etag,
                Err(e) => {
                    let link = format!("{src_container}/{src_object}");
                    let is_static = own && target_etag.is_some();
                    let broken = match broken_at_source(from, &link, &at_source, is_static, e).await
                    {
                        Ok(broken) => broken,
                        Err(e) => return Err(explain(e, &kind)),
                    };
                    if (src_container, src_object) == (container, object) {
                        return Err(broken);
                    }
                    // Moved aside (the quarantine): kept as a dynamic link
                    // to the same target, the ETag it was pinned to in its
                    // metadata — what it said is kept, where Swift would
                    // refuse the static link.
                    let dynamic = Kind::Symlink {
                        target: target.clone(),
                        account: account.clone(),
                        etag: None,
                    };
                    let mut pinned = meta.clone();
                    pinned.insert(
                        STATIC_ETAG_META.into(),
                        target_etag.clone().unwrap_or_default(),
                    );
                    let mut headers = object_headers(&info.content_type, &pinned)?;
                    headers.extend(dynamic.put_headers(Some((&src_account, &dst_account)))?);
                    to.put_object_with(container, object, &[], headers, SendBody::Empty, None)
                        .await
                        .map_err(|e| explain(e, &dynamic))?
                }
            };
            let etag = if info.etag.is_empty() {
                etag
            } else {
                info.etag.clone()
            };
            // the hash both listings show for it (`large::symlink_hash`)
            let listed = match account {
                Some(acc) if *acc != src_account => format!("/v1/{acc}/{target}"),
                _ => target.clone(),
            };
            let hash = large::symlink_hash(&etag, &listed, target_etag.as_deref());
            Ok(Some(Item {
                size: 0,
                version: version(&hash, origin),
            }))
        }
    }
}

/// The hash `at`'s listing shows for `container/object`
/// ([`ObjectEntry::hash`]) and the object's headers, asked of the object
/// servers with a HEAD of the object itself (`symlink=get`: a link, even
/// one whose target is gone, never its target); `None` when it is not
/// there. For a name the listing does not show (yet): a plain HEAD answers
/// a link's target, or 404 for a dangling link, and a DLO's segments'
/// ETag — never the object that was copied there.
pub(crate) async fn stored_hash(
    at: &SwiftClient,
    container: &str,
    object: &str,
) -> Result<Option<(String, ObjectInfo)>, AgentError> {
    let Some((info, headers)) = at
        .head_with_headers(container, object, &[("symlink", "get")])
        .await?
    else {
        return Ok(None);
    };
    let hash = match Kind::of(&headers) {
        Kind::Symlink {
            target,
            account,
            etag,
        } => {
            let own = at.account().await?;
            let listed = match account {
                Some(acc) if acc != own => format!("/v1/{acc}/{target}"),
                _ => target,
            };
            large::symlink_hash(&info.etag, &listed, etag.as_deref())
        }
        // its own body's MD5, as listed (a HEAD answers its segments')
        Kind::Dlo { .. } => {
            match at
                .head_with_headers(container, object, &READ_AS_STORED)
                .await?
            {
                Some((own, _)) => own.etag,
                None => return Ok(None),
            }
        }
        // a plain object's MD5; an SLO's ETag as a GET shows it, its `slo_etag`
        Kind::Plain | Kind::Slo => info.etag.clone(),
    };
    Ok(Some((hash, info)))
}

/// Deletes `container/object` at `to` because `from`'s listing no longer
/// shows it, only once `from` itself answers that it is gone (a HEAD of
/// the object as stored: 404). A listing may lag behind the objects (a
/// container replica that missed updates, a container server that was
/// down during a PUT and left the update pending), and a delete on a
/// listing's word alone would undo, at `to`, a write acknowledged at
/// `from`. `Ok(false)`: still at `from`, nothing deleted.
pub(crate) async fn delete_if_gone(
    from: &SwiftClient,
    to: &SwiftClient,
    container: &str,
    object: &str,
) -> Result<bool, AgentError> {
    if from.exists_as_stored(container, object).await? {
        return Ok(false);
    }
    to.delete_object(container, object).await?;
    Ok(true)
}

/// The metadata a broken static link moved aside keeps its target's ETag in.
const STATIC_ETAG_META: &str = "X-Object-Meta-Warden-Static-Link-Etag";

/// A static link (to `target`, percent-encoded as Swift keeps it, in the
/// source's own account) that the destination refused: when the source
/// itself no longer holds anything at `target` (404 to a `HEAD` as
/// stored, [`SwiftClient::exists_as_stored`]: a target that is an SLO or a
/// link, even a dangling one, counts as there), the link dangles there and Swift will refuse it anywhere else,
/// every round — [`AgentError::SwiftBrokenLink`]. `Err(e)` (the refusal as
/// it was: the round fails and tries again) in every other case: a target
/// that is there but not yet at the destination (copied in the same round,
/// or outside the plan), or one whose ETag changed (Swift's pinning rules
/// for SLOs and links are not second-guessed here).
async fn broken_at_source(
    from: &SwiftClient,
    link: &str,
    target: &str,
    is_static: bool,
    e: AgentError,
) -> Result<AgentError, AgentError> {
    if !is_static
        || !matches!(
            e,
            AgentError::SwiftStatus {
                status: 409 | 412,
                ..
            }
        )
    {
        return Err(e);
    }
    let Ok(name) = percent_encoding::percent_decode_str(target).decode_utf8() else {
        return Err(e);
    };
    let (c, o) = split_name(&name);
    match from.exists_as_stored(c, o).await {
        Ok(false) => Ok(AgentError::SwiftBrokenLink {
            entry: format!(
                "{link} (a static symlink to {name}, which is gone at the source: Swift cannot \
                 create it elsewhere; mend or delete it at the source)"
            ),
        }),
        _ => Err(e),
    }
}

/// A plain object's ETag is the MD5 of its content (32 hex digits);
/// anything else (quoted, an SLO's) is not sent as the PUT's `ETag`.
fn is_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A refused PUT in words: what it means for this kind and what happens next.
fn explain(e: AgentError, kind: &Kind) -> AgentError {
    let AgentError::SwiftStatus {
        method,
        url,
        status,
        detail,
    } = e
    else {
        return e;
    };
    let detail = match (kind, status) {
        (Kind::Plain | Kind::Dlo { .. }, 422) => format!(
            "the body that arrived does not match the source's ETag (cut short or changed \
             during the copy), refused by Swift; tried again next round: {detail}"
        ),
        (Kind::Slo, 400 | 409 | 412) => large::slo_refused(&detail),
        (Kind::Symlink { etag: Some(_), .. }, 409 | 412) => format!(
            "static symlink refused: its target is not (yet) at the destination with that ETag; \
             tried again next round: {detail}"
        ),
        (k, _) => format!("{} copy: {detail}", k.describe()),
    };
    AgentError::SwiftStatus {
        method,
        url,
        status,
        detail,
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
