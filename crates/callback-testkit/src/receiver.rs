//! A recording HTTP receiver on a random port. Each request is kept with its
//! headers and body; answers come from a script, then from a default. A TLS
//! receiver answers `https` with a certificate that [`TEST_CA_FILE`] signed.

use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use callback_core::lock;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The CA that signed TLS receivers' certificate (for 127.0.0.1 to
/// 127.0.0.64 and localhost): a server under test trusts it through
/// `extra_ca_file`.
pub const TEST_CA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem");

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status code the receiver answered with.
    pub replied: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn task_id(&self) -> String {
        self.header("x-callback-task-id")
            .unwrap_or_default()
            .to_string()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    arrived: Notify,
}

pub struct Receiver {
    /// Where clients connect: the TLS front of a TLS receiver.
    pub port: u16,
    scheme: &'static str,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
    tls_front: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver answering 200 `ok` unless told otherwise.
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let shared = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(record))
        })
        .listen(listener)
        .expect("listen")
        .workers(2)
        // actix's own timers answer 408 or close a connection when a worker
        // is starved for seconds (actix-web#1269), which happens when the
        // whole suite runs on two cores; a receiver under test must only
        // answer what its script says.
        .client_request_timeout(Duration::ZERO)
        .keep_alive(KeepAlive::Os)
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            scheme: "http",
            state,
            handle,
            tls_front: None,
        }
    }

    /// Starts a receiver that speaks `https` (HTTP/1.1), with a
    /// certificate that [`TEST_CA_FILE`] signed.
    pub async fn start_tls() -> Self {
        Self::behind_tls(Protocol::Http1).await
    }

    /// Starts a receiver that speaks `https` with HTTP/2 only. Each request
    /// is recorded with the header `x-received-over: HTTP/2.0`.
    pub async fn start_tls_h2() -> Self {
        Self::behind_tls(Protocol::Http2).await
    }

    async fn behind_tls(protocol: Protocol) -> Self {
        let plain = Self::start().await;
        let (port, front) =
            start_tls_front_with("127.0.0.1:0", ([127, 0, 0, 1], plain.port).into(), protocol)
                .await
                .expect("TLS front");
        Self {
            port,
            scheme: "https",
            tls_front: Some(front),
            ..plain
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{}", self.scheme, self.port, path)
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.script).extend(replies);
    }

    /// Answers with this once the script is used up.
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.state.default) = Some(reply);
    }

    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.requests).clone()
    }

    /// Requests per `X-Callback-Task-Id`.
    pub fn counts_by_task(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in lock(&self.state.requests).iter() {
            *counts.entry(r.task_id()).or_insert(0) += 1;
        }
        counts
    }

    /// Requests answered with a 2xx, per `X-Callback-Task-Id`: a task
    /// counted more than once was delivered more than once.
    pub fn successes_by_task(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in lock(&self.state.requests).iter() {
            if (200..300).contains(&r.replied) {
                *counts.entry(r.task_id()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Waits until at least `n` requests arrived or `timeout` passed, and
    /// returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }

    pub async fn stop(&self) {
        if let Some(front) = &self.tls_front {
            front.abort();
        }
        self.handle.stop(false).await;
    }
}

/// What a TLS front offers its clients.
#[derive(Clone, Copy)]
enum Protocol {
    /// HTTP/1.1, the connection's bytes passed on as they are.
    Http1,
    /// HTTP/2 only, each request passed on over HTTP/1.1.
    Http2,
}

/// Ends TLS on `bind` with the certificate [`TEST_CA_FILE`] signed, and
/// passes each connection's bytes on to the plain HTTP server at `plain`.
/// Returns the port it listens on.
pub async fn start_tls_front(
    bind: &str,
    plain: std::net::SocketAddr,
) -> std::io::Result<(u16, JoinHandle<()>)> {
    start_tls_front_with(bind, plain, Protocol::Http1).await
}

async fn start_tls_front_with(
    bind: &str,
    plain: std::net::SocketAddr,
    protocol: Protocol,
) -> std::io::Result<(u16, JoinHandle<()>)> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certificates = CertificateDer::pem_slice_iter(include_bytes!("../fixtures/tls/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("test certificate");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../fixtures/tls/server.key"))
        .expect("test key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .expect("test certificate and key");
    config.alpn_protocols = match protocol {
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
        Protocol::Http2 => vec![b"h2".to_vec()],
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let port = listener.local_addr()?.port();
    let front = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Protocol::Http2 = protocol {
                    let service = hyper::service::service_fn(move |request| relay(request, plain));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                    return;
                }
                let Ok(mut plain) = tokio::net::TcpStream::connect(plain).await else {
                    return;
                };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok((port, front))
}

/// Passes one HTTP/2 request on to the plain receiver over HTTP/1.1 and
/// its answer back, saying which version it came in.
async fn relay(
    request: hyper::Request<hyper::body::Incoming>,
    plain: std::net::SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (head, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded = hyper::Request::builder()
        .method(head.method)
        .uri(path)
        .header("x-received-over", format!("{:?}", head.version));
    if let Some(authority) = head.uri.authority() {
        forwarded = forwarded.header(hyper::header::HOST, authority.as_str());
    }
    for (name, value) in &head.headers {
        forwarded = forwarded.header(name, value);
    }
    let forwarded = forwarded.body(Full::new(body))?;
    let tcp = tokio::net::TcpStream::connect(plain).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let answer = sender.send_request(forwarded).await?;
    let (head, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(hyper::Response::from_parts(head, Full::new(body)))
}

async fn record(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let reply = lock(&state.script)
        .pop_front()
        .or_else(|| lock(&state.default).clone())
        .unwrap_or_else(|| Reply::status(200).body("ok"));
    let received = Received {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
        replied: reply.status,
    };
    lock(&state.requests).push(received);
    state.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status).unwrap_or_default(),
    );
    for (name, value) in &reply.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.body(reply.body)
}
