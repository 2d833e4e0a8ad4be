//! `--tls-self-signed`: a certificate for `localhost`, `127.0.0.1` and `::1` made at start-up
//! and written with its key to a directory the gateway prints, so a client can trust it
//! (`curl --cacert DIR/cert.pem`).

use std::path::{Path, PathBuf};

/// Makes the certificate and key and writes them as `cert.pem` and `key.pem` in `dir`
/// (created, mode 0700: it holds a private key). Returns (cert, key) paths.
pub fn write(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "apigate self-signed (localhost)");
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((cert_path, key_path))
}

/// The default directory: one per listen port, under the temp dir.
pub fn default_dir(listen: &str) -> PathBuf {
    let port = listen.rsplit(':').next().unwrap_or("0");
    std::env::temp_dir().join(format!("apigate-self-signed-{port}"))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
