//! `shmsock-bench-server [SECONDS] [DISPATCH_THREADS] [N...]`: the
//! event-driven Server with N = 1, 4, 16, 64 echo clients (or the N given)
//! beside an epoll Unix-socket echo server, and the Stream↔Stream path, in one
//! launch (see `shmsock_bench::server`).
//!
//! `shmsock-bench-server isolation [SECONDS]`: a bystander's round trip and a
//! new client's connect time alone and under every attack at once, and the
//! server path against the futex ping-pong and Stream↔Stream floors, with every
//! thread on one core, then on two (see `shmsock_bench::isolation`).

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("isolation") {
        let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
        isolation(Duration::from_secs_f64(seconds));
        return;
    }
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let _ = shmsock::platform::raise_open_files_limit();
    let mut clients: Vec<usize> = args.iter().skip(3).filter_map(|s| s.parse().ok()).filter(|&n| n > 0).collect();
    if clients.is_empty() {
        clients = vec![1, 4, 16, 64];
    }
    let rows = shmsock_bench::server::compare(&clients, Duration::from_secs_f64(seconds), threads);
    print!("{}", shmsock_bench::server::format_rows(&rows));
    match shmsock_bench::server::idle_cpu(1000, Duration::from_secs(2)) {
        Ok(cpu) => println!("1000 idle connections: {} ms of CPU in 2 s", cpu.as_millis()),
        Err(e) => println!("1000 idle connections: not measured ({e})"),
    }
}

fn isolation(time: Duration) {
    let cpus = shmsock_bench::affinity::current().unwrap_or_default();
    println!("load average (1 min): {:.2} (the machine is shared: read ratios)", shmsock_bench::load_average());
    for placement in [&cpus[..1.min(cpus.len())], &cpus[..2.min(cpus.len())]] {
        // Each placement in a thread of its own, so the pinning ends with it.
        let placement = placement.to_vec();
        let measured = std::thread::spawn(move || shmsock_bench::isolation::measure(&placement, time)).join();
        match measured {
            Ok(Ok(figures)) => print!("{}", shmsock_bench::isolation::format(&figures)),
            Ok(Err(e)) => println!("isolation not measured: {e}"),
            Err(_) => println!("isolation not measured: the measuring thread panicked"),
        }
    }
}
