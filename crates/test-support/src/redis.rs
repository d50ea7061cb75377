//! Throwaway servers for distributed-mode tests, on free loopback ports: a standalone
//! `redis-server`, a three-master Redis Cluster, and a PostgreSQL server of its own (for
//! outage tests: the machine's shared PostgreSQL on 5432 and Redis on 6379 are never
//! stopped, other suites use them).
//!
//! Each server can be stopped (`kill -9`: a crash, nothing saved), started again on the same
//! port with the same state directory, paused (`SIGSTOP`: the worst case, a server that
//! accepts connections and never answers) and resumed. Everything is killed and deleted
//! when the value is dropped.
//!
//! Redis servers run with `KEYS` renamed away, so any use of it by the code under test fails
//! loudly (invalidation must never enumerate keys).

use crate::process::send_signal;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port `p` such that `p + 10000` (the Redis Cluster bus port) is free too.
#[must_use]
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

/// Sends one inline command and returns the raw reply (enough for PING and CLUSTER INFO).
fn raw_command(port: u16, command: &str, timeout: Duration) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    // A bulk reply may arrive in pieces: read until the socket is quiet.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                s.set_read_timeout(Some(Duration::from_millis(50))).ok()?;
            }
            Err(_) => break,
        }
    }
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    cluster: bool,
}

impl RedisServer {
    /// Starts a standalone server on a free port and waits until it answers.
    #[must_use]
    pub fn start() -> Self {
        Self::start_node(false)
    }

    fn start_node(cluster: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Self {
            port: free_port_pair(),
            dir,
            child: None,
            cluster,
        };
        s.write_config();
        s.resume_process();
        s
    }

    fn write_config(&self) {
        let mut conf = format!(
            "bind 127.0.0.1\nport {}\nsave \"\"\nappendonly no\ndir {}\n\
             rename-command KEYS \"\"\nprotected-mode no\nlogfile redis.log\n",
            self.port,
            self.dir.path().display()
        );
        if self.cluster {
            conf.push_str(
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000\n\
                 cluster-require-full-coverage yes\n",
            );
        }
        std::fs::write(self.config_path(), conf).expect("writing redis.conf");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id while running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it answers `PING` now.
    #[must_use]
    pub fn is_up(&self) -> bool {
        raw_command(self.port, "PING", Duration::from_millis(500))
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Starts the process (again) on the same port and directory; waits until it answers.
    fn resume_process(&mut self) {
        let child = Command::new("redis-server")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for distributed-mode tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.is_up() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start; log:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (`SIGKILL`: a crash; its data is gone, a cluster node keeps its
    /// `nodes.conf`).
    pub fn stop(&mut self) {
        crate::process::kill9(&mut self.child);
    }

    /// Starts it again after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        self.stop();
        self.resume_process();
    }

    /// Freezes it (`SIGSTOP`): connections stay open and nothing is answered.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, "STOP");
        }
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, "CONT");
        }
    }

    /// Runs `redis-cli` against it with `args`; returns standard output.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is required for distributed-mode tests");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Resume first so that a paused server's sockets close promptly.
        self.resume();
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas), slots spread by `redis-cli --cluster
/// create`.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes, joins them and waits for `cluster_state:ok`.
    #[must_use]
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_node(true)).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is required for distributed-mode tests");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// `REDIS_URL` for the cluster: every node, comma-separated.
    #[must_use]
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether every node reports `cluster_state:ok`.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.nodes.iter().all(|n| {
            raw_command(n.port, "CLUSTER INFO", Duration::from_millis(500))
                .is_some_and(|r| r.contains("cluster_state:ok"))
        })
    }

    /// Waits (at most 30 s) until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills every node.
    pub fn stop(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
    }

    /// Starts every node again (same ports, same `nodes.conf`) and waits for the cluster.
    pub fn restart(&mut self) {
        for n in &mut self.nodes {
            n.restart();
        }
        self.wait_ok();
    }

    /// Freezes every node.
    pub fn pause(&self) {
        self.nodes.iter().for_each(RedisServer::pause);
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&self) {
        self.nodes.iter().for_each(RedisServer::resume);
    }
}

/// A PostgreSQL server of the test's own (`initdb` in a temporary directory, on a free
/// port), so that a test may stop it. Trust authentication, user `postgres`. `fsync=off`
/// (only an operating-system crash could lose data) but `synchronous_commit` stays on: a
/// server crash (`stop`) loses no committed transaction, which durability tests rely on.
#[derive(Debug)]
pub struct PgServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").is_file());
    found.sort();
    found
        .pop()
        .expect("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are required")
}

/// Whether this process runs as root (`id -u` avoids a libc dependency).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// PostgreSQL refuses to run as root: then its tools run as the `postgres` user.
fn as_postgres(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl PgServer {
    /// Creates a cluster with `initdb` and starts it; waits until it accepts connections.
    #[must_use]
    pub fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("qa-pg-")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the PostgreSQL directory failed");
        }
        let data = dir.path().join("data");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            port: free_port_pair(),
            dir,
            bin,
            running: false,
        };
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again); waits until it accepts connections.
    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, every
    /// connection cut, as in a crash).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        self.running = false;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
