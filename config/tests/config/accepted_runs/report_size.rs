//! Every site's report fits in `orchestrator.max_body_bytes`: a report the
//! orchestrator refuses (413) is refused again at every interval, and the
//! site stays unknown.

use crate::{ok, problems, BASE};

/// BASE with `n` more groups of ca and tx, each driving its own backend
/// of one HAProxy (group names of 63 characters, the longest allowed).
fn with_groups(n: usize) -> String {
    let mut text =
        format!("{BASE}\n[frontends.hp]\nkind = \"haproxy\"\nruntime = \"10.0.0.9:9999\"\n");
    for i in 0..n {
        let g = format!("g{i:04}{}", "x".repeat(58));
        text.push_str(&format!(
            "\n[groups.{g}]\nsites = [\"ca\", \"tx\"]\nscheme = \"frontend\"\n\
             [groups.{g}.frontend]\ndriver = \"haproxy\"\nfrontends = [\"hp\"]\nbackend = \"be{i}\"\n"
        ));
    }
    text
}

/// 600 groups on one pair of sites: each agent's report was about 90 KB
/// (tried: `orchestrator answered status 413: a body of 89843 bytes is
/// over the limit of 65536`), every one refused, both sites `unknown`
/// for good, while check-config accepted the file. Refused at
/// max_body_bytes with the value that fits; that value is accepted.
#[test]
fn a_report_the_body_limit_cannot_hold_is_refused() {
    let text = with_groups(600);
    let p = problems(&text);
    let e = p
        .iter()
        .find(|x| x.key == "orchestrator.max_body_bytes")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert_eq!(e.line, 1, "{e}");
    assert!(
        e.message
            .contains("site ca's agent can send a report of up to"),
        "{e}"
    );
    // Not in the file: no value shown as if it were written there; the
    // message says the default is the limit.
    assert_eq!(e.value, None, "{e}");
    assert!(
        e.message.contains("over the default limit of 65536 bytes"),
        "{e}"
    );
    assert!(e.message.contains("its 601 groups"), "{e}");
    let need: usize = e
        .message
        .split("set max_body_bytes = ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no value in: {e}"));
    assert!(need > 89_843, "under what a real report took: {e}");
    let raised = text.replacen(
        "[orchestrator]\n",
        &format!("[orchestrator]\nmax_body_bytes = {need}\n"),
        1,
    );
    ok(&raised);
    // Under it, by a byte: refused at the value.
    let short = text.replacen(
        "[orchestrator]\n",
        &format!("[orchestrator]\nmax_body_bytes = {}\n", need - 1),
        1,
    );
    let p = problems(&short);
    assert!(
        p.iter().any(|x| x.key == "orchestrator.max_body_bytes"
            && (x.line, x.col) == (2, 18)
            && x.value.as_deref() == Some(&(need - 1).to_string())),
        "{p:?}"
    );
    // A few groups are far within the default.
    ok(&with_groups(20));
}
