//! The S3 artifact store against a real S3-compatible server on loopback (moto's server,
//! `pip install 'moto[server]'`; `.ci/run` installs it). The test fails, not skips, when the
//! server cannot be started: point `SENTINEL_TEST_MOTO_SERVER` at its `moto_server` script.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use sentinel_store::artifacts::{ArtifactError, ArtifactStore, S3Config, S3Store};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn moto() -> Moto {
    let bin =
        std::env::var("SENTINEL_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("an S3-compatible server is required: cannot start {bin}: {e}"));
    let moto = Moto(child, port);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start on port {port}");
}

#[tokio::test]
async fn put_get_copy_exists_against_s3() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = moto().await;
    let store = S3Store::connect(&S3Config {
        endpoint: format!("http://127.0.0.1:{}", server.1),
        bucket: "qa-artifacts".into(),
        region: "us-east-1".into(),
        access_key: "test".into(),
        secret_key: "test".into(),
    })
    .await
    .unwrap();
    let png = Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really");
    assert!(!store.exists("scans/a/current.png").await.unwrap());
    store
        .put("scans/a/current.png", png.clone(), "image/png")
        .await
        .unwrap();
    assert!(store.exists("scans/a/current.png").await.unwrap());
    assert_eq!(store.get("scans/a/current.png").await.unwrap(), png);
    store
        .copy("scans/a/current.png", "baselines/s/page.png")
        .await
        .unwrap();
    assert_eq!(store.get("baselines/s/page.png").await.unwrap(), png);
    // Replacing works, missing keys are NotFound, bad keys never reach the server.
    store
        .put(
            "scans/a/current.png",
            Bytes::from_static(b"v2"),
            "image/png",
        )
        .await
        .unwrap();
    assert_eq!(
        store.get("scans/a/current.png").await.unwrap(),
        Bytes::from_static(b"v2")
    );
    assert!(matches!(
        store.get("scans/nope.png").await,
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        store.put("../escape", Bytes::new(), "x").await,
        Err(ArtifactError::InvalidKey(_))
    ));
    // A second connection to the existing bucket sees the same objects.
    let again = S3Store::connect(&S3Config {
        endpoint: format!("http://127.0.0.1:{}", server.1),
        bucket: "qa-artifacts".into(),
        region: "us-east-1".into(),
        access_key: "test".into(),
        secret_key: "test".into(),
    })
    .await
    .unwrap();
    assert_eq!(again.get("baselines/s/page.png").await.unwrap(), png);
}
