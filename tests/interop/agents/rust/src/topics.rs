//! `agent publish` and `agent subscribe`: a `Publisher` sending messages of
//! the --sizes to K subscribers, and a `Subscriber` checking every one.

use shmsock::{CipherSuite, Keypair, Options, PublicKey, Publisher, Subscriber};

use crate::cli::{PublishArgs, SubscribeArgs};
use crate::message::{difference, fill_message};
use crate::{say, Failure, Outcome};

pub(crate) fn publish(a: PublishArgs) -> Outcome {
    let keypair = Keypair::load(&a.key)?;
    let options =
        Options::new().keypair(keypair.clone()).require_chacha(a.cipher.suite() == CipherSuite::ChaCha20Poly1305);
    let publisher = Publisher::bind(&a.name, &options)?;
    say(&format!("ready {} {} {}", a.name, keypair.public().to_text(), keypair.public().fingerprint()));
    publisher.wait_for_subscribers(a.subscribers, Some(a.timeout))?;
    let (mut message, mut total) = (Vec::new(), 0u64);
    for i in 0..a.count {
        let n = a.sizes[(i % a.sizes.len() as u64) as usize] as usize;
        fill_message(&mut message, i, n);
        publisher.publish(&message)?;
        total += n as u64;
    }
    say(&format!("published messages={} bytes={total}", a.count));
    publisher.close();
    Ok(())
}

pub(crate) fn subscribe(a: SubscribeArgs) -> Outcome {
    let cipher = a.cipher.suite();
    let publisher_key = PublicKey::from_text(&a.server_key)?;
    let mut options = Options::new()
        .server_key(publisher_key)
        .recv_timeout(Some(a.timeout))
        .require_chacha(cipher == CipherSuite::ChaCha20Poly1305);
    if let Some(path) = &a.key {
        options = options.keypair(Keypair::load(path)?);
    }
    let subscriber = Subscriber::connect(&a.name, &options)?;
    if subscriber.publisher_public_key() != publisher_key {
        return Err(Failure::Verify(format!(
            "mismatch: publisher key is {}, expected {}",
            subscriber.publisher_public_key().to_text(),
            publisher_key.to_text()
        )));
    }
    if subscriber.cipher() != cipher {
        return Err(Failure::Verify(format!("mismatch: cipher is {}, expected {}", subscriber.cipher(), cipher)));
    }
    say(&format!("subscribed {} {}", publisher_key.fingerprint(), cipher));
    let (mut expected, mut total) = (Vec::new(), 0u64);
    for i in 0..a.count {
        let n = a.sizes[(i % a.sizes.len() as u64) as usize] as usize;
        let got = subscriber.recv()?;
        if got.lost != 0 {
            return Err(Failure::Verify(format!("mismatch: lost {} messages", got.lost)));
        }
        fill_message(&mut expected, i, n);
        if got.data != expected {
            let what = difference(got.data.len(), &got.data, &expected);
            return Err(Failure::Verify(format!("mismatch: message {i} ({n} B): {what}")));
        }
        total += n as u64;
    }
    say(&format!(
        "ok cipher={cipher} publisher={} messages={} bytes={total} lost={}",
        publisher_key.fingerprint(),
        a.count,
        subscriber.lost()
    ));
    subscriber.close();
    Ok(())
}
