//! SAM v3.1 against a scripted fake bridge: protocol lines, key persistence, streams between
//! two transports, and session recovery after a bridge restart. No I2P router is involved.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use parking_lot::Mutex as SyncMutex;
use tokio::{io::AsyncWriteExt, net::TcpListener, task::JoinSet};

use super::*;

#[test]
fn codecs_match_their_specifications() {
    // RFC 4648 test vectors, lower case and unpadded as in .b32.i2p names.
    assert_eq!(base32_lower(b""), "");
    assert_eq!(base32_lower(b"f"), "my");
    assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    // I2P's base64 is RFC 4648 with '-' and '~' for '+' and '/'.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let encoded = i2p_base64_encode(&bytes);
    assert!(!encoded.contains('+') && !encoded.contains('/'));
    assert!(encoded.contains('-') && encoded.contains('~'));
    assert_eq!(i2p_base64_decode(&encoded).expect("decode"), bytes);
    assert_eq!(i2p_base64_encode(b"fo"), "Zm8=");
    assert!(i2p_base64_decode("not+base64").is_none());
}

#[test]
fn reply_values_are_found_quoted_or_not() {
    let line = r#"SESSION STATUS RESULT=I2P_ERROR MESSAGE="no tunnels yet" ID=x"#;
    assert_eq!(reply_value(line, "RESULT").as_deref(), Some("I2P_ERROR"));
    assert_eq!(
        reply_value(line, "MESSAGE").as_deref(),
        Some("no tunnels yet")
    );
    assert_eq!(reply_value(line, "ID").as_deref(), Some("x"));
    assert_eq!(reply_value(line, "DESTINATION"), None);
    assert!(expect_ok("sam", "X", "HELLO REPLY RESULT=OK VERSION=3.1").is_ok());
    let err = expect_ok("sam", "DEST GENERATE", "DEST REPLY RESULT=FAIL PRIV=secret")
        .expect_err("refused");
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// A private destination of the shape i2pd returns for `SIGNATURE_TYPE=7`: 256 + 128 bytes of
/// keys, a KEY certificate (type 5, length 4: Ed25519 signing, ElGamal crypto), then 256 + 32
/// bytes of private keys.
fn fake_private(seed: u8) -> (String, String) {
    let mut dest: Vec<u8> = (0..384)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    dest.extend_from_slice(&[5, 0, 4, 0, 7, 0, 0]);
    let mut private = dest.clone();
    private.extend((0..288).map(|i| (i as u8) ^ seed.rotate_left(3)));
    (i2p_base64_encode(&dest), i2p_base64_encode(&private))
}

#[test]
fn public_destination_is_cut_at_the_certificate() {
    let (public, private) = fake_private(9);
    assert_eq!(
        public_destination(&private).as_deref(),
        Some(public.as_str())
    );
    // A public destination alone is not a private one.
    assert_eq!(public_destination(&public), None);
    let b32 = b32_address(&public).expect("b32");
    assert!(b32.ends_with(".b32.i2p") && b32.len() == 52 + 8, "{b32}");
}

// === fake SAM bridge ===

#[derive(Default)]
struct BridgeState {
    /// Session ID → public destination.
    sessions: HashMap<String, String>,
    /// Public destination → sockets waiting in STREAM ACCEPT.
    acceptors: HashMap<String, Vec<TcpStream>>,
    /// Every command line received (private keys cut).
    log: Vec<String>,
    generated: u8,
}

struct FakeSam {
    addr: SocketAddr,
    state: Arc<SyncMutex<BridgeState>>,
    tasks: Arc<SyncMutex<JoinSet<()>>>,
}

impl FakeSam {
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(SyncMutex::new(BridgeState::default()));
        let tasks = Arc::new(SyncMutex::new(JoinSet::new()));
        let (st, ts) = (state.clone(), tasks.clone());
        tasks.lock().spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                ts.lock().spawn(serve(s, st));
            }
        });
        Self { addr, state, tasks }
    }

    /// Stops listening and closes every connection (sessions, parked acceptors, streams).
    fn stop(&self) {
        self.tasks.lock().abort_all();
        let mut st = self.state.lock();
        st.sessions.clear();
        st.acceptors.clear();
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().log.clone()
    }
}

impl Drop for FakeSam {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(mut s: TcpStream, state: Arc<SyncMutex<BridgeState>>) {
    let mut session_of_this_socket: Option<String> = None;
    while let Ok(line) = read_line(&mut s).await {
        state.lock().log.push(redact(&line));
        let reply = if line.starts_with("HELLO VERSION") {
            "HELLO REPLY RESULT=OK VERSION=3.1\n".to_owned()
        } else if line.starts_with("DEST GENERATE") {
            let mut st = state.lock();
            st.generated += 1;
            let (public, private) = fake_private(st.generated);
            format!("DEST REPLY PUB={public} PRIV={private}\n")
        } else if line.starts_with("SESSION CREATE") {
            let id = reply_value(&line, "ID").unwrap_or_default();
            let key = reply_value(&line, "DESTINATION").unwrap_or_default();
            let mut st = state.lock();
            if st.sessions.contains_key(&id) {
                "SESSION STATUS RESULT=DUPLICATED_ID\n".to_owned()
            } else if let Some(public) = public_destination(&key) {
                st.sessions.insert(id.clone(), public);
                session_of_this_socket = Some(id);
                format!("SESSION STATUS RESULT=OK DESTINATION={key}\n")
            } else {
                "SESSION STATUS RESULT=INVALID_KEY\n".to_owned()
            }
        } else if line.starts_with("STREAM ACCEPT") {
            let id = reply_value(&line, "ID").unwrap_or_default();
            let public = state.lock().sessions.get(&id).cloned();
            let Some(public) = public else {
                let _ = s.write_all(b"STREAM STATUS RESULT=INVALID_ID\n").await;
                continue;
            };
            if s.write_all(b"STREAM STATUS RESULT=OK\n").await.is_err() {
                return;
            }
            state.lock().acceptors.entry(public).or_default().push(s);
            return;
        } else if line.starts_with("STREAM CONNECT") {
            let id = reply_value(&line, "ID").unwrap_or_default();
            let to = reply_value(&line, "DESTINATION").unwrap_or_default();
            let (from, acceptor) = {
                let mut st = state.lock();
                let from = st.sessions.get(&id).cloned();
                let acceptor = st.acceptors.get_mut(&to).and_then(Vec::pop);
                (from, acceptor)
            };
            match (from, acceptor) {
                (None, _) => "STREAM STATUS RESULT=INVALID_ID\n".to_owned(),
                (Some(_), None) => "STREAM STATUS RESULT=CANT_REACH_PEER\n".to_owned(),
                (Some(from), Some(mut acceptor)) => {
                    let hello = format!("{from} FROM_PORT=0 TO_PORT=0\n");
                    if acceptor.write_all(hello.as_bytes()).await.is_err()
                        || s.write_all(b"STREAM STATUS RESULT=OK\n").await.is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut acceptor).await;
                    return;
                }
            }
        } else if line.starts_with("NAMING LOOKUP") {
            let name = reply_value(&line, "NAME").unwrap_or_default();
            let st = state.lock();
            let found = st
                .sessions
                .values()
                .find(|d| b32_address(d).as_deref() == Some(name.as_str()));
            match found {
                Some(d) => format!("NAMING REPLY RESULT=OK NAME={name} VALUE={d}\n"),
                None => format!("NAMING REPLY RESULT=KEY_NOT_FOUND NAME={name}\n"),
            }
        } else {
            "ERROR RESULT=I2P_ERROR MESSAGE=\"unknown command\"\n".to_owned()
        };
        if s.write_all(reply.as_bytes()).await.is_err() {
            break;
        }
    }
    if let Some(id) = session_of_this_socket {
        state.lock().sessions.remove(&id);
    }
}

// === transport tests ===

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beat-gateway-i2p-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(sam: SocketAddr, key_file: PathBuf) -> I2pConfig {
    I2pConfig {
        enabled: true,
        sam: sam.to_string(),
        key_file,
        connect_timeout: Duration::from_secs(5),
        session_timeout: Duration::from_secs(5),
        ..I2pConfig::default()
    }
}

#[tokio::test]
async fn destination_is_generated_once_with_signature_type_7_and_kept() {
    let bridge = FakeSam::start("127.0.0.1:0".parse().expect("addr")).await;
    let dir = temp_dir("dest");
    let cfg = config(bridge.addr, dir.join("keys/destination.key"));
    let first = destination(&cfg).await.expect("generate");
    assert_eq!(destination(&cfg).await.expect("load"), first);
    let generated: Vec<String> = bridge
        .log()
        .into_iter()
        .filter(|l| l.starts_with("DEST GENERATE"))
        .collect();
    assert_eq!(generated, vec!["DEST GENERATE SIGNATURE_TYPE=7".to_owned()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.key_file)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Without a bridge, the stored key still answers.
    bridge.stop();
    assert_eq!(destination(&cfg).await.expect("offline"), first);
    // A corrupt key file is refused, not replaced.
    std::fs::write(&cfg.key_file, "garbage!").expect("write");
    assert!(matches!(
        destination(&cfg).await,
        Err(I2pError::BadKey { .. })
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// Dials until the peer's acceptor is parked on the bridge (a dial before that is refused with
/// CANT_REACH_PEER, as on a real bridge), then checks bytes flow both ways.
async fn exchange(a: &I2pTransport, b: &I2pTransport, endpoint: &str) {
    let mut dialled = None;
    for _ in 0..100 {
        match a.dial(endpoint).await {
            Ok(s) => {
                dialled = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut dialled = dialled.expect("dial within 5 s");
    let mut accepted = tokio::time::timeout(Duration::from_secs(5), b.accept())
        .await
        .expect("accept in time")
        .expect("accept")
        .connection;
    dialled.write_all(b"ping").await.expect("write");
    dialled.flush().await.expect("flush");
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    accepted.write_all(b"pong").await.expect("write");
    accepted.flush().await.expect("flush");
    dialled.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn two_transports_stream_by_destination_and_by_b32_name() {
    let bridge = FakeSam::start("127.0.0.1:0".parse().expect("addr")).await;
    let dir = temp_dir("stream");
    let a_cfg = config(bridge.addr, dir.join("a.key"));
    let b_cfg = config(bridge.addr, dir.join("b.key"));
    let a = I2pTransport::start(&a_cfg).await.expect("a");
    let b = I2pTransport::start(&b_cfg).await.expect("b");
    let b_dest = destination(&b_cfg).await.expect("b dest");
    exchange(&a, &b, &b_dest).await;
    exchange(&a, &b, &b32_address(&b_dest).expect("b32")).await;
    let a_dest = destination(&a_cfg).await.expect("a dest");
    exchange(&b, &a, &a_dest).await;
    let log = bridge.log();
    let sessions: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("SESSION CREATE"))
        .collect();
    assert_eq!(sessions.len(), 2, "{log:?}");
    assert!(
        sessions
            .iter()
            .all(|l| l.contains("STYLE=STREAM") && l.contains("SIGNATURE_TYPE=7")),
        "{sessions:?}"
    );
    // An unknown peer is a failed dial, not a hang.
    let (other, _) = fake_private(200);
    let err = a.dial(&other).await.err().expect("unreachable");
    assert!(err.to_string().contains("CANT_REACH_PEER"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn session_comes_back_after_the_bridge_restarts() {
    let bridge = FakeSam::start("127.0.0.1:0".parse().expect("addr")).await;
    let addr = bridge.addr;
    let dir = temp_dir("restart");
    let a_cfg = config(addr, dir.join("a.key"));
    let b_cfg = config(addr, dir.join("b.key"));
    let a = I2pTransport::start(&a_cfg).await.expect("a");
    let b = I2pTransport::start(&b_cfg).await.expect("b");
    let b_dest = destination(&b_cfg).await.expect("b dest");
    exchange(&a, &b, &b_dest).await;
    let first_id = a.shared.session.borrow().clone().expect("session");

    bridge.stop();
    drop(bridge);
    // The control socket closed: the transport notices and has no session.
    let mut rx = a.shared.session.subscribe();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_none))
        .await
        .expect("session dropped in time")
        .expect("watch");
    let err = a.dial(&b_dest).await.err().expect("no bridge");
    assert!(
        matches!(err, TransportError::Unavailable(_) | TransportError::Io(_)),
        "{err}"
    );

    // Same port, new bridge with no memory of the old sessions.
    let bridge = FakeSam::start(addr).await;
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(Option::is_some))
        .await
        .expect("session recreated in time")
        .expect("watch");
    let second_id = a.shared.session.borrow().clone().expect("session");
    assert_ne!(first_id, second_id);
    // b's session and acceptor come back on their own too.
    exchange(&a, &b, &b_dest).await;
    let sessions = bridge
        .log()
        .iter()
        .filter(|l| l.starts_with("SESSION CREATE"))
        .count();
    assert_eq!(
        sessions, 2,
        "a and b each created one session on the new bridge"
    );
    let _ = std::fs::remove_dir_all(dir);
}
