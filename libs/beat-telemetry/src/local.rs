//! Where a replica's internal gRPC APIs listen and how its services reach them: a TCP address
//! or a Unix domain socket (`unix:/path/to/socket`).
//!
//! The keystore and the gateway's internal API answer only the replica's own services. On a
//! Unix socket the kernel enforces that: the socket lives in a directory only the replica's
//! services share (mode `0700`/`0770`, or a volume mounted only into the containers allowed to
//! call), and a process that cannot open the directory cannot connect. [`bind`] creates that
//! directory, refuses one that other users can enter, and replaces a stale socket file (never
//! a live one). A TCP address stays possible for development, but anything on the host (or the
//! pod) that reaches it can call; `docs/security.md` says which deployments use which.

use std::{
    fmt, io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    str::FromStr,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
};
use tonic::transport::{Channel, Endpoint, server::Connected};

/// The prefix of a Unix socket address.
pub const UNIX: &str = "unix:";

/// A listen address: TCP or a Unix domain socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "{UNIX}{}", p.display()),
        }
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix(UNIX) {
            if path.is_empty() {
                return Err("a unix: address needs a path".to_owned());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse().map(Self::Tcp).map_err(|e| {
            format!("{s:?} is neither a socket address (host:port) nor unix:/path ({e})")
        })
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        Self::Tcp(a)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl ListenAddr {
    /// The endpoint a client of this address uses (`http://host:port` or `unix:/path`).
    pub fn endpoint(&self) -> String {
        match self {
            Self::Tcp(a) => format!("http://{a}"),
            Self::Unix(p) => format!("{UNIX}{}", p.display()),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket (its path, removed again when the listener is dropped).
    Unix(UnixListener, SocketFile),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Self::Tcp(l)
    }
}

/// Removes the socket file when dropped (a clean shutdown leaves nothing behind).
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Why [`bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The socket's directory is open to other users.
    #[error(
        "socket directory {dir} has mode {mode:o}: other users could connect; make it 0700 or \
         0770 (only this replica's services may reach it)"
    )]
    OpenDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Another process serves on the socket.
    #[error("{0} is in use by a running process")]
    InUse(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// The error.
        source: io::Error,
    },
}

fn io_at(path: impl fmt::Display) -> impl FnOnce(io::Error) -> BindError {
    move |source| BindError::Io {
        path: path.to_string(),
        source,
    }
}

/// Binds `addr`. For a Unix socket: creates its directory (`0700`) if missing, refuses a
/// directory other users may enter, removes a stale socket file, binds, and makes the socket
/// `0660` (the directory is the access control; the group lets pod containers that share a
/// group but not a user in).
pub async fn bind(addr: &ListenAddr) -> Result<Listener, BindError> {
    match addr {
        ListenAddr::Tcp(a) => TcpListener::bind(a)
            .await
            .map(Listener::Tcp)
            .map_err(io_at(a)),
        ListenAddr::Unix(path) => bind_unix(path).await,
    }
}

async fn bind_unix(path: &Path) -> Result<Listener, BindError> {
    use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_at(dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .map_err(io_at(dir.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(BindError::OpenDirectory {
            dir: dir.to_owned(),
            mode: mode & 0o7777,
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io_at(path.display()))?;
        }
        Ok(_) => {
            return Err(BindError::Io {
                path: path.display().to_string(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "exists and is no socket"),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(path.display())(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_at(path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io_at(path.display()))?;
    Ok(Listener::Unix(listener, SocketFile(path.to_owned())))
}

impl Listener {
    /// What it listens on, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| format!("tcp ({e})"), |a| a.to_string()),
            Self::Unix(_, file) => format!("{UNIX}{}", file.0.display()),
        }
    }

    /// The accepted connections, for `Server::serve_with_incoming*`. TCP connections get
    /// `TCP_NODELAY` (see [`crate::grpc::incoming`]).
    pub fn incoming(self) -> Incoming {
        match self {
            Self::Tcp(l) => Incoming::Tcp(crate::grpc::incoming(l)),
            Self::Unix(l, file) => Incoming::Unix(l, file),
        }
    }
}

/// The connections a [`Listener`] accepts.
pub enum Incoming {
    /// TCP.
    Tcp(tonic::transport::server::TcpIncoming),
    /// A Unix socket.
    Unix(UnixListener, SocketFile),
}

impl Stream for Incoming {
    type Item = io::Result<LocalStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Tcp(t) => t
                .poll_next_unpin(cx)
                .map(|o| o.map(|r| r.map(LocalStream::Tcp))),
            Self::Unix(l, _) => l
                .poll_accept(cx)
                .map(|r| Some(r.map(|(s, _)| LocalStream::Unix(s)))),
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum LocalStream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix socket.
    Unix(UnixStream),
}

impl Connected for LocalStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Unix(s) => s.is_write_vectored(),
        }
    }
}

/// Why an endpoint is unusable.
#[derive(Debug, thiserror::Error)]
#[error("bad endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    /// The endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

/// Why a client could not reach an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is malformed.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Connecting failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// The error.
        source: tonic::transport::Error,
    },
}

/// The endpoint builder for `endpoint` and, for `unix:/path`, the socket path.
fn builder(endpoint: &str) -> Result<(Endpoint, Option<PathBuf>), EndpointError> {
    let bad = |reason: String| EndpointError {
        endpoint: endpoint.to_owned(),
        reason,
    };
    match endpoint.strip_prefix(UNIX) {
        // The URI is required but unused: the connector opens the socket.
        Some(path) if !path.is_empty() => Ok((
            Endpoint::from_static("http://localhost"),
            Some(PathBuf::from(path)),
        )),
        Some(_) => Err(bad("a unix: endpoint needs a path".to_owned())),
        None => Ok((
            Endpoint::from_shared(endpoint.to_owned()).map_err(|e| bad(e.to_string()))?,
            None,
        )),
    }
}

/// Opens the Unix socket at `path` for a tonic channel.
fn unix_connector(
    path: PathBuf,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = TokioIo<UnixStream>,
    Error = io::Error,
    Future = impl Future<Output = io::Result<TokioIo<UnixStream>>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |_| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    })
}

/// A channel to `endpoint` (`http://host:port` or `unix:/path`) that connects on first use
/// and reconnects, with `timeout` as the connect timeout and, if `call_timeout`, as every
/// call's deadline.
pub fn lazy_channel(
    endpoint: &str,
    timeout: Duration,
    call_timeout: bool,
) -> Result<Channel, EndpointError> {
    let (builder, unix) = builder(endpoint)?;
    let mut builder = builder.connect_timeout(timeout);
    if call_timeout {
        builder = builder.timeout(timeout);
    }
    Ok(match unix {
        Some(path) => builder.connect_with_connector_lazy(unix_connector(path)),
        None => builder.connect_lazy(),
    })
}

/// Connects to `endpoint` now (`http://host:port` or `unix:/path`).
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel, ConnectError> {
    let (builder, unix) = builder(endpoint)?;
    let builder = builder.connect_timeout(timeout);
    let connected = match unix {
        Some(path) => builder.connect_with_connector(unix_connector(path)).await,
        None => builder.connect().await,
    };
    connected.map_err(|source| ConnectError::Transport {
        endpoint: endpoint.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for s in [
            "127.0.0.1:7300",
            "[::1]:7300",
            "unix:/run/beat/keystore.sock",
        ] {
            let a: ListenAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert!("localhost".parse::<ListenAddr>().is_err());
        assert_eq!(
            "unix:/a/b".parse::<ListenAddr>().unwrap().endpoint(),
            "unix:/a/b"
        );
        assert_eq!(
            "127.0.0.1:1".parse::<ListenAddr>().unwrap().endpoint(),
            "http://127.0.0.1:1"
        );
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("beat-local-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn a_unix_socket_gets_a_private_directory_and_replaces_only_stale_sockets() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tmp("bind");
        let path = d.join("run").join("k.sock");
        let addr = ListenAddr::Unix(path.clone());
        let first = bind(&addr).await.unwrap();
        let mode = std::fs::metadata(d.join("run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // A live socket is not taken over.
        assert!(matches!(bind(&addr).await, Err(BindError::InUse(_))));
        // Dropping the listener removes the file; a stale socket file is replaced.
        drop(first);
        assert!(!path.exists());
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = bind(&addr).await.unwrap();
        drop(again);
        // A directory other users may enter is refused.
        std::fs::create_dir_all(d.join("open")).unwrap();
        std::fs::set_permissions(d.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = ListenAddr::Unix(d.join("open").join("k.sock"));
        assert!(matches!(
            bind(&open).await,
            Err(BindError::OpenDirectory { mode: 0o755, .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Another user cannot connect: the directory's permissions are the access list. Needs
    /// root (to run the probe as `nobody`); skipped with a message otherwise.
    #[tokio::test]
    async fn another_user_cannot_connect() {
        let d = tmp("other-user");
        let path = d.join("run").join("k.sock");
        let _listener = bind(&ListenAddr::Unix(path.clone())).await.unwrap();
        let probe = format!(
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect({:?})\n sys.exit(3)\nexcept PermissionError:\n sys.exit(0)\n",
            path.display().to_string()
        );
        let status = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "python3", "-c", &probe])
            .stderr(std::process::Stdio::null())
            .status();
        match status.ok().and_then(|s| s.code()) {
            Some(0) => {}
            Some(3) => panic!("user nobody connected to {}", path.display()),
            other => eprintln!("skipping: cannot run a probe as another user ({other:?})"),
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
