//! The one way a file named by the configuration is read: regular files only, bounded in
//! size, and never blocking. A route file that is a FIFO would hang `check` (and, on
//! SIGHUP, the reloader for good); a symlink to `/dev/zero` would fill memory. So every
//! read looks at the file's type before opening it, opens with `O_NONBLOCK` (opening a FIFO
//! waits for a writer otherwise, open(2)), checks the type of what was opened with `fstat`
//! (the path may have been swapped in between), and reads at most `MAX_FILE_BYTES + 1`.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The size cap of every configuration file (resource files, `gateway.json`, `api.json`,
/// the bundle, `JwksFile`). Generous: a bundle of 300 routes and integrations (AWS's
/// default quota per API) is well under 1 MiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The cap on one configuration directory as a whole: past it, further files are refused.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// Why a configuration file could not be read, as shown after `cannot read:`.
#[derive(Debug)]
pub enum ReadError {
    /// Something other than a regular file: what it is.
    NotRegular(&'static str),
    TooLarge,
    /// The files read before this one already reach `MAX_TOTAL_BYTES`.
    TotalTooLarge,
    NotUtf8,
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotRegular(kind) => write!(f, "{kind}, not a regular file"),
            ReadError::TooLarge => write!(
                f,
                "larger than {} MiB, the cap for a configuration file",
                MAX_FILE_BYTES >> 20
            ),
            ReadError::TotalTooLarge => write!(
                f,
                "the configuration's files exceed {} MiB together, the cap for a configuration",
                MAX_TOTAL_BYTES >> 20
            ),
            ReadError::NotUtf8 => write!(f, "not UTF-8 text"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl ReadError {
    /// The fix to print with this error.
    pub fn fix(&self) -> String {
        match self {
            ReadError::NotRegular(_) => {
                "point it at a regular JSON file (a symlink to one is fine)".into()
            }
            ReadError::TooLarge => {
                format!("split it or trim it below {} MiB", MAX_FILE_BYTES >> 20)
            }
            ReadError::TotalTooLarge => {
                "remove files that are not part of the configuration".into()
            }
            ReadError::NotUtf8 => "save the file as UTF-8 JSON".into(),
            ReadError::Io(_) => "check that the file exists and is readable".into(),
        }
    }
}

/// What kind of file `meta` describes, for messages; `None` for a regular file.
pub fn irregular_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// Reads the configuration file at `path` (symlinks followed) as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    // Refused before opening: opening a device can itself have effects (a tape rewinds).
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(kind) = irregular_kind(&meta) {
        return Err(ReadError::NotRegular(kind));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    read_opened(file)
}

/// Reads an opened file after checking what it is: bounded, whatever the file claims.
fn read_opened(file: File) -> Result<String, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(kind) = irregular_kind(&meta) {
        return Err(ReadError::NotRegular(kind));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    // The size may have grown since fstat (a file being written): read one byte past the
    // cap to tell, never more.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("apigate-read-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_regular_files_and_symlinks_to_them() {
        let dir = temp("regular");
        std::fs::write(dir.join("a.json"), "{}").unwrap();
        std::os::unix::fs::symlink(dir.join("a.json"), dir.join("b.json")).unwrap();
        assert_eq!(read_text(&dir.join("a.json")).unwrap(), "{}");
        assert_eq!(read_text(&dir.join("b.json")).unwrap(), "{}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_devices_fifos_directories_and_oversized_files() {
        let dir = temp("irregular");
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).unwrap();
        let e = read_text(&dir.join("zero.json")).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        let fifo = dir.join("fifo.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_text(&fifo),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_text(&dir),
            Err(ReadError::NotRegular("a directory"))
        ));
        let big = dir.join("big.json");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert!(matches!(read_text(&big), Err(ReadError::TooLarge)));
        std::fs::write(dir.join("bin.json"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text(&dir.join("bin.json")),
            Err(ReadError::NotUtf8)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
