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
    keystore_file::{KdfParams, Passphrase, seal_to_file},
    tdh2::DecryptionShare,
};
use beat_keystore::Caller;
use beat_keystore::config::Config;
use beat_proto::keystore::v1::{
    CoinId, CreateDecryptionSharesRequest, DecryptionItem, PublicKeysRequest,
    SignCoinSharesRequest, SignHandshakeRequest, decryption_share_result::Result as ShareResult,
    keystore_service_client::KeystoreServiceClient,
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
        let keystore = beat_keystore::load(&fx.config).unwrap();
        // Each caller on a Unix socket of its own, as in production.
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
        let shutdown = Shutdown::default();
        let server = tokio::spawn(beat_keystore::serve(
            fx.config.clone(),
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
        let mut client = connect(consensus_sock).await;
        let mut gateway = connect(gateway_sock).await;

        // Each socket serves its caller's methods only.
        let refused = gateway
            .sign_coin_shares(SignCoinSharesRequest {
                coins: vec![CoinId::default()],
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        let refused = gateway
            .create_decryption_shares(CreateDecryptionSharesRequest {
                epoch: 0,
                items: vec![],
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
        };
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
                ],
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
        for (i, r) in res.iter().enumerate().filter(|(i, _)| ![0, 5].contains(i)) {
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
            })
            .await
            .unwrap_err();
        assert_eq!(too_many.code(), tonic::Code::InvalidArgument);

        shutdown.trigger();
        server.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
