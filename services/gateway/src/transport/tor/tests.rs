use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn config_in(dir: &Path) -> TorConfig {
    TorConfig {
        enabled: true,
        state_dir: dir.join("state"),
        cache_dir: dir.join("cache"),
        ..TorConfig::default()
    }
}

/// A private directory (arti refuses group- or world-writable state directories).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beat-gateway-tor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    dir
}

#[test]
fn endpoints_split_into_host_and_port() {
    let onion = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:7000";
    assert_eq!(
        split_endpoint(onion).expect("onion"),
        (
            "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
            7000
        )
    );
    assert_eq!(
        split_endpoint("127.0.0.1:17150").expect("ipv4"),
        ("127.0.0.1", 17150)
    );
    assert_eq!(split_endpoint("[::1]:80").expect("ipv6"), ("::1", 80));
    for bad in ["", "host", "host:", ":80", "host:0", "host:65536", "host:x"] {
        assert!(split_endpoint(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn onion_address_is_created_once_and_kept() {
    let dir = temp_dir("address");
    let config = config_in(&dir);
    let first = onion_endpoint(&config).expect("create the identity");
    let (host, port) = split_endpoint(&first).expect("an endpoint");
    assert_eq!(port, 7000);
    // A v3 onion address: 56 base32 characters and the suffix.
    assert!(host.ends_with(".onion") && host.len() == 56 + 6, "{host}");
    assert!(
        host[..56]
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
        "{host}"
    );
    // The key is on disk: asking again (as a restarted gateway would) gives the same address.
    assert_eq!(onion_endpoint(&config).expect("again"), first);
    // Another state directory is another identity; another port only changes the port.
    let other = onion_endpoint(&config_in(&dir.join("other"))).expect("other");
    assert_ne!(split_endpoint(&other).expect("other").0, host);
    let moved = TorConfig {
        onion_port: 7443,
        ..config.clone()
    };
    assert_eq!(
        onion_endpoint(&moved).expect("port"),
        format!("{host}:7443")
    );
    // Another nickname in the same state directory is another service.
    let renamed = TorConfig {
        nickname: "second".to_owned(),
        ..config
    };
    assert_ne!(onion_endpoint(&renamed).expect("renamed"), first);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn private_network_file_is_merged_and_bad_files_are_refused() {
    let dir = temp_dir("artitoml");
    // The shape tornet.py writes (identities of a throw-away network).
    let fragment = r#"
[tor_network.authorities]
v3idents = ["D5F3E9C2D0C0B0A0E1F2A3B4C5D6E7F8091A2B3C"]
uploads = [["127.0.0.1:17032"]]
downloads = [["127.0.0.1:17032"]]
votes = [["127.0.0.1:17032"]]

[[tor_network.fallback_caches]]
rsa_identity = "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
ed_identity = "bm90IGEgcmVhbCBrZXkgYnV0IDMyIGJ5dGVzIGxvbmc"
orports = ["127.0.0.1:17000"]

[address_filter]
allow_local_addrs = true

[path_rules]
ipv4_subnet_family_prefix = 33
"#;
    let good = dir.join("arti.toml");
    std::fs::write(&good, fragment).expect("write");
    let config = TorConfig {
        arti_config: Some(good),
        ..config_in(&dir)
    };
    client_config(&config).expect("the fragment is accepted");

    // Authorities without fallback caches: arti's own validation refuses it.
    let no_fallbacks = dir.join("no-fallbacks.toml");
    let cut = fragment
        .split("[[tor_network.fallback_caches]]")
        .next()
        .expect("prefix");
    std::fs::write(&no_fallbacks, cut).expect("write");
    let err = client_config(&TorConfig {
        arti_config: Some(no_fallbacks),
        ..config_in(&dir)
    })
    .expect_err("refused");
    assert!(matches!(err, TorError::Config(_)), "{err}");

    let garbage = dir.join("garbage.toml");
    std::fs::write(&garbage, "[tor_network\nx=").expect("write");
    let err = client_config(&TorConfig {
        arti_config: Some(garbage),
        ..config_in(&dir)
    })
    .expect_err("refused");
    assert!(matches!(err, TorError::ParseConfig { .. }), "{err}");

    let err = client_config(&TorConfig {
        arti_config: Some(dir.join("missing.toml")),
        ..config_in(&dir)
    })
    .expect_err("refused");
    assert!(matches!(err, TorError::ReadConfig { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_nickname_is_refused() {
    let dir = temp_dir("nickname");
    let config = TorConfig {
        nickname: "no spaces/allowed".to_owned(),
        ..config_in(&dir)
    };
    let err = onion_endpoint(&config).expect_err("refused");
    assert!(matches!(err, TorError::Nickname { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A minimal SOCKS5 server (no authentication, CONNECT by domain name only) that records the
/// requested target and then relays to `upstream`.
async fn fake_socks5(listener: TcpListener, upstream: SocketAddr) -> (String, u16) {
    let (mut s, _) = listener.accept().await.expect("accept");
    let mut greeting = [0u8; 2];
    s.read_exact(&mut greeting).await.expect("greeting");
    assert_eq!(greeting[0], 5);
    let mut methods = vec![0u8; greeting[1] as usize];
    s.read_exact(&mut methods).await.expect("methods");
    assert!(methods.contains(&0));
    s.write_all(&[5, 0]).await.expect("method");
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.expect("request");
    assert_eq!(&head[..3], &[5, 1, 0], "CONNECT");
    assert_eq!(
        head[3], 3,
        "a domain name, resolved by the proxy (never locally)"
    );
    let mut len = [0u8; 1];
    s.read_exact(&mut len).await.expect("len");
    let mut host = vec![0u8; len[0] as usize];
    s.read_exact(&mut host).await.expect("host");
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await.expect("port");
    s.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
        .await
        .expect("reply");
    let mut up = tokio::net::TcpStream::connect(upstream)
        .await
        .expect("upstream");
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
    });
    (
        String::from_utf8(host).expect("utf-8"),
        u16::from_be_bytes(port),
    )
}

#[tokio::test]
async fn external_mode_dials_through_socks5_and_accepts_on_its_listener() {
    // The "onion service" of an external tor forwards to the transport's listener.
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = TorConfig {
        enabled: true,
        socks5: Some(proxy.local_addr().expect("addr").to_string()),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..TorConfig::default()
    };
    let transport = TorTransport::start(&config).await.expect("start");
    let Inbound::Listener(listener) = &transport.inbound else {
        panic!("external mode with `listen` accepts on a listener");
    };
    let inbound_addr = listener.local_addr().expect("addr");
    let proxy_task = tokio::spawn(fake_socks5(proxy, inbound_addr));

    let onion = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:7000";
    let (dialled, accepted) = tokio::join!(transport.dial(onion), transport.accept());
    let mut dialled = dialled.expect("dial");
    let mut accepted = accepted.expect("accept").connection;
    assert_eq!(
        proxy_task.await.expect("proxy"),
        (onion[..onion.len() - 5].to_owned(), 7000)
    );
    dialled.write_all(b"ping").await.expect("write");
    dialled.flush().await.expect("flush");
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn external_mode_reports_an_unreachable_proxy() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let config = TorConfig {
        enabled: true,
        socks5: Some(port.to_string()),
        connect_timeout: Duration::from_secs(5),
        ..TorConfig::default()
    };
    let transport = TorTransport::start(&config).await.expect("start");
    assert!(matches!(transport.inbound, Inbound::None));
    // No local tor: the transport is unavailable (not a failure of the peer).
    let err = transport
        .dial("example.onion:7000")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, TransportError::Unavailable(_)), "{err}");
}

/// Attempts of a fake dial, in call order: each either connects at once, fails at once, fails
/// after a delay, or never finishes (as an arti attempt whose rendezvous never completes).
#[derive(Clone, Copy)]
enum Fake {
    Connects,
    Fails,
    FailsAfter(Duration),
    Hangs,
}

fn fake_dials(
    script: &[Fake],
) -> (
    Arc<std::sync::atomic::AtomicUsize>,
    impl Fn() -> BoxFuture<'static, Result<BoxConnection, TransportError>> + use<>,
) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let script = script.to_vec();
    let dial = move || -> BoxFuture<'static, Result<BoxConnection, TransportError>> {
        let k = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let step = script[k];
        Box::pin(async move {
            match step {
                Fake::Connects => Ok(Box::new(tokio::io::duplex(64).0) as BoxConnection),
                Fake::Fails => Err(TransportError::Timeout),
                Fake::FailsAfter(d) => {
                    tokio::time::sleep(d).await;
                    Err(TransportError::Timeout)
                }
                Fake::Hangs => futures::future::pending().await,
            }
        })
    };
    (calls, dial)
}

const HEDGE: Duration = Duration::from_millis(20);
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_stuck_dial_gets_a_second_attempt_beside_it() {
    let (calls, dial) = fake_dials(&[Fake::Hangs, Fake::Connects]);
    let r = tokio::time::timeout(BOUND, hedged(HEDGE, dial)).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "the second attempt's connection is returned"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_quick_answer_is_returned_without_a_second_attempt() {
    let (calls, dial) = fake_dials(&[Fake::Connects, Fake::Connects]);
    assert!(hedged(HEDGE, dial).await.is_ok());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A quick failure goes back to the dial loop (which backs off) rather than being hedged.
    let (calls, dial) = fake_dials(&[Fake::Fails, Fake::Connects]);
    assert!(matches!(
        hedged(HEDGE, dial).await,
        Err(TransportError::Timeout)
    ));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hedged_dial_fails_only_when_both_attempts_have() {
    // The first fails after the second has started: the second still connects.
    let (_, dial) = fake_dials(&[Fake::FailsAfter(HEDGE * 3), Fake::Connects]);
    let r = tokio::time::timeout(BOUND, hedged(HEDGE, dial)).await;
    assert!(matches!(r, Ok(Ok(_))));

    // The second fails first while the first still hangs: the dial keeps waiting on the
    // first (here until the caller's bound), it does not report the second's error.
    let (_, dial) = fake_dials(&[Fake::Hangs, Fake::Fails]);
    let r = tokio::time::timeout(HEDGE * 10, hedged(HEDGE, dial)).await;
    assert!(r.is_err(), "still waiting on the first attempt");

    // Both fail: the error comes back.
    let (calls, dial) = fake_dials(&[Fake::FailsAfter(HEDGE * 2), Fake::Fails]);
    let r = tokio::time::timeout(BOUND, hedged(HEDGE, dial)).await;
    assert!(matches!(r, Ok(Err(TransportError::Timeout))));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn the_second_attempt_starts_at_a_quarter_of_the_connect_timeout() {
    assert_eq!(
        hedge_after(TorConfig::default().connect_timeout),
        Duration::from_secs(15)
    );
}
