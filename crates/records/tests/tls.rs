//! The app database over TLS: a PostgreSQL server that accepts TCP only over TLS, reached with
//! `sslmode=verify-full` and the server's certificate authority; refused without TLS, and
//! refused when the certificate is not the one the authority vouches for.

use medledger_records::db::{self, Database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_reached_over_verified_tls_and_only_so() {
    let server = medledger_testkit::Postgres::start_with_tls();
    let url = server.new_database();
    let ca = server.ca_file().unwrap().display().to_string();

    let verified =
        Database::from_url(&format!("{url}?sslmode=verify-full&sslrootcert={ca}")).unwrap();
    let pool = db::connect(&verified, false).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is encrypted");
    db::migrate(&pool, verified.engine()).await.unwrap();
    pool.close().await;

    // Without TLS the server refuses the connection.
    let plain = Database::from_url(&format!("{url}?sslmode=disable")).unwrap();
    let refused = db::connect(&plain, false).await.unwrap_err();
    assert!(
        refused.message.contains("cannot open the database"),
        "{}",
        refused.message
    );

    // Another authority's certificate is not trusted: a server in the middle is refused.
    let other = medledger_testkit::Postgres::start_with_tls();
    let wrong_ca = other.ca_file().unwrap().display().to_string();
    let spoofed =
        Database::from_url(&format!("{url}?sslmode=verify-full&sslrootcert={wrong_ca}")).unwrap();
    assert!(db::connect(&spoofed, false).await.is_err());
}
