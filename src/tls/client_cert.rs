//! The client certificate of a mutual-TLS connection, as AWS exposes it in
//! `$context.identity.clientCert.*`: read once per connection, when the handshake completes,
//! and shared by every request on it.

use async_trait::async_trait;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::tls::TlsRef;
use std::any::Any;
use std::sync::Arc;

/// What a connection's TLS handshake left for the requests on it.
#[derive(Debug, Default)]
pub struct ConnectionTls {
    pub client_cert: Option<ClientCert>,
}

/// `$context.identity.clientCert`, in AWS's formats.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    pub pem: String,
    /// RFC 4514 order as x509-parser prints it, e.g. `CN=client,O=Example`.
    pub subject_dn: String,
    pub issuer_dn: String,
    /// Colon-separated hex, e.g. `1a:2b`.
    pub serial_number: String,
    /// `May 28 12:30:02 2019 GMT`, as AWS writes validity dates.
    pub not_before: String,
    pub not_after: String,
}

/// A field of `$context.identity.clientCert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertField {
    Pem,
    SubjectDn,
    IssuerDn,
    SerialNumber,
    NotBefore,
    NotAfter,
}

impl ClientCertField {
    /// Every spelling after `$context.`.
    pub const NAMES: &'static [(&'static str, ClientCertField)] = &[
        ("identity.clientCert.clientCertPem", ClientCertField::Pem),
        ("identity.clientCert.subjectDN", ClientCertField::SubjectDn),
        ("identity.clientCert.issuerDN", ClientCertField::IssuerDn),
        (
            "identity.clientCert.serialNumber",
            ClientCertField::SerialNumber,
        ),
        (
            "identity.clientCert.validity.notBefore",
            ClientCertField::NotBefore,
        ),
        (
            "identity.clientCert.validity.notAfter",
            ClientCertField::NotAfter,
        ),
    ];
}

impl ClientCert {
    /// Parses a DER certificate; `None` if it does not parse (the handshake verified it, so
    /// this only happens for certificates rustls accepts and x509-parser does not).
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let serial = cert
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Some(ClientCert {
            pem: pem(der),
            subject_dn: cert.subject().to_string(),
            issuer_dn: cert.issuer().to_string(),
            serial_number: serial,
            not_before: aws_time(&cert.validity().not_before),
            not_after: aws_time(&cert.validity().not_after),
        })
    }

    pub fn field(&self, f: ClientCertField) -> &str {
        match f {
            ClientCertField::Pem => &self.pem,
            ClientCertField::SubjectDn => &self.subject_dn,
            ClientCertField::IssuerDn => &self.issuer_dn,
            ClientCertField::SerialNumber => &self.serial_number,
            ClientCertField::NotBefore => &self.not_before,
            ClientCertField::NotAfter => &self.not_after,
        }
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----");
    out
}

fn aws_time(t: &x509_parser::time::ASN1Time) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = t.to_datetime();
    format!(
        "{} {:02} {:02}:{:02}:{:02} {} GMT",
        MONTHS[usize::from(u8::from(d.month())) - 1],
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

/// Pingora's handshake-complete hook: stores the connection's [`ConnectionTls`] in its TLS
/// digest, where every request on the connection finds it.
pub struct ClientCertCallback;

#[async_trait]
impl TlsAccept for ClientCertCallback {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let client_cert = tls.peer_certificate_der().and_then(ClientCert::from_der);
        Some(Arc::new(ConnectionTls { client_cert }))
    }
}

/// The connection's TLS facts, or `None` for a plain connection.
pub fn of_session(
    session: &pingora_proxy::Session,
) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
    session.digest()?.ssl_digest.clone()
}

/// The client certificate of the connection `digest` belongs to.
pub fn client_cert(digest: &pingora_core::protocols::tls::SslDigest) -> Option<&ClientCert> {
    digest
        .extension
        .get::<ConnectionTls>()
        .and_then(|c| c.client_cert.as_ref())
}
