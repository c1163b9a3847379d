//! Agent-supplied text made safe to keep and to print: cut to a size on a
//! character boundary, and control characters (line breaks, escapes)
//! written as escapes, so a name in a report can neither grow the store
//! without bound nor start a forged line in the log or a terminal.

use std::borrow::Cow;

/// Cut `s` to at most `max` bytes (on a character boundary), marking the cut with `…`.
pub(crate) fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// Control characters, and the bidirectional overrides that make a
/// terminal show text in another order than it is.
fn escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character and bidirectional override escaped
/// (`\n`, `\u{1b}`, `\u{202e}`); other characters as they are. Borrowed
/// when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(escaped) {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if escaped(c) {
                        c.escape_default().collect::<String>()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_lands_on_a_character_boundary_and_says_so() {
        let mut s = "ééé".to_string(); // 6 bytes
        cut(&mut s, 3);
        assert_eq!(s, "é…");
        let mut short = "ok".to_string();
        cut(&mut short, 3);
        assert_eq!(short, "ok");
    }

    #[test]
    fn line_breaks_and_escapes_cannot_start_a_line_of_their_own() {
        let forged = "x\n2026-12-03T07:20:00Z  INFO operator approved\r\u{1b}[31m";
        let p = printable(forged);
        assert!(!p.contains('\n') && !p.contains('\r') && !p.contains('\u{1b}'));
        assert_eq!(
            p,
            "x\\n2026-12-03T07:20:00Z  INFO operator approved\\r\\u{1b}[31m"
        );
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert!(matches!(printable("plain é ü"), Cow::Borrowed(_)));
    }
}
