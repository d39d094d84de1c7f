//! Entra workload identity federation's assertion: a token read from a file (SPEC §12).

use super::SignerError;

/// A federated token file (Kubernetes projected service-account token), re-read when it
/// changes: Kubernetes rotates it by swapping the `..data` symlink, an atomic rename.
pub struct FederatedToken {
    /// The file.
    pub path: std::path::PathBuf,
    held: std::sync::Mutex<Option<(FileStamp, std::sync::Arc<str>)>>,
}

/// What identifies a file's content cheaply (size, modification time, inode), following
/// symlinks.
type FileStamp = (u64, Option<std::time::SystemTime>, u64);

fn stamp(path: &std::path::Path) -> std::io::Result<FileStamp> {
    let m = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Ok((m.len(), m.modified().ok(), inode))
}

impl FederatedToken {
    /// The token file at `path` (not read yet).
    pub fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            held: std::sync::Mutex::new(None),
        }
    }

    /// The token now: the held one while the file is unchanged, else the file read again.
    pub fn current(&self) -> Result<std::sync::Arc<str>, SignerError> {
        let unreadable =
            |e: std::io::Error| SignerError::Federated(format!("{}: {e}", self.path.display()));
        let now = stamp(&self.path).map_err(unreadable)?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, token)) = held.as_ref() {
            if *at == now {
                return Ok(token.clone());
            }
        }
        let text = std::fs::read_to_string(&self.path).map_err(unreadable)?;
        let token = text.trim();
        if token.is_empty() || token.len() > 64 * 1024 || token.contains(char::is_whitespace) {
            return Err(SignerError::Federated(format!(
                "{} does not hold one token",
                self.path.display()
            )));
        }
        let token: std::sync::Arc<str> = token.into();
        *held = Some((now, token.clone()));
        Ok(token)
    }
}
