//! How strategies put what they saw into words: an error with its causes,
//! and an untrusted answer quoted and cut to size. Shared by every driver
//! and provider.

/// An error and its causes, `a: b: c` (reqwest's own message omits the cause).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    with_causes(e.to_string(), e)
}

/// `first` (an error's own message, possibly shortened) followed by the
/// causes of `e`, `first: b: c`, each cause once.
pub(crate) fn with_causes(first: String, e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = first;
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// `text` trimmed, quoted (control characters escaped) and cut after `max`
/// characters; `(empty WHAT)` when there is nothing.
pub(crate) fn quote(text: &str, max: usize, what: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return format!("(empty {what})");
    }
    match t.char_indices().nth(max) {
        Some((i, _)) => format!("{:?}…", &t[..i]),
        None => format!("{t:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_cut_and_escape() {
        assert_eq!(quote("  ", 5, "body"), "(empty body)");
        assert_eq!(quote("ok\n", 5, "reply"), "\"ok\"");
        assert_eq!(quote("abcdefgh", 3, "body"), "\"abc\"…");
        assert_eq!(quote("a\u{1b}b", 9, "body"), "\"a\\u{1b}b\"");
    }

    #[test]
    fn chains_causes_once() {
        let inner = std::io::Error::other("connection refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(chain(&outer), "connection refused");
    }
}
