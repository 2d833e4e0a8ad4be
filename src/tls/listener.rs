//! The HTTPS listener: its certificate (swapped in place on SIGHUP, the old one kept when the
//! new files do not load), HTTP/2 and HTTP/1.1 by ALPN, and mutual TLS against a truststore.

use super::client_cert::ClientCertCallback;
use super::upstream::{conf_path, pem_certificates};
use crate::config::{ConfigError, ConfigErrors, TlsListenerConf};
use arc_swap::ArcSwap;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::services::listening::Service;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where the listener's certificate, key and truststore are read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `MutualTlsAuthentication.TruststoreUri`: clients must present a certificate that
    /// chains to one of these CAs.
    pub truststore: Option<PathBuf>,
}

/// What a [`Source`] holds, loaded and checked.
pub struct Material {
    key: Arc<CertifiedKey>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Source {
    /// `gateway.json`'s `Tls`, with paths relative to the conf dir; files are checked so that
    /// `apigate check` and a reload report a bad certificate like any other config error.
    pub fn from_conf(
        dir: &std::path::Path,
        conf: Option<&TlsListenerConf>,
        errors: &mut ConfigErrors,
    ) -> Option<Source> {
        let conf = conf?;
        let truststore = conf.mutual_tls_authentication.as_ref().and_then(|m| {
            let uri = m.truststore_uri.as_str();
            if uri.contains("://") && !uri.starts_with("file://") {
                errors.push(ConfigError::new(
                    "gateway.json",
                    "Tls.MutualTlsAuthentication.TruststoreUri",
                    format!("{uri:?}: apigate reads the truststore from a local file"),
                    "download it and give its path (relative to the conf dir, or file://...)",
                ));
                return None;
            }
            Some(conf_path(dir, uri))
        });
        let source = Source {
            cert: conf_path(dir, &conf.cert_file),
            key: conf_path(dir, &conf.key_file),
            truststore,
        };
        if let Err((field, problem)) = source.load() {
            errors.push(ConfigError::new(
                "gateway.json",
                format!("Tls.{field}"),
                problem,
                "give PEM files: CertFile the certificate chain, KeyFile its private key, \
                 TruststoreUri the client CAs (paths relative to the conf dir or absolute)",
            ));
        }
        Some(source)
    }

    /// Reads and checks the files: `Err((field, problem))`.
    pub fn load(&self) -> Result<Material, (&'static str, String)> {
        let read = |field, path: &PathBuf| {
            std::fs::read(path).map_err(|e| (field, format!("cannot read {}: {e}", path.display())))
        };
        let certs: Vec<CertificateDer<'static>> = pem_certificates(&read("CertFile", &self.cert)?)
            .map_err(|e| ("CertFile", format!("{}: {e}", self.cert.display())))?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key: PrivateKeyDer<'static> =
            match rustls_pemfile::private_key(&mut &read("KeyFile", &self.key)?[..]) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    return Err((
                        "KeyFile",
                        format!("{}: holds no private key", self.key.display()),
                    ))
                }
                Err(e) => return Err(("KeyFile", format!("{}: {e}", self.key.display()))),
            };
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(certs, key, &provider)
            .map_err(|e| ("KeyFile", format!("does not fit CertFile: {e}")))?;
        let verifier = match &self.truststore {
            None => None,
            Some(path) => {
                let field = "MutualTlsAuthentication.TruststoreUri";
                let cas = pem_certificates(&read(field, path)?)
                    .map_err(|e| (field, format!("{}: {e}", path.display())))?;
                let mut roots = RootCertStore::empty();
                for ca in cas {
                    roots
                        .add(CertificateDer::from(ca))
                        .map_err(|e| (field, format!("{}: {e}", path.display())))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.into())
                        .build()
                        .map_err(|e| (field, format!("{}: {e}", path.display())))?;
                Some(verifier)
            }
        };
        Ok(Material {
            key: Arc::new(key),
            verifier,
        })
    }
}

/// The listener's certificates: custom domains' own (`domains/*.json` `Tls`), picked by
/// the client's SNI name, and the listener's for every other name.
#[derive(Debug)]
struct Certificates {
    default: Arc<CertifiedKey>,
    /// Lowercased domain name -> its certificate.
    by_name: std::collections::HashMap<String, Arc<CertifiedKey>>,
}

/// The certificates handshakes get, replaced whole on reload.
#[derive(Debug)]
struct Resolver(ArcSwap<Certificates>);

impl Resolver {
    fn new(default: Arc<CertifiedKey>) -> Resolver {
        Resolver(ArcSwap::from_pointee(Certificates {
            default,
            by_name: Default::default(),
        }))
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.0.load();
        // rustls hands SNI names over lowercased (it normalises DNS names).
        let own = hello.server_name().and_then(|n| certs.by_name.get(n));
        Some(own.unwrap_or(&certs.default).clone())
    }
}

/// A domain's certificate chain and key (`domains/*.json` `Tls`), read and checked.
pub type DomainCertificate = Arc<CertifiedKey>;

/// Reads a PEM certificate chain and its key: `Err((field, problem))`.
pub fn domain_certificate(
    cert: PathBuf,
    key: PathBuf,
) -> Result<DomainCertificate, (&'static str, String)> {
    let source = Source {
        cert,
        key,
        truststore: None,
    };
    source.load().map(|m| m.key)
}

/// Serves `certificates` (lowercased domain name -> certificate) to clients that name those
/// domains, from now on: at start-up and after each reload. Without an HTTPS listener they
/// have nothing to serve (said once at load).
pub fn set_domain_certificates(certificates: &[(String, DomainCertificate)]) {
    let Some(live) = LIVE.get() else {
        return;
    };
    let current = live.resolver.0.load();
    live.resolver.0.store(Arc::new(Certificates {
        default: current.default.clone(),
        by_name: certificates.iter().cloned().collect(),
    }));
}

/// The client-certificate check, replaced whole on reload. Whether mutual TLS is on at all
/// is fixed at start-up (Pingora builds the rustls config once).
struct Verifier(ArcSwap<Arc<dyn ClientCertVerifier>>);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl ClientCertVerifier for Verifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional (RFC 8446 4.2.4); the live set cannot be borrowed from here.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .load()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.load().supported_verify_schemes()
    }
}

/// The running listener's state, for reloads.
struct Live {
    /// `--tls-cert/--tls-key` (or the self-signed files): they win over `gateway.json`.
    overrides: Option<(PathBuf, PathBuf)>,
    resolver: Arc<Resolver>,
    verifier: Option<Arc<Verifier>>,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// Adds the HTTPS listener on `addr` to `service`: certificate from `source`, ALPN `h2` and
/// `http/1.1`, mutual TLS when `source` has a truststore, client certificates recorded for
/// `$context.identity.clientCert`.
pub fn add_listener(
    service: &mut Service<impl Sized>,
    addr: &str,
    source: Source,
    overrides: Option<(PathBuf, PathBuf)>,
) -> Result<(), String> {
    let material = source.load().map_err(|(f, p)| format!("Tls.{f}: {p}"))?;
    let resolver = Arc::new(Resolver::new(material.key));
    let verifier = material
        .verifier
        .map(|v| Arc::new(Verifier(ArcSwap::from_pointee(v))));
    let mut settings =
        TlsSettings::with_callbacks(Box::new(ClientCertCallback)).map_err(|e| e.to_string())?;
    settings.set_cert_resolver(resolver.clone());
    if let Some(v) = &verifier {
        settings.set_client_cert_verifier(v.clone());
    }
    settings.enable_h2();
    service.add_tls_with_settings(addr, None, settings);
    let live = Live {
        overrides,
        resolver,
        verifier,
    };
    if LIVE.set(live).is_err() {
        return Err("one HTTPS listener per process".into());
    }
    Ok(())
}

/// The listener's source: `gateway.json`'s `Tls` with the command line's files instead of its
/// own when given.
pub fn effective(conf: Option<&Source>, overrides: Option<&(PathBuf, PathBuf)>) -> Option<Source> {
    match (conf, overrides) {
        (_, Some((cert, key))) => Some(Source {
            cert: cert.clone(),
            key: key.clone(),
            truststore: conf.and_then(|c| c.truststore.clone()),
        }),
        (Some(c), None) => Some(c.clone()),
        (None, None) => None,
    }
}

/// Re-reads the listener's files after a reload of the configuration (`conf`: its new `Tls`).
/// On any error the running certificate and truststore stay.
pub fn reload(conf: Option<&Source>) {
    let Some(live) = LIVE.get() else {
        if conf.is_some() {
            log::warn!("Tls was added to gateway.json: HTTPS starts at the next restart");
        }
        return;
    };
    let Some(source) = effective(conf, live.overrides.as_ref()) else {
        log::warn!("Tls was removed from gateway.json: HTTPS keeps serving until a restart");
        return;
    };
    match source.load() {
        Ok(material) => {
            let current = live.resolver.0.load();
            live.resolver.0.store(Arc::new(Certificates {
                default: material.key,
                by_name: current.by_name.clone(),
            }));
            match (&live.verifier, material.verifier) {
                (Some(v), Some(new)) => v.0.store(Arc::new(new)),
                (None, None) => {}
                _ => log::warn!("turning mutual TLS on or off takes effect at the next restart"),
            }
            log::info!("TLS certificate reloaded");
        }
        Err((field, problem)) => log::error!(
            "TLS reload rejected, the running certificate keeps serving: Tls.{field}: {problem}"
        ),
    }
}

/// `apigate echo --tls-cert --tls-key`: the bundled backend over HTTPS (HTTP/1.1 only, as
/// most backends are), for the example and the tests.
pub fn add_echo_tls(
    service: &mut Service<impl Sized>,
    addr: &str,
    cert: &str,
    key: &str,
) -> Result<(), String> {
    let source = Source {
        cert: cert.into(),
        key: key.into(),
        truststore: None,
    };
    let material = source.load().map_err(|(f, p)| format!("--tls-{f}: {p}"))?;
    let mut settings =
        TlsSettings::with_callbacks(Box::new(ClientCertCallback)).map_err(|e| e.to_string())?;
    settings.set_cert_resolver(Arc::new(Resolver::new(material.key)));
    service.add_tls_with_settings(addr, None, settings);
    Ok(())
}

/// HTTP/2 carries the host in `:authority`, which stands in for `Host` (RFC 9113 8.3.1):
/// copied into `Host` when the client sent none, so `$context.domainName`, `Forwarded`'s
/// `host` and the access log read the same value over HTTP/1.1 and HTTP/2.
pub fn authority_as_host(req: &mut pingora_http::RequestHeader) {
    if req.version != http::Version::HTTP_2 || req.headers.contains_key(http::header::HOST) {
        return;
    }
    if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_string()) {
        let _ = req.insert_header(http::header::HOST, authority);
    }
}
