//! Artifact storage (screenshots, baselines, diff images): one interface, a local directory
//! by default, S3-compatible object storage by configuration ([`S3Store`]).

mod s3;

pub use s3::{S3Config, S3Store};

use async_trait::async_trait;
use bytes::Bytes;

/// Errors of an artifact store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// No artifact under that key.
    #[error("artifact not found: {0}")]
    NotFound(String),
    /// A key with `..`, an absolute path or characters outside `[A-Za-z0-9._/-]`.
    #[error("invalid artifact key: {0}")]
    InvalidKey(String),
    /// The backend failed.
    #[error("artifact store error: {0}")]
    Io(String),
}

/// Where artifacts live. Keys are relative paths such as `scans/{scanId}/current.png`.
#[async_trait]
pub trait ArtifactStore: Send + Sync + 'static {
    /// Stores bytes under a key (replacing what was there), durably.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), ArtifactError>;
    /// Reads an artifact.
    async fn get(&self, key: &str) -> Result<Bytes, ArtifactError>;
    /// Copies an artifact to another key (used when a capture is approved as a baseline).
    async fn copy(&self, from: &str, to: &str) -> Result<(), ArtifactError>;
    /// Whether an artifact exists.
    async fn exists(&self, key: &str) -> Result<bool, ArtifactError>;
}

/// Where a scan's images live: `scans/{scan}/{name}` with `name` one of
/// `current.png` (the capture), `baseline.png` (the baseline it was compared with) and
/// `diff.png`. The API serves exactly these, with the scan's permissions.
#[must_use]
pub fn scan_artifact_key(scan: sentinel_core::ScanId, name: &str) -> String {
    format!("scans/{scan}/{name}")
}

/// Where an approved baseline image lives: named after the scan whose capture it is, so
/// baseline objects never change; the store's baseline row points at the current one.
#[must_use]
pub fn baseline_artifact_key(site: sentinel_core::SiteId, scan: sentinel_core::ScanId) -> String {
    format!("baselines/{site}/{scan}.png")
}

/// The longest key accepted (a scan id, a page hash and a file name fit many times over).
const MAX_KEY_LEN: usize = 1024;

/// Checks a key: relative, `/`-separated segments of `[A-Za-z0-9._-]`, none empty and none
/// starting with a dot (which rules out `.`, `..`, hidden files and this store's temporary
/// files), at most 1024 bytes.
///
/// # Errors
/// [`ArtifactError::InvalidKey`] naming the key.
pub fn validate_key(key: &str) -> Result<(), ArtifactError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if valid {
        Ok(())
    } else {
        Err(ArtifactError::InvalidKey(key.to_owned()))
    }
}

/// Artifacts as files under one directory, the default for a single host (or a shared
/// volume). Writes are atomic and durable: a temporary file in the target directory is
/// written, fsynced and renamed over the key, and the directory is fsynced, so a reader or a
/// crash sees the old bytes or the new ones, never a torn file.
#[derive(Clone, Debug)]
pub struct LocalDir {
    root: std::path::PathBuf,
}

impl LocalDir {
    /// Uses (creating if needed) `root` as the artifact directory.
    ///
    /// # Errors
    /// [`ArtifactError::Io`] when the directory cannot be created.
    pub fn new(root: impl Into<std::path::PathBuf>) -> Result<Self, ArtifactError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| ArtifactError::Io(format!("{}: {e}", root.display())))?;
        Ok(Self { root })
    }

    /// The directory.
    #[must_use]
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<std::path::PathBuf, ArtifactError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Runs blocking file-system work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ArtifactError::Io(format!("artifact task failed: {e}")))?
}

fn io_error(key: &str, e: &std::io::Error) -> ArtifactError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ArtifactError::NotFound(key.to_owned())
    } else {
        ArtifactError::Io(format!("{key}: {e}"))
    }
}

/// Writes `fill`'s output to a temporary file beside `path`, fsyncs it, renames it over
/// `path` and fsyncs the directory so that the rename itself is durable.
fn write_atomically(
    key: &str,
    path: &std::path::Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), ArtifactError> {
    let dir = path
        .parent()
        .ok_or_else(|| ArtifactError::InvalidKey(key.to_owned()))?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(key, &e))?;
    // The leading dot keeps temporary files out of the key space (keys cannot start a
    // segment with a dot), and `tempfile` removes the file if anything below fails.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| io_error(key, &e))?;
    fill(tmp.as_file_mut()).map_err(|e| io_error(key, &e))?;
    tmp.as_file().sync_all().map_err(|e| io_error(key, &e))?;
    tmp.persist(path).map_err(|e| io_error(key, &e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(key, &e))
}

#[async_trait]
impl ArtifactStore for LocalDir {
    /// The content type is not stored: keys carry an extension, and a file server derives
    /// the type from it.
    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<(), ArtifactError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || write_atomically(&key, &path, |f| std::io::Write::write_all(f, &bytes)))
            .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, ArtifactError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| io_error(&key, &e))
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), ArtifactError> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        let (from, to) = (from.to_owned(), to.to_owned());
        blocking(move || {
            let mut input = std::fs::File::open(&src).map_err(|e| io_error(&from, &e))?;
            write_atomically(&to, &dst, |f| std::io::copy(&mut input, f).map(|_| ()))
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, ArtifactError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&key, &e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store() -> (tempfile::TempDir, LocalDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path().join("artifacts")).unwrap();
        (dir, store)
    }

    #[test]
    fn keys_are_validated() {
        for ok in ["a.png", "scans/0190a5d2/current.png", "a-b_c.D/e.f", "x"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "..",
            "a//b",
            "a/",
            ".hidden",
            "a/.tmp-123",
            "a\\b",
            "a b",
            "a\0b",
            "é.png",
            "c:/x",
        ] {
            assert!(
                matches!(validate_key(bad), Err(ArtifactError::InvalidKey(_))),
                "{bad:?}"
            );
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[tokio::test]
    async fn put_get_copy_exists() {
        let (_dir, store) = store();
        assert!(!store.exists("scans/1/current.png").await.unwrap());
        assert!(matches!(
            store.get("scans/1/current.png").await,
            Err(ArtifactError::NotFound(_))
        ));
        store
            .put(
                "scans/1/current.png",
                Bytes::from_static(b"one"),
                "image/png",
            )
            .await
            .unwrap();
        assert!(store.exists("scans/1/current.png").await.unwrap());
        assert_eq!(store.get("scans/1/current.png").await.unwrap(), "one");
        store
            .put(
                "scans/1/current.png",
                Bytes::from_static(b"two"),
                "image/png",
            )
            .await
            .unwrap();
        assert_eq!(store.get("scans/1/current.png").await.unwrap(), "two");
        store
            .copy("scans/1/current.png", "baselines/s/p.png")
            .await
            .unwrap();
        assert_eq!(store.get("baselines/s/p.png").await.unwrap(), "two");
        assert!(matches!(
            store.copy("nope.png", "x.png").await,
            Err(ArtifactError::NotFound(_))
        ));
        assert!(!store.exists("x.png").await.unwrap());
        assert!(matches!(
            store.put("../escape.png", Bytes::new(), "image/png").await,
            Err(ArtifactError::InvalidKey(_))
        ));
        assert!(matches!(
            store.get("/etc/passwd").await,
            Err(ArtifactError::InvalidKey(_))
        ));
    }

    #[tokio::test]
    async fn writes_leave_no_temporary_files() {
        let (_dir, store) = store();
        let big = Bytes::from(vec![7u8; 1 << 20]);
        store
            .put("a/b.bin", big.clone(), "application/octet-stream")
            .await
            .unwrap();
        store.copy("a/b.bin", "a/c.bin").await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(store.root().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["b.bin", "c.bin"]);
        assert_eq!(store.get("a/c.bin").await.unwrap(), big);
    }

    #[tokio::test]
    async fn concurrent_writers_never_expose_a_torn_file() {
        let (_dir, store) = store();
        let a = Bytes::from(vec![b'a'; 256 * 1024]);
        let b = Bytes::from(vec![b'b'; 256 * 1024]);
        store.put("k.bin", a.clone(), "x").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let bytes = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (a, b) = (a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    store.put("k.bin", bytes.clone(), "x").await.unwrap();
                    let read = store.get("k.bin").await.unwrap();
                    assert!(read == a || read == b, "torn read of {} bytes", read.len());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    proptest! {
        /// Whatever the validator accepts stays inside the root: only normal path components.
        #[test]
        fn accepted_keys_stay_inside_the_root(key in "[A-Za-z0-9._/\\\\-]{0,40}") {
            if validate_key(&key).is_ok() {
                let path = std::path::Path::new("/root").join(&key);
                prop_assert!(path.starts_with("/root"));
                for c in std::path::Path::new(&key).components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)), "{key:?}");
                }
            }
        }
    }
}
