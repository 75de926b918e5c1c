//! Measures the receiver's CPU time for one large message trickled through a
//! small ring and received with non-blocking calls (issue 17, defect 6: the
//! partial message used to be copied again on every call, quadratic in its
//! size). Prints the receiver thread's CPU seconds, and the same for a
//! blocking `recv` of the same message as the linear baseline.
//!
//! `cargo build --release -p shmsock --example trickle_cpu &&
//!  taskset -c 1 target/release/examples/trickle_cpu [MiB] [ring bytes]`

use std::os::fd::AsRawFd;
use std::time::Duration;

use shmsock::{ErrorKind, Keypair, Listener, Options, Stream};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn wait_readable(stream: &Stream) {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 1000) };
}

fn main() -> shmsock::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let ring: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(16384);
    let name = format!("trickle-{}", std::process::id());
    let kp = Keypair::generate();
    // No spinning on either side: the CPU times below are work, not waiting.
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()).ring_size(ring).spin(Duration::ZERO))?;
    let options = Options::new().server_key(*kp.public()).ring_size(ring).spin(Duration::ZERO);
    let message = vec![0x5Au8; mib << 20];
    let sender = std::thread::spawn(move || -> shmsock::Result<()> {
        // A sender at the lowest priority on the receiver's core (run under
        // `taskset -c N`): every frame it publishes wakes the receiver, which
        // preempts it, takes that frame and finds the ring empty again, so the
        // message arrives one frame per receive call.
        // SAFETY: plain system calls on this thread.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
        let s = Stream::connect(&name, &options)?;
        s.send(&message)?;
        s.send(&message)?;
        s.close()
    });
    let server = listener.accept()?;
    let frames = (mib << 20).div_ceil(server.max_frame_payload() as usize);
    let start = thread_cpu();
    let mut calls = 0u64;
    let got = loop {
        calls += 1;
        match server.try_recv() {
            Ok(m) => break m,
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait_readable(&server),
            Err(e) => return Err(e),
        }
    };
    let trickled = thread_cpu() - start;
    assert_eq!(got.len(), mib << 20);
    let start = thread_cpu();
    let got = server.recv()?;
    let blocking = thread_cpu() - start;
    assert_eq!(got.len(), mib << 20);
    sender.join().expect("sender thread")?;
    println!(
        "{mib} MiB in {frames} frames of {} B (ring {ring} B): try_recv x{calls}: {:.3} s CPU; one blocking recv: {:.3} s CPU",
        server.max_frame_payload(),
        trickled.as_secs_f64(),
        blocking.as_secs_f64()
    );
    Ok(())
}
