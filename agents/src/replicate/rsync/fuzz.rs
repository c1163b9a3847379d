//! Property tests of the parsers of what rsync and Swift print (issue 14):
//! rsync's itemized lines (`-ii` with warden's out-formats), `--list-only`
//! lines, the symlink probe's listing, escaped file names; Swift's JSON
//! listings, X-Timestamps, listing times and object versions. Arbitrary
//! text — and pieces of real output — never panic, and what they accept
//! is well formed. Cases per target: `PROPTEST_CASES` (default 256; the
//! long run is in FUZZING.md).

use proptest::prelude::*;

use super::process::{parse_difference, parse_probe_line};
use super::pull::{parse_list_line, parse_settled};
use crate::replicate::manifest::{escape_name, unescape_name};
use crate::replicate::swift::client::{parse_listing_time, parse_x_timestamp, ObjectEntry};
use crate::replicate::swift::parse_version;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

const PIECES: &[&str] = &[
    ">f+++++++++ ",
    ".d..t...... ",
    "cL+++++++++ ",
    "*deleting   ",
    ">f.st...... ",
    "hf          ",
    "-rw-r--r--         19,500 2026/12/01 05:46:29 ",
    "drwxr-xr-x          4,096 2026/12/01 05:46:29 ",
    "lrwxrwxrwx             10 2026/12/01 05:46:29 ",
    "1764567989 ",
    "19500 ",
    "18446744073709551616 ",
    "data/009/01831.dat",
    " -> ../../target",
    "\\#012",
    "\\#",
    "/",
    " ",
    "\u{7f}",
    "é",
];

fn rsyncish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(PIECES).prop_map(String::from),
        "\\PC{0,10}",
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "[",
                "]",
                "{",
                "}",
                ",",
                ":",
                "\"name\"",
                "\"hash\"",
                "\"bytes\"",
                "\"last_modified\"",
                "\"content_type\"",
                "\"2026-12-01T05:46:29.123456\"",
                "\"d41d8cd98f00b204e9800998ecf8427e\"",
                "18446744073709551615",
                "-1",
                "1e999",
                "null",
                "\"\\ud800\"",
                "\"a/../b\"",
            ][..]
        )
        .prop_map(String::from),
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rsync_lines(line in rsyncish(), name in "\\PC{0,8}") {
        if let Some(s) = parse_settled(&line) {
            prop_assert!(!s.name.is_empty() || line.contains(' '), "{line:?}");
        }
        let _ = parse_difference(&line);
        if let Some((n, _item)) = parse_list_line(&line) {
            // Names come back escaped: they round-trip to bytes and back.
            prop_assert_eq!(escape_name(&unescape_name(&n)), n);
        }
        let _ = parse_probe_line(&line, &name);
    }

    #[test]
    fn escaped_names_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(unescape_name(&escape_name(&bytes)), bytes);
    }

    #[test]
    fn swift_listings_and_times(body in jsonish(), t in rsyncish()) {
        if let Ok(entries) = serde_json::from_str::<Vec<ObjectEntry>>(&body) {
            for e in entries {
                let _ = e.timestamp_us();
                let _ = crate::replicate::swift::names::object_problem(&e.name);
            }
        }
        let _ = parse_x_timestamp(&t);
        let _ = parse_listing_time(&t);
        let _ = parse_version(&t);
    }
}
