//! Secrets (tokens, keys, passwords): loaded from a file or an environment
//! variable named in the config, held in a type whose `Debug` and `Display`
//! never show the value.

use std::fmt;

use crate::model::SecretRef;
use crate::ConfigError;

/// A loaded secret. Compare with [`Secret::matches`]; print it never.
/// It has no `==`: compare only with [`Secret::matches`] (constant time).
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Secret {
    /// Wrap a value obtained elsewhere (tests, demo).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Load the secret described by `r`; `key` names it in errors.
    pub fn load(key: &str, r: &SecretRef) -> Result<Secret, ConfigError> {
        let err = |reason: String| ConfigError::Secret {
            key: key.to_string(),
            reason,
        };
        let value = match (&r.file, &r.env) {
            (Some(path), None) => read_file(key, path, r.others_may_read)?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                err(format!(
                    "environment variable {var} is not set (or not UTF-8)"
                ))
            })?,
            _ => return Err(err("give exactly one of `file` or `env`".into())),
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(err("the secret is empty".into()));
        }
        if value.len() < 8 {
            return Err(err("the secret is shorter than 8 characters".into()));
        }
        crate::child::register(&value, r.env.as_deref());
        Ok(Secret(value))
    }

    /// Load a bearer token (an agent's, an operator's, a frontend's): a
    /// secret that travels in an `Authorization` header, so one line of
    /// visible ASCII (RFC 9110 field values; RFC 6750's token characters
    /// and more). A line break, a control character, a space or a
    /// non-ASCII character inside it is refused here, naming the key,
    /// never the value — else every process would start and no request
    /// could carry it.
    pub fn load_token(key: &str, r: &SecretRef) -> Result<Secret, ConfigError> {
        let s = Self::load(key, r)?;
        if let Some(bad) = s.0.chars().find(|c| !c.is_ascii_graphic()) {
            let what = match bad {
                '\n' | '\r' => "a line break".to_string(),
                ' ' | '\t' => "a space or tab".to_string(),
                c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
                _ => "a character outside visible ASCII".to_string(),
            };
            return Err(ConfigError::Secret {
                key: key.to_string(),
                reason: format!(
                    "the token holds {what}: a bearer token is sent in an HTTP header and must be one \
                     line of visible ASCII characters (e.g. the output of `openssl rand -hex 32`)"
                ),
            });
        }
        Ok(s)
    }

    /// Wraps a value and registers it like a loaded one (masked in child
    /// output, kept from children's environments): for secrets warden makes
    /// itself (the quickstart's tokens).
    pub fn registered(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::child::register(&value, None);
        Secret(value)
    }

    /// The value, for putting on the wire (an Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The largest secret file read: a token, a password or a TSIG key file
/// is far smaller, and a file that never ends (`/dev/zero`) must not be
/// read into memory until the process dies.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The content of secret file `path`: a regular file (or a link to one)
/// of at most [`MAX_SECRET_BYTES`], UTF-8, not readable by every user
/// (see [`check_mode`]). A directory, a FIFO (whose open would wait for a
/// writer for ever, the process never started) or a device is refused,
/// saying what it is.
fn read_file(
    key: &str,
    path: &std::path::Path,
    others_may_read: bool,
) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |reason: String| ConfigError::Secret {
        key: key.to_string(),
        reason,
    };
    let cannot =
        |e: std::io::Error| err(format!("cannot read secret file {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(err(format!(
            "secret file {} is {what}, not a file: give the file that holds the secret",
            path.display()
        )));
    }
    check_mode(key, path, &meta, others_may_read)?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(err(format!(
            "secret file {} is larger than {MAX_SECRET_BYTES} bytes: not a secret (a token, a \
             password or a key file is far smaller); check the path",
            path.display()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| err(format!("secret file {} is not UTF-8 text", path.display())))
}

/// A secret file that every user can read is refused (the message says how
/// to fix it), or only warned about when the reference says
/// `others_may_read = true`.
fn check_mode(
    key: &str,
    path: &std::path::Path,
    meta: &std::fs::Metadata,
    others_may_read: bool,
) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 == 0 {
        return Ok(());
    }
    let what = format!(
        "secret file {} is readable by every user (mode {mode:04o})",
        path.display()
    );
    if others_may_read {
        tracing::warn!(key, "{what}; allowed by others_may_read = true");
        return Ok(());
    }
    // A file named on the command line (`--token-file`) has no reference
    // in which `others_may_read` could be set.
    let or_accept = if key.starts_with("--") {
        ""
    } else {
        ", or set `others_may_read = true` in this secret's reference to accept it"
    };
    Err(ConfigError::Secret {
        key: key.to_string(),
        reason: format!(
            "{what}: run `chmod 600 {}` (or 640 with a group that may read it){or_accept}",
            path.display()
        ),
    })
}
