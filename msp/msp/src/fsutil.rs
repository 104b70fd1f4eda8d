//! Durable file writes: atomic replace and private key files (mode 0600, in directories
//! created mode 0700).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory is
/// written and fsynced, renamed over `path`, then the directory is fsynced. A crash leaves
/// either the old or the new content, never a mix. `private` creates the file with mode 0600
/// and missing directories with mode 0700.
///
/// # Errors
/// [`Error::Io`] with the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir(dir, private)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let mut file = open_new(&tmp, private)?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Makes `dir` a directory for private files: created mode 0700 (missing parents too), or
/// tightened to 0700 if it exists. For directories that hold keys next to
/// public files (`tls/`, a CA's directory), which [`write_atomic`] would otherwise create
/// with the default mode when it writes a public file first.
///
/// # Errors
/// [`Error::Io`] with the path that failed.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    create_dir(dir, true)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents; with `private`, those it creates get mode 0700 (a
/// keystore directory), existing ones are left as they are.
fn create_dir(dir: &Path, private: bool) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))
}

fn open_new(path: &Path, private: bool) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let file = opts.open(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    if private {
        // The mode above applies only to new files; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(file)
}

/// Reads a whole file, with the path in the error.
///
/// # Errors
/// [`Error::Io`].
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Regular files of a directory, sorted by name; an absent directory is empty.
///
/// # Errors
/// [`Error::Io`] if the directory exists but cannot be listed.
pub fn files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if path.is_file() && !name.to_string_lossy().starts_with('.') {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_created_in_private_directories() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("msp/keystore/priv_sk");
        write_atomic(&key, b"key", true).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().unwrap()), 0o700);
        let cert = dir.path().join("msp/signcerts/cert.pem");
        write_atomic(&cert, b"cert", false).unwrap();
        assert_eq!(mode(&cert), 0o644);
    }

    #[test]
    fn private_directories_are_created_or_tightened_to_0700() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("node/tls");
        create_private_dir(&tls).unwrap();
        assert_eq!(mode(&tls), 0o700);
        fs::set_permissions(&tls, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&tls).unwrap();
        assert_eq!(mode(&tls), 0o700);
    }
}
