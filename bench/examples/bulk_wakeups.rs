//! A blocking 1 MiB transfer between two threads (one stream), for counting the
//! system calls its wake-ups cost: run it under
//! `strace -f -c -e trace=write,read,futex,epoll_wait` and divide by the
//! messages sent. Prints the throughput.
//!
//! Run: `cargo run --release -p shmsock-bench --example bulk_wakeups -- [one|two] [MESSAGES] [BYTES] [poll]`
//! (`one`: both threads on CPU 0; `two`: sender on CPU 0, receiver on CPU 1;
//! `poll`: the receiver is an event loop, as in Node or asyncio: `try_recv_into`
//! until WouldBlock, then `poll` on the pollable fd, never spinning).

use std::time::Instant;

use shmsock::{Keypair, Listener, Options, Stream};

fn main() {
    let mut args = std::env::args().skip(1);
    let placement = args.next().unwrap_or_else(|| "two".into());
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let event_loop = args.next().is_some_and(|a| a == "poll");
    let receiver_cpu = if placement == "one" { 0 } else { 1 };
    let name = format!("bulk-wakeups-{}", std::process::id());
    let keypair = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(keypair.clone())).expect("bind");
    let options = Options::new().server_key(*keypair.public());
    let receiver = std::thread::spawn(move || {
        shmsock_bench::affinity::pin(&[receiver_cpu]).expect("pin the receiver");
        let stream = listener.accept().expect("accept");
        let mut buf = vec![0u8; size];
        for _ in 0..messages {
            let n =
                if event_loop { recv_polling(&stream, &mut buf) } else { stream.recv_into(&mut buf).expect("recv") };
            assert_eq!(n, size);
        }
        stream.send(b"done").expect("ack");
    });
    shmsock_bench::affinity::pin(&[0]).expect("pin the sender");
    let stream = Stream::connect(&name, &options).expect("connect");
    let message = vec![7u8; size];
    let start = Instant::now();
    for _ in 0..messages {
        stream.send(&message).expect("send");
    }
    stream.recv().expect("ack");
    let elapsed = start.elapsed();
    receiver.join().expect("receiver");
    let gbps = (messages * size) as f64 / elapsed.as_secs_f64() / 1e9;
    println!("{placement}: {messages} x {size} B in {elapsed:?}: {gbps:.2} GB/s");
}

/// One message the way an event loop receives it.
fn recv_polling(stream: &Stream, buf: &mut [u8]) -> usize {
    use std::os::fd::AsRawFd;
    loop {
        match stream.try_recv_into(buf) {
            Ok(n) => return n,
            Err(e) if e.kind() == shmsock::ErrorKind::WouldBlock => {
                let mut fd = libc::pollfd { fd: stream.pollable_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut fd, 1, -1) };
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
}
