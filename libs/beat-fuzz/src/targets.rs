//! The targets: what a remote party can make each decoder read, and what must hold.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    path::PathBuf,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use beat_consensus::{segments::SegmentLog, wire};
use beat_core::{Batch, Content, Contribution, Message, Params};
use beat_crypto::{
    Digest,
    identity::IdentityKeypair,
    keystore_file::{self, KdfParams, Passphrase},
    tdh2,
};
use beat_gateway::{
    link::{
        codec,
        handshake::{self, LocalIdentity, ResponderBudget, Role, Secrets},
        record::SessionKeys,
    },
    signer::{InMemorySigner, Signer},
};
use beat_sim::{
    adversary::{Adversary, Ctx, random_pick},
    net::VirtualNet,
    scenario::{SCENARIO_BUNDLES, workload},
};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;
use futures::SinkExt;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

use crate::Target;

/// Every target.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(ConsensusPayload),
        Box::new(HandshakeResponder::new()),
        Box::new(PeerRecord::new()),
        Box::new(Tdh2::new()),
        Box::new(Segments::new()),
        Box::new(KeystoreFile::new()),
        Box::new(MarketEvent::new()),
        Box::new(ReceiveWindow),
        Box::new(SamReplies),
        Box::new(AvidFp),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

// === consensus payloads ===

/// `beat_consensus::wire::decode`, the decoder of every peer payload: whatever decodes must
/// re-encode to a payload that decodes to the same message.
pub struct ConsensusPayload;

/// The payload limit the target decodes under.
const PAYLOAD_LIMIT: usize = 1 << 20;

/// Records every message the simulator delivers (the schedule stays random).
struct Recorder(Rc<RefCell<Vec<Message>>>);

impl Adversary for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let i = random_pick(ctx.in_flight.len(), ctx.rng);
        let mut seen = self.0.borrow_mut();
        if seen.len() < 3_000 {
            seen.push(ctx.in_flight[i].message.clone());
        }
        i
    }
}

/// Messages of short honest runs of every variant at n = 4, plus catch-up traffic.
pub fn recorded_messages() -> Vec<Message> {
    let mut out = Vec::new();
    for variant in [
        Variant::Beat0,
        Variant::Beat1,
        Variant::Beat2,
        Variant::Beat3,
        Variant::Beat4,
    ] {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let params = Params {
            batch_size: 8,
            max_transaction_bytes: 1024,
            variant,
            ..Params::default()
        };
        let mut net = VirtualNet::builder(4)
            .faulty(0)
            .seed(11)
            .params(params)
            .adversary(Box::new(Recorder(seen.clone())))
            .build()
            .expect("a simulated network");
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let load =
            workload(variant, &net, 8, 32, 11, SCENARIO_BUNDLES, &mut rng).expect("a workload");
        for committed in load.iter().flat_map(|(_, committed)| committed) {
            net.checker.expect(committed, Epoch::ZERO);
        }
        let txs: Vec<Transaction> = load.into_iter().map(|(s, _)| s).collect();
        let members: Vec<NodeId> = net.committee.members().collect();
        for id in members {
            net.submit(id, txs.clone()).expect("submitting");
        }
        while net.cranks() < 200_000 && !net.checker.workload_done() {
            if !net.crank() {
                net.stall_all();
                if !net.crank() {
                    break;
                }
            }
        }
        out.extend(seen.take());
    }
    out.push(Message::CatchUpRequest {
        from: Epoch(3),
        count: 16,
    });
    out.push(Message::CatchUpResponse(vec![
        Batch {
            epoch: Epoch(0),
            contributions: (0..4)
                .map(|p| Contribution {
                    proposer: NodeId(p),
                    content: Content::Transactions(
                        (0..4)
                            .map(|i| Transaction::new(vec![i as u8; 40]))
                            .collect(),
                    ),
                })
                .collect(),
            ordered_labels: vec![Digest([5; 32])],
        }
        .into(),
    ]));
    out
}

impl Target for ConsensusPayload {
    fn name(&self) -> &'static str {
        "consensus-payload"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds: Vec<Vec<u8>> = recorded_messages().iter().map(wire::encode).collect();
        seeds.sort();
        seeds.dedup();
        seeds
    }

    fn run(&mut self, input: &[u8]) -> bool {
        match wire::decode(input, PAYLOAD_LIMIT) {
            Ok(message) => {
                let again = wire::encode(&message);
                let decoded = wire::decode(&again, PAYLOAD_LIMIT.max(again.len()))
                    .expect("a decoded message re-encodes to a payload that decodes");
                assert_eq!(decoded, message, "re-encoding changed the message");
                true
            }
            Err(_) => false,
        }
    }

    fn max_len(&self) -> usize {
        1 << 18
    }
}

// === the handshake, as a stranger's bytes reach a responder ===

struct CountingSigner {
    inner: InMemorySigner,
    calls: Arc<AtomicUsize>,
}

impl Signer for CountingSigner {
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_crypto::identity::IdentitySignature, beat_gateway::signer::SignerError>,
    > {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.sign_handshake(transcript)
    }

    fn public_keys(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_gateway::signer::SignerKeys, beat_gateway::signer::SignerError>,
    > {
        self.inner.public_keys()
    }
}

/// The responder's side of the `beat.wire.v2` handshake fed an initiator's bytes (Hello, then
/// Proof, framed): it must never accept a mutated stream (the proof cannot cover the
/// responder's fresh ephemeral key) and never ask its keystore to sign for it.
pub struct HandshakeResponder {
    runtime: tokio::runtime::Runtime,
    /// Each replica's identity secret.
    identities: Vec<[u8; 32]>,
    rng: ChaCha20Rng,
}

const DIGEST: Digest = Digest([0x42; 32]);

impl HandshakeResponder {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        Self {
            runtime: runtime(),
            identities: (0..4)
                .map(|_| {
                    let mut secret = [0; 32];
                    rng.fill_bytes(&mut secret);
                    secret
                })
                .collect(),
            rng,
        }
    }

    fn local(&self, me: usize, calls: Arc<AtomicUsize>) -> LocalIdentity {
        let keypair = IdentityKeypair::from_secret_bytes(self.identities[me]);
        LocalIdentity {
            me: NodeId::from_index(me),
            incarnation: 9,
            committee_digest: DIGEST,
            identities: self
                .identities
                .iter()
                .map(|s| IdentityKeypair::from_secret_bytes(*s).public())
                .collect(),
            signer: Arc::new(CountingSigner {
                inner: InMemorySigner::new(keypair, NodeId::from_index(me), DIGEST),
                calls,
            }),
            // Unlimited here: the target checks what a mutated handshake gets, not the budget.
            responder_budget: Arc::new(ResponderBudget::new(u32::MAX, u32::MAX)),
        }
    }

    fn secrets(&mut self) -> Secrets {
        let mut nonce = [0; 32];
        self.rng.fill_bytes(&mut nonce);
        Secrets {
            nonce,
            ephemeral: x25519_dalek::EphemeralSecret::random_from_rng(&mut self.rng),
        }
    }
}

impl Target for HandshakeResponder {
    fn name(&self) -> &'static str {
        "handshake-responder"
    }

    /// What a real initiator (replica 1) sends a real responder (replica 0), as it crossed the
    /// wire.
    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let initiator = self.local(1, Arc::default());
        let responder = self.local(0, Arc::default());
        let (i_secrets, r_secrets) = (self.secrets(), self.secrets());
        self.runtime.block_on(async {
            let (i_end, tap_i) = tokio::io::duplex(1 << 16);
            let (tap_r, r_end) = tokio::io::duplex(1 << 16);
            let (mut from_i, mut to_i) = tokio::io::split(tap_i);
            let (mut from_r, mut to_r) = tokio::io::split(tap_r);
            let recorded = tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    use tokio::io::AsyncReadExt;
                    match from_i.read(&mut buf).await {
                        Ok(0) | Err(_) => return seen,
                        Ok(n) => {
                            seen.extend_from_slice(&buf[..n]);
                            if to_r.write_all(&buf[..n]).await.is_err() {
                                return seen;
                            }
                        }
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_r, &mut to_i).await;
            });
            let (ir, iw) = codec::framed(Box::new(i_end), codec::HANDSHAKE_MAX_FRAME);
            let (rr, rw) = codec::framed(Box::new(r_end), codec::HANDSHAKE_MAX_FRAME);
            let role = Role::Initiator {
                expected: NodeId(0),
            };
            let hello = Duration::from_secs(5);
            let (a, b) = tokio::join!(
                handshake::handshake(ir, iw, &initiator, role, i_secrets, hello),
                handshake::handshake(rr, rw, &responder, Role::Responder, r_secrets, hello),
            );
            assert!(a.is_ok() && b.is_ok(), "the seed handshake failed");
            drop((a, b));
            vec![recorded.await.expect("the tap")]
        })
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let calls = Arc::new(AtomicUsize::new(0));
        let responder = self.local(0, calls.clone());
        let secrets = self.secrets();
        let input = input.to_vec();
        let result = self.runtime.block_on(async move {
            let (mut stranger, r_end) = tokio::io::duplex(1 << 17);
            let (rr, rw) = codec::framed(Box::new(r_end), codec::HANDSHAKE_MAX_FRAME);
            let writer = async move {
                let _ = stranger.write_all(&input).await;
                let _ = stranger.shutdown().await;
                // Keep our end open until the responder is done, reading what it sends.
                let mut sink = Vec::new();
                use tokio::io::AsyncReadExt;
                let _ = stranger.read_to_end(&mut sink).await;
            };
            let responder = tokio::time::timeout(
                Duration::from_secs(5),
                handshake::handshake(
                    rr,
                    rw,
                    &responder,
                    Role::Responder,
                    secrets,
                    Duration::from_secs(1),
                ),
            );
            let (result, ()) = tokio::join!(responder, writer);
            result
        });
        let result = result.expect("the responder neither finished nor failed within 5 s");
        assert!(result.is_err(), "a stranger's bytes completed a handshake");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "the responder asked its keystore to sign for a stranger"
        );
        false
    }

    fn max_len(&self) -> usize {
        4096
    }
}

// === sealed records ===

/// `RecordReader`: a record that opens must be one that was sealed (AEAD authenticity under a
/// fixed key and counter 0), whatever the bytes.
pub struct PeerRecord {
    runtime: tokio::runtime::Runtime,
    sealed: Vec<Vec<u8>>,
}

const SHARED: [u8; 32] = [0x17; 32];
const TRANSCRIPT: [u8; 32] = [0x29; 32];

impl PeerRecord {
    fn new() -> Self {
        Self {
            runtime: runtime(),
            sealed: Vec::new(),
        }
    }
}

impl Target for PeerRecord {
    fn name(&self) -> &'static str {
        "peer-record"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        use beat_proto::wire::v2::{Ack, Data, PeerFrame, Ping, peer_frame::Kind};
        let frames = [
            Kind::Ping(Ping { nonce: 7 }),
            Kind::Ack(Ack {
                incarnation: 3,
                sequence: 99,
            }),
            Kind::Data(Data {
                incarnation: 3,
                sequence: 1,
                payload: Bytes::from(wire::encode(&Message::EpochStarted(Epoch(4)))),
                floor: 1,
            }),
            Kind::Data(Data {
                incarnation: u64::MAX,
                sequence: u64::MAX,
                payload: Bytes::from(vec![1u8; 300]),
                floor: 0,
            }),
        ];
        self.sealed = self.runtime.block_on(async {
            let mut out = Vec::new();
            for kind in frames {
                let (a, b) = tokio::io::duplex(1 << 16);
                let (ar, aw) = codec::framed(Box::new(a), 1 << 16);
                let (mut tapped, _) = codec::framed(Box::new(b), 1 << 16);
                let (_, mut writer) = SessionKeys::derive(&SHARED, &TRANSCRIPT, true).seal(ar, aw);
                writer
                    .send(&PeerFrame { kind: Some(kind) })
                    .await
                    .expect("sealing a seed");
                out.push(
                    codec::next_raw(&mut tapped)
                        .await
                        .expect("the seed")
                        .to_vec(),
                );
            }
            out
        });
        self.sealed.clone()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let input = input.to_vec();
        let opened = self.runtime.block_on(async {
            let (a, b) = tokio::io::duplex(1 << 17);
            let (_, mut raw) = codec::framed(Box::new(a), 1 << 17);
            let (br, bw) = codec::framed(Box::new(b), 1 << 17);
            let (mut reader, _) = SessionKeys::derive(&SHARED, &TRANSCRIPT, false).seal(br, bw);
            raw.send(Bytes::from(input.clone()))
                .await
                .expect("the pipe");
            reader.next().await
        });
        match opened {
            Ok(_) => {
                assert!(
                    self.sealed.contains(&input),
                    "a record that was never sealed opened"
                );
                true
            }
            Err(_) => false,
        }
    }

    fn max_len(&self) -> usize {
        4096
    }
}

// === threshold encryption ===

/// TDH2 ciphertexts and decryption shares as peers and clients send them, and ciphertext
/// headers as consensus sends them to the keystore: what parses is canonical (re-encodes to
/// the same bytes), what verifies is exactly what was made, and a header that verifies gets
/// the share of the ciphertext it was made from.
pub struct Tdh2 {
    public: tdh2::PublicKey,
    secrets: Vec<tdh2::SecretKeyShare>,
    ciphertexts: Vec<Vec<u8>>,
    headers: Vec<Vec<u8>>,
    shares: Vec<[u8; tdh2::DecryptionShare::LEN]>,
}

impl Tdh2 {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (public, secrets) = tdh2::deal(4, 1, &mut rng).expect("dealing");
        Self {
            public,
            secrets,
            ciphertexts: Vec::new(),
            headers: Vec::new(),
            shares: Vec::new(),
        }
    }
}

impl Target for Tdh2 {
    fn name(&self) -> &'static str {
        "tdh2"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut seeds = Vec::new();
        for (label, plaintext) in [
            (&b"epoch 1/proposer 2"[..], &b"batch"[..]),
            (b"L", &[7; 300]),
        ] {
            let ct = self
                .public
                .encrypt(label, plaintext, &mut rng)
                .expect("encrypting");
            let bytes = ct.to_bytes();
            self.ciphertexts.push(bytes.clone());
            seeds.push([&[0u8][..], &bytes].concat());
            let header = ct.header().to_bytes();
            self.headers.push(header.clone());
            seeds.push([&[2u8][..], &header].concat());
            for secret in &self.secrets {
                let share = secret
                    .decryption_share(&self.public, &ct, label)
                    .expect("sharing")
                    .to_bytes();
                self.shares.push(share);
                seeds.push([&[1u8][..], &share].concat());
            }
        }
        seeds
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let Some((&selector, body)) = input.split_first() else {
            return false;
        };
        if selector % 3 == 2 {
            let Ok(header) = tdh2::CiphertextHeader::from_bytes(body) else {
                return false;
            };
            assert_eq!(
                header.to_bytes(),
                body,
                "a header encoding is not canonical"
            );
            let shared =
                self.secrets[0].header_decryption_share(&self.public, &header, header.label());
            if self.public.verify_header(&header).is_ok() {
                let made = self.headers.iter().position(|h| h == body);
                let Some(made) = made else {
                    panic!("a header nobody made verifies");
                };
                let ct = tdh2::Ciphertext::from_bytes(&self.ciphertexts[made]).expect("a seed");
                assert_eq!(
                    shared.ok(),
                    self.secrets[0]
                        .decryption_share(&self.public, &ct, ct.label())
                        .ok(),
                    "a header's share differs from its ciphertext's"
                );
            } else {
                assert!(shared.is_err(), "a share for a header that does not verify");
            }
            true
        } else if selector % 3 == 0 {
            let Ok(ct) = tdh2::Ciphertext::from_bytes(body) else {
                return false;
            };
            assert_eq!(
                ct.to_bytes(),
                body,
                "a ciphertext encoding is not canonical"
            );
            if self.public.verify_ciphertext(&ct).is_ok() {
                assert!(
                    self.ciphertexts.iter().any(|c| c == body),
                    "a ciphertext nobody made verifies"
                );
            }
            true
        } else {
            let Ok(bytes) = <&[u8; tdh2::DecryptionShare::LEN]>::try_from(body) else {
                return false;
            };
            let Ok(share) = tdh2::DecryptionShare::from_bytes(bytes) else {
                return false;
            };
            assert_eq!(
                &share.to_bytes(),
                bytes,
                "a share encoding is not canonical"
            );
            for ct in &self.ciphertexts {
                let ct = tdh2::Ciphertext::from_bytes(ct).expect("a seed ciphertext");
                for holder in 0..4 {
                    if self.public.verify_share(&ct, NodeId(holder), &share) {
                        assert!(self.shares.contains(bytes), "a share nobody made verifies");
                    }
                }
            }
            true
        }
    }
}

// === segment files ===

/// `SegmentLog::open` on a damaged segment file: it may refuse or cut a torn tail, but every
/// record it returns is one that was written, under its key.
pub struct Segments {
    dir: PathBuf,
    written: BTreeMap<u64, Vec<u8>>,
}

const SEGMENT: &str = "0000000000.seg";

impl Segments {
    fn new() -> Self {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Self {
            dir: base.join(format!("beat-fuzz-segments-{}", std::process::id())),
            written: BTreeMap::new(),
        }
    }

    fn reset(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("the fuzz directory");
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Target for Segments {
    fn name(&self) -> &'static str {
        "segments"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        self.reset();
        let mut log = SegmentLog::open(&self.dir, 1 << 30).expect("a fresh log");
        for key in 0..24u64 {
            let payload: Vec<u8> = (0..(key * 13 % 97)).map(|i| (i ^ key) as u8).collect();
            log.append(key, &payload).expect("appending");
            self.written.insert(key, payload);
        }
        log.sync().expect("syncing");
        drop(log);
        let seed = std::fs::read(self.dir.join(SEGMENT)).expect("the segment file");
        // The harness is sound only if damage inside synced data is refused.
        let mut damaged = seed.clone();
        damaged[seed.len() / 2] ^= 0x10;
        self.reset();
        std::fs::write(self.dir.join(SEGMENT), &damaged).expect("writing");
        assert!(
            SegmentLog::open(&self.dir, 1 << 30).is_err(),
            "a segment damaged mid-file opened"
        );
        vec![seed]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        self.reset();
        std::fs::write(self.dir.join(SEGMENT), input).expect("writing the segment");
        let Ok(log) = SegmentLog::open(&self.dir, 1 << 30) else {
            return false;
        };
        let records = log.range(0, usize::MAX).expect("reading an opened log");
        let kept = records.len();
        for (key, payload) in records {
            assert_eq!(
                self.written.get(&key),
                Some(&payload),
                "the log returned a record that was never written (key {key})"
            );
        }
        // Interesting (a seed for more) only if nothing was cut: a torn tail always opens, and
        // breeding on ever shorter files would stop exercising the scan.
        kept == self.written.len()
    }

    fn max_len(&self) -> usize {
        1 << 14
    }
}

// === keystore files ===

/// `keystore_file::open` on a damaged file, with a KDF ceiling that refuses costly headers
/// before the KDF runs: a file that opens holds exactly what was sealed.
pub struct KeystoreFile {
    passphrase: Passphrase,
    payload: Vec<u8>,
}

impl KeystoreFile {
    fn new() -> Self {
        Self {
            passphrase: Passphrase::new("correct horse battery staple".to_owned())
                .expect("a passphrase"),
            payload: (0..200u8).collect(),
        }
    }
}

impl Target for KeystoreFile {
    fn name(&self) -> &'static str {
        "keystore-file"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        vec![
            keystore_file::seal(
                &self.passphrase,
                &self.payload,
                KdfParams::insecure_fast_for_tests(),
                &mut rng,
            )
            .expect("sealing"),
        ]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        match keystore_file::open_with_kdf_ceiling(
            &self.passphrase,
            input,
            &KdfParams::insecure_fast_for_tests(),
        ) {
            Ok(payload) => {
                assert_eq!(
                    *payload, self.payload,
                    "a damaged file opened to other bytes"
                );
                true
            }
            Err(_) => false,
        }
    }

    fn max_len(&self) -> usize {
        4096
    }
}

// === market events ===

/// The state service's decoder of committed transactions (`market::event::decode_checked`,
/// with a source registry): anyone who can submit a transaction reaches it on every replica.
/// Seeds are events signed by the registered source `feed-a`; the property: whatever a mutant
/// decodes to, if it is accepted, its signed content is exactly a seed's — no mutation of a
/// signed event (its source, sequence, body or signature) is accepted as another event.
pub struct MarketEvent {
    sources: std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>,
    key: beat_crypto::identity::IdentityKeypair,
    signed: std::collections::HashSet<Vec<u8>>,
}

impl MarketEvent {
    /// With a fixed source key (the fuzzer's inputs are reproducible from its seed).
    pub fn new() -> Self {
        let key = beat_crypto::identity::IdentityKeypair::from_secret_bytes([7; 32]);
        Self {
            sources: [("feed-a".to_owned(), key.public())].into(),
            key,
            signed: std::collections::HashSet::new(),
        }
    }
}

impl Default for MarketEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for MarketEvent {
    fn name(&self) -> &'static str {
        "market-event"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        use beat_proto::state::v1::{
            CancelOrder, MarketEvent as Event, NewOrder, Quote, Side, TradePrint,
            market_event::Event as E,
        };
        let events = [
            E::Quote(Quote {
                symbol: "BTC-USD".into(),
                bid_price: 100,
                bid_size: 3,
                ask_price: 101,
                ask_size: 4,
            }),
            E::Trade(TradePrint {
                symbol: "ETH-USD".into(),
                price: 7,
                quantity: 1,
            }),
            E::Order(NewOrder {
                order_id: "o-1".into(),
                symbol: "BTC-USD".into(),
                side: Side::Buy as i32,
                price: 99,
                quantity: 2,
            }),
            E::Cancel(CancelOrder {
                order_id: "o-1".into(),
            }),
        ];
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let mut event = Event {
                    source: if i % 2 == 0 { "feed-a" } else { "feed-a:run-1" }.into(),
                    sequence: i as u64 + 1,
                    event: Some(e),
                    signature: Default::default(),
                };
                beat_state::market::sources::sign(&mut event, &self.key);
                self.signed
                    .insert(beat_state::market::sources::signed_bytes(&event));
                event.encode_to_vec()
            })
            .collect()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        let accepted = beat_state::market::event::decode_checked(input, &self.sources).is_ok();
        if accepted {
            let event = beat_proto::state::v1::MarketEvent::decode(input)
                .expect("an accepted event decodes");
            assert!(
                self.signed
                    .contains(&beat_state::market::sources::signed_bytes(&event)),
                "an event that was never signed was accepted: {event:?}"
            );
        }
        accepted
    }

    fn max_len(&self) -> usize {
        4096
    }
}

// === the gateway's receive window ===

/// The gateway's per-sender receive window (`component::InboundWindow`): every sequence and
/// floor in it comes from a peer. The input is a script of operations, 9 bytes each (an
/// operation byte and a 64-bit argument), run against a window of 8; properties checked after
/// every step: nothing is delivered twice or out of order, a payload is delivered only under
/// its own sequence, the reorder buffer stays within the window, the cumulative
/// acknowledgement never moves back and never covers a delivery consensus has not
/// acknowledged, and `would_keep`/`is_next` predict what `receive` does.
pub struct ReceiveWindow;

const WINDOW: u64 = 8;

impl ReceiveWindow {
    fn script(ops: &[(u8, u64)]) -> Vec<u8> {
        ops.iter()
            .flat_map(|(op, arg)| std::iter::once(*op).chain(arg.to_le_bytes()))
            .collect()
    }
}

impl Target for ReceiveWindow {
    fn name(&self) -> &'static str {
        "receive-window"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        // op 0: receive(arg & 0xffff, arg >> 32); 1: receive at an absolute 64-bit sequence;
        // 2: floor only (receive of an old sequence under floor = arg); 3: acknowledge(arg);
        // 4: acknowledge everything delivered; 5: clear the reorder buffer.
        vec![
            Self::script(&[(0, 1), (0, 2), (3, 1), (3, 2), (0, 3)]),
            Self::script(&[(0, 3), (0, 2), (0, 1), (4, 0), (0, 1)]),
            Self::script(&[(0, 5), (0, 9), (2, 7), (4, 0), (0, 7 | (12 << 32))]),
            Self::script(&[(0, 2), (5, 0), (0, 1), (0, 2), (1, u64::MAX), (4, 0)]),
            Self::script(&[
                (2, 5),
                (0, 5),
                (0, 6),
                (4, 0),
                (1, u64::MAX - 1),
                (1, u64::MAX),
            ]),
        ]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        use beat_gateway::component::InboundWindow;
        let mut window = InboundWindow::new(1, WINDOW);
        let mut delivered: Vec<u64> = Vec::new();
        let mut unacknowledged: std::collections::BTreeSet<u64> = Default::default();
        let mut level = window.ack_level();
        let mut progressed = false;
        for op in input.chunks_exact(9) {
            let arg = u64::from_le_bytes(op[1..].try_into().expect("8 bytes"));
            let receive = match op[0] % 6 {
                0 => Some((arg & 0xffff, arg >> 32)),
                1 => Some((arg, 0)),
                2 => Some((0, arg)),
                3 => {
                    window.acknowledge(arg);
                    unacknowledged.remove(&arg);
                    None
                }
                4 => {
                    for s in std::mem::take(&mut unacknowledged) {
                        window.acknowledge(s);
                    }
                    None
                }
                _ => {
                    window.clear_reorder();
                    None
                }
            };
            if let Some((sequence, floor)) = receive {
                let keep = window.would_keep(sequence, floor);
                let next = window.is_next(sequence, floor);
                let out = window.receive(
                    sequence,
                    floor,
                    Bytes::from(sequence.to_le_bytes().to_vec()),
                );
                assert_eq!(
                    keep, !out.duplicate,
                    "would_keep({sequence}, {floor}) mispredicted"
                );
                if next && sequence != u64::MAX {
                    assert!(
                        out.deliver.iter().any(|(s, _)| *s == sequence),
                        "is_next({sequence}, {floor}) but not delivered"
                    );
                }
                for (s, payload) in out.deliver {
                    assert_eq!(
                        payload.as_ref(),
                        s.to_le_bytes(),
                        "payload under another sequence"
                    );
                    if let Some(last) = delivered.last() {
                        assert!(s > *last, "delivered {s} after {last}");
                    }
                    delivered.push(s);
                    unacknowledged.insert(s);
                    progressed = true;
                }
            }
            let (buffered, _) = window.buffered();
            assert!(buffered as u64 <= WINDOW, "reorder buffer holds {buffered}");
            let now = window.ack_level();
            assert!(
                now >= level,
                "acknowledgement moved back from {level} to {now}"
            );
            level = now;
            if let Some(first) = unacknowledged.first() {
                assert!(
                    level < *first,
                    "ack level {level} covers unacknowledged {first}"
                );
            }
        }
        progressed
    }

    fn max_len(&self) -> usize {
        9 * 256
    }
}

// === the SAM bridge's replies ===

/// The I2P transport's SAM v3 reply parser (`transport::sam`): a bridge is a separate process
/// and may be hostile or broken. Lines are read from the input as the transport reads them;
/// each line's `RESULT`, `VALUE`, `DESTINATION`, `PRIV` and `PUB` values are extracted and any
/// destination is reduced to its public part and b32 address. Properties: a line never holds
/// a newline, never exceeds the 16 KiB bound and consumes exactly itself and its terminator; a
/// value is a piece of its line; a public destination is its own public part and has a 52-letter
/// b32 address.
pub struct SamReplies;

impl Target for SamReplies {
    fn name(&self) -> &'static str {
        "sam-replies"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        use beat_gateway::transport::sam::i2p_base64_encode;
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        // 256-byte encryption key, 128-byte signing key field, a key certificate (type 5,
        // length 4: Ed25519 signing, ElGamal encryption), then the private keys.
        let mut public = vec![0u8; 384];
        rng.fill_bytes(&mut public);
        public.extend_from_slice(&[5, 0, 4, 0, 7, 0, 0]);
        let mut private = public.clone();
        let mut keys = vec![0u8; 256 + 32];
        rng.fill_bytes(&mut keys);
        private.extend_from_slice(&keys);
        let (public, private) = (i2p_base64_encode(&public), i2p_base64_encode(&private));
        [
            "HELLO REPLY RESULT=OK VERSION=3.1\n".to_owned(),
            format!("SESSION STATUS RESULT=OK DESTINATION={private}\n"),
            format!("NAMING REPLY RESULT=OK NAME=peer.i2p VALUE={public}\n"),
            "STREAM STATUS RESULT=CANT_REACH_PEER MESSAGE=\"unreachable peer\"\r\n".to_owned(),
            format!("DEST REPLY PUB={public} PRIV={private}\n"),
            format!("STREAM STATUS RESULT=OK\n{public} FROM_PORT=0 TO_PORT=0\nstream data"),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    fn run(&mut self, input: &[u8]) -> bool {
        use beat_gateway::transport::sam::{
            b32_address, public_destination, read_line, reply_value,
        };
        let mut rest = input;
        let mut ok = false;
        loop {
            let before = rest.len();
            let Ok(line) = futures::executor::block_on(read_line(&mut rest)) else {
                return ok;
            };
            let consumed = before - rest.len();
            assert!(!line.contains('\n'), "a line holds a newline");
            assert!(line.len() <= 16 * 1024, "a {}-byte line", line.len());
            let terminator = consumed - line.len();
            assert!(
                terminator == 1
                    || (terminator == 2 && input[input.len() - before + line.len()] == b'\r'),
                "line of {} bytes consumed {consumed}",
                line.len()
            );
            for key in ["RESULT", "VALUE", "DESTINATION", "PRIV", "PUB", "MESSAGE"] {
                let Some(value) = reply_value(&line, key) else {
                    continue;
                };
                assert!(line.contains(&value), "{key}={value:?} is not in {line:?}");
                ok = true;
                for destination in [Some(value.clone()), public_destination(&value)]
                    .into_iter()
                    .flatten()
                {
                    if let Some(public) = public_destination(&destination) {
                        assert_eq!(
                            public_destination(&public),
                            None,
                            "a public part holds a private key"
                        );
                        let b32 = b32_address(&public).expect("an encoded destination decodes");
                        assert_eq!(b32.len(), 52 + ".b32.i2p".len(), "b32 address {b32}");
                    }
                }
            }
        }
    }

    fn max_len(&self) -> usize {
        1 << 15
    }
}

// === AVID-FP dispersal and retrieval ===

/// AVID-FP (BEAT3/BEAT4) against a faulty proposer and faulty servers: an honest dispersal of
/// a payload, then byte edits to some of its fragments, then either the honest cross-checksum
/// (faulty servers altering fragments) or one recomputed over the edited fragments (a faulty
/// proposer committing to fragments off the codeword, as `cross_checksum` lets it).
///
/// The input: a code selector (n = 4 or 7, MDS or pyramid), a payload length, a flag byte,
/// an edit count, edits of 4 bytes (fragment, offset, xor), and the payload's bytes (cycled).
/// Properties: under the honest checksum, a fragment verifies only unaltered and the payload
/// decodes whenever `k` MDS fragments are unaltered; under any checksum, every `k`-subset of
/// verified MDS fragments that decodes gives the same payload as the full decode, and a
/// pyramid partial read that succeeds returns exactly the full decode's bytes of its group
/// (when the full decode succeeds too; a partial read needs only its group's fragments).
pub struct AvidFp;

impl AvidFp {
    fn input(code: u8, len: u16, recommit: bool, edits: &[(u8, u16, u8)], body: &[u8]) -> Vec<u8> {
        let mut input = vec![code];
        input.extend_from_slice(&len.to_le_bytes());
        input.push(u8::from(recommit));
        input.push(edits.len() as u8);
        for (fragment, offset, xor) in edits {
            input.push(*fragment);
            input.extend_from_slice(&offset.to_le_bytes());
            input.push(*xor);
        }
        input.extend_from_slice(body);
        input
    }
}

impl Target for AvidFp {
    fn name(&self) -> &'static str {
        "avid-fp"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        vec![
            Self::input(0, 300, false, &[], b"an honest BEAT3 dispersal"),
            Self::input(
                1,
                1000,
                false,
                &[(0, 5, 1)],
                b"a server alters a data fragment",
            ),
            Self::input(
                2,
                2000,
                true,
                &[(5, 17, 0x80)],
                b"a proposer commits off the codeword",
            ),
            Self::input(
                3,
                513,
                true,
                &[(7, 0, 3), (2, 64, 9)],
                b"pyramid, local parity off",
            ),
            Self::input(3, 0, false, &[], b""),
        ]
    }

    fn run(&mut self, input: &[u8]) -> bool {
        use beat_crypto::avid_fp::{AvidFpCode, Fragment, Layout};
        if input.len() < 5 {
            return false;
        }
        let (n, layout) = match input[0] % 4 {
            0 => (4, Layout::Mds),
            1 => (4, Layout::Pyramid { groups: 2 }),
            2 => (7, Layout::Mds),
            _ => (7, Layout::Pyramid { groups: 3 }),
        };
        let k = n - 2 * ((n - 1) / 3);
        let len = usize::from(u16::from_le_bytes([input[1], input[2]])) % 4096;
        let recommit = input[3] & 1 == 1;
        let edit_count = usize::from(input[4] % 17);
        let Some(edits) = input.get(5..5 + 4 * edit_count) else {
            return false;
        };
        let body = &input[5 + 4 * edit_count..];
        let payload: Vec<u8> = if body.is_empty() {
            vec![0; len]
        } else {
            body.iter().copied().cycle().take(len).collect()
        };
        let code = AvidFpCode::with_params(n, k, layout)
            .expect("a valid code")
            .with_max_payload_len(4096)
            .with_threads(1);
        let (honest, original) = code.disperse(&payload).expect("dispersing");
        let mut fragments = original.clone();
        let s = code.fragment_len(len as u64);
        for edit in edits.chunks_exact(4) {
            let f = usize::from(edit[0]) % fragments.len();
            let offset = usize::from(u16::from_le_bytes([edit[1], edit[2]])) % s;
            fragments[f].bytes[offset] ^= edit[3].max(1);
        }
        let fpcc = if recommit {
            code.cross_checksum(len as u64, &fragments)
                .expect("fragments of the right shape")
        } else {
            honest
        };
        let verified: Vec<&Fragment> = fragments[..n]
            .iter()
            .filter(|f| code.verify_fragment(&fpcc, f).is_ok())
            .collect();
        if !recommit {
            for f in &verified {
                assert_eq!(
                    f.bytes, original[f.index as usize].bytes,
                    "an altered fragment {} verifies against the honest checksum",
                    f.index
                );
            }
        }
        let full = code.decode(&fpcc, &fragments);
        if !recommit {
            if verified.len() >= k {
                assert_eq!(
                    full.as_deref().ok(),
                    Some(&payload[..]),
                    "{} unaltered fragments do not decode to the payload",
                    verified.len()
                );
            } else {
                assert!(full.is_err(), "decoded from {} fragments", verified.len());
            }
        }
        // Every k-subset of verified fragments (at most C(7, 3) = 35) agrees with the full
        // decode: verified fragments lie on one codeword whatever the proposer committed to.
        let mut subset: Vec<usize> = (0..k).collect();
        if verified.len() >= k {
            loop {
                let chosen: Vec<Fragment> = subset.iter().map(|&i| verified[i].clone()).collect();
                let decoded = code.decode(&fpcc, &chosen);
                match (&decoded, &full) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "fragments {subset:?} decode otherwise"),
                    (Ok(_), Err(e)) => panic!("a subset decodes but the full decode fails: {e}"),
                    (Err(e), Ok(_)) => panic!("verified fragments {subset:?} do not decode: {e}"),
                    (Err(_), Err(_)) => {}
                }
                // The next k-combination of 0..verified.len().
                let Some(i) = (0..k).rev().find(|&i| subset[i] < verified.len() - k + i) else {
                    break;
                };
                subset[i] += 1;
                for j in i + 1..k {
                    subset[j] = subset[j - 1] + 1;
                }
            }
        }
        for group in 0..code.group_count() {
            let Ok(read) = code.read_group(&fpcc, group, &fragments) else {
                continue;
            };
            // A partial read needs only its group, so it may succeed where the full decode
            // lacks fragments; where both succeed they agree, and under the honest checksum
            // it returns the payload's bytes.
            let range = read.byte_range.start as usize..read.byte_range.end as usize;
            if let Ok(full) = &full {
                assert_eq!(
                    read.bytes,
                    full[range.clone()],
                    "a partial read of group {group} disagrees with the full decode"
                );
            }
            if !recommit {
                assert_eq!(
                    read.bytes, payload[range],
                    "a partial read of group {group} under the honest checksum is wrong"
                );
            }
        }
        true
    }

    fn max_len(&self) -> usize {
        5 + 4 * 16 + 512
    }
}
