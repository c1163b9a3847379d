//! Secrets are never echoed: not from the file (even where serde's message
//! would quote them) and not from Secret::load.

use std::io::Write;

use warden_config::{ConfigError, Secret, SecretRef};

use crate::{error_text, find, one, pos_of, problems, BASE};

const SECRET: &str = "hunter2hunter2";

fn assert_no_leak(text: &str) -> String {
    let e = error_text(text);
    assert!(!e.contains(SECRET), "secret echoed:\n{e}");
    e
}

#[test]
fn inline_unknown_key_in_a_secret_ref_is_not_echoed() {
    let text = BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }",
        &format!(
            "operator_token = {{ file = \"/etc/warden/operator.token\", value = \"{SECRET}\" }}"
        ),
    );
    let e = assert_no_leak(&text);
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.operator_token.value");
    assert_eq!((p.line, p.col), pos_of(&text, "value ="));
    assert!(e.contains("allowed keys here: file, env"), "{e}");
}

#[test]
fn secret_written_inline_is_masked() {
    // A string where a { file | env } table belongs: serde would quote it.
    let text = BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }",
        &format!("operator_token = \"{SECRET}\""),
    );
    let e = assert_no_leak(&text);
    let p = one(&text);
    assert_eq!(p.key, "orchestrator.operator_token");
    assert_eq!(p.value.as_deref(), Some("\"****\""));
    assert_eq!((p.line, p.col), pos_of(&text, &format!("\"{SECRET}\"")));
    assert!(p.message.contains("{ file = "), "{e}");

    let text = BASE.replace(
        "agent_token = { env = \"WARDEN_CA_TOKEN\" }",
        &format!("agent_token = {{ env = [\"{SECRET}\"] }}"),
    );
    let p = one(&text);
    assert_eq!(p.key, "sites.ca.agent_token.env");
    assert_eq!(p.value.as_deref(), Some("\"****\""));
    assert_no_leak(&text);

    let text = BASE.replace(
        "token = { file = \"/etc/warden/fe1.token\" }",
        &format!("token = {{ file = \"/x\", env = 5 }}\n# {SECRET}"),
    );
    let p = problems(&text);
    find(&p, "frontends.fe1.token.env");
    assert_no_leak(&text);
}

#[test]
fn values_under_secret_looking_keys_are_masked() {
    // Top-level and misspelt keys: the key is reported, never the value.
    for (from, to) in [
        (
            "[orchestrator]\n",
            format!("password = \"{SECRET}\"\n[orchestrator]\n"),
        ),
        (
            "data_dir = ",
            format!("opertor_tokn = \"{SECRET}\"\ndata_dir = "),
        ),
        (
            "data_dir = ",
            format!("api_key = \"{SECRET}\"\ndata_dir = "),
        ),
    ] {
        let text = BASE.replacen(from, &to, 1);
        let e = assert_no_leak(&text);
        assert!(e.contains("unknown key"), "{e}");
    }
    // A syntax error on a secret's line.
    assert_no_leak(&BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }",
        &format!("operator_token = {SECRET}"),
    ));
}

#[test]
fn dns_credentials_are_masked() {
    let text = BASE
        .replace("scheme = \"frontend\"", "scheme = \"hybrid\"")
        .replace("[groups.web.frontend]", &format!("[groups.web.dns]\nprovider = \"rfc2136\"\nname = \"app.example.net\"\nserver = \"ns1.example.net:53\"\nzone = \"example.net\"\ncredentials = \"{SECRET}\"\naddresses = {{ fe1 = \"10.0.0.5\" }}\n\n[groups.web.frontend]"));
    let p = one(&text);
    assert_eq!(p.key, "groups.web.dns.credentials");
    assert_no_leak(&text);
}

#[test]
fn secret_ref_needs_exactly_one_source() {
    let text = BASE.replace(
        "{ env = \"WARDEN_TX_TOKEN\" }",
        "{ env = \"WARDEN_TX_TOKEN\", file = \"/etc/warden/tx\" }",
    );
    let p = one(&text);
    assert_eq!(p.key, "sites.tx.agent_token");
    assert_eq!(
        (p.line, p.col),
        pos_of(&text, "{ env = \"WARDEN_TX_TOKEN\", file")
    );
    assert!(p.message.contains("exactly one"), "{p}");

    let p = one(&BASE.replace("{ env = \"WARDEN_TX_TOKEN\" }", "{}"));
    assert_eq!(p.key, "sites.tx.agent_token");
    assert!(p.message.contains("env = "), "{p}");

    let p = one(&BASE.replace("{ env = \"WARDEN_TX_TOKEN\" }", "{ env = \"\" }"));
    assert_eq!(p.key, "sites.tx.agent_token.env");
}

/// `others_may_read` allows a secret file that every user can read; an
/// `env` secret has no permissions to allow, so the key there was taken
/// and said nothing. Refused at its place.
#[test]
fn others_may_read_on_an_env_secret_is_refused_at_its_place() {
    let text = BASE.replace(
        "{ env = \"WARDEN_TX_TOKEN\" }",
        "{ env = \"WARDEN_TX_TOKEN\", others_may_read = true }",
    );
    let p = one(&text);
    assert_eq!(p.key, "sites.tx.agent_token.others_may_read");
    assert_eq!((p.line, p.col), pos_of(&text, "true }"));
    assert!(p.message.contains("only a secret `file`"), "{p}");
    // with a file, it is what it is for
    crate::ok(&BASE.replace(
        "{ env = \"WARDEN_TX_TOKEN\" }",
        "{ file = \"/etc/warden/tx\", others_may_read = true }",
    ));
}

fn secret_err(r: &SecretRef) -> String {
    match Secret::load("orchestrator.operator_token", r) {
        Ok(_) => panic!("expected an error"),
        Err(e @ ConfigError::Secret { .. }) => e.to_string(),
        Err(e) => panic!("expected ConfigError::Secret, got {e:?}"),
    }
}

fn file_with(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

#[test]
fn secret_load_from_file_trims() {
    let f = file_with(&format!("  {SECRET}\n"));
    let s = Secret::load(
        "k",
        &SecretRef {
            file: Some(f.path().to_path_buf()),
            env: None,
            others_may_read: false,
        },
    )
    .unwrap();
    assert_eq!(s.expose(), SECRET);
    assert!(s.matches(SECRET));
    assert!(!s.matches("hunter2hunter3"));
    assert!(!s.matches("hunter2"));
    assert!(!format!("{s:?} {s}").contains(SECRET));
}

#[test]
fn secret_load_from_env() {
    // A variable name no other test uses (tests run in parallel).
    let var = "WARDEN_CONFIG_TEST_SECRET_FROM_ENV";
    std::env::set_var(var, SECRET);
    let s = Secret::load(
        "k",
        &SecretRef {
            file: None,
            env: Some(var.into()),
            others_may_read: false,
        },
    )
    .unwrap();
    assert_eq!(s.expose(), SECRET);

    let missing = "WARDEN_CONFIG_TEST_SECRET_NOT_SET";
    std::env::remove_var(missing);
    let e = secret_err(&SecretRef {
        file: None,
        env: Some(missing.into()),
        others_may_read: false,
    });
    assert!(
        e.contains(missing) && e.contains("orchestrator.operator_token"),
        "{e}"
    );
}

#[test]
fn empty_or_short_secret_is_rejected_without_echo() {
    let f = file_with(" \n");
    let e = secret_err(&SecretRef {
        file: Some(f.path().to_path_buf()),
        env: None,
        others_may_read: false,
    });
    assert!(e.contains("empty"), "{e}");

    let f = file_with("s3cr7\n");
    let e = secret_err(&SecretRef {
        file: Some(f.path().to_path_buf()),
        env: None,
        others_may_read: false,
    });
    assert!(e.contains("shorter than 8"), "{e}");
    assert!(!e.contains("s3cr7"), "{e}");

    let var = "WARDEN_CONFIG_TEST_SHORT_SECRET";
    std::env::set_var(var, "pw123");
    let e = secret_err(&SecretRef {
        file: None,
        env: Some(var.into()),
        others_may_read: false,
    });
    assert!(!e.contains("pw123"), "{e}");

    let e = secret_err(&SecretRef {
        file: Some("/nonexistent/warden/secret".into()),
        env: None,
        others_may_read: false,
    });
    assert!(e.contains("/nonexistent/warden/secret"), "{e}");

    let e = secret_err(&SecretRef {
        file: Some("/x".into()),
        env: Some("Y".into()),
        others_may_read: false,
    });
    assert!(e.contains("exactly one"), "{e}");
}

#[test]
fn a_secret_file_everyone_can_read_is_refused_unless_accepted() {
    use std::os::unix::fs::PermissionsExt;
    let f = file_with(&format!("{SECRET}\n"));
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = SecretRef {
        file: Some(f.path().to_path_buf()),
        env: None,
        others_may_read: false,
    };
    let e = secret_err(&r);
    assert!(
        e.contains("readable by every user (mode 0644)")
            && e.contains(&format!("chmod 600 {}", f.path().display()))
            && e.contains("others_may_read"),
        "{e}"
    );
    assert!(!e.contains(SECRET), "{e}");
    // Group-readable is fine; so is everyone-readable when accepted.
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Secret::load("k", &r).is_ok());
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let accepted = SecretRef {
        others_may_read: true,
        ..r
    };
    assert_eq!(Secret::load("k", &accepted).unwrap().expose(), SECRET);
}

/// A secret pasted where its reference belongs, in any shape that is not a
/// `{ file | env }` table: refused, and never echoed — not by check-config
/// and not later as a "file name" (serde would read `["x"]` as `{ file = "x" }`).
#[test]
fn a_secret_in_place_of_its_reference_is_refused_in_every_shape() {
    for (from, to) in [
        (
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            format!("operator_token = [\"{SECRET}\"]"),
        ),
        (
            "agent_token = { env = \"WARDEN_CA_TOKEN\" }",
            format!("agent_token = [\"{SECRET}\", false]"),
        ),
        (
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            format!(
                "operator_token = {{ file = \"/etc/warden/operator.token\" }}\noperators = [\"{SECRET}\"]"
            ),
        ),
        (
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            format!(
                "operator_token = {{ file = \"/etc/warden/operator.token\" }}\noperators = [[\"alice\", [\"{SECRET}\"]]]"
            ),
        ),
        // A relative "path" or an "env name" that is really the secret.
        (
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            format!("operator_token = {{ file = \"{SECRET}\" }}"),
        ),
        (
            "agent_token = { env = \"WARDEN_CA_TOKEN\" }",
            format!("agent_token = {{ env = \"{SECRET}-x\" }}"),
        ),
    ] {
        let text = BASE.replace(from, &to);
        assert_ne!(text, BASE, "{from}");
        let e = assert_no_leak(&text);
        assert!(!problems(&text).is_empty(), "accepted: {to}");
        assert!(!e.is_empty(), "{to}");
    }
    let p = one(&BASE.replace(
        "operator_token = { file = \"/etc/warden/operator.token\" }",
        "operator_token = { file = \"tokens/op\" }",
    ));
    assert_eq!(p.key, "orchestrator.operator_token.file");
    assert!(p.message.contains("absolute path"), "{p}");
}

/// A bearer token that no HTTP header can carry (a second line, a NUL, a
/// space) is refused when it is loaded, naming the key and never the
/// value; other secrets (passwords, TSIG key files) may hold anything.
#[test]
fn a_token_no_header_can_carry_is_refused_at_load() {
    for (content, what) in [
        ("hunter2-first-line\nsecond-line\n", "line break"),
        ("hunter2-with\0nul", "control character"),
        ("hunter2 with space", "space"),
        ("hunter2-naïve-token", "outside visible ASCII"),
    ] {
        let f = file_with(content);
        let r = SecretRef {
            file: Some(f.path().to_path_buf()),
            env: None,
            others_may_read: false,
        };
        let e = match Secret::load_token("sites.ca.agent_token", &r) {
            Ok(_) => panic!("accepted a token with a {what}"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(what) && e.contains("sites.ca.agent_token"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(Secret::load("sites.ca.password", &r).is_ok(), "{what}");
    }
    let f = file_with("0123456789abcdef-_.~+/=\n");
    let r = SecretRef {
        file: Some(f.path().to_path_buf()),
        env: None,
        others_may_read: false,
    };
    assert!(Secret::load_token("k", &r).is_ok());
}

/// A secret reference to something that is not a file: a directory was
/// told "readable by every user (mode 0755): run `chmod 600`", which
/// fixes nothing; a FIFO blocked the process's start for ever, waiting
/// for a writer; a file of any size was read whole (a device never ends).
/// Each is refused saying what it is, never echoing a value.
#[test]
fn a_secret_reference_to_no_secret_file_says_what_it_is() {
    use std::os::unix::fs::PermissionsExt;
    let at = |path: &std::path::Path| SecretRef {
        file: Some(path.to_path_buf()),
        env: None,
        others_may_read: false,
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = secret_err(&at(dir.path()));
    assert!(e.contains("is a directory") && !e.contains("chmod"), "{e}");

    let fifo = dir.path().join("token.fifo");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let r = at(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Secret::load("orchestrator.operator_token", &r).map(|_| ()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Err(e)) => assert!(e.to_string().contains("a FIFO"), "{e}"),
        Ok(Ok(())) => panic!("a FIFO was read as a secret"),
        Err(_) => panic!("loading a secret from a FIFO hung"),
    }

    let big = file_with(&format!("{SECRET}{}", "x".repeat(100_000)));
    let e = secret_err(&at(big.path()));
    assert!(e.contains("larger than 65536 bytes"), "{e}");
    assert!(!e.contains(SECRET), "{e}");
}

/// A secret written as `NAME=VALUE` where no secret belongs was echoed
/// by the problem it caused: `pass_env = ["DB_PASSWORD=…"]` (pass_env
/// lists names; its message quoted the entry, its value the array), a
/// command's `--password=…`, a check URL's `?api_key=…`. The value of
/// every such assignment whose name looks secret is masked wherever a
/// problem shows it; the name stays, to say what is wrong.
#[test]
fn a_secret_assigned_in_a_value_is_masked_wherever_a_problem_shows_it() {
    let text = BASE
        .replace(
            "agent_token = { env = \"WARDEN_CA_TOKEN\" }",
            &format!("agent_token = {{ env = \"WARDEN_CA_TOKEN\" }}\npass_env = [\"DB_PASSWORD={SECRET}\"]"),
        )
        .replace(
            "http://127.0.0.1:8080/healthz",
            &format!("http://127.0.0.1:0/healthz?api_key={SECRET}&x=1"),
        )
        + &format!(
            "\n[[sites.tx.promote]]\nname = \"p\"\ncommand = [\"\", \"--password={SECRET}\"]\n"
        );
    let e = assert_no_leak(&text);
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{e}");
    let env = find(&p, "sites.ca.pass_env");
    assert!(
        env.message.contains("\"DB_PASSWORD=****\"") && env.message.contains("not NAME=VALUE"),
        "{env}"
    );
    assert!(
        find(&p, "sites.ca.checks[0].url")
            .to_string()
            .contains("api_key=****&x=1"),
        "{e}"
    );
    assert!(
        find(&p, "sites.tx.promote[0].command")
            .to_string()
            .contains("--password=****"),
        "{e}"
    );
}
