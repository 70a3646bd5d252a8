//! Private Redis servers for the integration tests, on free loopback ports, stopped when
//! dropped: one server, three joined into a Redis Cluster, or one Valkey server.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub url: String,
    pub port: u16,
    /// Where the server keeps its files, removed after it stops.
    _dir: tempfile::TempDir,
}

/// Whether `server` (redis-server or valkey-server) and `redis-cli` can run here. Where they
/// cannot, says so, or under `CI=true` (which installs them) fails the test.
pub fn available(server: &str) -> bool {
    let runs = |command: &str| {
        Command::new(command)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if runs(server) && runs("redis-cli") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{server} is not installed, and under CI=true its tests may not skip"
    );
    eprintln!("{server} is not installed here, so this test is skipped");
    false
}

/// A loopback port free now, with the one 10000 above it (a cluster node's bus) free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts a server, or `None` where `redis-server` is not installed (see [`available`]).
    pub fn start() -> Option<Self> {
        available("redis-server").then(|| Self::spawn("redis-server", &[]))
    }

    /// Starts a Valkey server, or `None` where `valkey-server` is not installed.
    pub fn start_valkey() -> Option<Self> {
        available("valkey-server").then(|| Self::spawn("valkey-server", &[]))
    }

    fn spawn(server: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let dir = tempfile::TempDir::new().unwrap();
        let child = Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{server} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            port,
            _dir: dir,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three servers joined into a Redis Cluster of 3 shards; `url` names the first.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    pub url: String,
}

impl RedisCluster {
    /// Starts a cluster, or `None` where `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        if !available("redis-server") {
            return None;
        }
        let nodes: Vec<_> = (0..3)
            .map(|_| {
                RedisServer::spawn(
                    "redis-server",
                    &["--cluster-enabled", "yes", "--appendonly", "no"],
                )
            })
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        let started = Instant::now();
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "no cluster");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let url = nodes[0].url.clone();
        Some(Self { nodes, url })
    }
}
