//! Placement left to the kernel: the 64 B round trip of a fresh pair of
//! processes, neither pinned, over several launches, against the same pair
//! pinned to two different cores in the same run (issue 18's placement goal:
//! the median unpinned launch within 2x of the pinned two-core figure).
//!
//! Each launch re-executes this binary as an echo server (the environment
//! variable [`ECHO_PEER_ENV`] carries its endpoint, key and CPU), so every
//! launch starts from whatever the scheduler does with two new processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use shmsock::{ErrorKind, Keypair, Listener, Options, Stream};

use crate::error::{BenchError, Result};

/// Set in a child started by [`measure_unpinned`]: `name;cpu;key file text`
/// (`cpu` empty: not pinned).
pub const ECHO_PEER_ENV: &str = "SHMSOCK_BENCH_ECHO_PEER";

/// Round trips timed per launch.
const ROUND_TRIPS: usize = 20_000;

/// The unpinned row.
#[derive(Clone, Debug, Serialize)]
pub struct UnpinnedReport {
    /// p50 of each unpinned launch.
    pub unpinned_p50: Vec<Duration>,
    /// p50 of each launch pinned to two cores.
    pub pinned_p50: Vec<Duration>,
}

impl UnpinnedReport {
    fn median(v: &[Duration]) -> Duration {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    /// Median unpinned launch over median pinned two-core launch.
    pub fn ratio(&self) -> f64 {
        Self::median(&self.unpinned_p50).as_secs_f64() / Self::median(&self.pinned_p50).as_secs_f64()
    }

    /// The placement goal (issue 18), one line.
    pub fn goal(&self) -> String {
        let met = if self.ratio() <= 2.0 { "MET " } else { "MISS" };
        format!(
            "[{met}] unpinned 64 B round trip, median launch, within 2x the pinned two-core figure: measured {:.2}x",
            self.ratio()
        )
    }

    /// The report as text.
    pub fn format(&self) -> String {
        let list =
            |v: &[Duration]| v.iter().map(|d| format!("{:.2}", d.as_secs_f64() * 1e6)).collect::<Vec<_>>().join(" ");
        format!(
            "64 B round trip p50, unpinned, {} launches (us): {}\n\
             64 B round trip p50, pinned to two cores, {} launches (us): {}\n\
             median unpinned / median pinned two-core = {:.2}x (goal <= 2x on an idle machine)",
            self.unpinned_p50.len(),
            list(&self.unpinned_p50),
            self.pinned_p50.len(),
            list(&self.pinned_p50),
            self.ratio()
        )
    }
}

/// If this process is an echo peer started by [`measure_unpinned`], serves one
/// connection and returns the exit code; else None at once.
pub fn maybe_run_echo_peer() -> Option<i32> {
    let spec = std::env::var(ECHO_PEER_ENV).ok()?;
    Some(match echo_peer(&spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmsock-bench echo peer: {e}");
            1
        }
    })
}

fn echo_peer(spec: &str) -> Result<()> {
    let mut parts = spec.splitn(3, ';');
    let (Some(name), Some(cpu), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BenchError::new("malformed echo peer spec"));
    };
    if let Ok(cpu) = cpu.parse::<usize>() {
        crate::affinity::pin(&[cpu])?;
    }
    let keypair = Keypair::from_file_text(key, "the bench")?;
    let listener = Listener::bind(name, &Options::new().keypair(keypair))?;
    println!("BOUND");
    let stream = listener.accept_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.recv_into(&mut buf) {
            Ok(n) => stream.send(&buf[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::PeerClosed | ErrorKind::PeerGone) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One launch: a new echo peer (pinned to `pin.1` if given, with this thread
/// pinned to `pin.0`), then the p50 of `ROUND_TRIPS` 64 B round trips.
fn launch(pin: Option<(usize, usize)>, tag: usize) -> Result<Duration> {
    let name = format!("bench-unpinned-{}-{tag}", std::process::id());
    let keypair = Keypair::generate();
    let cpu = pin.map_or(String::new(), |p| p.1.to_string());
    let exe = std::env::current_exe()?;
    let mut child = KillOnDrop(
        Command::new(exe)
            .env(ECHO_PEER_ENV, format!("{name};{cpu};{}", keypair.to_file_text()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    if let Some(out) = child.0.stdout.take() {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
        if line.trim() != "BOUND" {
            return Err(BenchError::new("the echo peer did not bind"));
        }
    }
    let stream = Stream::connect(&name, &Options::new().server_key(*keypair.public()))?;
    let message = [7u8; 64];
    let mut buf = [0u8; 64];
    // Warm up (and give the scheduler time to settle the placement).
    let warm_until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < warm_until {
        stream.send(&message)?;
        stream.recv_into(&mut buf)?;
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        stream.send(&message)?;
        stream.recv_into(&mut buf)?;
        times.push(t.elapsed());
    }
    stream.close()?;
    let _ = child.0.wait();
    times.sort();
    Ok(times[times.len() / 2])
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `launches` unpinned launches and `pinned` launches pinned to `cpus`,
/// interleaved so background load hits both alike.
pub fn measure_unpinned(launches: usize, pinned: usize, cpus: [usize; 2]) -> Result<UnpinnedReport> {
    shmsock::sodium::init()?;
    let original = crate::affinity::current()?;
    let mut report = UnpinnedReport { unpinned_p50: Vec::new(), pinned_p50: Vec::new() };
    for i in 0..launches.max(pinned) {
        if i < pinned {
            crate::affinity::pin(&[cpus[0]])?;
            let p50 = launch(Some((cpus[0], cpus[1])), 2 * i);
            crate::affinity::pin(&original)?;
            report.pinned_p50.push(p50?);
        }
        if i < launches {
            report.unpinned_p50.push(launch(None, 2 * i + 1)?);
        }
    }
    Ok(report)
}
