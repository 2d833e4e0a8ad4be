//! `--tls-self-signed`: a certificate for `localhost`, `127.0.0.1` and `::1` made at start-up
//! and written with its key to a directory the gateway prints, so a client can trust it
//! (`curl --cacert DIR/cert.pem`).

use std::path::{Path, PathBuf};

/// Makes the certificate and key and writes them as `cert.pem` and `key.pem` in `dir`
/// (created, mode 0700: it holds a private key). Returns (cert, key) paths. Written again
/// at each start, so a restarted gateway's clients need the new `cert.pem`.
pub fn write(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "apigate self-signed (localhost)");
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    create_private_dir(dir).map_err(|e| format!("--tls-self-signed: {}: {e}", dir.display()))?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((cert_path, key_path))
}

/// The default directory: one per listen port, under the temp dir.
pub fn default_dir(listen: &str) -> PathBuf {
    let port = listen.rsplit(':').next().unwrap_or("0");
    std::env::temp_dir().join(format!("apigate-self-signed-{port}"))
}

/// Creates `dir` mode 0700, or accepts it if it already is a directory of this user that
/// nobody else can enter: the temp dir is shared, and a directory (or symlink) planted there
/// by someone else must not receive the private key.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => {
            let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
            if !meta.is_dir() || Some(meta.uid()) != me || meta.mode() & 0o077 != 0 {
                return Err("exists and is not a private directory of this user: remove it".into());
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| e.to_string()),
    }
}

/// Writes a new file (an old one is removed first, and a symlink is never followed).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)
}
