//! Property tests of every parser that reads what another program says
//! (issue 14): dyndns2/No-IP answers, HAProxy runtime API replies (`show
//! servers state`, `get var`), DNS messages and warden's TXT marker, DNS
//! record values. Arbitrary text and bytes — plus mutations of real
//! answers — never panic, and every refusal says something. Cases per
//! target: `PROPTEST_CASES` (default 256; the long run is in FUZZING.md).

use proptest::prelude::*;

use crate::dns::dyndns::{parse_answer, Flavor};
use crate::dns::RecordValue;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Text built from pieces of real answers, so the parsers get past their
/// first checks, plus arbitrary characters.
fn answerish() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        prop::sample::select(PIECES).prop_map(String::from),
        "\\PC{0,12}",
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

const PIECES: &[&str] = &[
    "good 10.0.0.1",
    "nochg 10.0.0.1",
    "nohost",
    "badauth",
    "badagent",
    "!donator",
    "abuse",
    "911",
    "dnserr",
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state",
    "3 web 1 a 10.0.0.1 2 0 1 1 9 1 0 2 0 0 0 0 - 8080 -",
    "Variable not found.",
    "type=str value=<warden epoch=3 site=b>",
    "warden epoch=18446744073709551615 site=a",
    "\n",
    " ",
    "::1",
    "\u{0}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dyndns2_answers(body in answerish(), hosts in 0usize..5, noip in any::<bool>()) {
        let flavor = if noip { Flavor::Noip } else { Flavor::Dyndns2 };
        match parse_answer(&body, hosts, flavor) {
            Ok(lines) => prop_assert!(lines.len() == hosts || hosts == 0),
            Err(why) => prop_assert!(!why.trim().is_empty(), "an empty reason for {body:?}"),
        }
    }

    #[test]
    fn haproxy_runtime_replies(reply in answerish(), backend in "[a-z]{0,4}", var in "[a-z.]{0,8}") {
        let _ = crate::frontend::haproxy::parse_servers_state(&reply, &backend);
        let _ = crate::frontend::haproxy::parse_fence(&reply, &var);
    }

    #[test]
    fn dns_messages_and_markers(bytes in prop::collection::vec(any::<u8>(), 0..600), marker in answerish()) {
        // What a server (or anyone on the path) can send back.
        if let Ok(m) = hickory_net::proto::op::Message::from_vec(&bytes) {
            let _ = m.to_vec();
        }
        let _ = crate::dns::rfc2136::parse_marker(&marker);
    }

    #[test]
    fn record_values(value in answerish()) {
        if let Err(why) = RecordValue::parse(&value) {
            prop_assert!(!why.trim().is_empty());
        }
    }
}
