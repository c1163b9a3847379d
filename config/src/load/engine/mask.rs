//! What a problem may show of a value: secret-looking keys masked, a
//! secret `NAME=VALUE` inside a value masked, long values cut.

/// Keys whose values are secrets: never echoed.
pub(in crate::load) const SECRET_WORDS: &[&str] = &[
    "token",
    "password",
    "secret",
    "credentials",
    "key",
    // `operators = [...]`: a list of named tokens, where a token pasted in
    // place of a table would otherwise be echoed
    "operators",
];

/// How a masked value is shown.
pub(in crate::load) const MASK: &str = "\"****\"";

/// Is any part of this dotted key secret-looking? An operator's `name`
/// (`orchestrator.operators[N].name`) is not: it is recorded in the events
/// of its actions, and a problem with it must show it (masked, the name
/// "a" given twice read "oper****tor n****me \"****\" is given twice").
pub(in crate::load) fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let operator_name = k
        .strip_prefix("orchestrator.operators[")
        .and_then(|rest| rest.split_once("].name"))
        .is_some_and(|(i, after)| after.is_empty() && i.parse::<usize>().is_ok());
    !operator_name && SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// `text` with the value of every `NAME=VALUE` whose name looks secret
/// (see [`is_secret`]) masked: `DB_PASSWORD=s3cret` written in a
/// `pass_env` (which lists names), `--password=s3cret` in a command,
/// `?api_key=s3cret` in a check's URL are shown as `DB_PASSWORD=****`
/// wherever a problem would echo them. The value ends at a quote, a space,
/// `&`, `,`, `;`, or a closing bracket, brace or parenthesis.
pub(in crate::load) fn mask_assignments(text: &str) -> String {
    let ends =
        |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ';' | ']' | '}' | ')');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let after = &after[1..];
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let name = &before[name_start..];
        // (An escaped character, `\"` in a Debug-quoted value, is part of it.)
        let mut value_len = after.len();
        let mut chars = after.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if ends(c) {
                value_len = i;
                break;
            }
        }
        out.push_str(before);
        out.push('=');
        if !name.is_empty() && is_secret(name) && value_len > 0 {
            out.push_str("****");
            rest = &after[value_len..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The most characters of a value a problem shows.
pub(in crate::load) const MAX_SHOWN: usize = 120;

/// A value as a problem shows it: one longer than [`MAX_SHOWN`]
/// characters (a path or a list of 100,000) is cut, saying how long it
/// is, so one line of the output says what is wrong.
pub(in crate::load) fn shorten(value: &str) -> String {
    let n = value.chars().count();
    if n <= MAX_SHOWN {
        return value.to_string();
    }
    let head: String = value.chars().take(MAX_SHOWN - 40).collect();
    format!("{head}… ({n} characters)")
}
