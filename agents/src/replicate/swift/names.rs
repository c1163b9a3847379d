//! Which Swift container and object names warden may touch.
//!
//! Swift stores an object name as given: `a/../b`, `x/./y` or `ctl\u{1}x`
//! are ordinary names to the cluster (a client that does not normalise
//! paths can create them). A URL library does normalise: `c/../other/x`
//! is resolved to `other/x` (the WHATWG URL standard also takes `%2e%2e`
//! for `..`) before the request leaves, so a copy, delete or quarantine
//! of such a name would act on another container's object. Such names
//! are **refused**: never read, copied, deleted, quarantined or discarded;
//! the plans list them (escaped by [`display`]) so the operator can rename
//! them.
//!
//! Refused: empty names, control characters (C0 including NUL and newline,
//! DEL, C1), and `.` or `..` path segments. Everything else (`\`, `#`,
//! `?`, `%`, empty segments `//`, a leading `/`) is percent-encoded by the
//! client as an opaque path, and the client checks every URL after
//! building it ([`super::client`]).

/// Why an object name is refused; `None` when it is safe.
pub fn object_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.chars().any(char::is_control) {
        return Some("a control character");
    }
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Some("a \".\" or \"..\" path segment (URLs resolve it into another path)");
    }
    None
}

/// The longest container name Swift takes by default
/// (`max_container_name_length`, bytes).
pub const MAX_CONTAINER_NAME_BYTES: usize = 256;

/// Why a container name is refused; `None` when it is safe.
pub fn container_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.len() > MAX_CONTAINER_NAME_BYTES {
        return Some("longer than the 256 bytes Swift takes");
    }
    if name.contains('/') {
        return Some("a \"/\" (a container name is one path segment)");
    }
    if name.chars().any(char::is_control) {
        return Some("a control character");
    }
    if name == "." || name == ".." {
        return Some("\".\" or \"..\" (URLs resolve it into another path)");
    }
    None
}

/// A name made printable for logs and the status: control characters,
/// quotes and backslashes escaped (`ctl\u{1}x`, `nl\nx`).
pub fn display(name: &str) -> String {
    name.escape_debug().to_string()
}

/// One refused `container/object` as listed in the status: the escaped
/// name and the reason.
pub fn refused_entry(container: &str, object: &str, reason: &str) -> String {
    format!("{}/{} ({reason})", display(container), display(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_control_characters_are_refused() {
        for bad in [
            "a/../b",
            "./x",
            "x/./y",
            "a/..",
            "..",
            ".",
            "../other/x",
            "ctl\u{1}x",
            "nl\nx",
            "nul\0x",
            "del\u{7f}x",
            "c1\u{85}x",
            "",
        ] {
            assert!(object_problem(bad).is_some(), "{bad:?} must be refused");
        }
        for ok in [
            "a/b",
            "..a/b",
            "a../b",
            "a/.b",
            "...",
            "a//b",
            "/lead",
            "trail/",
            "back\\slash",
            "h#x",
            "q?x",
            "p%x",
            "%2e%2e/x",
            "ü/é",
        ] {
            assert!(object_problem(ok).is_none(), "{ok:?} is safe");
        }
        for bad in ["", ".", "..", "a/b", "c\u{7f}"] {
            assert!(container_problem(bad).is_some(), "{bad:?}");
        }
        for ok in ["c", "c.warden-quarantine", "..c", "c#1"] {
            assert!(container_problem(ok).is_none(), "{ok:?}");
        }
    }

    #[test]
    fn display_escapes_what_a_terminal_would_interpret() {
        assert_eq!(display("nl\nx"), "nl\\nx");
        assert_eq!(display("ctl\u{1}x"), "ctl\\u{1}x");
        assert_eq!(display("del\u{7f}x"), "del\\u{7f}x");
        assert_eq!(refused_entry("c", "a/../b", "why"), "c/a/../b (why)");
    }
}
