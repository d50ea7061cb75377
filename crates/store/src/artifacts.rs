//! Artifact storage (screenshots, baselines, diff images): one interface, a local directory
//! by default.

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
