//! The Python client (clients/python/beat_client.py) against a 4-replica cluster of processes:
//! it generates its stubs from proto/, submits through replica 1, watches replica 1's
//! certified history from epoch 0 and verifies every epoch with the committee file alone.
//!
//! Needs `BEAT_PYTHON`: a Python with clients/python/requirements.txt installed (scripts/test
//! makes one and runs this test; `cargo test --workspace` skips it by name there).

use std::{process::Stdio, time::Duration};

use beat_e2e::scenario_dir;
use beat_testkit::cluster::{Cluster, ClusterSpec};

const N: usize = 4;
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_submits_watches_and_verifies_certificates() -> anyhow::Result<()> {
    let python = std::env::var("BEAT_PYTHON").map_err(|_| {
        anyhow::anyhow!(
            "set BEAT_PYTHON to a Python with clients/python/requirements.txt installed \
             (scripts/test does)"
        )
    })?;
    let dir = scenario_dir("python-client");
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    beat_e2e::register_market_source(&mut spec);
    spec.replicas = N;
    spec.base_port = BASE_PORT;
    spec.kdf = beat_testkit::cluster::KdfParams::insecure_fast_for_tests();
    spec.log_filter = "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn".into();
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python/beat_client.py");
    let endpoint = cluster.ports(1).consensus().to_string();
    let committee = dir.join("committee.json");
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--endpoint", &endpoint, "--committee"])
        .arg(&committee)
        .args(["--timeout", "150", "submit-and-verify", "--count", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let status = tokio::time::timeout(Duration::from_secs(180), child.wait()).await;
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = stdout {
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out).await?;
    }
    if let Some(mut s) = stderr {
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut err).await?;
    }
    eprintln!("{out}{err}");
    let exited = cluster.reap_exited();
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    let status = status.map_err(|_| anyhow::anyhow!("the Python client ran past 180 s"))??;
    anyhow::ensure!(status.success(), "the Python client failed: {status}");
    anyhow::ensure!(
        out.contains("all 20 transactions are in verified epochs"),
        "unexpected output"
    );
    anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
