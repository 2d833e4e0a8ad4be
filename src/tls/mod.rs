//! TLS, through Pingora's rustls support (ring as the crypto provider: no C toolchain or
//! system OpenSSL needed). `upstream`: https integrations (roots, names, verification);
//! `listener`: the HTTPS listener (certificate reload, HTTP/2 by ALPN, mutual TLS);
//! `client_cert`: `$context.identity.clientCert`; `self_signed`: `--tls-self-signed`.

pub mod client_cert;
pub mod listener;
pub mod self_signed;
#[cfg(test)]
mod tests;
pub mod upstream;

use std::path::PathBuf;

/// `apigate serve`'s TLS flags.
#[derive(clap::Args, Debug, Default)]
pub struct TlsFlags {
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); overrides gateway.json.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate for localhost made now, written to a printed directory.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
}

impl TlsFlags {
    /// Adds the API listener on `listen` to `service`: HTTPS when the flags or `gateway.json`
    /// ask for it (returns `Some("https")`); `None`: the caller adds a plain listener.
    pub fn add_listener<A>(
        &self,
        service: &mut pingora_core::services::listening::Service<A>,
        listen: &str,
        settings: &crate::table::Settings,
    ) -> Result<Option<&'static str>, String> {
        let overrides = if self.tls_self_signed {
            let dir = self_signed::default_dir(listen);
            let (cert, key) = self_signed::write(&dir)?;
            println!(
                "apigate: self-signed certificate for localhost in {}: try curl --cacert {} https://localhost:{}/",
                dir.display(),
                cert.display(),
                listen.rsplit(':').next().unwrap_or("")
            );
            Some((cert, key))
        } else {
            self.tls_cert.clone().zip(self.tls_key.clone())
        };
        match listener::effective(settings.tls.as_ref(), overrides.as_ref()) {
            Some(source) => {
                listener::add_listener(service, listen, source, overrides)?;
                Ok(Some("https"))
            }
            None => Ok(None),
        }
    }
}
