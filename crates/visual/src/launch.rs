//! Starting and stopping a local Chromium process.
//!
//! The pool launches Chromium itself instead of through `chromiumoxide::Browser::launch`, for
//! four reasons: Chromium gets its own process group, so that a crashed, hung or finished
//! browser is removed with every renderer, GPU and utility child in one signal; it dies with
//! the pool's process even when that process never runs its destructors (see
//! [`ChromiumProcess`]); the pool notices an exit at once; and stderr keeps being drained for
//! the process's whole life (Chromium is chatty, and a full pipe would block it).

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;

use rustix::process::{Pid, Signal, kill_process_group};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LaunchError;

/// Flags every local Chromium gets (before the configured extra flags). Each one removes a
/// source of nondeterministic pixels, background traffic or wasted CPU.
pub const FIXED_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    // No traffic of its own: the only requests are the captured pages'.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-pings",
    "--disable-quic",
    // A system proxy would resolve names where the egress policy cannot see them (captures
    // set their own egress proxy per browser context).
    "--no-proxy-server",
    // WebRTC must not send UDP around the egress proxy.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--password-store=basic",
    "--use-mock-keychain",
    "--mute-audio",
    // Stable pixels.
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
    "--disable-lcd-text",
    // Every frame in the page's own renderer, so that request interception on the page's
    // session sees the requests of cross-site iframes too (they would otherwise live in
    // out-of-process frames with sessions of their own). It also saves a renderer per site.
    "--disable-site-isolation-trials",
    // Chromium 156's headless mode opens a browser window per browser context, with two
    // WebUI omnibox popups (`chrome://omnibox-popup.top-chrome/`) in a renderer of their
    // own: a second renderer per capture that nobody sees. The WebUI features turn them off.
    "--disable-features=site-per-process,IsolateOrigins,Translate,MediaRouter,\
     OptimizationHints,BackForwardCache,AcceptCHFrame,HttpsUpgrades,\
     PaintHolding,InterestFeedContentSuggestions,CalculateNativeWinOcclusion,\
     WebUIOmniboxPopup,WebUIOmniboxAimPopup,PreloadTopChromeWebUI,PrewarmWebUIContents",
    // Background pages must render and run timers like foreground ones.
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-ipc-flooding-protection",
    "--disable-hang-monitor",
    "--disable-prompt-on-repost",
    "--remote-debugging-port=0",
];

/// A running local Chromium.
///
/// The process is spawned and waited for by a dedicated *keeper* thread, and started through
/// `setpriv --pdeathsig KILL` when available: the kernel then kills Chromium when the thread
/// that spawned it ends, i.e. when this process dies in any way (a panic with `abort`, a
/// SIGKILL, a test binary that exits without dropping its pool). Without it an orphaned
/// Chromium would run on forever. The keeper thread itself only ends once Chromium has exited,
/// so the signal never fires early; `prctl` is not called from Rust because that needs an
/// `unsafe` `pre_exec` hook.
#[derive(Debug)]
pub(crate) struct ChromiumProcess {
    pid: Option<Pid>,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// The profile directory; removed when the process is gone.
    profile: Option<TempDir>,
    ws_url: String,
    reaped: bool,
}

/// Where `setpriv` (util-linux) is looked for.
const SETPRIV: &str = "/usr/bin/setpriv";

impl ChromiumProcess {
    /// Starts `executable` with the fixed flags, `extra` flags and a fresh profile, and waits
    /// for its DevTools URL.
    pub(crate) async fn launch(
        executable: &Path,
        extra: &[String],
        timeout: Duration,
    ) -> Result<Self, LaunchError> {
        let profile = tempfile::Builder::new()
            .prefix(PROFILE_PREFIX)
            .tempdir()
            .map_err(LaunchError::Profile)?;
        let mut cmd = if Path::new(SETPRIV).exists() {
            let mut c = std::process::Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--"]).arg(executable);
            c
        } else {
            std::process::Command::new(executable)
        };
        cmd.args(FIXED_FLAGS)
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);

        let (spawned_tx, spawned_rx) = oneshot::channel();
        let (exit_tx, exit) = watch::channel(None);
        let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
        let spawn_error = executable.display().to_string();
        std::thread::Builder::new()
            .name("chromium-keeper".into())
            .spawn(move || keep(cmd, spawned_tx, exit_tx, lines_tx))
            .map_err(|source| LaunchError::Spawn {
                executable: spawn_error.clone(),
                source,
            })?;
        let pid = match spawned_rx.await {
            Ok(Ok(pid)) => i32::try_from(pid).ok().and_then(Pid::from_raw),
            Ok(Err(source)) => {
                return Err(LaunchError::Spawn {
                    executable: spawn_error,
                    source,
                });
            }
            Err(_) => {
                return Err(LaunchError::Exited {
                    stderr_tail: "the keeper thread ended".to_owned(),
                });
            }
        };
        let mut process = Self {
            pid,
            exit,
            profile: Some(profile),
            ws_url: String::new(),
            reaped: false,
        };
        let mut tail: VecDeque<String> = VecDeque::with_capacity(8);
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = lines.recv().await {
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ") {
                    return Some(url.to_owned());
                }
                if tail.len() == 8 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => {
                process.ws_url = url;
                let pid = process.pid();
                // Keep logging what Chromium says (the keeper's reader drains the pipe).
                tokio::spawn(async move {
                    while let Some(line) = lines.recv().await {
                        tracing::trace!(target: "chromium", pid, "{line}");
                    }
                });
                Ok(process)
            }
            Ok(None) => {
                process.terminate().await;
                Err(LaunchError::Exited {
                    stderr_tail: Vec::from(tail).join("\n"),
                })
            }
            Err(_) => {
                process.terminate().await;
                Err(LaunchError::Timeout(timeout))
            }
        }
    }

    /// The DevTools WebSocket URL.
    pub(crate) fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// The browser process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid.map(|p| p.as_raw_nonzero().get().unsigned_abs())
    }

    /// A handle that can kill the process group from elsewhere (the capture path kills a
    /// hung browser at once; the supervisor then reaps and replaces it).
    pub(crate) fn killer(&self) -> Killer {
        Killer(self.pid)
    }

    /// Waits for the browser process to exit (a crash when nobody asked it to).
    pub(crate) async fn wait(&mut self) -> Option<ExitStatus> {
        let status = match self.exit.wait_for(Option::is_some).await {
            Ok(s) => *s,
            // The keeper is gone without a status: the process is gone too.
            Err(_) => None,
        };
        self.reaped = true;
        status
    }

    fn kill_group(&self) {
        self.killer().kill();
    }

    /// Gives the browser `grace` to exit by itself (after `Browser.close`), then kills its
    /// whole process group, reaps it and removes the profile.
    pub(crate) async fn shutdown(mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.wait()).await.is_err() {
            tracing::debug!(
                pid = self.pid(),
                "Chromium did not exit in time; killing it"
            );
        }
        self.terminate().await;
    }

    /// Kills the process group, reaps the browser, kills strays and removes the profile.
    pub(crate) async fn terminate(&mut self) {
        self.kill_group();
        if !self.reaped {
            self.wait().await;
        }
        if let Some(profile) = self.profile.take() {
            kill_strays(profile.path());
            wait_gone(profile.path(), Duration::from_secs(3)).await;
            let path = profile.path().to_owned();
            // Removing a profile of a few MB is blocking file IO.
            let removed = tokio::task::spawn_blocking(move || profile.close()).await;
            if !matches!(removed, Ok(Ok(()))) {
                tracing::debug!(path = %path.display(), "could not remove a Chromium profile");
            }
        }
    }
}

/// The keeper thread: spawns Chromium, hands its stderr lines over, waits for its exit.
fn keep(
    mut cmd: std::process::Command,
    spawned: oneshot::Sender<std::io::Result<u32>>,
    exit: watch::Sender<Option<ExitStatus>>,
    lines: mpsc::UnboundedSender<String>,
) {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = spawned.send(Err(e));
            return;
        }
    };
    if let Some(stderr) = child.stderr.take() {
        // A second thread drains stderr; it ends when Chromium closes the pipe.
        let reader = std::thread::Builder::new()
            .name("chromium-stderr".into())
            .spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Nobody listening any more is fine: the pipe must still be drained.
                    let _ = lines.send(line);
                }
            });
        if reader.is_err() {
            tracing::warn!("could not start a thread to read Chromium's output");
        }
    }
    let _ = spawned.send(Ok(child.id()));
    let status = child.wait().ok();
    exit.send_replace(status.or_else(|| Some(std::process::ExitStatus::default())));
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        // Last resort when the pool is dropped without a shutdown (or the runtime goes away).
        if !self.reaped {
            self.kill_group();
        }
        if let Some(profile) = &self.profile {
            kill_strays(profile.path());
        }
    }
}

/// Kills a browser's process group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Killer(Option<Pid>);

impl Killer {
    pub(crate) fn kill(self) {
        if let Some(pid) = self.0 {
            // ESRCH (already gone) is the expected answer after a crash.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

/// Prefix of the profile directories, under the system temporary directory.
const PROFILE_PREFIX: &str = "qa-sentinel-chromium-";

/// Removes profile directories left by pools whose process died without cleaning up (the
/// browsers themselves died with it): older than `min_age` and used by no live process.
pub(crate) fn remove_stale_profiles(min_age: Duration) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(PROFILE_PREFIX)
        {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        let path = entry.path();
        if old && path.is_dir() && processes_of(&path).is_empty() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a stale Chromium profile")
                }
                Err(e) => {
                    tracing::debug!(
                        path = %path.display(),
                        error = %e,
                        "cannot remove a stale profile"
                    )
                }
            }
        }
    }
}

/// Kills processes that are not in the browser's process group but still belong to its
/// profile (Chromium's crashpad handler daemonises into a group of its own).
fn kill_strays(profile: &Path) {
    for pid in processes_of(profile) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Waits (up to `limit`) until no live process of the profile is left: a SIGKILLed process
/// keeps its `/proc` entry while the kernel tears it down.
async fn wait_gone(profile: &Path, limit: Duration) {
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        let left = processes_of(profile);
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= give_up {
            tracing::warn!(
                count = left.len(),
                "Chromium processes still alive after shutdown"
            );
            return;
        }
        for pid in left {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live (non-zombie) processes whose command line mentions the profile directory. Every
/// Chromium process carries its `--user-data-dir`, so this finds a browser's whole tree even
/// after its parent is gone.
fn processes_of(profile: &Path) -> Vec<Pid> {
    let needle = profile.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !cmdline.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        // A zombie holds no memory and no CPU; it is gone once its new parent reaps it.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| {
            matches!(rest.trim_start().as_bytes().first(), Some(b'Z' | b'X'))
        });
        if !zombie {
            found.push(pid);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_well_formed() {
        for f in FIXED_FLAGS {
            assert!(f.starts_with("--"), "{f}");
            assert!(!f.contains(' '), "{f}");
        }
        assert!(FIXED_FLAGS.contains(&"--hide-scrollbars"));
    }
}
