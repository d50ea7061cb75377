//! Browser faults: a Chromium killed with SIGKILL or frozen with SIGSTOP opens the instance's
//! breaker, fails the capture with a clear reason instead of hanging, and is replaced by a
//! fresh browser; shutdown leaves no process behind. Each test owns its pool (they break
//! browsers on purpose).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use sentinel_core::Viewport;
use sentinel_resilience::BreakerState;
use sentinel_visual::{BrowserPool, CaptureErrorKind, CaptureRequest, InstanceState, PoolConfig};

use crate::support::*;

fn fault_config() -> PoolConfig {
    let mut c = config();
    c.breaker.reset_timeout = Duration::from_secs(1);
    c.breaker.call_timeout = Some(Duration::from_secs(30));
    c.health_interval = Duration::from_millis(500);
    c.ping_timeout = Duration::from_secs(1);
    c
}

async fn fault_site() -> Site {
    let mut slow = html("<p>slow</p>");
    slow.delay = Duration::from_secs(20);
    serve(vec![("/ok.html", html("<p>ok</p>")), ("/slow.html", slow)]).await
}

fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

/// The `--user-data-dir` of a browser process.
fn profile_of(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&cmdline)
        .split('\0')
        .find_map(|a| a.strip_prefix("--user-data-dir=").map(str::to_owned))
        .unwrap()
}

fn instance(pool: &BrowserPool) -> sentinel_visual::InstanceStats {
    pool.stats().instances.remove(0)
}

/// Retries until the instance's breaker admits probes again and three captures closed it.
async fn recovers(pool: &BrowserPool, site: &Site) {
    let ok = CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile);
    let mut successes = 0;
    for _ in 0..200 {
        match pool.capture(&ok).await {
            Ok(_) => successes += 1,
            Err(e) => assert_eq!(e.kind(), CaptureErrorKind::Unavailable, "{e}"),
        }
        if successes == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(successes, 3, "the pool did not recover");
    assert_eq!(instance(pool).breaker.state, BreakerState::Closed);
}

/// Waits until no process of the browser `pid` (its process group) is left, its profile
/// directory is gone, and a new browser serves the instance.
async fn replaced(pool: &BrowserPool, pid: u32, profile: &str, leftovers: &str) {
    assert!(
        eventually(Duration::from_secs(10), || processes_in_group(pid)
            .is_empty())
        .await,
        "{leftovers}"
    );
    assert!(
        eventually(Duration::from_secs(10), || !std::path::Path::new(profile)
            .exists())
        .await,
        "profile {profile} not removed"
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            let i = instance(pool);
            i.state == InstanceState::Ready && i.pid.is_some_and(|p| p != pid)
        })
        .await,
        "no new browser took over"
    );
}

/// Starts a capture of the slow page and waits until its request reached the site.
async fn capture_in_flight(
    pool: &BrowserPool,
    site: &Site,
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<sentinel_visual::Capture, sentinel_visual::CaptureError>> {
    let before = site.hits.load(Ordering::SeqCst);
    let pool = pool.clone();
    let mut req = CaptureRequest::new(site.url("/slow.html"), Viewport::Desktop);
    req.timeout = timeout;
    let task = tokio::spawn(async move { pool.capture(&req).await });
    let hits = std::sync::Arc::clone(&site.hits);
    assert!(
        eventually(Duration::from_secs(20), || hits.load(Ordering::SeqCst)
            > before)
        .await,
        "the capture never reached the site"
    );
    task
}

#[test]
fn a_killed_browser_fails_the_capture_opens_the_breaker_and_is_replaced() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config()).await;
        pool.capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile))
            .await
            .unwrap();
        let old = instance(&pool);
        let pid = old.pid.unwrap();
        let profile = profile_of(pid);

        let capture = capture_in_flight(&pool, &site, Duration::from_secs(25)).await;
        signal(pid, Signal::KILL);
        let err = capture.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), CaptureErrorKind::BrowserCrashed, "{err}");
        assert!(err.to_string().contains("`local-0` crashed"), "{err}");

        let after = instance(&pool);
        assert!(
            after.breaker.opened >= 1,
            "the breaker opened: {:?}",
            after.breaker
        );
        // Every process of the dead browser is gone and a fresh one serves the instance.
        replaced(
            &pool,
            pid,
            &profile,
            "processes of the killed browser remain",
        )
        .await;
        assert_eq!(instance(&pool).restarts, 1);
        recovers(&pool, &site).await;
        pool.shutdown().await;
    });
}

#[test]
fn a_frozen_browser_is_killed_and_the_capture_fails_instead_of_hanging() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config()).await;
        pool.capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile))
            .await
            .unwrap();
        let pid = instance(&pool).pid.unwrap();
        let profile = profile_of(pid);

        // The page's budget is 3 s; the slow page alone would answer after 20 s.
        let capture = capture_in_flight(&pool, &site, Duration::from_secs(3)).await;
        signal(pid, Signal::STOP);
        let err = capture.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), CaptureErrorKind::BrowserHung, "{err}");
        assert!(instance(&pool).breaker.opened >= 1);
        // SIGKILL ends a stopped process; nothing of it is left.
        replaced(&pool, pid, &profile, "the frozen browser was not killed").await;
        recovers(&pool, &site).await;
        pool.shutdown().await;
    });
}

#[test]
fn a_browser_frozen_while_idle_is_found_by_the_health_ping() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config()).await;
        let pid = instance(&pool).pid.unwrap();
        signal(pid, Signal::STOP);
        assert!(
            eventually(Duration::from_secs(20), || {
                let i = instance(&pool);
                i.restarts == 1 && i.state == InstanceState::Ready
            })
            .await,
            "the idle frozen browser was not replaced"
        );
        recovers(&pool, &site).await;
        pool.shutdown().await;
    });
}

#[test]
fn a_slow_page_is_the_page_s_fault_not_the_browser_s() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config()).await;
        let mut req = CaptureRequest::new(site.url("/slow.html"), Viewport::Desktop);
        req.timeout = Duration::from_secs(2);
        for _ in 0..4 {
            let err = pool.capture(&req).await.unwrap_err();
            assert_eq!(err.kind(), CaptureErrorKind::NavigationTimeout, "{err}");
        }
        let i = instance(&pool);
        assert_eq!(i.breaker.state, BreakerState::Closed);
        assert_eq!(i.restarts, 0);
        pool.shutdown().await;
    });
}

#[test]
fn an_open_breaker_rejects_at_once_with_the_reason() {
    RT.block_on(async {
        let site = fault_site().await;
        let mut config = fault_config();
        config.breaker.reset_timeout = Duration::from_secs(60);
        let pool = pool(config).await;
        let pid = instance(&pool).pid.unwrap();
        signal(pid, Signal::KILL);
        assert!(
            eventually(Duration::from_secs(20), || instance(&pool).breaker.opened
                == 1)
            .await
        );
        let err = pool
            .capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CaptureErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().contains("local-0: circuit breaker open"),
            "{err}"
        );
        assert!(matches!(
            err,
            sentinel_visual::CaptureError::Unavailable {
                retry_after: Some(_),
                ..
            }
        ));
        pool.shutdown().await;
    });
}

#[test]
fn shutdown_leaves_no_chromium_process() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config().with_local_instances(2)).await;
        for _ in 0..2 {
            pool.capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Tablet))
                .await
                .unwrap();
        }
        let browsers: Vec<(u32, String)> = pool
            .stats()
            .instances
            .iter()
            .map(|i| {
                let pid = i.pid.unwrap();
                (pid, profile_of(pid))
            })
            .collect();
        for (pid, _) in &browsers {
            assert!(
                processes_in_group(*pid).len() > 1,
                "a browser is several processes"
            );
        }
        pool.shutdown().await;
        for (pid, p) in &browsers {
            let left = processes_in_group(*pid);
            assert!(left.is_empty(), "left behind: {left:?}");
            assert!(!std::path::Path::new(p).exists(), "profile {p} not removed");
        }
        let err = pool
            .capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Tablet))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CaptureErrorKind::ShuttingDown);
    });
}

#[test]
fn a_pool_that_cannot_launch_says_so() {
    RT.block_on(async {
        let mut config = fault_config();
        config.executable = "/nonexistent/chromium".into();
        let err = BrowserPool::start(config).await.unwrap_err();
        assert!(
            err.to_string().contains("no browser could be started"),
            "{err}"
        );
    });
}

/// Renderer processes of the browser `pid`.
fn renderers(pid: u32) -> std::collections::HashSet<u32> {
    processes_in_group(pid)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
        })
        .collect()
}

#[test]
fn a_crashed_page_fails_its_capture_without_blaming_the_browser() {
    RT.block_on(async {
        let site = fault_site().await;
        let pool = pool(fault_config()).await;
        pool.capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile))
            .await
            .unwrap();
        let pid = instance(&pool).pid.unwrap();
        let before = renderers(pid);

        let capture = capture_in_flight(&pool, &site, Duration::from_secs(25)).await;
        let new: Vec<u32> = renderers(pid).difference(&before).copied().collect();
        assert_eq!(new.len(), 1, "the capture's renderer: {new:?}");
        signal(new[0], Signal::KILL);
        let err = capture.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), CaptureErrorKind::PageCrashed, "{err}");

        let i = instance(&pool);
        assert_eq!((i.restarts, i.pid), (0, Some(pid)), "the browser was kept");
        assert_eq!(i.breaker.state, BreakerState::Closed);
        pool.capture(&CaptureRequest::new(site.url("/ok.html"), Viewport::Mobile))
            .await
            .unwrap();
        pool.shutdown().await;
    });
}
