//! Artifacts in S3-compatible object storage (AWS S3, MinIO, Ceph, …), for several hosts
//! sharing screenshots and baselines.
//!
//! rusty-s3 signs the requests (sans-IO, no SDK of its own) and reqwest sends them. Objects
//! are addressed path-style (`endpoint/bucket/key`), which every S3-compatible server accepts.

use super::{ArtifactError, ArtifactStore, validate_key};
use async_trait::async_trait;
use bytes::Bytes;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::time::Duration;

/// How long a signed request stays valid (it is sent at once).
const SIGNATURE_TTL: Duration = Duration::from_secs(60);

/// The S3-compatible artifact store.
#[derive(Clone)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    client: reqwest::Client,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket.name())
            .field("url", &self.bucket.base_url().as_str())
            .finish()
    }
}

/// Connection settings of an [`S3Store`].
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `http(s)://host[:port][/prefix]`.
    pub endpoint: String,
    /// The bucket (created when missing).
    pub bucket: String,
    /// The region used in signatures.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

fn io(key: &str, what: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Io(format!("{key}: {what}"))
}

impl S3Store {
    /// Connects (creating the bucket when it does not exist yet).
    pub async fn connect(config: &S3Config) -> Result<Self, ArtifactError> {
        let endpoint = config.endpoint.parse().map_err(|e| io("endpoint", e))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| io("bucket", e))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| io("client", e))?;
        let store = Self {
            bucket,
            credentials: Credentials::new(&config.access_key, &config.secret_key),
            client,
        };
        store.ensure_bucket().await?;
        Ok(store)
    }

    async fn ensure_bucket(&self) -> Result<(), ArtifactError> {
        let head = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(SIGNATURE_TTL);
        let res = self
            .client
            .head(head)
            .send()
            .await
            .map_err(|e| io("bucket", e))?;
        if res.status().is_success() {
            return Ok(());
        }
        let create = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(SIGNATURE_TTL);
        let res = self
            .client
            .put(create)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(|e| io("bucket", e))?;
        // 409: someone else created it meanwhile.
        if res.status().is_success() || res.status() == reqwest::StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(io(
                "bucket",
                format!("creating the bucket failed: {}", res.status()),
            ))
        }
    }
}

#[async_trait]
impl ArtifactStore for S3Store {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), ArtifactError> {
        validate_key(key)?;
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let res = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .map_err(|e| io(key, e))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(io(key, format!("PUT answered {}", res.status())))
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, ArtifactError> {
        validate_key(key)?;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let res = self.client.get(url).send().await.map_err(|e| io(key, e))?;
        match res.status() {
            s if s.is_success() => res.bytes().await.map_err(|e| io(key, e)),
            reqwest::StatusCode::NOT_FOUND => Err(ArtifactError::NotFound(key.to_owned())),
            s => Err(io(key, format!("GET answered {s}"))),
        }
    }

    /// Copied through this process (GET then PUT): artifacts are a few megabytes at most,
    /// and it works the same on every S3-compatible server.
    async fn copy(&self, from: &str, to: &str) -> Result<(), ArtifactError> {
        let bytes = self.get(from).await?;
        let content_type = if to.ends_with(".png") {
            "image/png"
        } else {
            "application/octet-stream"
        };
        self.put(to, bytes, content_type).await
    }

    async fn exists(&self, key: &str) -> Result<bool, ArtifactError> {
        validate_key(key)?;
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let res = self.client.head(url).send().await.map_err(|e| io(key, e))?;
        match res.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            s => Err(io(key, format!("HEAD answered {s}"))),
        }
    }
}
