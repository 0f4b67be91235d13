//! How a node's ports accept connections: plain TCP (Nagle off) or TLS,
//! closed when idle (`quotad_engine::idle`), and the shutdown signal they
//! all stop on.
use axum::serve::Listener;
use quotad_engine::idle::Idle;
use quotad_engine::tls::{ServerTls, TlsError, TlsFiles};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;

/// Accepted connections with Nagle's algorithm off. tonic sets TCP_NODELAY
/// only on listeners it binds itself; without it, the last partial segment
/// of an answer waits for the client's delayed ACK (40 ms on Linux), which
/// is where the 40-50 ms p99.9 of every earlier load run came from.
pub(crate) fn no_delay(
    listener: tokio::net::TcpListener,
    idle: Duration,
) -> impl tokio_stream::Stream<Item = std::io::Result<Idle<tokio::net::TcpStream>>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |accepted| {
        let stream = accepted?;
        // A socket that refuses the option still works, only slower.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        Ok(Idle::new(stream, idle))
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

/// The TLS server side of each port, from the same files: the gRPC and
/// peer ports require client certificates when a client CA is given; the
/// REST port never does (browsers and curl bring tokens, not certificates).
pub(crate) struct PortsTls {
    pub grpc: Arc<ServerTls>,
    pub http: Arc<ServerTls>,
    pub peer: Arc<ServerTls>,
}

impl PortsTls {
    pub(crate) fn load(files: &TlsFiles) -> Result<PortsTls, TlsError> {
        let rest = TlsFiles {
            client_ca: None,
            ..files.clone()
        };
        let tls = PortsTls {
            grpc: ServerTls::load(files.clone(), &[b"h2"], "grpc")?,
            http: ServerTls::load(rest, &[b"h2", b"http/1.1"], "http")?,
            peer: ServerTls::load(files.clone(), &[b"h2"], "peer")?,
        };
        for t in [&tls.grpc, &tls.http, &tls.peer] {
            t.spawn_reload();
        }
        Ok(tls)
    }
}

/// Serve `router` on `listener`, over TLS when `tls` is given, closing
/// connections idle for `idle`, until the shutdown signal.
pub(crate) fn serve_grpc(
    router: tonic::transport::server::Router<super::serve::Layers>,
    listener: TcpListener,
    tls: Option<&Arc<ServerTls>>,
    idle: Duration,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    match tls {
        Some(tls) => {
            let incoming =
                tokio_stream::wrappers::ReceiverStream::new(tls.incoming(listener, idle))
                    .map(|(s, _)| Ok::<_, std::io::Error>(s));
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown_signal()))
        }
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(no_delay(listener, idle), shutdown_signal()),
        ),
    }
}

/// Serve the REST `app` on `listener`, over TLS when `tls` is given,
/// closing connections idle for `idle`, until the shutdown signal.
pub(crate) fn serve_http(
    app: axum::Router,
    listener: TcpListener,
    tls: Option<&Arc<ServerTls>>,
    idle: Duration,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    match tls {
        Some(tls) => {
            let listener = TlsListener {
                local: listener.local_addr(),
                incoming: tls.incoming(listener, idle),
            };
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    with_peer(app).into_make_service_with_connect_info::<RemoteAddr>(),
                )
                .with_graceful_shutdown(shutdown_signal())
                .await
            })
        }
        // The peer's address reaches handlers as `ConnectInfo` (OFREP
        // checks a tenant API key against its IP allowlist).
        None => tokio::spawn(async move {
            axum::serve(
                IdleListener { listener, idle },
                with_peer(app).into_make_service_with_connect_info::<RemoteAddr>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await
        }),
    }
}

/// The peer's address of a connection accepted by one of the node's
/// listeners (axum knows it only for its own `TcpListener`).
#[derive(Debug, Clone, Copy)]
struct RemoteAddr(std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, IdleListener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, IdleListener>) -> Self {
        RemoteAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        RemoteAddr(*stream.remote_addr())
    }
}

/// Hand the peer's address to handlers as `ConnectInfo<SocketAddr>`, the
/// type the control plane reads.
fn with_peer(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            if let Some(axum::extract::ConnectInfo(RemoteAddr(a))) = req
                .extensions()
                .get::<axum::extract::ConnectInfo<RemoteAddr>>()
                .copied()
            {
                req.extensions_mut().insert(axum::extract::ConnectInfo(a));
            }
            next.run(req).await
        },
    ))
}

/// Plain connections, each closed when idle, for axum.
struct IdleListener {
    listener: TcpListener,
    idle: Duration,
}

impl Listener for IdleListener {
    type Io = Idle<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => return (Idle::new(stream, self.idle), addr),
                // Out of descriptors and the like: pass, as axum's own
                // listener does, rather than spin.
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// TLS connections whose handshake completed, for axum.
struct TlsListener {
    local: std::io::Result<std::net::SocketAddr>,
    incoming: tokio::sync::mpsc::Receiver<(TlsStream<Idle<TcpStream>>, std::net::SocketAddr)>,
}

impl Listener for TlsListener {
    type Io = TlsStream<Idle<TcpStream>>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept loop ended: the node is stopping.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
