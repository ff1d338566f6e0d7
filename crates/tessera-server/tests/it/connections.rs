//! Clients that hold connections open: requests whose headers or bodies
//! trickle in (slowloris), idle kept-alive connections, more connections than
//! the server serves at once, and a process out of file descriptors. Each test
//! sets short limits so that it waits about as long as one timeout.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use crate::common::TestServer;

const HEALTH: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn a_request_whose_headers_never_finish_is_cut_off() {
    let server = TestServer::start_with(&[
        ("TESSERA_HEADER_READ_TIMEOUT", "1"),
        ("TESSERA_KEEP_ALIVE_TIMEOUT", "30"),
    ])
    .await;
    let starts: [(&str, &[u8]); 4] = [
        ("nothing at all", b""),
        ("half a request line", b"GET /health/li"),
        (
            "half the headers",
            b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        ),
        ("part of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
    ];
    // All at once, so that the test waits for the timeout only once.
    let mut clients = Vec::new();
    for (label, start) in starts {
        let mut stream = connect(&server).await;
        let opened = Instant::now();
        stream.write_all(start).await.unwrap();
        clients.push(tokio::spawn(async move {
            let (received, closed) = until_closed(&mut stream, Duration::from_secs(10)).await;
            (label, received, closed.map(|at| at - opened))
        }));
    }
    for client in clients {
        let (label, received, lasted) = client.await.unwrap();
        let lasted = lasted.unwrap_or_else(|| panic!("{label}: still open after 10 s"));
        assert!(
            lasted >= Duration::from_millis(900),
            "{label}: closed after {lasted:?}, before the timeout"
        );
        assert!(
            lasted < Duration::from_secs(4),
            "{label}: open for {lasted:?}"
        );
        assert!(
            !String::from_utf8_lossy(&received).contains(" 200 "),
            "{label}: answered {}",
            String::from_utf8_lossy(&received)
        );
    }
    let r = server
        .http
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_its_deadline() {
    let server = TestServer::start_with(&[("TESSERA_BODY_READ_TIMEOUT", "1")]).await;
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let credentials = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    };
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n\
         grant_type=client_credentials&pad="
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let headers_sent = Instant::now();
    // A byte every 100 ms: never quiet long enough for an idle timer to notice.
    let trickle = tokio::spawn(async move {
        for sent in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                return sent;
            }
            sleep(Duration::from_millis(100)).await;
        }
        100
    });
    let (response, closed) = until_closed(&mut reader, Duration::from_secs(10)).await;
    let lasted = closed.expect("still open after 10 s") - headers_sent;
    let response = String::from_utf8_lossy(&response);
    assert!(
        lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(4),
        "cut off after {lasted:?}: {response}"
    );
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(response.contains("did not arrive in time"), "{response}");
    let sent = trickle.await.unwrap();
    assert!(sent < 100, "the server read the whole trickle");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_keep_alive_timeout() {
    let server = TestServer::start_with(&[
        ("TESSERA_HEADER_READ_TIMEOUT", "5"),
        ("TESSERA_KEEP_ALIVE_TIMEOUT", "1"),
    ])
    .await;
    let mut stream = connect(&server).await;
    // Kept alive between requests that come in time; each one starts the
    // clock again.
    stream.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut stream).await);
    sleep(Duration::from_millis(400)).await;
    stream.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut stream).await);
    let answered = Instant::now();
    let (_, closed) = until_closed(&mut stream, Duration::from_secs(10)).await;
    let idle = closed.expect("still open after 10 s") - answered;
    // Closed after the keep-alive timeout, well before the header timeout.
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(3),
        "closed after {idle:?} idle"
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let server = TestServer::start_with(&[
        ("TESSERA_MAX_CONNECTIONS", "3"),
        ("TESSERA_HEADER_READ_TIMEOUT", "10"),
        ("TESSERA_KEEP_ALIVE_TIMEOUT", "2"),
    ])
    .await;
    // One connection that has been served, and two that hold their slots with
    // headers that never end. (The harness's readiness check may hold another
    // slot until its connection has been idle for the keep-alive timeout.)
    let mut kept = connect(&server).await;
    kept.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut kept).await);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }

    // One more: the kernel completes the handshake, but the server does not
    // take it while every slot is held.
    let mut extra = connect(&server).await;
    extra.write_all(HEALTH).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(500), extra.read(&mut byte))
            .await
            .is_err(),
        "a connection over the cap was served"
    );
    // The connections it has are still served.
    kept.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut kept).await);

    // A slot frees: the waiting connection is served.
    drop(held.remove(0));
    let freed = Instant::now();
    let response = timeout(Duration::from_secs(5), read_response(&mut extra))
        .await
        .expect("the waiting connection was not served once a slot freed");
    assert_ok(&response);
    assert!(freed.elapsed() < Duration::from_secs(4));
}

/// The attack this guards against: with descriptors exhausted, accept() fails
/// at once, again and again. The server says so once, goes on serving the
/// connections it has, and takes new ones again as soon as descriptors free,
/// without a restart. The limit is lowered on the running process with
/// util-linux `prlimit`, below what the connections will need.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn running_out_of_file_descriptors_is_reported_once_and_survived() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux prlimit is not installed");
        return;
    }
    let server = TestServer::start_with(&[
        ("TESSERA_HEADER_READ_TIMEOUT", "10"),
        ("TESSERA_KEEP_ALIVE_TIMEOUT", "10"),
    ])
    .await;
    let pid = server.pid().expect("running");
    let mut kept = connect(&server).await;
    kept.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut kept).await);

    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open + 4;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");

    let mut held = Vec::new();
    for _ in 0..12 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    let reported = "cannot accept connections";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains(reported) {
        assert!(
            Instant::now() < deadline,
            "accept() never failed:\n{}",
            server.log()
        );
        sleep(Duration::from_millis(50)).await;
    }
    // Let accept() fail a few more times while still out of descriptors.
    sleep(Duration::from_millis(500)).await;
    kept.write_all(HEALTH).await.unwrap();
    assert_ok(&read_response(&mut kept).await);

    // The clients go away; their descriptors free, and a new client is served.
    drop(held);
    let fresh = timeout(Duration::from_secs(5), async {
        let mut stream = connect(&server).await;
        stream.write_all(HEALTH).await.unwrap();
        read_response(&mut stream).await
    })
    .await
    .expect("no new connection served after the descriptors freed");
    assert_ok(&fresh);

    let log = server.log();
    assert_eq!(
        log.matches(reported).count(),
        1,
        "reported more than once:\n{log}"
    );
    assert!(log.contains("Too many open files"), "{log}");
    assert!(log.contains("accepting connections again"), "{log}");
}

/// A token request whose body is sent but for its last bytes: the reader,
/// the writer, and those last bytes.
async fn half_sent_token_request(
    server: &TestServer,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
    &'static [u8],
) {
    let (id, secret) = server.client(&["--grant", "client_credentials"]);
    let (reader, mut writer) = connect(server).await.into_split();
    let credentials = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    };
    let body = "grant_type=client_credentials";
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..17]
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    (reader, writer, b"_credentials")
}

#[tokio::test]
async fn sigterm_lets_the_request_in_progress_finish_then_exits_0() {
    let mut server = TestServer::start_with(&[("TESSERA_SHUTDOWN_GRACE", "10")]).await;
    let (mut reader, mut writer, rest) = half_sent_token_request(&server).await;
    // The headers are in: the request is in progress.
    sleep(Duration::from_millis(200)).await;
    let port = server.port;
    let finish = tokio::spawn(async move {
        // New connections are refused once the listener is closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            sleep(Duration::from_millis(20)).await;
        }
        writer.write_all(rest).await.unwrap();
        let (response, _) = until_closed(&mut reader, Duration::from_secs(5)).await;
        String::from_utf8_lossy(&response).into_owned()
    });
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(8));
        (status, server.log())
    });
    let response = finish.await.unwrap();
    let (status, log) = status.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains("access_token"), "{response}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn a_request_that_outlasts_the_grace_period_is_dropped() {
    let mut server = TestServer::start_with(&[("TESSERA_SHUTDOWN_GRACE", "1")]).await;
    let (_reader, _writer, _) = half_sent_token_request(&server).await;
    sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let status = server.terminate(Duration::from_secs(8));
    let took = asked.elapsed();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exited after {took:?}"
    );
    assert!(
        server.log().contains("end of shutdown_grace"),
        "{}",
        server.log()
    );
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap()
}

/// Reads until the server closes the connection or resets it: what arrived,
/// and when it ended (`None`: still open after `limit`).
async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (Vec<u8>, Option<Instant>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (received, None),
            Ok(Ok(0) | Err(_)) => return (received, Some(Instant::now())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// One HTTP/1.1 response with a `Content-Length`, as text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .expect("Content-Length");
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no response within 5 s")
            .unwrap();
        assert!(n > 0, "closed mid-response: {text}");
        received.extend_from_slice(&buf[..n]);
    }
}

fn assert_ok(response: &str) {
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
}

/// A layer-4 load balancer on 127.0.0.2 that speaks the PROXY protocol: the
/// address in its header is the client's, whatever forwarding header the
/// client itself wrote; its connections without a header are dropped. Others
/// (the test's own readiness checks from 127.0.0.1) are served as usual.
#[tokio::test]
async fn behind_a_proxy_protocol_load_balancer_the_header_names_the_client() {
    use proxy_header::{Protocol, ProxiedAddress, ProxyHeader};
    let server = TestServer::start_with(&[
        ("TESSERA_TRUSTED_PROXIES", "127.0.0.2"),
        ("TESSERA_PROXY_PROTOCOL", "true"),
        ("TESSERA_HEADER_READ_TIMEOUT", "1"),
    ])
    .await;
    let request = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             X-Forwarded-For: 10.9.8.7\r\nConnection: close\r\n\r\n"
        )
    };
    let address = |source: &str| ProxiedAddress {
        protocol: Protocol::Stream,
        source: source.parse().unwrap(),
        destination: format!("127.0.0.1:{}", server.port).parse().unwrap(),
    };

    // Version 1 (text), then version 2 (binary) with IPv6, each followed by a
    // request on the same connection.
    let mut v1 = Vec::new();
    ProxyHeader::with_address(address("203.0.113.7:40000"))
        .encode_v1(&mut v1)
        .unwrap();
    // Source and destination are of one family.
    let mut v2 = Vec::new();
    ProxyHeader::with_address(ProxiedAddress {
        destination: "[::1]:443".parse().unwrap(),
        ..address("[2001:db8::42]:40001")
    })
    .encode_v2(&mut v2)
    .unwrap();
    let mut local = Vec::new();
    ProxyHeader::with_local().encode_v2(&mut local).unwrap();
    for (header, path) in [
        (&v1, "/health/live?v1"),
        (&v2, "/health/live?v2"),
        (&local, "/health/live?local"),
    ] {
        let mut stream = connect_from_proxy(&server).await;
        stream.write_all(header).await.unwrap();
        stream.write_all(request(path).as_bytes()).await.unwrap();
        assert_ok(&read_response(&mut stream).await);
    }

    // Without a header, a trusted proxy's connection is dropped unanswered.
    let mut bare = connect_from_proxy(&server).await;
    bare.write_all(request("/health/live?bare").as_bytes())
        .await
        .unwrap();
    let (received, closed) = until_closed(&mut bare, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "still open");
    assert!(
        received.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&received)
    );

    // The request log names the header's addresses: never the client's own
    // X-Forwarded-For, and the proxy only for its health check.
    let log = server.log();
    assert!(log.contains("address=203.0.113.7"), "{log}");
    assert!(log.contains("address=2001:db8::42"), "{log}");
    assert!(log.contains("address=127.0.0.2"), "{log}");
    assert!(!log.contains("address=10.9.8.7"), "{log}");
    // A peer that is not a trusted proxy needs no header, and its
    // forwarding header is not believed either.
    let mut direct = connect(&server).await;
    direct
        .write_all(request("/health/live?direct").as_bytes())
        .await
        .unwrap();
    assert_ok(&read_response(&mut direct).await);
    assert!(!server.log().contains("address=10.9.8.7"));
}

/// A connection from 127.0.0.2, the test's load balancer.
async fn connect_from_proxy(server: &TestServer) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap()
}
