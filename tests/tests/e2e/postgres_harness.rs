//! The PostgreSQL harness itself: a throwaway server that takes SQL, and that is really gone
//! (port closed, no server process left) once dropped, so tests leave nothing running.

use e2e_tests::PostgresServer;

/// Whether a process (the postmaster) was started with `-p <port>`; read from `/proc`,
/// which needs no `ps`.
fn postmaster_runs_on(port: u16) -> bool {
    let port = port.to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"postgres"))
            && args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
    })
}

#[tokio::test]
async fn a_throwaway_server_takes_sql_and_is_gone_once_dropped() {
    let server = PostgresServer::start().await.expect("postgres starts");
    let port = server.port();
    assert_ne!(port, 5432, "never the machine's own PostgreSQL");
    let url = server.create_database("harness").await.expect("database");
    assert_eq!(url, format!("postgres://ackgate@127.0.0.1:{port}/harness"));

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let one: i32 = client
        .query_one("SELECT 1", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(one, 1);
    client
        .batch_execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL)")
        .await
        .expect("create table");
    client
        .execute(
            "INSERT INTO notes (id, body) VALUES ($1, $2)",
            &[&7_i64, &"ackgate"],
        )
        .await
        .expect("insert");
    let body: String = client
        .query_one("SELECT body FROM notes WHERE id = $1", &[&7_i64])
        .await
        .expect("read back")
        .get(0);
    assert_eq!(body, "ackgate");
    assert!(postmaster_runs_on(port), "the server process is visible");

    drop(client);
    drop(server);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "port {port} still accepts connections after drop"
    );
    assert!(
        !postmaster_runs_on(port),
        "a postgres process on port {port} survived the drop"
    );
}
