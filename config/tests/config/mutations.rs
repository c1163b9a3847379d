//! Issue 14, test 7: every shipped example, mutated (lines deleted,
//! duplicated or swapped, values swapped for other types, absurd durations
//! and numbers, truncation, bytes that are not UTF-8): the loader never
//! panics or hangs, and every refusal names file:line:col inside the file.
//! `PROPTEST_CASES` sets the number of mutants per run (default 256; the
//! long run is in FUZZING.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use warden_config::{load, ConfigError};

fn examples() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "examples: {out:?}");
    out
}

/// Values that stress the loader where a value stands.
const ODD_VALUES: &[&str] = &[
    "\"300000000000y\"",
    "\"-1s\"",
    "\"0s\"",
    "\"1e400s\"",
    "\"18446744073709551615ms\"",
    "18446744073709551616",
    "-9223372036854775808",
    "9223372036854775807",
    "1e308",
    "nan",
    "-0",
    "[]",
    "[[[[[[]]]]]]",
    "{}",
    "{ file = \"/etc/passwd\" }",
    "{ env = \"\" }",
    "true",
    "\"\"",
    "\"\\u0000\"",
    "'''\nmulti\n'''",
    "\"10.0.0.1:99999\"",
    "\"[::1]:0\"",
    "\"http://\"",
    "\"a\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceValue(usize, usize),
    Truncate(usize),
    InsertBytes(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0..ODD_VALUES.len()).prop_map(|(l, v)| Mutation::ReplaceValue(l, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![Just(0xffu8), Just(0xc3), Just(0x80), Just(0), any::<u8>()],
                1..4
            )
        )
            .prop_map(|(at, b)| Mutation::InsertBytes(at, b)),
    ]
}

fn apply(text: &[u8], m: &Mutation) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % lines.len());
            }
        }
        Mutation::DuplicateLine(i) => {
            let l = lines.get(i % n).cloned().unwrap_or_default();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                let len = lines.len();
                lines.swap(a % len, b % len);
            }
        }
        Mutation::ReplaceValue(i, v) => {
            if let Some(l) = lines.get_mut(i % n) {
                if let Some(eq) = l.iter().position(|b| *b == b'=') {
                    l.truncate(eq + 1);
                    l.push(b' ');
                    l.extend_from_slice(ODD_VALUES[*v].as_bytes());
                }
            }
        }
        Mutation::Truncate(at) => {
            let joined = lines.join(&b'\n');
            return joined[..at % (joined.len() + 1)].to_vec();
        }
        Mutation::InsertBytes(at, bytes) => {
            let mut joined = lines.join(&b'\n');
            let at = at % (joined.len() + 1);
            joined.splice(at..at, bytes.iter().copied());
            return joined;
        }
    }
    lines.join(&b'\n')
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_examples_never_panic_and_every_problem_has_a_position(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let all = examples();
        let (name, text) = &all[which % all.len()];
        let mut bytes = text.clone().into_bytes();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name.file_name().unwrap());
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| load(&path));
        let elapsed = started.elapsed();
        prop_assert!(result.is_ok(), "the loader panicked on {:?}", String::from_utf8_lossy(&bytes));
        prop_assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        let lines = bytes.split(|b| *b == b'\n').count();
        if let Err(ConfigError::Invalid(problems)) = result.unwrap() {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(p.line >= 1 && p.line <= lines + 1, "line {} of {lines}: {p}", p.line);
                prop_assert!(p.col >= 1, "{p}");
                let shown = p.to_string();
                let prefix = format!("{}:{}:{}: ", path.display(), p.line, p.col);
                prop_assert!(shown.starts_with(&prefix), "{shown}");
            }
        }
    }
}

#[test]
fn a_file_that_is_not_utf8_or_is_huge_is_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.conf");
    std::fs::write(&p, b"[orchestrator]\nlisten = \"a\xffb\"\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.conf:2:12: (file): not UTF-8"), "{e}");
    let mut huge = b"[orchestrator]\nx = [".to_vec();
    huge.extend(std::iter::repeat_n(b"1, ".as_slice(), 3_000_000).flatten());
    std::fs::write(&p, &huge).unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("larger than 8388608 bytes"), "{e}");
}

/// A FIFO would block the open for ever (no writer ever comes): refused
/// at once, saying what it is.
#[test]
fn a_fifo_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("failover.conf");
    let made = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let path = p.clone();
    std::thread::spawn(move || {
        let _ = tx.send(load(&path).map(|_| ()).map_err(|e| e.to_string()));
    });
    let e = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the loader still waits on the FIFO after 5 s")
        .unwrap_err();
    assert!(e.contains("failover.conf:1:1") && e.contains("FIFO"), "{e}");
}
