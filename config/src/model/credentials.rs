//! Where secrets and certificates come from: [`SecretRef`] (a file or an
//! environment variable, read as a table only), a server's [`TlsConfig`]
//! and a client certificate ([`ClientTls`]).

use super::*;

/// Where a secret comes from: exactly one of `file` or `env`. The value itself
/// is never in the config file, so it can never be echoed from it. Only a
/// table is read as one: serde would also build it from an array
/// (`["x"]` as `{ file = "x" }`), and a secret pasted there by mistake
/// would be printed as a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Path of a file whose content (trimmed) is the secret.
    pub file: Option<PathBuf>,
    /// Name of an environment variable holding the secret.
    pub env: Option<String>,
    /// Accept a secret `file` that every user can read (with a warning);
    /// by default such a file is refused.
    pub others_may_read: bool,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default)]
            file: Option<PathBuf>,
            #[serde(default)]
            env: Option<String>,
            #[serde(default)]
            others_may_read: bool,
        }
        struct TableOnly;
        impl<'de> serde::de::Visitor<'de> for TableOnly {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // The loader words this for operators (see `describe_expected`).
                f.write_str("struct SecretRef")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretRef, A::Error> {
                let f = Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretRef {
                    file: f.file,
                    env: f.env,
                    others_may_read: f.others_may_read,
                })
            }
        }
        d.deserialize_map(TableOnly)
    }
}

/// TLS of a server (`[orchestrator.tls]`, `[frontends.NAME.tls]`): PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain this server presents (leaf first).
    pub cert: PathBuf,
    /// Its private key (refused when every user can read it).
    pub key: PathBuf,
    /// The CA its clients trust for it (default: the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// When set, every client must present a certificate signed by this CA
    /// (mTLS); an agent's must name its site.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// A client certificate (mTLS): PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Certificate chain presented (leaf first).
    pub cert: PathBuf,
    /// Its private key (refused when every user can read it).
    pub key: PathBuf,
}
