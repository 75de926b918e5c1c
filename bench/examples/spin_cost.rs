//! What one spin iteration, one sched_yield and one clock read cost on this
//! machine (pinned to CPU 0). On a VM, PAUSE may be intercepted (pause-loop
//! exiting), which makes spin budgets counted in iterations far longer than
//! they look.
//!
//! Run: `cargo run --release -p shmsock-bench --example spin_cost`

use std::time::Instant;

fn main() {
    shmsock_bench::affinity::pin(&[0]).expect("pin");
    let n = 2_000_000u32;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::spin_loop();
        }
        let pause = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n / 10 {
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
        let yld = t.elapsed().as_nanos() as f64 / (n / 10) as f64;
        let t = Instant::now();
        let mut x = t;
        for _ in 0..n {
            x = Instant::now();
        }
        let clock = (x - t).as_nanos() as f64 / n as f64;
        // Runs of 31 pauses, as in shmsock's waiter between two yields.
        let mut worst = 0u128;
        let mut total = 0u128;
        let runs = 100_000u32;
        for _ in 0..runs {
            let t = Instant::now();
            for _ in 0..31 {
                std::hint::spin_loop();
            }
            let d = t.elapsed().as_nanos();
            total += d;
            worst = worst.max(d);
        }
        println!(
            "pause (spin_loop): {pause:.1} ns   sched_yield (alone on the core): {yld:.0} ns   Instant::now: {clock:.1} ns   31 pauses: mean {:.0} ns, worst {} ns",
            total as f64 / runs as f64,
            worst
        );
    }
}
