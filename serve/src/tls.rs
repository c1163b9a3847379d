//! TLS of warden's APIs (rustls with ring): the server side of a listener
//! ([`ServerTls`]: certificate and key from PEM files, re-read when one of
//! its files changes, optional client-certificate verification against a
//! CA), the client side ([`client_config`]: the CA to trust, an optional
//! client certificate), and the name check that binds a client certificate
//! to a site ([`cert_names`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::ServeError;

/// The files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// Certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// With it, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

/// A client certificate and its key (mTLS), PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn tls_err(path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::Tls {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file; refused when every user can read it.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(tls_err(
                path,
                format!(
                    "private key readable by every user (mode {mode:04o}): run `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
    }
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| tls_err(path, format!("no usable PEM private key: {e}")))
}

fn roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, ServeError> {
    let mut store = rustls::RootCertStore::empty();
    for c in load_certs(path)? {
        store
            .add(c)
            .map_err(|e| tls_err(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// ring, whatever provider the process installed (or none).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_server(files: &ServerFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&files.cert, e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                    .build()
                    .map_err(|e| tls_err(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        tls_err(
            &files.key,
            format!("does not match {}: {e}", files.cert.display()),
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn mtimes(files: &ServerFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

/// A TLS server configuration that follows its files: when one of them
/// changes (checked at most once a second, at a new connection), or on
/// [`ServerTls::reload`] (the server calls it on SIGHUP), it is read again;
/// a new set that does not load is logged and the old one stays in use.
pub struct ServerTls {
    files: ServerFiles,
    current: Mutex<(Arc<rustls::ServerConfig>, Vec<Option<SystemTime>>, Instant)>,
}

impl ServerTls {
    /// Loads `files` now (an error names the file and what is wrong).
    pub fn new(files: ServerFiles) -> Result<ServerTls, ServeError> {
        let cfg = build_server(&files)?;
        let seen = mtimes(&files);
        Ok(ServerTls {
            files,
            current: Mutex::new((cfg, seen, Instant::now())),
        })
    }

    /// Read the files again now (SIGHUP); on an error the old ones stay.
    pub fn reload(&self) -> Result<(), ServeError> {
        let cfg = build_server(&self.files)?;
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cur.0 = cfg;
        cur.1 = mtimes(&self.files);
        cur.2 = Instant::now();
        Ok(())
    }

    /// Whether clients must present a certificate.
    pub fn verifies_clients(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.2.elapsed() >= Duration::from_secs(1) {
            cur.2 = Instant::now();
            let now = mtimes(&self.files);
            if now != cur.1 {
                match build_server(&self.files) {
                    Ok(cfg) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate files changed: reloaded");
                        cur.0 = cfg;
                        cur.1 = now;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous ones");
                    }
                }
            }
        }
        cur.0.clone()
    }
}

/// A client configuration trusting `ca` (PEM; the system's roots when
/// `None`), presenting `identity` when given.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, ServeError> {
    let roots = match ca {
        Some(p) => roots(p)?,
        None => {
            let mut store = rustls::RootCertStore::empty();
            store.extend(webpki_roots_from_system());
            Arc::new(store)
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(ca.unwrap_or(Path::new("-")), e))?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(load_certs(&id.cert)?, load_key(&id.key)?)
            .map_err(|e| {
                tls_err(
                    &id.key,
                    format!("does not match {}: {e}", id.cert.display()),
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The system's CA certificates (`/etc/ssl/certs/ca-certificates.crt`), if readable.
fn webpki_roots_from_system() -> Vec<rustls::pki_types::TrustAnchor<'static>> {
    let path = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let Ok(certs) = load_certs(path) else {
        return Vec::new();
    };
    certs
        .iter()
        .filter_map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .ok()
                .map(|a| a.to_owned())
        })
        .collect()
}

/// Whether the DER certificate `cert` is valid for the DNS name `name`
/// (its subjectAltName), which is how a client certificate names the site
/// (or frontend) it speaks for.
pub fn cert_names(cert: &[u8], name: &str) -> bool {
    let der = CertificateDer::from(cert);
    let Ok(ee) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&server_name).is_ok()
}
