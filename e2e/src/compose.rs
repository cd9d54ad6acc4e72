//! A Compose project of the repository's `compose.yaml`, driven from tests: start it with a
//! unique project name and host-port prefix, kill, restart, partition and stop its containers,
//! and always tear it down (`down -v`) when the handle is dropped, including on failure.
//!
//! Works with both Compose v2 (`docker compose`) and v1 (`docker-compose`). Every command is
//! bounded in time.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};

/// The Compose command line available here, if any.
pub fn compose_program() -> Option<Vec<String>> {
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(&["docker", "info"]) {
        return None;
    }
    if works(&["docker", "compose", "version"]) {
        Some(vec!["docker".into(), "compose".into()])
    } else if works(&["docker-compose", "version"]) {
        Some(vec!["docker-compose".into()])
    } else {
        None
    }
}

/// Runs `program args` with `envs`, killing it after `timeout`; returns its stdout, or fails
/// with its stderr.
#[expect(
    clippy::disallowed_methods,
    reason = "supervising an external command outside any runtime: its deadline is wall-clock time"
)]
pub fn run_bounded(
    program: &[String],
    args: &[&str],
    envs: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<String> {
    use std::{io::Read, time::Instant};
    let mut child = Command::new(&program[0])
        .args(&program[1..])
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", program.join(" ")))?;
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().context("stdout")?;
    let mut err_pipe = child.stderr.take().context("stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{} {}` did not finish within {timeout:?}",
                program.join(" "),
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "`{} {}` failed ({status}): {}",
            program.join(" "),
            args.join(" "),
            stderr.trim()
        );
    }
    Ok(stdout)
}

/// A Compose project; `down -v` on drop.
#[derive(Debug)]
pub struct ComposeProject {
    program: Vec<String>,
    file: PathBuf,
    project: String,
    envs: Vec<(String, String)>,
    port_prefix: u8,
    up: bool,
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

impl ComposeProject {
    /// A project of `file` named `project` using `image`, with host ports
    /// `<port_prefix><port><replica>` (see `compose.yaml`). Starts nothing.
    pub fn new(
        program: Vec<String>,
        file: &Path,
        project: &str,
        image: &str,
        port_prefix: u8,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=5).contains(&port_prefix),
            "port prefix {port_prefix} must be 1..=5"
        );
        Ok(Self {
            program,
            file: file.canonicalize()?,
            project: project.to_owned(),
            envs: vec![
                ("BEAT_IMAGE".into(), image.into()),
                ("BEAT_PORT_PREFIX".into(), port_prefix.to_string()),
            ],
            port_prefix,
            up: false,
        })
    }

    /// Sets a variable `compose.yaml` interpolates (`BEAT_VARIANT`, `BEAT_BATCH_SIZE`, ...).
    pub fn env(&mut self, key: &str, value: &str) {
        self.envs.push((key.into(), value.into()));
    }

    /// The project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Runs `compose -p <project> -f <file> <args>`.
    pub fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let dir = self
            .file
            .parent()
            .context("compose file without a directory")?
            .to_string_lossy()
            .into_owned();
        let file = self.file.to_string_lossy().into_owned();
        let mut all = vec![
            "-p",
            &self.project,
            "-f",
            &file,
            "--project-directory",
            &dir,
        ];
        all.extend_from_slice(args);
        run_bounded(&self.program, &all, &self.envs, COMMAND_TIMEOUT)
    }

    /// Runs `docker <args>`.
    pub fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        run_bounded(&["docker".to_owned()], args, &[], COMMAND_TIMEOUT)
    }

    /// `up -d` of every service (or of `services`).
    pub fn up(&mut self, services: &[&str]) -> anyhow::Result<()> {
        self.up = true;
        let mut args = vec!["up", "-d", "--no-build"];
        args.extend_from_slice(services);
        self.compose(&args)?;
        Ok(())
    }

    /// The host-side client's credentials for the public APIs (TLS CA, client certificate and
    /// bearer token, issued by the keygen), copied out of the keygen's `tls-client` volume into
    /// `dir`.
    pub fn client_auth(&self, dir: &Path) -> anyhow::Result<beat_client::connect::ClientAuth> {
        self.copy_from_keygen("/tls-client/.", dir)?;
        Ok(beat_client::connect::ClientAuth {
            ca_file: Some(dir.join("ca.pem")),
            cert_file: Some(dir.join("client.pem")),
            key_file: Some(dir.join("client.key")),
            token_file: Some(dir.join("client.token")),
            tls_domain: None,
        })
    }

    /// The committee file the keygen wrote (copied out of its `committee` volume into `dir`), to
    /// verify what the cluster serves against.
    pub fn committee(&self, dir: &Path) -> anyhow::Result<crate::CommitteeInfo> {
        self.copy_from_keygen("/var/lib/beat/committee/committee.json", dir)?;
        Ok(crate::CommitteeInfo::load(&dir.join("committee.json"))?)
    }

    /// Copies `path` out of the (exited) keygen container's volumes into the directory `dir`.
    fn copy_from_keygen(&self, path: &str, dir: &Path) -> anyhow::Result<()> {
        let keygen = self
            .compose(&["ps", "-a", "-q", "keygen"])?
            .trim()
            .to_owned();
        anyhow::ensure!(!keygen.is_empty(), "the keygen container is gone");
        std::fs::create_dir_all(dir)?;
        self.docker(&["cp", &format!("{keygen}:{path}"), &dir.to_string_lossy()])?;
        Ok(())
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.compose(&["ps", "-q", service])?.trim().to_owned();
        anyhow::ensure!(!id.is_empty(), "service {service} has no container");
        Ok(id)
    }

    /// The services of replica `i`: its pod container first, then the four services.
    pub fn replica_services(i: usize) -> [String; 5] {
        [
            format!("replica-{i}"),
            format!("replica-{i}-keystore"),
            format!("replica-{i}-gateway"),
            format!("replica-{i}-consensus"),
            format!("replica-{i}-state"),
        ]
    }

    /// SIGKILLs every container of replica `i` (a crash of the whole pod).
    pub fn kill_replica(&self, i: usize) -> anyhow::Result<()> {
        let ids = Self::replica_services(i)
            .iter()
            .map(|s| self.container(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut args = vec!["kill", "--signal", "KILL"];
        args.extend(ids.iter().map(String::as_str));
        self.docker(&args)?;
        Ok(())
    }

    /// Starts every container of replica `i` again (pod first).
    pub fn start_replica(&self, i: usize) -> anyhow::Result<()> {
        for s in Self::replica_services(i) {
            let id = self.container(&s)?;
            self.docker(&["start", &id])?;
        }
        Ok(())
    }

    /// `docker restart` of one container (SIGTERM, then start).
    pub fn restart(&self, service: &str) -> anyhow::Result<()> {
        let id = self.container(service)?;
        self.docker(&["restart", "--time", "10", &id])?;
        Ok(())
    }

    /// The project's default network.
    pub fn network(&self) -> String {
        format!("{}_default", self.project)
    }

    /// Disconnects replica `i`'s pod (and so its four services) from the project network.
    pub fn disconnect(&self, i: usize) -> anyhow::Result<()> {
        let id = self.container(&format!("replica-{i}"))?;
        self.docker(&["network", "disconnect", &self.network(), &id])?;
        Ok(())
    }

    /// Connects replica `i`'s pod to the project network again, under its service name.
    pub fn connect(&self, i: usize) -> anyhow::Result<()> {
        let id = self.container(&format!("replica-{i}"))?;
        let alias = format!("replica-{i}");
        self.docker(&[
            "network",
            "connect",
            "--alias",
            &alias,
            &self.network(),
            &id,
        ])?;
        Ok(())
    }

    /// A host port of replica `i`: `port` is the in-pod port (7100, 7400, 9100, ...).
    pub fn host_port(&self, port: u16, i: usize) -> u16 {
        // "<prefix><first three digits of port><i>", e.g. prefix 4, 7100, replica 2 → 47102.
        let s = format!("{}{}{}", self.port_prefix, port / 10, i);
        s.parse().expect("five digits")
    }

    /// Replica `i`'s ordering API on the host.
    pub fn ordering_endpoint(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.host_port(7100, i))
    }

    /// Replica `i`'s market API on the host.
    pub fn market_endpoint(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.host_port(7400, i))
    }

    /// Replica `i`'s ops address of the service whose ops port is `port` (9100 … 9400).
    pub fn ops_address(&self, port: u16, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.host_port(port, i)))
    }

    /// The last `lines` log lines of every service, for a failure report.
    pub fn logs(&self, lines: usize) -> String {
        let tail = lines.to_string();
        self.compose(&["logs", "--no-color", "--tail", &tail])
            .unwrap_or_else(|e| format!("(no logs: {e:#})"))
    }

    /// `down -v`: removes containers, the network and every volume.
    pub fn down(&mut self) -> anyhow::Result<()> {
        self.up = false;
        self.compose(&["down", "-v", "--remove-orphans", "--timeout", "10"])?;
        Ok(())
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if self.up
            && let Err(e) = self.down()
        {
            eprintln!("compose down of {} failed: {e:#}", self.project);
        }
    }
}
