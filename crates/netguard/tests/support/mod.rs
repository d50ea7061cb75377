//! Loopback servers for the netguard tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;

/// Serves `app` on `ip:0` and returns the bound address.
pub async fn serve(app: Router, ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A listener that only counts connection attempts: the proof that nothing connected.
#[derive(Clone)]
pub struct Canary {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Canary {
    pub async fn bind(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Runs the calling test again inside a private user and network namespace, where only a
/// fresh loopback interface exists: whatever the code under test does, no packet can leave.
/// Returns `true` when the caller is already inside and should run its body; otherwise it
/// runs the child, asserts that it passed, and returns `false`.
pub fn in_private_netns(test_name: &str) -> bool {
    const MARKER: &str = "SENTINEL_TEST_IN_NETNS";
    if std::env::var_os(MARKER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(MARKER, "1")
        .output()
        .expect("unshare(1) must be installed: hostile-address tests only run isolated");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "isolated run of {test_name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the isolated run did not execute {test_name}:\n{stdout}"
    );
    false
}
