//! `rota serve --tls-cert --tls-key`: a real server on HTTPS with a certificate a private
//! CA (made here with the `openssl` command) signed, driven by `rota --server https://…
//! --ca-cert` and by an HTTP client trusting the same CA; plain HTTP sent to the TLS port
//! fails without harming the server; bad files stop the start, naming them.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{PATIENCE, Rota, Server, assert_code, assert_stderr_has, json};

/// A private CA and a server certificate it signed for 127.0.0.1, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A key that belongs to no certificate here.
    other_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (the tests make their certificates with it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).expect("pki dir");
    // An EC CA, then a server key and a CSR signed by the CA with 127.0.0.1 as its name.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Rota test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        other_key: dir.join("other.key"),
    }
}

const HELLO: &str = "id: hello\nsteps:\n  - id: a\n    sh: echo hi\n";

fn tls_server(rota: &Rota, pki: &Pki) -> Server {
    rota.write("jobs/hello.yaml", HELLO);
    let (cert, key) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    rota.serve_with(
        &rota.path("jobs"),
        &["--tls-cert", &cert, "--tls-key", &key],
    )
}

/// `GET path` over HTTPS with the admin token, trusting the test CA: status and body.
fn https_get(server: &Server, ca: &Path, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let pem = std::fs::read(ca).expect("CA file");
        let root = reqwest::Certificate::from_pem(&pem).expect("CA certificate");
        let client = reqwest::Client::builder()
            .add_root_certificate(root)
            .timeout(PATIENCE)
            .build()
            .expect("client");
        let response = client
            .get(format!("{}{path}", server.url))
            .bearer_auth(&server.admin_token)
            .send()
            .await
            .expect("HTTPS request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    })
}

#[test]
fn the_cli_and_the_api_work_over_https_with_a_private_ca() {
    let rota = Rota::new();
    let pki = make_pki(&rota.path("pki"));
    let server = tls_server(&rota, &pki);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca = pki.ca.display().to_string();

    // A run through the server, then listed, both over HTTPS.
    let started = rota.run([
        "--server",
        &server.url,
        "--token",
        &server.admin_token,
        "--ca-cert",
        &ca,
        "run",
        "hello",
        "--output",
        "json",
    ]);
    assert_code(&started, 0);
    assert_eq!(json(&started)["status"], "succeeded");
    let listed = rota.run([
        "--server",
        &server.url,
        "--token",
        &server.admin_token,
        "--ca-cert",
        &ca,
        "runs",
        "--output",
        "json",
    ]);
    assert_code(&listed, 0);
    assert_eq!(json(&listed).as_array().map(Vec::len), Some(1));

    // ROTA_CA_CERT does what --ca-cert does.
    let by_env = rota
        .command([
            "--server",
            &server.url,
            "--token",
            &server.admin_token,
            "runs",
        ])
        .env("ROTA_CA_CERT", &ca)
        .output()
        .expect("rota runs");
    assert_code(&by_env, 0);

    // Without the CA the server's certificate is not trusted: a clear error, exit 2.
    let untrusted = rota.run([
        "--server",
        &server.url,
        "--token",
        &server.admin_token,
        "runs",
    ]);
    assert_code(&untrusted, 2);
    assert_stderr_has(&untrusted, "certificate");

    // An unreadable CA file is named.
    let missing = rota.run([
        "--server",
        &server.url,
        "--ca-cert",
        "/nonexistent/ca.pem",
        "runs",
    ]);
    assert_code(&missing, 2);
    assert_stderr_has(&missing, "/nonexistent/ca.pem");

    // The API and the UI over HTTPS.
    let (status, body) = https_get(&server, &pki.ca, "/api/v1/runs");
    assert_eq!(status, 200, "{body}");
    let (status, _) = https_get(&server, &pki.ca, "/ui/");
    assert_eq!(status, 200);
}

#[test]
fn plain_http_to_the_tls_port_fails_and_the_server_goes_on() {
    let rota = Rota::new();
    let pki = make_pki(&rota.path("pki"));
    let server = tls_server(&rota, &pki);
    let addr = server.url.trim_start_matches("https://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let request = format!(
        "GET /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.admin_token
    );
    // The server may close the connection as soon as the first bytes are not TLS, before
    // the rest is written: a failed write is that same refusal.
    let _ = stream.write_all(request.as_bytes());
    // The server closes the connection (after a TLS alert at most); no HTTP answer comes.
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "plain HTTP got an answer: {answer:?}"
    );
    // The same through the CLI: an error, exit 2.
    let plain = rota.run([
        "--server",
        &format!("http://{addr}"),
        "--token",
        &server.admin_token,
        "runs",
    ]);
    assert_code(&plain, 2);
    // And the server still serves HTTPS.
    let (status, body) = https_get(&server, &pki.ca, "/api/v1/runs");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn tls_needs_both_flags_and_usable_files() {
    let rota = Rota::new();
    let pki = make_pki(&rota.path("pki"));
    let (cert, key) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        rota.run(args)
    };

    let only_cert = serve(&["--tls-cert", &cert]);
    assert_code(&only_cert, 2);
    assert_stderr_has(&only_cert, "--tls-key");
    let only_key = serve(&["--tls-key", &key]);
    assert_code(&only_key, 2);
    assert_stderr_has(&only_key, "--tls-cert");

    let missing = serve(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key]);
    assert_code(&missing, 2);
    assert_stderr_has(&missing, "/nonexistent/cert.pem");

    let not_pem = rota.write("not.pem", "hello\n");
    let not_pem = not_pem.display().to_string();
    let bad_cert = serve(&["--tls-cert", &not_pem, "--tls-key", &key]);
    assert_code(&bad_cert, 2);
    assert_stderr_has(&bad_cert, &not_pem);
    let bad_key = serve(&["--tls-cert", &cert, "--tls-key", &not_pem]);
    assert_code(&bad_key, 2);
    assert_stderr_has(&bad_key, &not_pem);

    let other = pki.other_key.display().to_string();
    let wrong_key = serve(&["--tls-cert", &cert, "--tls-key", &other]);
    assert_code(&wrong_key, 2);
    assert_stderr_has(&wrong_key, &other);
    // None of these started a server.
    assert!(!rota.home().join("serve.addr").exists());
}
