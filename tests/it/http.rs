//! `--ready http://HOST:PORT/PATH` against a real HTTP server: a tiny one
//! in the test, whose answer the test switches between 200, 500 and none
//! at all (it accepts, reads the request and never answers).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

/// How the test server answers: a status, or [`SILENT`] for no answer.
const SILENT: u16 = 0;

/// An HTTP server on a port of its own, answering every request with the
/// status in `answer`, and keeping every request it read.
struct Web {
    port: u16,
    answer: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Web {
    fn start(answer: u16) -> Web {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let web = Web {
            port,
            answer: Arc::new(AtomicU16::new(answer)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let (answer, requests) = (Arc::clone(&web.answer), Arc::clone(&web.requests));
        // Serves until the test process ends; a silent answer keeps the
        // connection open, unanswered, for as long.
        std::thread::spawn(move || {
            let mut silent: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let request = read_request(&mut stream);
                requests.lock().unwrap().push(request);
                match answer.load(Ordering::SeqCst) {
                    SILENT => silent.push(stream),
                    status => {
                        let body = format!("status {status}\n");
                        let response = format!(
                            "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes());
                    }
                }
            }
        });
        web
    }

    fn set(&self, answer: u16) {
        self.answer.store(answer, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The request head, up to its blank line (or whatever came in 10 s).
fn read_request(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn a_service_is_ready_once_its_url_answers_2xx_not_while_it_answers_500() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let web = Web::start(500);
    let url = format!("http://127.0.0.1:{}/healthz?deep=1", web.port);
    let args = ["run", "web", "--ready", &url, "--poll", "20ms", "--", "sleep", "300"];
    let mut run = sb.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Asked again and again, and not ready while the answer is 500.
    eventually("three requests answered 500", || web.requests().len() >= 3);
    let status = json_status(&sb, "web");
    assert!(status.contains("\"status\": \"started\""), "not started while 500:\n{status}");
    let request = web.requests()[0].clone();
    assert!(request.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"), "{request:?}");
    assert!(request.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", web.port)), "{request:?}");
    assert!(request.contains("\r\nConnection: close\r\n"), "{request:?}");
    web.set(200);
    eventually("web is ready once its URL answers 200", || {
        json_status(&sb, "web").contains("\"status\": \"ready\"")
    });
    assert!(server.log().contains("web ready (after "), "{}", server.log());
    send_signal(run.id(), "TERM");
    wait_for_exit(&mut run, Duration::from_secs(30), || "run did not stop".into());
    let status = json_status(&sb, "web");
    assert!(status.contains("\"status\": \"completed\""), "stopped when ready:\n{status}");
}

#[test]
fn a_url_that_never_answers_times_out_and_the_next_request_starts() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let web = Web::start(SILENT);
    let url = format!("http://localhost:{}", web.port);
    let args = [
        "run",
        "web",
        "--ready",
        &url,
        "--probe-timeout",
        "200ms",
        "--poll",
        "20ms",
        "--",
        "sleep",
        "300",
    ];
    let mut run = sb.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Each unanswered request is given up after the probe timeout and a
    // new one is sent: the server sees several, all held unanswered.
    eventually("three unanswered requests", || web.requests().len() >= 3);
    assert!(json_status(&sb, "web").contains("\"status\": \"started\""));
    let request = web.requests()[0].clone();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request:?}");
    assert!(request.contains(&format!("\r\nHost: localhost:{}\r\n", web.port)), "{request:?}");
    web.set(204);
    eventually("web is ready once its URL answers 204", || {
        json_status(&sb, "web").contains("\"status\": \"ready\"")
    });
    send_signal(run.id(), "TERM");
    wait_for_exit(&mut run, Duration::from_secs(30), || "run did not stop".into());
}

#[test]
fn a_url_never_answering_fails_the_service_at_its_ready_timeout() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let web = Web::start(SILENT);
    let url = format!("http://127.0.0.1:{}/", web.port);
    // The probe timeout is longer than the ready deadline: the deadline
    // still holds (a request in flight does not hold up the loop).
    let args = [
        "run",
        "web",
        "--ready",
        &url,
        "--probe-timeout",
        "60s",
        "--ready-timeout",
        "1s",
        "--",
        "sleep",
        "300",
    ];
    let out = sb.run(&args);
    out.code(4);
    assert!(
        json_status(&sb, "web").contains("not ready within 1.00s"),
        "{}",
        json_status(&sb, "web")
    );
    eventually("the request reached the server", || !web.requests().is_empty());
    assert_eq!(web.requests().len(), 1, "one request, still unanswered");
}

#[test]
fn https_and_host_names_are_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["run", "web", "--ready", "https://127.0.0.1/", "--", "true"])
        .code(2)
        .stderr_has("https is not supported (no TLS in unitsync)");
    sb.run(&["run", "web", "--ready", "http://web:8080/", "--", "true"])
        .code(2)
        .stderr_has("the host \"web\" is not an IP address (names are not looked up: no NSS)");
    sb.run(&["status", "web"]).ok().stdout_has("status:     not registered");
}

#[test]
fn up_runs_a_header_service_ready_on_http_before_its_dependent() {
    require("python3");
    let sb = Sandbox::new();
    let dir = sb.path("startup");
    std::fs::create_dir(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let write = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(
        "web.sh",
        &format!(
            "# unitsync: ready=http://127.0.0.1:{port}/ probe-timeout=2s\n\
             exec python3 -m http.server {port} --bind 127.0.0.1"
        ),
    );
    // The dependent fetches from the service it waited for.
    let fetch = format!(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/').status)\""
    );
    write("client.sh", &format!("# unitsync: after=web\n{fetch}"));
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = sb.run(&["up", "--dir", &dir_arg, "--", "true"]);
    out.ok().stdout_has("client.sh | 200\n").stdout_has("\nweb.sh     web     ready");
}
