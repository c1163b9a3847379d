//! The TSIG key of the `rfc2136` provider: parsing it from the credentials
//! (a BIND key file, Knot's `keymgr` output, nsupdate's `ALG:NAME:B64` or
//! `NAME:B64`, or a bare secret), and the hickory signer that signs every
//! update. `Debug` never shows the secret, and errors never quote it.

use data_encoding::BASE64;
use hickory_net::proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_net::proto::rr::TSigner;

use crate::dns::query::fqdn;

/// Allowed clock difference for TSIG (seconds), as BIND and nsupdate use.
const FUDGE: u16 = 300;

/// A TSIG key: name, algorithm and secret bytes. `Debug` never shows the secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// Parse the credentials of an rfc2136 provider. Accepted forms:
    /// a BIND key file (`key "NAME" { algorithm ALG; secret "B64"; };`),
    /// Knot's `keymgr` output (`id:` / `algorithm:` / `secret:` lines),
    /// nsupdate's `ALG:NAME:B64` or `NAME:B64`, or a bare base64 secret with
    /// `key_name` (and `algorithm`) set in the config.
    /// Errors never quote the secret.
    pub fn parse(
        text: &str,
        key_name: Option<&str>,
        algorithm: Option<&str>,
    ) -> Result<TsigKey, String> {
        let text = text.trim();
        let (name, alg, secret) = if text.contains('{') {
            // BIND: key "name" { algorithm hmac-sha256; secret "..."; };
            let name = between(text, "key", "{")
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .ok_or("a BIND key file must start with key \"NAME\" {")?;
            // The statements inside the braces: the name may hold either word.
            let body = text.split_once('{').map_or("", |(_, b)| b);
            let alg = statement(body, "algorithm").ok_or("the BIND key has no algorithm")?;
            let secret = statement(body, "secret").ok_or("the BIND key has no secret")?;
            (name, alg, secret)
        } else if text.contains("secret:") {
            // Knot keymgr: key:\n  - id: NAME\n    algorithm: ALG\n    secret: B64
            let get = |k: &str| {
                text.lines()
                    .map(|l| l.trim().trim_start_matches("- ").trim())
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            };
            let name = get("id:").ok_or("a Knot key has no id: line")?;
            let alg = get("algorithm:").ok_or("a Knot key has no algorithm: line")?;
            let secret = get("secret:").ok_or("a Knot key has no secret: line")?;
            (name, alg, secret)
        } else {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [alg, name, secret] => (name.to_string(), alg.to_string(), secret.to_string()),
                [name, secret] => (
                    name.to_string(),
                    algorithm.unwrap_or("hmac-sha256").to_string(),
                    secret.to_string(),
                ),
                [secret] => match key_name {
                    Some(n) => (
                        n.to_string(),
                        algorithm.unwrap_or("hmac-sha256").to_string(),
                        secret.to_string(),
                    ),
                    None => return Err(
                        "the credentials hold only a secret: set key_name (and algorithm) in the dns table, or use a BIND key file or ALGORITHM:NAME:SECRET".into(),
                    ),
                },
                _ => return Err("expected a BIND key file, a Knot key, ALGORITHM:NAME:SECRET or NAME:SECRET".into()),
            }
        };
        let alg = alg.trim().trim_end_matches('.').to_ascii_lowercase();
        if !warden_config::TSIG_ALGORITHMS.contains(&alg.as_str()) {
            return Err(format!(
                "TSIG algorithm {alg:?} is not supported; use one of {}",
                warden_config::TSIG_ALGORITHMS.join(", ")
            ));
        }
        let secret = BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|_| "the TSIG secret is not valid base64".to_string())?;
        if secret.is_empty() {
            return Err("the TSIG secret is empty".into());
        }
        Ok(TsigKey {
            name: name.trim().trim_end_matches('.').to_string(),
            algorithm: alg,
            secret,
        })
    }

    /// A hickory signer for this key.
    pub fn signer(&self) -> Result<TSigner, String> {
        let alg = match self.algorithm.as_str() {
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            _ => TsigAlgorithm::HmacSha256,
        };
        let name = fqdn(&self.name)?;
        TSigner::new(self.secret.clone(), alg, name, FUDGE)
            .map_err(|e| format!("cannot use TSIG key {}: {e}", self.name))
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = text.find(start)? + start.len();
    let j = text[i..].find(end)? + i;
    Some(&text[i..j])
}

/// The value of the statement `word` among a BIND key's statements:
/// `algorithm hmac-sha256;` → `hmac-sha256`; `secret "x";` → `x`.
fn statement(body: &str, word: &str) -> Option<String> {
    body.split(';').find_map(|st| {
        let (k, v) = st.trim().split_once(char::is_whitespace)?;
        let v = v.trim().trim_matches('"').trim();
        (k == word && !v.is_empty()).then(|| v.to_string())
    })
}
