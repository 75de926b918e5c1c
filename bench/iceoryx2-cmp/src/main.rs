//! iceoryx2's unencrypted publish/subscribe, measured as `shmsock-bench
//! --pubsub` measures shmsock's: a 64 B ping-pong over two services between two
//! processes pinned to CPU 0 (this one) and CPU 1 (itself re-run as `pong`),
//! both busy-polling. Prints one line: `iceoryx2 64B round-trip median <us> us`.

use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

type Payload = [u8; 64];
const STOP: u8 = 0xff;

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET, passed with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn run(ping: bool, rounds: usize) -> Result<Option<f64>, Box<dyn std::error::Error>> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let tag = std::env::var("ICEORYX2_CMP_TAG").unwrap_or_default();
    let open = |name: &str| -> Result<_, Box<dyn std::error::Error>> {
        let service: ServiceName = format!("shmsock-bench/{tag}/{name}").as_str().try_into()?;
        Ok(node.service_builder(&service).publish_subscribe::<Payload>().open_or_create()?)
    };
    let (out_svc, in_svc) = if ping { (open("ping")?, open("pong")?) } else { (open("pong")?, open("ping")?) };
    let publisher = out_svc.publisher_builder().create()?;
    let subscriber = in_svc.subscriber_builder().create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while out_svc.dynamic_config().number_of_subscribers() < 1 {
        if Instant::now() > deadline {
            return Err("the peer did not subscribe".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if !ping {
        loop {
            if let Some(sample) = subscriber.receive()? {
                if sample.payload()[0] == STOP {
                    return Ok(None);
                }
                publisher.send_copy(*sample.payload())?;
            } else {
                std::hint::spin_loop();
            }
        }
    }
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let t0 = Instant::now();
        publisher.send_copy([7u8; 64])?;
        while subscriber.receive()?.is_none() {
            std::hint::spin_loop();
        }
        if i >= rounds / 10 {
            times.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    publisher.send_copy([STOP; 64])?;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times.get(times.len() / 2).copied())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::var("ICEORYX2_CMP_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(10000);
    if std::env::args().nth(1).as_deref() == Some("pong") {
        pin(1);
        run(false, rounds)?;
        return Ok(());
    }
    pin(0);
    let tag = format!("{}", std::process::id());
    let mut pong = std::process::Command::new(std::env::current_exe()?)
        .arg("pong")
        .env("ICEORYX2_CMP_TAG", &tag)
        .env("ICEORYX2_CMP_ROUNDS", rounds.to_string())
        .spawn()?;
    std::env::set_var("ICEORYX2_CMP_TAG", &tag);
    let result = run(true, rounds);
    let _ = pong.wait();
    match result? {
        Some(us) => println!("iceoryx2 64B round-trip median {us:.3} us"),
        None => return Err("no result".into()),
    }
    Ok(())
}
