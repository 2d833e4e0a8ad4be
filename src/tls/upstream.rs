//! TLS towards https integrations: which roots are trusted, which name is checked, and
//! whether anything is checked at all. Pingora's rustls connector does the handshake; this
//! module only fills the peer's options, once per configuration load.

use crate::config::{ConfigError, ConfigErrors, IntegrationTlsConf};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{parse_x509, WrappedX509};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The roots an https integration's certificate must chain to.
pub type Roots = Arc<[WrappedX509]>;

/// The bundled public roots (Mozilla's, from `webpki-root-certs`) and the system store, read
/// once: a machine without a CA bundle (a slim container) still reaches public backends.
fn public_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut ders: Vec<Vec<u8>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| c.to_vec())
            .collect();
        match pingora_core::tls::load_native_certs() {
            Ok(system) => ders.extend(system.into_iter().map(|c| c.to_vec())),
            Err(e) => log::warn!("system CA store unreadable, using the bundled roots: {e}"),
        }
        ders.sort();
        ders.dedup();
        ders
    })
}

/// The certificates (DER) in PEM `text`, or what is wrong with it.
pub fn pem_certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in rustls_pemfile::certs(&mut &text[..]) {
        let der = item.map_err(|e| format!("not PEM: {e}"))?;
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("a certificate does not parse: {e}"))?;
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err("holds no certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(out)
}

/// A path from a configuration file: relative to the conf dir unless absolute.
pub fn conf_path(dir: &Path, path: &str) -> std::path::PathBuf {
    let path = path.strip_prefix("file://").unwrap_or(path);
    dir.join(path)
}

/// The public roots plus `gateway.json`'s `UpstreamCaFile`, if any. Re-read on each load, so
/// a SIGHUP picks up a changed file for new connections.
pub fn load_roots(dir: &Path, ca_file: Option<&str>, errors: &mut ConfigErrors) -> Roots {
    let mut ders: Vec<Vec<u8>> = public_roots().to_vec();
    if let Some(file) = ca_file {
        let path = conf_path(dir, file);
        match std::fs::read(&path).map_err(|e| e.to_string()) {
            Ok(text) => match pem_certificates(&text) {
                Ok(extra) => ders.extend(extra),
                Err(e) => errors.push(ConfigError::new(
                    "gateway.json",
                    "UpstreamCaFile",
                    format!("{}: {e}", path.display()),
                    "give a PEM file of CA certificates",
                )),
            },
            Err(e) => errors.push(ConfigError::new(
                "gateway.json",
                "UpstreamCaFile",
                format!("cannot read {}: {e}", path.display()),
                "give the path of a PEM file, relative to the conf dir or absolute",
            )),
        }
    }
    // Every DER here parsed above (or comes from webpki's own parsed set), so `parse_x509`
    // (which panics on bad input) cannot fail; filter anyway, it is once per load.
    ders.into_iter()
        .filter(|d| x509_parser::parse_x509_certificate(d).is_ok())
        .map(|d| WrappedX509::new(d, parse_x509))
        .collect::<Vec<_>>()
        .into()
}

/// An integration's TLS settings, checked.
#[derive(Clone, Default)]
pub struct PeerTls {
    roots: Option<Roots>,
    server_name: Option<String>,
    insecure: bool,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl PeerTls {
    /// Checks `TlsConfig` of integration `file` (AWS: `ServerNameToVerify` is a DNS name).
    pub fn new(
        file: &str,
        conf: Option<&IntegrationTlsConf>,
        roots: Option<&Roots>,
        errors: &mut ConfigErrors,
    ) -> PeerTls {
        let conf = conf.cloned().unwrap_or_default();
        let server_name = conf.server_name_to_verify.filter(|name| {
            let ok = rustls::pki_types::ServerName::try_from(name.as_str()).is_ok();
            if !ok {
                errors.push(ConfigError::new(
                    file,
                    "TlsConfig.ServerNameToVerify",
                    format!("{name:?} is not a host name"),
                    "write the name the backend's certificate holds, e.g. \"api.example.com\"",
                ));
            }
            ok
        });
        if conf.insecure_skip_verification {
            log::warn!(
                "{file}: TlsConfig.InsecureSkipVerification: the backend's certificate is not \
                 checked; anyone on the path can read and change this integration's traffic"
            );
        }
        PeerTls {
            roots: roots.cloned(),
            server_name,
            insecure: conf.insecure_skip_verification,
        }
    }

    /// Sets `peer`'s TLS options, if it is https. SNI and the checked name are the URI's
    /// host unless `ServerNameToVerify` names another (AWS sends it as SNI too).
    pub fn apply(&self, peer: &mut HttpPeer) {
        if !peer.is_tls() {
            return;
        }
        if let Some(name) = &self.server_name {
            peer.sni.clone_from(name);
        }
        let host = peer.sni.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<std::net::IpAddr>().is_ok() {
            // An IP literal is checked against the certificate's IP SANs; rustls takes it
            // as the server name, and sends no SNI for it (RFC 6066 3).
            peer.sni = host.to_string();
        }
        peer.options.ca = self.roots.clone();
        peer.options.verify_cert = !self.insecure;
        peer.options.verify_hostname = !self.insecure;
    }
}

/// Logs why a connection to an https backend failed (expired, wrong name, unknown issuer:
/// rustls's reason is in the error), since the client only gets a 502.
pub fn log_connect_failure(integration: &str, peer: &HttpPeer, e: &pingora_core::Error) {
    use pingora_core::ErrorType::{InvalidCert, TLSHandshakeFailure};
    if matches!(e.etype(), TLSHandshakeFailure | InvalidCert) {
        log::warn!("integrations/{integration}: TLS to {peer} failed (502): {e}");
    }
}
