//! Who may call a public API, and how they prove it: TLS (rustls) with an optional client CA
//! (mutual TLS), and bearer tokens per client.
//!
//! - **TLS** (`[api.tls]`): the server's certificate chain and key (PEM). With
//!   `client_ca_file`, the TLS handshake itself refuses every client that does not present a
//!   certificate issued by that CA; the client is then known by its certificate's SHA-256
//!   fingerprint. A handshake must finish within `handshake_timeout_ms` (tonic runs handshakes
//!   beside the accept loop, so a slow one holds only its own connection slot).
//! - **Bearer tokens** (`api.tokens_file`): every request carries `authorization: Bearer
//!   <token>`; the file holds, per client, a name and the SHA-256 of its token (never the token
//!   itself), one `name sha256-hex` pair per line. A request without a known token gets
//!   `UNAUTHENTICATED` before any handler runs, health and reflection included (probes use the
//!   ops port). The client is then known by its name.
//! - **Plaintext only on loopback.** A server whose `grpc_listen` is not a loopback address
//!   refuses to start without TLS unless `api.plaintext_off_loopback` says a service-mesh
//!   sidecar terminates TLS in front of it (the sidecar then speaks for every client, from
//!   loopback).
//!
//! The authenticated client ([`Principal`]) is put into the request's extensions, where
//! handlers find it (the consensus service keys its pending-buffer quota by it).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tonic::transport::{
    Certificate, Identity, ServerTlsConfig,
    server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

/// TLS for a public API: the server's certificate and key, and optionally the CA whose client
/// certificates it requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// The server's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
    /// Require client certificates issued by this CA (PEM): mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// A TLS handshake must finish within this long, in milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_handshake_timeout_ms() -> u64 {
    5_000
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", path.display()))
}

impl TlsFiles {
    /// The tonic server TLS configuration, or why the files do not make one.
    pub fn server_config(&self) -> anyhow::Result<ServerTlsConfig> {
        let cert = read(&self.cert_file, "API certificate")?;
        let key = read(&self.key_file, "API private key")?;
        for (bytes, path, marker) in [
            (&cert, &self.cert_file, "CERTIFICATE"),
            (&key, &self.key_file, "PRIVATE KEY"),
        ] {
            if !String::from_utf8_lossy(bytes).contains(marker) {
                anyhow::bail!("{} is not a PEM file with a {marker}", path.display());
            }
        }
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(Duration::from_millis(self.handshake_timeout_ms));
        if let Some(ca) = &self.client_ca_file {
            let pem = read(ca, "client CA")?;
            if !String::from_utf8_lossy(&pem).contains("CERTIFICATE") {
                anyhow::bail!("{} is not a PEM file with a CERTIFICATE", ca.display());
            }
            config = config
                .client_ca_root(Certificate::from_pem(pem))
                .client_auth_optional(false);
        }
        Ok(config)
    }
}

/// An authenticated client of a public API.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Presented the bearer token registered under this name.
    Token(Arc<str>),
    /// Presented a client certificate issued by the configured CA, with this SHA-256
    /// fingerprint (of the DER leaf certificate).
    Certificate([u8; 32]),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(name) => write!(f, "token:{name}"),
            Self::Certificate(fp) => write!(f, "cert:{}", hex::encode(&fp[..8])),
        }
    }
}

/// The SHA-256 of `token`, as the tokens file stores it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Reads a tokens file: `name sha256-hex` per line, `#` comments and blank lines ignored.
pub fn load_tokens(path: &Path) -> anyhow::Result<HashMap<[u8; 32], Arc<str>>> {
    let text = String::from_utf8(read(path, "tokens file")?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8", path.display()))?;
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let mut parts = line.split_whitespace();
        let (Some(name), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("{}: expected `name sha256-hex`", at());
        };
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hash, &mut digest)
            .map_err(|_| anyhow::anyhow!("{}: the hash must be 64 hex digits", at()))?;
        if tokens.insert(digest, Arc::from(name)).is_some() {
            anyhow::bail!("{}: the same token is listed twice", at());
        }
    }
    if tokens.is_empty() {
        anyhow::bail!("{} lists no client", path.display());
    }
    Ok(tokens)
}

/// The remote address of the connection a request came on, over TCP or TLS.
pub fn remote_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|t| t.get_ref().remote_addr())
        })
}

/// Authenticates every request (module docs) and records its [`Principal`].
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
}

struct Auth {
    /// Token hashes to client names; `None`: no token needed.
    tokens: Option<HashMap<[u8; 32], Arc<str>>>,
    refused: IntCounterVec,
}

impl AuthLayer {
    /// Checks the tokens of `tokens_file` (none needed if `None`); refusals are counted in
    /// `registry` as `beat_api_auth_refused_total{reason}`.
    pub fn new(tokens_file: Option<&Path>, registry: &Registry) -> anyhow::Result<Self> {
        let tokens = tokens_file.map(load_tokens).transpose()?;
        let refused = IntCounterVec::new(
            Opts::new(
                "beat_api_auth_refused_total",
                "Public API requests refused for want of a valid bearer token (missing, invalid)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self {
            auth: Arc::new(Auth { tokens, refused }),
        })
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
}

impl Auth {
    /// The request's principal, or the status that refuses it.
    fn authenticate(
        &self,
        request: &http::Request<tonic::body::Body>,
    ) -> Result<Option<Principal>, tonic::Status> {
        let certificate = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| {
                certs
                    .first()
                    .map(|leaf| Principal::Certificate(Sha256::digest(leaf.as_ref()).into()))
            });
        let Some(tokens) = &self.tokens else {
            return Ok(certificate);
        };
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = presented else {
            self.refused.with_label_values(&["missing"]).inc();
            return Err(tonic::Status::unauthenticated(
                "this API needs a bearer token: send `authorization: Bearer <token>`",
            ));
        };
        match tokens.get(&token_hash(token.trim())) {
            Some(name) => Ok(Some(Principal::Token(name.clone()))),
            None => {
                self.refused.with_label_values(&["invalid"]).inc();
                Err(tonic::Status::unauthenticated("unknown bearer token"))
            }
        }
    }
}

impl<S> Service<http::Request<tonic::body::Body>> for AuthService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Ready<Result<Self::Response, S::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        match self.auth.authenticate(&request) {
            Ok(principal) => {
                if let Some(p) = principal {
                    request.extensions_mut().insert(p);
                }
                futures::future::Either::Right(self.inner.call(request))
            }
            Err(status) => {
                futures::future::Either::Left(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_files_are_parsed_strictly() {
        let dir = std::env::temp_dir().join(format!("beat-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        let h = hex::encode(token_hash("s3cret"));
        std::fs::write(&file, format!("# clients\n\nalice {h}\n")).unwrap();
        let tokens = load_tokens(&file).unwrap();
        assert_eq!(
            tokens.get(&token_hash("s3cret")).map(|n| &**n),
            Some("alice")
        );
        for bad in [
            format!("alice {h} extra\n"),
            "alice nothex\n".to_owned(),
            format!("alice {h}\nbob {h}\n"),
            "# nobody\n".to_owned(),
            "alice\n".to_owned(),
        ] {
            std::fs::write(&file, &bad).unwrap();
            assert!(load_tokens(&file).is_err(), "accepted {bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_known_token_becomes_the_requests_principal_and_others_are_refused() {
        let dir = std::env::temp_dir().join(format!("beat-principal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(
            &file,
            format!("alice {}\n", hex::encode(token_hash("s3cret"))),
        )
        .unwrap();
        let layer = AuthLayer::new(Some(&file), &Registry::new()).unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut service = layer.layer(tower::service_fn(
            move |request: http::Request<tonic::body::Body>| {
                record
                    .lock()
                    .push(request.extensions().get::<Principal>().cloned());
                async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        tonic::body::Body::empty(),
                    ))
                }
            },
        ));
        let with = |value: Option<&str>| {
            let mut b = http::Request::builder();
            if let Some(v) = value {
                b = b.header(http::header::AUTHORIZATION, v);
            }
            b.body(tonic::body::Body::empty()).unwrap()
        };
        let ok = service.call(with(Some("Bearer s3cret"))).await.unwrap();
        assert!(ok.headers().get("grpc-status").is_none());
        assert_eq!(*seen.lock(), vec![Some(Principal::Token("alice".into()))]);
        for refused in [
            None,
            Some("Bearer guess"),
            Some("Basic s3cret"),
            Some("bearer s3cret"),
        ] {
            let response = service.call(with(refused)).await.unwrap();
            assert_eq!(
                response.headers().get("grpc-status").map(|v| v.as_bytes()),
                Some(&b"16"[..]),
                "{refused:?} must be UNAUTHENTICATED"
            );
        }
        assert_eq!(
            seen.lock().len(),
            1,
            "no refused request reached the handler"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn principals_print_without_their_secrets() {
        assert_eq!(Principal::Token("alice".into()).to_string(), "token:alice");
        assert_eq!(
            Principal::Certificate([0xab; 32]).to_string(),
            "cert:abababababababab"
        );
    }
}
