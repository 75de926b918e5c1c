//! `shmsock-bench-server [SECONDS] [DISPATCH_THREADS]`: the event-driven Server
//! with N = 1, 4, 16, 64 echo clients beside an epoll Unix-socket echo server,
//! and the Stream↔Stream path, in one launch (see `shmsock_bench::server`).

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let _ = shmsock::platform::raise_open_files_limit();
    let rows = shmsock_bench::server::compare(&[1, 4, 16, 64], Duration::from_secs_f64(seconds), threads);
    print!("{}", shmsock_bench::server::format_rows(&rows));
    match shmsock_bench::server::idle_cpu(1000, Duration::from_secs(2)) {
        Ok(cpu) => println!("1000 idle connections: {} ms of CPU in 2 s", cpu.as_millis()),
        Err(e) => println!("1000 idle connections: not measured ({e})"),
    }
}
