//! One test over a real TCP listener: the router served by `axum::serve` with connect
//! info, spoken to with raw HTTP/1.1, records the client's address in the audit log.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::Env;

#[tokio::test]
async fn a_real_listener_serves_the_api_and_audits_the_client_address() {
    let env = Env::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = env
        .app
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let client = stream.local_addr().expect("client addr");
    let request = format!(
        "POST /api/v1/runs/{}/cancel HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env.ops_runs[0],
        env.token("operator_ops"),
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(response.contains("\"cancel_requested\":true"), "{response}");

    let audit = crate::support::api_audit_records(&env).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].source.as_deref(),
        Some(client.to_string().as_str())
    );
    server.abort();
}
