//! What child processes see of warden: hooks, checks, fence commands,
//! rsync and replication commands run with a clean environment
//! ([`clean_env`]: a few harmless variables plus the ones the config names
//! in `pass_env`, never a variable that holds one of warden's secrets), and
//! any text of theirs that reaches logs, events or API answers goes through
//! [`scrub`] first, which masks every secret this process has loaded.
//!
//! The registry is process-wide: [`crate::Secret::load`] records each value
//! (and the name of its environment variable, if it came from one) as it
//! loads it, so nothing can be loaded without being known here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::sync::{RwLock, RwLockReadGuard};

use aho_corasick::{AhoCorasick, MatchKind};

/// Variables every child gets from warden's own environment (when set):
/// what programs need to run, nothing that can hold a credential.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// `PATH` when warden itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shortest piece of a secret masked where a text was cut.
const PARTIAL_MIN: usize = 4;

static SECRETS: RwLock<Secrets> = RwLock::new(Secrets {
    longest_first: Vec::new(),
    known: BTreeSet::new(),
    sorted: true,
    matcher: None,
});
static SECRET_VARS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static PASS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Every secret loaded, longest first (a secret containing another is
/// masked whole). Sorted when next read, not at every registration: an
/// orchestrator loads one token per site, and sorting (and a linear
/// duplicate search) at each of 20,000 loads cost about 8·10⁹
/// instructions of its start.
struct Secrets {
    /// Longest first once `sorted`; no repeats (see `known`).
    longest_first: Vec<String>,
    /// The same values, to refuse a repeat in O(log n): a value loaded
    /// again (a check's password at every run, a replicator restarted) is
    /// recorded once.
    known: BTreeSet<String>,
    sorted: bool,
    /// Finds every secret in one pass over a text (leftmost, longest
    /// first), built when the set is next read after a change: with one
    /// token per site and each secret's encoded forms, a text is looked at
    /// once, not once per secret. `None` while there are none.
    matcher: Option<AhoCorasick>,
}

/// The secrets, longest first.
fn secrets() -> RwLockReadGuard<'static, Secrets> {
    loop {
        let r = SECRETS.read().unwrap_or_else(|p| p.into_inner());
        if r.sorted {
            return r;
        }
        drop(r);
        let mut w = SECRETS.write().unwrap_or_else(|p| p.into_inner());
        w.longest_first.sort_by_key(|v| std::cmp::Reverse(v.len()));
        w.longest_first.retain(|v| !v.is_empty());
        w.matcher = if w.longest_first.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&w.longest_first)
                .map_err(|e| tracing::error!("secrets cannot be matched: {e}"))
                .ok()
        };
        w.sorted = true;
    }
}

/// Kills a child's whole process group when dropped, unless disarmed: the
/// child was started with `process_group(0)`, so its id is its group's, and
/// whatever it started in the background (a shell's `&`, a grandchild
/// holding its pipes) goes with it. Hooks, command checks, the fence
/// command and rsync keep one while they wait; a timed-out or cancelled
/// wait drops it armed. With a run's mark ([`GroupKill::with_mark`]) it
/// also kills what the child moved out of its group (`setsid`, a double
/// fork): see [`crate::run_mark`].
pub struct GroupKill(Option<u32>, Option<crate::run_mark::RunMark>);

impl GroupKill {
    /// Armed for the group of `pid` (`None`: the child is gone already).
    pub fn new(pid: Option<u32>) -> GroupKill {
        GroupKill(pid, None)
    }

    /// Armed for the group of `pid` and every process that carries `mark`
    /// (the child was started with it in its environment).
    pub fn with_mark(pid: Option<u32>, mark: crate::run_mark::RunMark) -> GroupKill {
        GroupKill(pid, Some(mark))
    }

    /// Kills the group now (once), then what carries its mark. Safe from
    /// reaching another process: it is called only while the leader has
    /// not been reaped (a timed-out or cancelled wait), so its id still
    /// names its own group.
    pub fn kill_now(&mut self) {
        if self.0.is_some() {
            self.kill_group();
        }
        if let Some(mark) = self.1.take() {
            mark.kill_marked();
        }
    }

    fn kill_group(&mut self) {
        let Some(pid) = self.0.take() else { return };
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
            // ESRCH: the group is gone already
            if e != rustix::io::Errno::SRCH {
                tracing::warn!(group = pid.as_raw_nonzero().get(), cause = %e, "cannot kill a child's process group");
            }
        }
    }

    /// Asks the group to end (SIGTERM), leaving it armed: for a program
    /// that cleans up when asked (rsync removes the temporary file of a
    /// transfer it was in the middle of; SIGKILL leaves it in the tree).
    /// The caller then waits a moment and kills what is left.
    pub fn terminate(&self) {
        let Some(pid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM) {
            if e != rustix::io::Errno::SRCH {
                tracing::warn!(group = pid.as_raw_nonzero().get(), cause = %e, "cannot signal a child's process group");
            }
        }
    }

    /// The child ended as it should, and what it left running is not
    /// looked for: left alone now, not kept across a restart of the agent
    /// (its next process ends it with the rest of its marked runs). For a
    /// command run every few seconds (a check), which has no business
    /// starting a daemon: keeping would read every process's environment
    /// at each of its ends.
    pub fn disarm_unkept(&mut self) {
        self.0 = None;
        self.1 = None;
    }

    /// The child ended as it should: leave what it started alone (and
    /// keep it across a restart of the agent whose state directory its
    /// mark is bound to: [`crate::run_mark::RunMark::keep_what_is_left`]).
    pub fn disarm(&mut self) {
        self.0 = None;
        if let Some(mark) = self.1.take() {
            mark.keep_what_is_left();
        }
    }
}

/// Runs `spawn` again while the kernel answers ETXTBSY ("text file
/// busy"): the program was written a moment ago and a child another
/// thread forked meanwhile still holds it open for writing until that
/// child execs (microseconds), or a deployment tool is writing it now. Up
/// to five more tries over about 60 ms (a blocking wait: a rare path),
/// then its error.
pub fn spawn_unless_busy<T>(mut spawn: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut wait = std::time::Duration::from_millis(2);
    for _ in 0..5 {
        match spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            r => return r,
        }
    }
    spawn()
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Shortest encoded form of a secret masked on its own ([`encoded_forms`]):
/// shorter runs of base64 would mask ordinary words.
const ENCODED_MIN: usize = 8;

/// The forms a secret takes when a program encodes it on its way out, each
/// masked like the secret itself: its base64 (standard and URL-safe) at
/// each of the three alignments it can have inside a longer encoded text —
/// `curl -v -u user:PASSWORD` prints `Authorization: Basic` and the base64
/// of `user:PASSWORD`, where the password's bytes start at any offset — cut
/// to the characters that depend on the secret's bytes alone; its
/// percent-encoding (a URL's query or user part); and its JSON string
/// escape. Only forms that differ from the secret and are at least
/// [`ENCODED_MIN`] long.
fn encoded_forms(value: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let bytes = value.as_bytes();
    let mut forms = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for align in 0..3usize {
            // `align` bytes before the secret; encoded character `i` covers
            // bits [6i, 6i + 6) and depends on the secret alone when those
            // bits lie within the secret's [8·align, 8·(align + n)).
            let mut input = vec![0u8; align];
            input.extend_from_slice(bytes);
            let encoded = engine.encode(&input);
            let start = (8 * align).div_ceil(6);
            let end = (8 * (align + bytes.len())) / 6;
            if end > start {
                forms.push(encoded[start..end].to_string());
            }
        }
    }
    // Percent-encodings as encoders write them: every byte but letters and
    // digits; RFC 3986's unreserved `-._~` kept (curl, jq's @uri, Go); that
    // and `/` kept (Python's quote); a form's, `+` for a space.
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
    for set in [NON_ALPHANUMERIC, UNRESERVED, PATH] {
        forms.push(utf8_percent_encode(value, set).to_string());
    }
    forms.push(form_urlencoded::byte_serialize(bytes).collect());
    // JSON string escapes: serde's (and most), Go's (`&<>` as `\u00XX`),
    // and an ASCII-only one (Python's default: every other character as
    // `\uXXXX`, lowercase hex).
    if let Ok(json) = serde_json::to_string(value) {
        let inner = &json[1..json.len() - 1];
        forms.push(inner.to_string());
        // escaped twice: a JSON log line of a message that quotes the
        // secret escaped already (a `{:?}` of a request)
        if let Ok(twice) = serde_json::to_string(inner) {
            forms.push(twice[1..twice.len() - 1].to_string());
        }
        forms.push(
            inner
                .replace('&', "\\u0026")
                .replace('<', "\\u003c")
                .replace('>', "\\u003e"),
        );
        let mut ascii = String::with_capacity(inner.len());
        for c in inner.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        forms.push(ascii);
    }
    forms.retain(|f| f.len() >= ENCODED_MIN && f != value);
    forms.sort();
    forms.dedup();
    forms
}

/// Records a loaded secret (and the variable it came from), with its
/// encoded forms ([`encoded_forms`]).
pub(crate) fn register(value: &str, var: Option<&str>) {
    let mut s = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if s.known.insert(value.to_string()) {
        s.longest_first.push(value.to_string());
        s.sorted = false;
        for form in encoded_forms(value) {
            if s.known.insert(form.clone()) {
                s.longest_first.push(form);
            }
        }
    }
    if let Some(var) = var {
        let mut v = SECRET_VARS.write().unwrap_or_else(|p| p.into_inner());
        if !v.iter().any(|n| n == var) {
            v.push(var.to_string());
        }
    }
}

/// Whether `name` can be an environment variable's name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Sets the names (besides [`BASE_ENV`]) passed to children: the config's
/// `pass_env` of the process's role. Called once at start.
pub fn set_pass_env(names: &[String]) {
    *PASS.write().unwrap_or_else(|p| p.into_inner()) = names.to_vec();
}

/// What a process's children get, from its config: `pass_env` (its role's)
/// minus every variable a secret reference of the file names, whichever
/// role loads that secret ([`crate::Config::secret_vars`]). A process
/// registers only the secrets it loads itself: without this, an agent
/// whose `pass_env` listed the variable of the operator's token (set on a
/// host that runs both) handed the token to every hook and check. Called
/// once at start by each process that runs children.
pub fn configure(cfg: &crate::Config, pass_env: &[String]) {
    {
        let mut v = SECRET_VARS.write().unwrap_or_else(|p| p.into_inner());
        for var in &cfg.secret_vars {
            if !v.iter().any(|n| n == var) {
                v.push(var.clone());
            }
        }
    }
    set_pass_env(pass_env);
}

/// The environment for a child: [`BASE_ENV`] and the `pass_env` names that
/// are set, minus any variable that is the source of a loaded secret or
/// whose value is one. Use with `Command::env_clear().envs(clean_env())`.
pub fn clean_env() -> Vec<(OsString, OsString)> {
    let pass = PASS.read().unwrap_or_else(|p| p.into_inner()).clone();
    let vars = SECRET_VARS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let secrets = secrets();
    let secrets = &secrets.longest_first;
    let mut out = Vec::new();
    for name in BASE_ENV
        .iter()
        .copied()
        .chain(pass.iter().map(String::as_str))
    {
        if vars.iter().any(|v| v == name) || out.iter().any(|(k, _)| k == name) {
            continue;
        }
        let Some(value) = std::env::var_os(name) else {
            continue;
        };
        // Compared as bytes: a value that is not UTF-8 around a secret
        // (bytes a program put there) still holds it.
        let bytes = value.as_encoded_bytes();
        let holds_secret = secrets.iter().any(|s| {
            let s = s.as_bytes();
            !s.is_empty() && bytes.windows(s.len()).any(|w| w == s)
        });
        if !holds_secret {
            out.push((OsString::from(name), value));
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    out
}

/// The length of the longest loaded secret, in bytes (0: none): a stream
/// read in chunks holds back one byte less than this, so that no secret is
/// cut between two chunks — and another stream's bytes written between
/// them — before it is masked ([`mask_bytes`]).
pub fn longest_secret() -> usize {
    secrets().longest_first.first().map_or(0, String::len)
}

/// `bytes` (one stream's output, not yet text) with every loaded secret
/// replaced by `****`, byte for byte.
pub fn mask_bytes(bytes: &[u8]) -> Vec<u8> {
    let secrets = secrets();
    let Some(matcher) = secrets.matcher.as_ref() else {
        return bytes.to_vec();
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for m in matcher.find_iter(bytes) {
        out.extend_from_slice(&bytes[at..m.start()]);
        out.extend_from_slice(b"****");
        at = m.end();
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// `text` with every loaded secret replaced by `****`, and a piece of one
/// (at least 4 characters) masked where the text begins or ends — an
/// output tail cut in the middle of a secret.
pub fn scrub(text: &str) -> String {
    let masked = mask_bytes(text.as_bytes());
    // Every match is a whole secret, valid UTF-8 itself, replaced by ASCII.
    let mut out = String::from_utf8(masked)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let secrets = secrets();
    let secrets = &secrets.longest_first;
    for s in secrets.iter() {
        // The longest suffix of the secret the text starts with.
        if let Some(n) = (PARTIAL_MIN..s.len())
            .rev()
            .find(|&n| s.is_char_boundary(s.len() - n) && out.starts_with(&s[s.len() - n..]))
        {
            out.replace_range(..n, "****");
        }
        // The longest prefix of the secret the text ends with.
        if let Some(n) = (PARTIAL_MIN..s.len())
            .rev()
            .find(|&n| s.is_char_boundary(n) && out.ends_with(&s[..n]))
        {
            let at = out.len() - n;
            out.replace_range(at.., "****");
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_busy_program_is_tried_again_and_then_its_error_is_given() {
        let busy = || std::io::Error::from(std::io::ErrorKind::ExecutableFileBusy);
        let mut calls = 0;
        let r = super::spawn_unless_busy(|| {
            calls += 1;
            if calls < 3 {
                Err(busy())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: std::io::Result<()> = super::spawn_unless_busy(|| {
            calls += 1;
            Err(busy())
        });
        assert_eq!(
            r.unwrap_err().kind(),
            std::io::ErrorKind::ExecutableFileBusy
        );
        assert_eq!(calls, 6, "five more tries, no more");
        let mut calls = 0;
        let r: std::io::Result<()> = super::spawn_unless_busy(|| {
            calls += 1;
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "another error is not tried again");
    }

    use super::*;

    #[test]
    fn masks_whole_and_cut_secrets() {
        register("hunter2-secret-value", None);
        register("hunter2-secret-value-longer", None);
        assert_eq!(
            scrub("token=hunter2-secret-value-longer; again hunter2-secret-value."),
            "token=****; again ****."
        );
        // A tail that begins inside a secret, and one that ends inside one.
        assert_eq!(scrub("ret-value and more"), "**** and more");
        assert_eq!(scrub("output: hunter2-se"), "output: ****");
        assert_eq!(scrub("nothing here"), "nothing here");
    }

    #[test]
    fn children_get_no_secret_variable() {
        std::env::set_var("WARDEN_TEST_CHILD_SECRET_VAR", "x");
        std::env::set_var("WARDEN_TEST_CHILD_HOLDS", "prefix-child-secret-0123");
        std::env::set_var("WARDEN_TEST_CHILD_PLAIN", "plain");
        // Not UTF-8 around the secret.
        std::env::set_var(
            "WARDEN_TEST_CHILD_BYTES",
            <OsString as std::os::unix::ffi::OsStringExt>::from_vec(
                [&[0xff_u8, b'x'][..], b"child-secret-0123", &[0xfe]].concat(),
            ),
        );
        register("value-of-the-var", Some("WARDEN_TEST_CHILD_SECRET_VAR"));
        register("child-secret-0123", None);
        set_pass_env(&[
            "WARDEN_TEST_CHILD_SECRET_VAR".into(),
            "WARDEN_TEST_CHILD_HOLDS".into(),
            "WARDEN_TEST_CHILD_PLAIN".into(),
            "WARDEN_TEST_CHILD_BYTES".into(),
        ]);
        let env = clean_env();
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert!(names.contains(&"PATH"));
        assert!(names.contains(&"WARDEN_TEST_CHILD_PLAIN"));
        assert!(!names.contains(&"WARDEN_TEST_CHILD_SECRET_VAR"));
        assert!(!names.contains(&"WARDEN_TEST_CHILD_HOLDS"));
        assert!(
            !names.contains(&"WARDEN_TEST_CHILD_BYTES"),
            "a value that is not UTF-8 around a secret is withheld too"
        );
        set_pass_env(&[]);
        assert!(!clean_env()
            .iter()
            .any(|(k, _)| k == "WARDEN_TEST_CHILD_PLAIN"));
    }

    #[test]
    fn encoded_forms_of_a_secret_are_masked() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        use base64::Engine;
        let secret = "s3cr3t/pass+word?&=\"x";
        register(secret, None);
        // `curl -v -u USER:PASSWORD` prints the base64 of both: the
        // password starts at every offset modulo 3 as the user's name grows.
        for user in ["", "a", "ab", "abc", "admin", "operator"] {
            for engine in [&STANDARD, &URL_SAFE] {
                let header = engine.encode(format!("{user}:{secret}"));
                let line = format!("> Authorization: Basic {header}");
                let out = scrub(&line);
                assert!(out.contains("****"), "{line} was left as it is");
                // What is left of the encoded text no longer holds the
                // secret: at most a few characters at each end of it.
                let left: String = out
                    .trim_start_matches("> Authorization: Basic ")
                    .replace("****", "");
                assert!(
                    left.len() <= user.len() * 4 / 3 + 6,
                    "{line} became {out}: too much of it left"
                );
            }
        }
        let query = format!(
            "GET /x?token={}",
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        );
        assert_eq!(scrub(&query), "GET /x?token=****");
        // As other encoders write it: curl (RFC 3986: `-._~` kept),
        // Python's quote (and `/`), a form (`+` for a space); Go's and
        // Python's JSON.
        let other = "Tr0ub4dor&3-horse/é s~x";
        register(other, None);
        // A Debug-quoted form inside a JSON log line: escaped twice.
        let quoted = "tok\"en\\1234567";
        register(quoted, None);
        let debug = format!("{:?}", format!("Bearer {quoted}"));
        let line = serde_json::to_string(&format!("Request: {debug}")).unwrap();
        assert!(scrub(&line).contains("****"), "{line}");
        assert!(!scrub(&line).contains("1234567"), "{}", scrub(&line));
        for (shown, how) in [
            ("Tr0ub4dor%263-horse%2F%C3%A9%20s~x", "curl"),
            ("Tr0ub4dor%263-horse/%C3%A9%20s~x", "python quote"),
            ("Tr0ub4dor%263-horse%2F%C3%A9+s%7Ex", "form"),
            ("Tr0ub4dor\\u00263-horse/é s~x", "go json"),
            ("Tr0ub4dor&3-horse/\\u00e9 s~x", "python json"),
        ] {
            assert_eq!(scrub(&format!("pw={shown};")), "pw=****;", "{how}");
        }
        let json = format!(
            "{{\"password\":{}}}",
            serde_json::to_string(secret).unwrap()
        );
        assert_eq!(scrub(&json), "{\"password\":\"****\"}");
        // Short runs are not masked on their own: "pass" is no secret.
        assert_eq!(scrub("a pass word"), "a pass word");
    }

    #[test]
    fn variable_names() {
        assert!(valid_var_name("HTTP_PROXY") && valid_var_name("_x1"));
        assert!(!valid_var_name("1X") && !valid_var_name("A-B") && !valid_var_name(""));
    }
}
