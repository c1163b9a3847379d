//! What the peer's rsync receiver says it did not create, and whether that
//! is believed: a receiver that does not run as root prints `skipping
//! non-regular file "NAME"` for a device node and exits 0 all the same.
//! Such an item was not carried, so the book must not count it (else a
//! failback takes the peer's lack of it for a delete and removes it at the
//! returning site). The line comes from the peer, though: it is believed
//! only of a name that is a special file here, never of a regular file,
//! directory or symlink — a peer that says it of one of those (broken,
//! or lying) would otherwise have the book forget what was carried, and a
//! delete acknowledged at that peer while it is active would be undone at
//! failback.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use tracing::warn;

use super::rsync_unescape;
use crate::replicate::manifest::escape_name;

/// The raw relative name in a `skipping non-regular file "NAME"` line.
pub(super) fn not_created(line: &str) -> Option<Vec<u8>> {
    let name = line
        .strip_prefix("skipping non-regular file \"")?
        .strip_suffix('"')?;
    Some(rsync_unescape(name))
}

/// The names (as the manifest writes them) of what the peer said it did not
/// create that are special files under `source`: those are not counted as
/// carried. The others are not believed and said so; they count as
/// rsync's exit code says. Warns once for each kind.
pub(super) fn believed(source: &Path, target: &str, said: Vec<Vec<u8>>) -> Vec<String> {
    let mut skipped = Vec::new();
    let mut refused = Vec::new();
    for raw in said {
        let special = source
            .join(OsStr::from_bytes(&raw))
            .symlink_metadata()
            .is_ok_and(|m| {
                let t = m.file_type();
                t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket()
            });
        let name = escape_name(&raw);
        if special {
            skipped.push(name);
        } else {
            refused.push(name);
        }
    }
    if let Some(first) = skipped.first() {
        warn!(
            %target,
            count = skipped.len(),
            "the peer did not create {} special file(s), e.g. {first:?} (a device node: its rsync \
             receiver does not run as root — `uid = root` in the module, docs/rsyncd.md); they are not \
             counted as replicated",
            skipped.len()
        );
    }
    if let Some(first) = refused.first() {
        warn!(
            %target,
            count = refused.len(),
            "the peer said it skipped {} item(s) as non-regular files that are not special files here, \
             e.g. {first:?}: a receiver says that only of device nodes — not believed, they count as sent \
             (check the peer's rsync)",
            refused.len()
        );
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_parsed_and_unescaped() {
        assert_eq!(
            not_created(r#"skipping non-regular file "dev/a\#012b""#),
            Some(b"dev/a\nb".to_vec())
        );
        assert_eq!(not_created(">f+++++++++ data.txt"), None);
        assert_eq!(not_created(r#"skipping non-regular file "open"#), None);
    }

    #[test]
    fn only_a_special_file_here_is_believed_not_created() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("file"), "x").unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("file", d.path().join("link")).unwrap();
        let sock = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let said = ["file", "dir", "link", "sock", "missing"]
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        assert_eq!(believed(d.path(), "peer", said), vec!["sock".to_string()]);
    }
}
