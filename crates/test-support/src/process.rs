//! Child processes of the tests (servers, Redis nodes): killed outright, like a crash, or
//! asked to stop.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends `signal` (a name such as `TERM` or `STOP`) to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Kills the process with SIGKILL (no cleanup at all) and reaps it; nothing if none runs.
pub fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Sends SIGTERM and waits at most `timeout` for the exit; its exit code (`None`: none was
/// running, it had to be killed, or it died of a signal).
pub fn terminate(child: &mut Option<Child>, timeout: Duration) -> Option<i32> {
    let mut c = child.take()?;
    send_signal(c.id(), "TERM");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = c.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
