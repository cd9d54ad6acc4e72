//! The Compose cluster of the repository's `compose.yaml` (4 replicas, each a "pod" of a
//! namespace-owning container and the four service containers), driven only through the
//! client APIs published on the host's loopback. Agreement of every replica's batches and state
//! hashes is checked while:
//!
//! 1. one replica's containers are all SIGKILLed, the others keep committing, and after a restart
//!    it recovers and catches up;
//! 2. a replica is partitioned with `docker network disconnect` and reconnected;
//! 3. one service container of a replica (a gateway, then a keystore) is restarted alone under
//!    load, and every acknowledged transaction still commits everywhere;
//! 4. the whole cluster is taken down (containers and network removed, volumes kept) and brought
//!    up again: batches and market state survive in the volumes.
//!
//! The image is `$BEAT_E2E_IMAGE` if set (scripts/test builds `beat:dev` with
//! deploy/build-images.sh), otherwise `beat:e2e` built here from this package's `beat-e2e`
//! binary by the same script. Skipped, with a message, only where no Docker engine with Compose
//! exists and `CI` is unset. The project is always torn down with `down -v`, failures included.

use std::{collections::HashSet, path::Path, time::Duration};

use anyhow::{Context, bail};
use beat_cli::api::ordering_client;
use beat_e2e::{
    batches_until, committed_everywhere,
    compose::{ComposeProject, compose_program, run_bounded},
    market_tx, same_market_state, submit_spread,
};
use beat_proto::consensus::v1 as cpb;
use beat_telemetry::probe::ready as ops_ready;
use beat_testkit::monitor::AgreementTracker;
use bytes::Bytes;
use tokio::time::Instant;

const N: usize = 4;
const COMMIT_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const OPS_PORTS: [u16; 4] = [9100, 9200, 9300, 9400];

fn txs(source: &str, range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|k| market_tx(source, k)).collect()
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
}

/// The image under test: `$BEAT_E2E_IMAGE`, or `beat:e2e` built from this package's binary.
fn image() -> anyhow::Result<String> {
    if let Ok(image) = std::env::var("BEAT_E2E_IMAGE") {
        run_bounded(
            &["docker".to_owned()],
            &["image", "inspect", &image],
            &[],
            Duration::from_secs(30),
        )
        .with_context(|| format!("BEAT_E2E_IMAGE={image} is not a local image"))?;
        return Ok(image);
    }
    let script = repo_root().join("deploy/build-images.sh");
    let out = run_bounded(
        &[script.to_string_lossy().into_owned()],
        &["--tag", "beat:e2e", env!("CARGO_BIN_EXE_beat-e2e")],
        &[],
        Duration::from_secs(600),
    )?;
    eprint!("{out}");
    Ok("beat:e2e".to_owned())
}

/// Fails unless every published host port of the project is free.
fn ports_free(project: &ComposeProject) -> anyhow::Result<()> {
    for i in 0..N {
        for port in [7100, 7400].into_iter().chain(OPS_PORTS) {
            let p = project.host_port(port, i);
            std::net::TcpListener::bind(("127.0.0.1", p)).with_context(|| {
                format!("host port {p} is taken; set BEAT_E2E_PORT_PREFIX to another digit 1-5")
            })?;
        }
    }
    Ok(())
}

/// Waits until every service of `replicas` answers `/readyz` through its published ops port.
async fn wait_ready(project: &ComposeProject, replicas: &[usize]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for &i in replicas {
        for port in OPS_PORTS {
            let addr = project.ops_address(port, i);
            while !ops_ready(addr).await {
                if Instant::now() >= deadline {
                    bail!(
                        "replica {i}: ops port {port} ({addr}) not ready after {READY_TIMEOUT:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Ok(())
}

/// Waits until Docker reports every service container healthy (the image's HEALTHCHECK, which
/// runs `beat health` inside the container), and checks they run as the non-root user on a
/// read-only root filesystem.
async fn wait_healthy_and_hardened(project: &ComposeProject) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for i in 0..N {
        for service in &ComposeProject::replica_services(i)[1..] {
            let id = project.container(service)?;
            let facts = project.docker(&[
                "inspect",
                "-f",
                "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
                &id,
            ])?;
            anyhow::ensure!(
                facts.trim() == "10001:10001 true",
                "{service}: user and read-only root are {facts:?}"
            );
            loop {
                let health = project.docker(&["inspect", "-f", "{{.State.Health.Status}}", &id])?;
                if health.trim() == "healthy" {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("{service} is {:?} after {READY_TIMEOUT:?}", health.trim());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
}

/// Submits `txs` to `endpoint` in requests of `chunk`, pausing `pause` between requests, and
/// returns the transactions acknowledged as accepted. Failed requests are tolerated: a service
/// of the replica may be restarting.
async fn submit_recording(
    endpoint: String,
    txs: Vec<Vec<u8>>,
    chunk: usize,
    pause: Duration,
) -> Vec<Vec<u8>> {
    let mut acked = Vec::new();
    let Ok(mut client) = ordering_client(&endpoint) else {
        return acked;
    };
    for part in txs.chunks(chunk) {
        let request = cpb::SubmitRequest {
            transactions: part.iter().cloned().map(Bytes::from).collect(),
        };
        if let Ok(Ok(r)) =
            tokio::time::timeout(Duration::from_secs(10), client.submit(request)).await
        {
            for (tx, rc) in part.iter().zip(&r.get_ref().receipts) {
                if rc.admission == cpb::Admission::Accepted as i32 {
                    acked.push(tx.clone());
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
    acked
}

fn endpoints(project: &ComposeProject, replicas: &[usize]) -> (Vec<String>, Vec<String>) {
    (
        replicas
            .iter()
            .map(|&i| project.ordering_endpoint(i))
            .collect(),
        replicas
            .iter()
            .map(|&i| project.market_endpoint(i))
            .collect(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn scenario(project: &mut ComposeProject, t0: Instant) -> anyhow::Result<()> {
    let all: Vec<usize> = (0..N).collect();
    let (ordering, market) = endpoints(project, &all);
    project.up(&[])?;
    // The published APIs require the keygen's TLS material: every client below uses it.
    let credentials = std::env::temp_dir().join(format!("beat-compose-{}", project.project()));
    let auth = project.client_auth(&credentials)?;
    beat_cli::api::use_client_auth(auth.clone());
    wait_ready(project, &all).await?;
    // Every batch below is verified against the committee file the keygen wrote.
    let committee = project.committee(&credentials)?;
    wait_healthy_and_hardened(project).await?;
    // From the host, the published ordering API answers the keygen's client only: plaintext
    // and a client without its token are refused.
    let status = |url: String, auth: beat_client::connect::ClientAuth| async move {
        let mut c = beat_client::connect::ordering(&url, &auth)?;
        anyhow::Ok(
            c.status(cpb::StatusRequest {})
                .await
                .map(|_| ())
                .map_err(|s| s.code()),
        )
    };
    anyhow::ensure!(status(ordering[0].clone(), auth.clone()).await?.is_ok());
    let plaintext = ordering[0].replacen("https", "http", 1);
    anyhow::ensure!(status(plaintext, Default::default()).await?.is_err());
    let no_token = beat_client::connect::ClientAuth {
        token_file: None,
        ..auth.clone()
    };
    anyhow::ensure!(
        status(ordering[0].clone(), no_token).await? == Err(tonic::Code::Unauthenticated),
        "a client without a token must be refused"
    );
    eprintln!(
        "[{:>5.1?}] up: 4 replicas × 4 services ready and healthy",
        t0.elapsed()
    );
    let tracker = AgreementTracker::start(ordering.clone(), market.clone(), 0, auth.clone());

    // Phase 1: load through every replica's published ordering API.
    let phase1 = txs("ctr", 0..2_000);
    submit_spread(&ordering, &phase1, 250).await?;
    let next1 = committed_everywhere(&ordering, &committee, 0, &phase1, COMMIT_TIMEOUT).await?;
    let state1 = same_market_state(&market, next1 - 1, COMMIT_TIMEOUT).await?;
    eprintln!(
        "[{:>5.1?}] phase 1: 2,000 transactions committed in epochs 0..{next1}, state {}",
        t0.elapsed(),
        hex(&state1.state_hash)
    );

    // Phase 2: SIGKILL every container of replica 3; the others go on; it restarts and catches up.
    project.kill_replica(3)?;
    let (ord012, _) = endpoints(project, &[0, 1, 2]);
    let phase2 = txs("ctr", 2_000..3_000);
    submit_spread(&ord012, &phase2, 250).await?;
    let next2 = committed_everywhere(&ord012, &committee, next1, &phase2, COMMIT_TIMEOUT).await?;
    project.start_replica(3)?;
    wait_ready(project, &[3]).await?;
    let phase2b = txs("ctr", 3_000..3_500);
    submit_spread(&ordering, &phase2b, 250).await?;
    let both: Vec<Vec<u8>> = phase2.iter().chain(&phase2b).cloned().collect();
    let next2b = committed_everywhere(&ordering, &committee, next1, &both, COMMIT_TIMEOUT).await?;
    same_market_state(&market, next2b - 1, COMMIT_TIMEOUT).await?;
    eprintln!(
        "[{:>5.1?}] phase 2: replica 3 killed; 0-2 committed to epoch {next2}; restarted, it \
         caught up to {next2b}",
        t0.elapsed()
    );

    // Phase 3: partition replica 2 from the others, then heal.
    project.disconnect(2)?;
    let (ord013, _) = endpoints(project, &[0, 1, 3]);
    let phase3 = txs("ctr", 3_500..4_500);
    submit_spread(&ord013, &phase3, 250).await?;
    let next3 = committed_everywhere(&ord013, &committee, next2b, &phase3, COMMIT_TIMEOUT).await?;
    project.connect(2)?;
    wait_ready(project, &[2]).await?;
    let phase3b = txs("ctr", 4_500..5_000);
    submit_spread(&ordering, &phase3b, 250).await?;
    let both: Vec<Vec<u8>> = phase3.iter().chain(&phase3b).cloned().collect();
    let next3b = committed_everywhere(&ordering, &committee, next2b, &both, COMMIT_TIMEOUT).await?;
    same_market_state(&market, next3b - 1, COMMIT_TIMEOUT).await?;
    eprintln!(
        "[{:>5.1?}] phase 3: replica 2 partitioned while 0,1,3 committed to epoch {next3}; \
         reconnected, all at {next3b}",
        t0.elapsed()
    );

    // Phase 4: restart single service containers under load: replica 0's gateway, then
    // replica 1's keystore. Every acknowledged transaction must commit everywhere.
    // ~6 s of load on each of the two replicas; both restarts happen in the middle of it.
    let load = |i: usize, source: &str| {
        tokio::spawn(submit_recording(
            project.ordering_endpoint(i),
            txs(source, 0..1_000),
            25,
            Duration::from_millis(150),
        ))
    };
    let (load0, load1) = (load(0, "ctr-r0"), load(1, "ctr-r1"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = [
        project.container("replica-0-gateway")?,
        project.container("replica-1-keystore")?,
    ]
    .map(|id| project.docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]));
    project.restart("replica-0-gateway")?;
    project.restart("replica-1-keystore")?;
    let after = [
        project.container("replica-0-gateway")?,
        project.container("replica-1-keystore")?,
    ]
    .map(|id| project.docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]));
    for (b, a) in before.into_iter().zip(after) {
        anyhow::ensure!(b? != a?, "a restarted container kept its start time");
    }
    let mut acked = load0.await?;
    acked.extend(load1.await?);
    wait_ready(project, &[0, 1]).await?;
    anyhow::ensure!(
        acked.len() >= 500,
        "only {} of 2,000 transactions were acknowledged around the restarts",
        acked.len()
    );
    let next4 = committed_everywhere(&ordering, &committee, next3b, &acked, COMMIT_TIMEOUT).await?;
    let state4 = same_market_state(&market, next4 - 1, COMMIT_TIMEOUT).await?;
    eprintln!(
        "[{:>5.1?}] phase 4: gateway 0 and keystore 1 restarted alone; all {} acknowledged \
         transactions committed everywhere by epoch {next4}",
        t0.elapsed(),
        acked.len()
    );

    // Phase 5: the whole cluster down (containers and network removed, volumes kept) and up.
    let history: Vec<beat_proto::common::v1::Batch> = {
        let wanted: HashSet<Vec<u8>> = phase1.iter().cloned().collect();
        batches_until(&ordering[0], &committee, 0, &wanted, COMMIT_TIMEOUT).await?
    };
    project.compose(&["down", "--timeout", "10"])?;
    project.up(&[])?;
    wait_ready(project, &all).await?;
    let state5 = same_market_state(&market, state4.epoch.unwrap_or(0), COMMIT_TIMEOUT).await?;
    anyhow::ensure!(
        state5.events_applied >= state4.events_applied
            && (state5.epoch != state4.epoch || state5.state_hash == state4.state_hash),
        "market state after restart (epoch {:?}, {} events) does not continue the one before \
         (epoch {:?}, {} events)",
        state5.epoch,
        state5.events_applied,
        state4.epoch,
        state4.events_applied
    );
    let wanted: HashSet<Vec<u8>> = phase1.iter().cloned().collect();
    for ep in &ordering {
        let again = batches_until(ep, &committee, 0, &wanted, COMMIT_TIMEOUT).await?;
        let digests = |b: &[beat_proto::common::v1::Batch]| {
            b.iter().map(|x| x.digest.clone()).collect::<Vec<_>>()
        };
        anyhow::ensure!(
            digests(&again) == digests(&history),
            "{ep} lost or changed its committed history across the full restart"
        );
    }
    let phase5 = txs("ctr", 5_000..5_500);
    submit_spread(&ordering, &phase5, 250).await?;
    let next5 = committed_everywhere(&ordering, &committee, next4, &phase5, COMMIT_TIMEOUT).await?;
    same_market_state(&market, next5 - 1, COMMIT_TIMEOUT).await?;
    eprintln!(
        "[{:>5.1?}] phase 5: full down/up kept {} epochs of history and the market state; \
         500 more committed by epoch {next5}",
        t0.elapsed(),
        history.len()
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = tracker.stop();
    anyhow::ensure!(
        report.divergences.is_empty(),
        "divergences: {:?}",
        report.divergences
    );
    anyhow::ensure!(
        report.batch_epochs_all_agree >= next5 - 1,
        "only {} epochs reported identically by all replicas (of {next5})",
        report.batch_epochs_all_agree
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_agrees_through_crash_partition_service_restart_and_full_stop()
-> anyhow::Result<()> {
    let Some(program) = compose_program() else {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            bail!("CI is set but no Docker engine with Compose is available for the container e2e");
        }
        eprintln!(
            "SKIPPED containers e2e: no Docker engine with Compose here (`docker info` and \
             `docker compose version` or `docker-compose version` must succeed)"
        );
        return Ok(());
    };
    let t0 = Instant::now();
    let image = image()?;
    eprintln!(
        "[{:>5.1?}] image {image} ready ({})",
        t0.elapsed(),
        program.join(" ")
    );
    let prefix: u8 = match std::env::var("BEAT_E2E_PORT_PREFIX") {
        Ok(p) => p
            .parse()
            .context("BEAT_E2E_PORT_PREFIX must be a digit 1-5")?,
        Err(_) => 4,
    };
    let mut project = ComposeProject::new(
        program,
        &repo_root().join("compose.yaml"),
        &format!("beat-e2e-{}", std::process::id()),
        &image,
        prefix,
    )?;
    project.env("BEAT_BATCH_SIZE", "2000");
    ports_free(&project)?;
    let result = scenario(&mut project, t0).await;
    if let Err(e) = &result {
        eprintln!(
            "container e2e failed: {e:#}\n--- last log lines ---\n{}",
            project.logs(40)
        );
    }
    project.down()?;
    eprintln!(
        "[{:>5.1?}] container e2e finished and torn down",
        t0.elapsed()
    );
    result
}
