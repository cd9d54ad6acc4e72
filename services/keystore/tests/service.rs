//! The keystore service over loopback gRPC: operations, refusals and loading errors.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use beat_config::{CommitteeFile, Endpoints, ReplicaEntry};
use beat_core::{
    Params,
    client::{CLIENT_LABEL_PREFIX, client_label},
    codec::epoch_label,
};
use beat_crypto::{
    bls::{SignatureShare, coin_message},
    dealer::{ReplicaSecrets, deal},
    identity::{IdentityKeypair, IdentitySignature},
    keystore_file::{KdfParams, Passphrase},
    tdh2::DecryptionShare,
};
use beat_keystore::Caller;
use beat_keystore::config::Config;
use beat_keystore::file::seal_to_file;
use beat_proto::keystore::v1::{
    CoinId, CommitStatement, CreateDecryptionSharesRequest, DecryptionItem, PublicKeysRequest,
    SignCoinSharesRequest, SignCommitSharesRequest, SignHandshakeRequest,
    decryption_share_result::Result as ShareResult, keystore_service_client::KeystoreServiceClient,
};
use beat_telemetry::{
    local::{self, ListenAddr},
    shutdown::Shutdown,
};
use beat_types::{Committee, NodeId};
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    dir: std::path::PathBuf,
    committee: CommitteeFile,
    config: Config,
}

fn fixture(name: &str, replica: u32) -> (Fixture, Vec<ReplicaSecrets>) {
    let dir =
        std::env::temp_dir().join(format!("beat-keystore-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = Committee::new(4).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (keys, secrets) = deal(c, &mut rng).unwrap();
    let committee = CommitteeFile {
        format: 1,
        name: "test".into(),
        params: Params::default(),
        keys,
        replicas: (0..4)
            .map(|i| ReplicaEntry {
                id: NodeId(i),
                endpoints: Endpoints {
                    tcp: Some(format!("127.0.0.1:{}", 7000 + i)),
                    ..Default::default()
                },
            })
            .collect(),
    };
    committee.save(&dir.join("committee.json")).unwrap();
    std::fs::write(dir.join("pass"), "s3cret\n").unwrap();
    let pass = Passphrase::new("s3cret".into()).unwrap();
    for s in &secrets {
        let payload = postcard::to_allocvec(s).unwrap();
        seal_to_file(
            dir.join(format!("replica-{}.keystore", s.node)),
            &pass,
            &payload,
            KdfParams::insecure_fast_for_tests(),
            &mut rng,
        )
        .unwrap();
    }
    let config = Config {
        replica,
        committee: dir.join("committee.json"),
        keystore_file: dir.join(format!("replica-{replica}.keystore")),
        passphrase_file: Some(dir.join("pass")),
        passphrase_env: None,
        ..Config::default()
    };
    (
        Fixture {
            dir,
            committee,
            config,
        },
        secrets,
    )
}

type Client = KeystoreServiceClient<tonic::transport::Channel>;

struct Running {
    consensus: Client,
    gateway: Client,
    ops: std::net::SocketAddr,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Serves the fixture's keystore with `config`, each caller on a Unix socket of its own, as in
/// production, and connects a client to each. Must run inside an actix system.
async fn start(fx: &Fixture, config: Config) -> Running {
    let keystore = beat_keystore::load(&config).unwrap();
    let run = Path::new(&fx.dir).join("run");
    let consensus_sock = ListenAddr::Unix(run.join("keystore-consensus.sock"));
    let gateway_sock = ListenAddr::Unix(run.join("keystore-gateway.sock"));
    let listeners = vec![
        (
            local::bind(&consensus_sock).await.unwrap(),
            Caller::Consensus,
        ),
        (local::bind(&gateway_sock).await.unwrap(), Caller::Gateway),
    ];
    let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_addr = ops.local_addr().unwrap();
    let shutdown = Shutdown::default();
    let server = tokio::spawn(beat_keystore::serve(
        config,
        keystore,
        listeners,
        ops,
        shutdown.clone(),
    ));
    let connect = |addr: ListenAddr| async move {
        loop {
            match local::connect(&addr.endpoint(), std::time::Duration::from_secs(2)).await {
                Ok(c) => break KeystoreServiceClient::new(c),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    };
    Running {
        consensus: connect(consensus_sock).await,
        gateway: connect(gateway_sock).await,
        ops: ops_addr,
        shutdown,
        server,
    }
}

#[test]
fn loading_refuses_wrong_passphrase_foreign_and_corrupt_files() {
    let (fx, _) = fixture("load", 1);
    assert!(beat_keystore::load(&fx.config).is_ok());
    let mut wrong = fx.config.clone();
    std::fs::write(fx.dir.join("wrong"), "nope\n").unwrap();
    wrong.passphrase_file = Some(fx.dir.join("wrong"));
    let e = beat_keystore::load(&wrong).err().unwrap();
    assert!(format!("{e:#}").contains("wrong passphrase"), "{e:#}");
    let mut foreign = fx.config.clone();
    foreign.keystore_file = fx.dir.join("replica-2.keystore");
    let e = beat_keystore::load(&foreign).err().unwrap();
    assert!(format!("{e:#}").contains("replica 2"), "{e:#}");
    let mut bytes = std::fs::read(&fx.config.keystore_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(fx.dir.join("corrupt"), bytes).unwrap();
    let mut corrupt = fx.config.clone();
    corrupt.keystore_file = fx.dir.join("corrupt");
    assert!(beat_keystore::load(&corrupt).is_err());
    let _ = std::fs::remove_dir_all(Path::new(&fx.dir));
}

#[test]
fn serves_operations_and_refuses_what_it_must() {
    let (fx, _) = fixture("serve", 1);
    let dir = fx.dir.clone();
    let keys = fx.committee.keys.clone();
    actix_rt::System::new().block_on(async move {
        let Running {
            consensus: mut client,
            mut gateway,
            shutdown,
            server,
            ..
        } = start(&fx, fx.config.clone()).await;

        // Each socket serves its caller's methods only.
        let refused = gateway
            .sign_coin_shares(SignCoinSharesRequest {
                coins: vec![CoinId::default()],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        let refused = gateway
            .create_decryption_shares(CreateDecryptionSharesRequest {
                epoch: 0,
                items: vec![],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        let refused = client
            .sign_handshake(SignHandshakeRequest {
                context: "beat/peer-handshake/v2".into(),
                transcript: Bytes::from(vec![9u8; 32]),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        let pk = gateway.public_keys(PublicKeysRequest {}).await.unwrap();
        assert_eq!(pk.into_inner().replica, 1);

        let pk = client
            .public_keys(PublicKeysRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(pk.replica, 1);
        assert_eq!(pk.identity.as_ref(), keys.identities[1].as_bytes());
        assert_eq!(
            pk.committee_digest.as_ref(),
            fx.committee.digest().as_bytes()
        );

        // Coin shares verify against replica 1's public key share.
        let coins = vec![
            CoinId {
                epoch: 3,
                instance: 2,
                round: 2,
            },
            CoinId {
                epoch: 3,
                instance: 0,
                round: 5,
            },
        ];
        let shares = client
            .sign_coin_shares(SignCoinSharesRequest {
                coins: coins.clone(),
                horizon: None,
            })
            .await
            .unwrap()
            .into_inner()
            .shares;
        for (c, s) in coins.iter().zip(&shares) {
            let id = beat_core::CoinId {
                epoch: beat_types::Epoch(c.epoch),
                instance: NodeId(c.instance),
                round: c.round,
            };
            let share = SignatureShare::from_bytes(s.as_ref().try_into().unwrap()).unwrap();
            assert!(keys.coin.verify_share(NodeId(1), &id.message(), &share));
            assert!(
                !keys
                    .coin
                    .verify_share(NodeId(1), &coin_message(b"other"), &share)
            );
        }

        // Commit shares: only on the consensus socket, only for this committee, and under the
        // commit tag (not a coin share of the same bytes).
        let statement = beat_core::CommitStatement {
            committee: fx.committee.digest(),
            epoch: beat_types::Epoch(4),
            batch: beat_crypto::Digest([1; 32]),
            previous: beat_crypto::Digest([2; 32]),
        };
        let wire = |s: &beat_core::CommitStatement| CommitStatement {
            committee_digest: Bytes::copy_from_slice(s.committee.as_bytes()),
            epoch: s.epoch.0,
            batch_digest: Bytes::copy_from_slice(s.batch.as_bytes()),
            previous: Bytes::copy_from_slice(s.previous.as_bytes()),
        };
        let refused = gateway
            .sign_commit_shares(SignCommitSharesRequest {
                statements: vec![wire(&statement)],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        let shares = client
            .sign_commit_shares(SignCommitSharesRequest {
                statements: vec![wire(&statement)],
                horizon: None,
            })
            .await
            .unwrap()
            .into_inner()
            .shares;
        let share = SignatureShare::from_bytes(shares[0].as_ref().try_into().unwrap()).unwrap();
        assert!(
            keys.coin
                .verify_share(NodeId(1), &statement.message(), &share)
        );
        assert!(!keys.coin.verify_share(
            NodeId(1),
            &coin_message(statement.link().as_bytes()),
            &share
        ));
        let foreign = beat_core::CommitStatement {
            committee: beat_crypto::Digest([7; 32]),
            ..statement
        };
        let refused = client
            .sign_commit_shares(SignCommitSharesRequest {
                statements: vec![wire(&statement), wire(&foreign)],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
        let mut short = wire(&statement);
        short.batch_digest = Bytes::from_static(&[1; 31]);
        let refused = client
            .sign_commit_shares(SignCommitSharesRequest {
                statements: vec![short],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");

        // Decryption shares: released only for a valid ciphertext with the expected label.
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let label = epoch_label(beat_types::Epoch(3), NodeId(2));
        let ct = keys.encryption.encrypt(&label, b"batch", &mut rng).unwrap();
        let mut tampered = ct.to_bytes();
        let len = tampered.len();
        tampered[len - 1] ^= 1;
        let other_label = epoch_label(beat_types::Epoch(3), NodeId(0));
        // BEAT2: a client ciphertext under a well-formed client label (prefix, key, request)
        // gets a share; one under a label that only looks like one does not.
        let client_key = IdentityKeypair::generate(&mut rng).public();
        let beat2_label = client_label(&client_key, 9);
        let client_ct = keys
            .encryption
            .encrypt(&beat2_label, b"tx", &mut rng)
            .unwrap();
        let mut not_client = CLIENT_LABEL_PREFIX.to_vec();
        not_client.extend_from_slice(b"mallory/9");
        let not_client_ct = keys
            .encryption
            .encrypt(&not_client, b"tx", &mut rng)
            .unwrap();
        let item = |ct: Vec<u8>, label: Vec<u8>, proposer| DecryptionItem {
            proposer,
            index: 0,
            ciphertext: Bytes::from(ct),
            expected_label: Bytes::from(label),
            ciphertext_header: Bytes::new(),
        };
        // What consensus sends: the header instead of the whole ciphertext.
        let header_item = |header: Vec<u8>, label: Vec<u8>, proposer| DecryptionItem {
            proposer,
            index: 0,
            ciphertext: Bytes::new(),
            expected_label: Bytes::from(label),
            ciphertext_header: Bytes::from(header),
        };
        // A header whose body digest is not the one the proof binds.
        let mut wrong_digest = ct.header().to_bytes();
        let last = wrong_digest.len() - 1;
        wrong_digest[last] ^= 1;
        let res = client
            .create_decryption_shares(CreateDecryptionSharesRequest {
                epoch: 3,
                items: vec![
                    item(ct.to_bytes(), label.clone(), 2),
                    item(ct.to_bytes(), other_label.clone(), 0),
                    item(tampered, label.clone(), 2),
                    item(b"garbage".to_vec(), label.clone(), 2),
                    item(ct.to_bytes(), b"arbitrary label".to_vec(), 2),
                    item(client_ct.to_bytes(), beat2_label.clone(), 1),
                    item(not_client_ct.to_bytes(), not_client.clone(), 1),
                    header_item(ct.header().to_bytes(), label.clone(), 2),
                    header_item(client_ct.header().to_bytes(), beat2_label.clone(), 1),
                    header_item(ct.header().to_bytes(), other_label.clone(), 0),
                    header_item(wrong_digest, label.clone(), 2),
                    header_item(ct.to_bytes(), label.clone(), 2),
                    DecryptionItem {
                        ciphertext: Bytes::from(ct.to_bytes()),
                        ..header_item(ct.header().to_bytes(), label.clone(), 2)
                    },
                    header_item(Vec::new(), label.clone(), 2),
                ],
                horizon: None,
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let Some(ShareResult::Share(bytes)) = &res[0].result else {
            panic!("{:?}", res[0])
        };
        let share = DecryptionShare::from_bytes(bytes.as_ref().try_into().unwrap()).unwrap();
        assert!(keys.encryption.verify_share(&ct, NodeId(1), &share));
        let Some(ShareResult::Share(bytes)) = &res[5].result else {
            panic!("{:?}", res[5])
        };
        let share = DecryptionShare::from_bytes(bytes.as_ref().try_into().unwrap()).unwrap();
        assert!(keys.encryption.verify_share(&client_ct, NodeId(1), &share));
        // A header gets the very share its ciphertext gets.
        assert_eq!(res[7], res[0]);
        assert_eq!(res[8], res[5]);
        assert_eq!(res.len(), 14);
        for (i, r) in res
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, 5, 7, 8].contains(i))
        {
            assert!(
                matches!(r.result, Some(ShareResult::Refused(_))),
                "item {i}: {r:?}"
            );
        }

        // Handshake signatures only in the handshake context and over a digest.
        let transcript = Bytes::from(vec![9u8; 32]);
        let sig = gateway
            .sign_handshake(SignHandshakeRequest {
                context: "beat/peer-handshake/v2".into(),
                transcript: transcript.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .signature;
        let sig = IdentitySignature::from_bytes(sig.as_ref().try_into().unwrap()).unwrap();
        keys.identities[1]
            .verify(b"beat/peer-handshake/v2", &transcript, &sig)
            .unwrap();
        let denied = gateway
            .sign_handshake(SignHandshakeRequest {
                context: "anything else".into(),
                transcript,
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let bad = gateway
            .sign_handshake(SignHandshakeRequest {
                context: "beat/peer-handshake/v2".into(),
                transcript: Bytes::from_static(b"short"),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let too_many = client
            .sign_coin_shares(SignCoinSharesRequest {
                coins: vec![CoinId::default(); 70_000],
                horizon: None,
            })
            .await
            .unwrap_err();
        assert_eq!(too_many.code(), tonic::Code::InvalidArgument);

        shutdown.trigger();
        server.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate for `statement` made with replicas 0 and 2's shares (f + 1 of 4).
fn certificate(
    keys: &beat_crypto::dealer::CommitteeKeys,
    secrets: &[ReplicaSecrets],
    statement: &beat_core::CommitStatement,
) -> beat_proto::common::v1::CommitCertificate {
    let shares: std::collections::BTreeMap<_, _> = [0, 2]
        .iter()
        .map(|&i| {
            (
                NodeId(i),
                secrets[i as usize].coin.sign(&statement.message()),
            )
        })
        .collect();
    let signature = keys.coin.combine_unchecked(&shares).unwrap();
    beat_proto::common::v1::CommitCertificate {
        committee_digest: Bytes::copy_from_slice(statement.committee.as_bytes()),
        epoch: statement.epoch.0,
        batch_digest: Bytes::copy_from_slice(statement.batch.as_bytes()),
        previous: Bytes::copy_from_slice(statement.previous.as_bytes()),
        signature: Bytes::copy_from_slice(&signature.to_bytes()),
    }
}

fn wire_statement(s: &beat_core::CommitStatement) -> CommitStatement {
    CommitStatement {
        committee_digest: Bytes::copy_from_slice(s.committee.as_bytes()),
        epoch: s.epoch.0,
        batch_digest: Bytes::copy_from_slice(s.batch.as_bytes()),
        previous: Bytes::copy_from_slice(s.previous.as_bytes()),
    }
}

/// The ops port's `/metrics` page.
fn scrape(ops: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(ops).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn metric(registry_text: &str, line_prefix: &str) -> f64 {
    registry_text
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The signing horizon (module `beat_core::signing`, K1–K3) as a compromised consensus process
/// would meet it, and the handshake rate limit as a flooding gateway would.
#[test]
fn signs_only_within_the_certified_horizon_and_rate_limits_handshakes() {
    let (fx, secrets) = fixture("horizon", 1);
    let dir = fx.dir.clone();
    let keys = fx.committee.keys.clone();
    let committee = fx.committee.digest();
    // The window the committee's parameters give: certify_window + 1.
    let window = fx.committee.params.certify_window + 1;
    actix_rt::System::new().block_on(async move {
        let config = Config {
            handshake_signatures_per_second: 1,
            handshake_burst: 3,
            ..fx.config.clone()
        };
        let Running {
            mut consensus,
            mut gateway,
            ops,
            shutdown,
            server,
        } = start(&fx, config).await;
        let coin = |epoch| CoinId {
            epoch,
            instance: 0,
            round: 2,
        };
        let coins = |epoch, horizon| SignCoinSharesRequest {
            coins: vec![coin(epoch)],
            horizon,
        };

        // K1 before any certificate: epochs below the window only. A consensus process that
        // tries to stockpile coin shares for the future gets nothing.
        consensus
            .sign_coin_shares(coins(window - 1, None))
            .await
            .unwrap();
        for far in [window, 1_000_000, u64::MAX] {
            let refused = consensus
                .sign_coin_shares(coins(far, None))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
            assert!(refused.message().contains("signing window"), "{refused}");
        }

        // A forged certificate (one share short: replica 1's own alone, combined as if it
        // were f + 1), a relabelled one and one of another committee move nothing.
        let s10 = beat_core::CommitStatement {
            committee,
            epoch: beat_types::Epoch(10),
            batch: beat_crypto::Digest([1; 32]),
            previous: beat_crypto::Digest([2; 32]),
        };
        let valid = certificate(&keys, &secrets, &s10);
        let mut relabelled = valid.clone();
        relabelled.epoch = 1_000_000;
        let mut forged = valid.clone();
        forged.signature = Bytes::copy_from_slice(&secrets[1].coin.sign(&s10.message()).to_bytes());
        let foreign = certificate(
            &keys,
            &secrets,
            &beat_core::CommitStatement {
                committee: beat_crypto::Digest([9; 32]),
                ..s10
            },
        );
        for (what, bad) in [
            ("relabelled", relabelled),
            ("forged", forged),
            ("foreign", foreign),
        ] {
            let refused = consensus
                .sign_coin_shares(coins(0, Some(bad)))
                .await
                .unwrap_err();
            assert_eq!(
                refused.code(),
                tonic::Code::InvalidArgument,
                "{what}: {refused}"
            );
            let refused = consensus
                .sign_coin_shares(coins(12, None))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{what}");
        }

        // A valid certificate of epoch 10 moves the frontier to 11: coins up to 10 + window.
        consensus
            .sign_coin_shares(coins(10 + window, Some(valid.clone())))
            .await
            .unwrap();
        let refused = consensus
            .sign_coin_shares(coins(11 + window, None))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        // It stays moved without the certificate, and old coins are harmless (public).
        consensus.sign_coin_shares(coins(0, None)).await.unwrap();

        // K2: decryption shares only inside [frontier − window, frontier + window): an
        // epoch-labelled ciphertext of an epoch long certified (an excluded proposal, whose
        // transactions come back later) is refused per item, as is one of a future epoch.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let decrypt = |epoch: u64, rng: &mut ChaCha20Rng| {
            let label = epoch_label(beat_types::Epoch(epoch), NodeId(2));
            let ct = keys.encryption.encrypt(&label, b"batch", rng).unwrap();
            CreateDecryptionSharesRequest {
                epoch,
                items: vec![DecryptionItem {
                    proposer: 2,
                    index: 0,
                    ciphertext: Bytes::new(),
                    expected_label: Bytes::from(label),
                    ciphertext_header: Bytes::from(ct.header().to_bytes()),
                }],
                horizon: None,
            }
        };
        let low = 11 - window;
        for (epoch, shared) in [
            (low - 1, false),
            (low, true),
            (11, true),
            (10 + window, true),
            (11 + window, false),
        ] {
            let res = consensus
                .create_decryption_shares(decrypt(epoch, &mut rng))
                .await
                .unwrap()
                .into_inner()
                .results;
            let got = matches!(res[0].result, Some(ShareResult::Share(_)));
            assert_eq!(got, shared, "epoch {epoch}: {:?}", res[0]);
        }

        // K1 and K3 for commit statements: within the window, one statement per epoch (the
        // same one again is fine), all-or-nothing per request.
        let s12 = beat_core::CommitStatement {
            epoch: beat_types::Epoch(12),
            ..s10
        };
        let other12 = beat_core::CommitStatement {
            batch: beat_crypto::Digest([3; 32]),
            ..s12
        };
        let commit = |statements: Vec<beat_core::CommitStatement>| SignCommitSharesRequest {
            statements: statements.iter().map(wire_statement).collect(),
            horizon: None,
        };
        consensus
            .sign_commit_shares(commit(vec![s12]))
            .await
            .unwrap();
        consensus
            .sign_commit_shares(commit(vec![s12]))
            .await
            .unwrap();
        let refused = consensus
            .sign_commit_shares(commit(vec![other12]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("different commit statement"),
            "{refused}"
        );
        let s13 = beat_core::CommitStatement {
            epoch: beat_types::Epoch(13),
            ..s10
        };
        let other13 = beat_core::CommitStatement {
            batch: beat_crypto::Digest([4; 32]),
            ..s13
        };
        let refused = consensus
            .sign_commit_shares(commit(vec![s13, other13]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        // Nothing of the refused request was recorded: the second statement alone is fine.
        consensus
            .sign_commit_shares(commit(vec![other13]))
            .await
            .unwrap();
        let far = beat_core::CommitStatement {
            epoch: beat_types::Epoch(11 + window),
            ..s10
        };
        let refused = consensus
            .sign_commit_shares(commit(vec![far]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

        // Handshake signatures: a burst of 3, then 1 per second.
        let handshake = || SignHandshakeRequest {
            context: "beat/peer-handshake/v2".into(),
            transcript: Bytes::from(vec![9u8; 32]),
        };
        for _ in 0..3 {
            gateway.sign_handshake(handshake()).await.unwrap();
        }
        let limited = gateway.sign_handshake(handshake()).await.unwrap_err();
        assert_eq!(limited.code(), tonic::Code::ResourceExhausted, "{limited}");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        gateway.sign_handshake(handshake()).await.unwrap();

        // Every refusal is counted by reason, and the frontier is exported.
        let text = tokio::task::spawn_blocking(move || scrape(ops))
            .await
            .unwrap();
        assert_eq!(metric(&text, "beat_keystore_signing_frontier"), 11.0);
        assert!(metric(&text, "beat_keystore_refusals_total{operation=\"horizon\"}") >= 7.0);
        assert_eq!(
            metric(
                &text,
                "beat_keystore_refusals_total{operation=\"certificate\"}"
            ),
            3.0
        );
        assert_eq!(
            metric(
                &text,
                "beat_keystore_refusals_total{operation=\"equivocation\"}"
            ),
            2.0
        );
        assert!(
            metric(
                &text,
                "beat_keystore_refusals_total{operation=\"handshake_rate\"}"
            ) >= 1.0
        );
        // Four certificates checked so far: the three bad ones and the valid one of epoch 10.
        assert_eq!(metric(&text, "beat_keystore_certificate_checks_total"), 4.0);

        // Lazy checking (module `beat_core::signing`): a certificate is checked (a pairing)
        // only when the request needs the frontier moved or it is a window ahead of it.
        let at = |epoch| {
            certificate(
                &keys,
                &secrets,
                &beat_core::CommitStatement {
                    epoch: beat_types::Epoch(epoch),
                    ..s10
                },
            )
        };
        let checks_and_frontier = || async move {
            let text = tokio::task::spawn_blocking(move || scrape(ops))
                .await
                .unwrap();
            (
                metric(&text, "beat_keystore_certificate_checks_total"),
                metric(&text, "beat_keystore_signing_frontier"),
            )
        };
        // Epoch 12's certificate with a request the frontier 11 allows: not checked, not moved;
        // a forged one with such a request is not checked either (it could move nothing).
        consensus
            .sign_coin_shares(coins(12, Some(at(12))))
            .await
            .unwrap();
        let mut forged12 = at(12);
        forged12.signature = valid.signature.clone();
        consensus
            .sign_coin_shares(coins(12, Some(forged12.clone())))
            .await
            .unwrap();
        assert_eq!(checks_and_frontier().await, (4.0, 11.0));
        // A request past the window: the certificate is checked then, and the forged one is
        // refused rather than trusted.
        let refused = consensus
            .sign_coin_shares(coins(11 + window, Some(forged12)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
        consensus
            .sign_coin_shares(coins(11 + window, Some(at(12))))
            .await
            .unwrap();
        assert_eq!(checks_and_frontier().await, (6.0, 13.0));
        // A certificate a window or more ahead is checked whatever the request.
        consensus
            .sign_coin_shares(coins(13, Some(at(12 + window))))
            .await
            .unwrap();
        assert_eq!(checks_and_frontier().await, (7.0, (13 + window) as f64));

        shutdown.trigger();
        server.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
