//! TLS on the listener (`tls_cert`, `tls_key`): rustls on the aws-lc
//! provider, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
//!
//! The certificate is read again when either file changes (checked every
//! [`RELOAD_INTERVAL`]), so that a renewal (certbot, cert-manager) takes
//! effect without a restart: new connections get the new certificate, open
//! ones keep theirs. A pair that does not load (half written, a key that does
//! not match) is logged and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// `Strict-Transport-Security`, sent on every response when TLS is on: a
/// year, without `includeSubDomains`, which would bind other hosts of the
/// operator's domain.
pub const HSTS: &str = "max-age=31536000";

/// The certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// When the files last changed, as far as their metadata tells.
type Stamp = (Option<SystemTime>, u64, Option<SystemTime>, u64);

/// The certificate the listener presents, swapped when the files change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    loaded: Mutex<Stamp>,
}

impl ReloadingCertificate {
    /// Loads the pair; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamp = stamp(&files);
        let key = certified_key(&files, &provider)?;
        Ok(Arc::new(ReloadingCertificate {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new(stamp),
        }))
    }

    /// Loads the pair again if either file changed since the last load.
    /// `Ok(true)`: the new certificate is in use; `Err`: it did not load,
    /// and the previous one stays (the next change is tried again).
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.files);
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if *loaded == now {
                return Ok(false);
            }
            *loaded = now;
        }
        let key = certified_key(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(true)
    }

    /// The acceptor that presents this certificate, whatever it becomes.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let of =
        |path: &Path| std::fs::metadata(path).map_or((None, 0), |m| (m.modified().ok(), m.len()));
    let (cert_at, cert_len) = of(&files.cert);
    let (key_at, key_len) = of(&files.key);
    (cert_at, cert_len, key_at, key_len)
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", files.cert.display()));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {e}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!(
            "{} and {} do not make a usable pair: {e}",
            files.cert.display(),
            files.key.display()
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A self-signed pair for `localhost`, as PEM: (certificate, key).
    fn pair() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn presented(certificate: &ReloadingCertificate) -> Vec<u8> {
        certificate.current.read().unwrap().cert[0].to_vec()
    }

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-tls-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_pair_loads_and_a_mismatched_one_is_refused_by_name() {
        let dir = temp_dir("load");
        let (cert, key) = pair();
        let loaded = ReloadingCertificate::load(files(&dir, &cert, &key)).unwrap();
        assert!(loaded.acceptor().is_ok());
        let (_, other_key) = pair();
        let err = ReloadingCertificate::load(files(&dir, &cert, &other_key)).unwrap_err();
        assert!(err.contains("do not make a usable pair"), "{err}");
        let err = ReloadingCertificate::load(files(&dir, "not pem", &key)).unwrap_err();
        assert!(err.contains("cert.pem"), "{err}");
        let missing = TlsFiles {
            cert: dir.join("nowhere.pem"),
            key: dir.join("key.pem"),
        };
        let err = ReloadingCertificate::load(missing).unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("nowhere.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_changed_pair_is_taken_and_a_broken_one_leaves_the_old_in_place() {
        let dir = temp_dir("reload");
        let (cert, key) = pair();
        let loaded = ReloadingCertificate::load(files(&dir, &cert, &key)).unwrap();
        let first = presented(&loaded);
        assert_eq!(loaded.reload_if_changed(), Ok(false), "nothing changed");
        // Half written: the certificate is new, the key still the old one.
        let (new_cert, new_key) = pair();
        std::fs::write(&loaded.files.cert, &new_cert).unwrap();
        assert!(loaded.reload_if_changed().is_err());
        assert_eq!(presented(&loaded), first, "the old pair stays in use");
        std::fs::write(&loaded.files.key, &new_key).unwrap();
        assert_eq!(loaded.reload_if_changed(), Ok(true));
        assert_ne!(presented(&loaded), first);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
