//! A PostgreSQL server of the test's own: `initdb` in a temporary directory (as the `postgres`
//! user when the tests run as root, which PostgreSQL refuses to run as), `pg_ctl start` on a
//! free loopback port with its socket in that directory, `pg_ctl stop` when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

/// A running PostgreSQL server.
pub struct Postgres {
    /// The certificate authority of a server started with TLS.
    ca: Option<PathBuf>,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

const INSTALL: &str =
    "PostgreSQL's server is missing: run scripts/engine-deps (or apt-get install postgresql)";

/// Where Debian keeps the server programs (`/usr/lib/postgresql/VERSION/bin`), or PATH.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return newest;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        .unwrap_or_else(|| panic!("{INSTALL}"))
}

fn is_root() -> bool {
    // The effective user, as `id -u` says (std has no portable call for it).
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a new server (about a second: initdb, then start).
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// Starts a server that accepts TCP connections only over TLS, with a certificate for
    /// `127.0.0.1` and `localhost` signed by a certificate authority of its own
    /// ([`Postgres::ca_file`]), made with the `openssl` command.
    pub fn start_with_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("medledger-pg-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL");
        let as_postgres = is_root();
        if as_postgres {
            // The server runs as `postgres`: it must own its directory.
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("running chown");
            check("chown", &chown);
        }
        let data = dir.path().join("data");
        let port = crate::free_port();
        let mut pg = Postgres {
            ca: None,
            bin,
            data,
            port,
            as_postgres,
            _dir: dir,
        };
        let init = pg.run(
            "initdb",
            &[
                "-D",
                path_str(&pg.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        check("initdb", &init);
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            path_str(pg._dir.path())
        );
        if tls {
            let ca = pg.make_certificates();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                path_str(&pg.data.join("server.crt")),
                path_str(&pg.data.join("server.key"))
            ));
            // TCP only over TLS; the local socket (createdb) as before.
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
            let file = pg.data.join("pg_hba.conf");
            std::fs::write(&file, hba).expect("writing pg_hba.conf");
            pg.own(&file);
            pg.ca = Some(ca);
        }
        // The port was free when chosen; another process may take it before the server binds
        // it. Then the server is started again on another, three times at most.
        for attempt in 1.. {
            let log_file = pg._dir.path().join(format!("server-{attempt}.log"));
            let start = pg.run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&pg.data),
                    "-o",
                    &format!("{options} -p {}", pg.port),
                    "-l",
                    path_str(&log_file),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
            );
            if start.status.success() {
                break;
            }
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            if attempt < 3 && log.contains("Address already in use") {
                pg.port = crate::free_port();
                continue;
            }
            panic!(
                "pg_ctl start did not bring PostgreSQL up on 127.0.0.1:{} within 30 s: {}{}\nserver log:\n{log}",
                pg.port,
                String::from_utf8_lossy(&start.stdout),
                String::from_utf8_lossy(&start.stderr)
            );
        }
        pg
    }

    /// A certificate authority (its certificate in the temp dir) and a server certificate and
    /// key it signed, in the data directory.
    fn make_certificates(&self) -> PathBuf {
        let dir = self._dir.path();
        let ca_key = dir.join("ca.key");
        let ca = dir.join("ca.crt");
        let csr = dir.join("server.csr");
        let ext = dir.join("server.ext");
        let (key, crt) = (self.data.join("server.key"), self.data.join("server.crt"));
        std::fs::write(&ext, "subjectAltName = IP:127.0.0.1, DNS:localhost\n").unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("running openssl: {e} (install it: apt-get install openssl)")
                });
            check("openssl", &out);
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=medledger test CA",
            "-keyout",
            path_str(&ca_key),
            "-out",
            path_str(&ca),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&ca),
            "-CAkey",
            path_str(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&crt),
        ]);
        for file in [&key, &crt] {
            self.own(file);
        }
        let _ = std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600));
        ca
    }

    /// Gives `file` to the `postgres` user when the server runs as it.
    fn own(&self, file: &Path) {
        if self.as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(file)
                .output()
                .expect("running chown");
            check("chown", &chown);
        }
    }

    /// The certificate authority of a server started with [`Postgres::start_with_tls`].
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e} ({INSTALL})", path.display()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL of a new, empty database on this server.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("medledger_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let created = self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        );
        check("createdb", &created);
        self.url(&name)
    }

    /// What `pg_dump` makes of the database at `url` (of this server): a thief's copy.
    pub fn dump(&self, url: &str) -> Vec<u8> {
        let dumped = self.run("pg_dump", &["--no-owner", url]);
        check("pg_dump", &dumped);
        dumped.stdout
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-m",
                "immediate",
                "-w",
                "-t",
                "10",
                "stop",
            ],
        );
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn check(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
