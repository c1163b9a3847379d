//! serde's and toml's complaints in an operator's words: what was found,
//! what is allowed (TOML, not Rust), a missing required key.

use super::*;

/// The names between backquotes in a serde message: "one of `a`, `b`" → [a, b].
pub(in crate::load) fn quoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Describe serde's "found" part without repeating the value (it is shown
/// separately, and may be a secret).
pub(in crate::load) fn describe_found(found: &str) -> String {
    let found = found.trim();
    let word = found.split([' ', '`']).next().unwrap_or(found);
    match word {
        "string" => "a string".into(),
        "integer" => "an integer".into(),
        "floating" => "a float".into(),
        "boolean" => "a boolean".into(),
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        "char" => "a character".into(),
        _ => found.to_string(),
    }
}

/// Say what is allowed in words an operator knows (TOML, not Rust).
pub(in crate::load) fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "struct SecretRef" => {
            "a secret reference: { file = \"/etc/warden/NAME\" } or { env = \"VAR\" } (secret values are never written in the file)".into()
        }
        "a duration" => DURATION_HINT.into(),
        "socket address" => "an IP:PORT address such as \"10.0.0.1:7000\"".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        // The range, not just the sign: 5000000000 for a u32 is
        // non-negative, and "expected a non-negative integer" misled.
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "u64" | "usize" => "an integer from 0 to 18446744073709551615".into(),
        // (A Rust type's name said nothing to an operator: "expected f64".)
        "f64" | "f32" => "a number such as 0.1 (an integer is taken too)".into(),
        "path string" => "a path (a string) such as \"/var/lib/warden\"".into(),
        "a borrowed string" | "a string" => "a string".into(),
        "a boolean" => "a boolean (true or false)".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ if e.starts_with("one of ") || e.starts_with('`') => {
            let v: Vec<String> = quoted(e).iter().map(|s| format!("\"{s}\"")).collect();
            format!("one of {}", v.join(", "))
        }
        _ => e.to_string(),
    }
}

pub(in crate::load) const DURATION_HINT: &str =
    "a duration such as \"500ms\", \"3s\" or \"1m 30s\"";

/// Turn a serde/toml message into "what is wrong; what is allowed".
/// `node` is the offending value, if any.
pub(in crate::load) fn humanize(msg: &str, node: Option<&Spanned<DeValue<'_>>>) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        return match rest.split_once(", expected ") {
            Some((_, allowed)) => format!(
                "unknown key; allowed keys here: {}",
                quoted(allowed).join(", ")
            ),
            None => "unknown key; this table takes no keys".into(),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        return match rest.split_once(", expected ") {
            Some((_, allowed)) => {
                let v: Vec<String> = quoted(allowed).iter().map(|s| format!("\"{s}\"")).collect();
                format!("unknown value; allowed: {}", v.join(", "))
            }
            None => "unknown value".into(),
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                let what = describe_expected(expected);
                if expected.trim() == "a duration" {
                    if let Some(DeValue::String(s)) = node.map(|n| n.get_ref()) {
                        let why = humantime::parse_duration(s)
                            .err()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default();
                        return format!("not a duration{why}; expected {what}");
                    }
                }
                return format!("expected {what}, found {}", describe_found(found));
            }
        }
    }
    if msg == "invalid socket address syntax" {
        return "not an IP:PORT address; expected an address such as \"10.0.0.1:7000\" or \"[::1]:7000\" (host names are not allowed here)"
            .into();
    }
    msg.to_string()
}

/// `Some(name)` if the message is serde's "missing field `name`".
pub(in crate::load) fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.trim().strip_prefix("missing field `")?;
    Some(rest.trim_end_matches('`').to_string())
}
