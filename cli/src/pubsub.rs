//! `shmsock pub` and `shmsock sub`: publish stdin to a topic, print a topic.
//!
//! `pub` binds a topic, optionally waits for subscribers, then publishes each
//! stdin line (or binary record) once for every subscriber and closes the topic
//! when stdin ends, so subscribers receive everything and end with status 0.
//! `sub` prints every message as `listen` does, reports lag (latest topics) on
//! stderr, and ends with 0 when the publisher closes the topic.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use shmsock::pubsub::{SlowSubscribers, TopicOptions};
use shmsock::{ErrorKind, Keypair, Options, Publisher, Subscriber};

use crate::error::{code, CliError};
use crate::pipe;
use crate::records::{Mode, RecordReader, RecordWriter};

pub const PUB_EXAMPLES: &str = "\
Each stdin line (or with --binary each 4-byte little-endian length + bytes
record) is one message, sealed once for every subscriber. When stdin ends the
topic is closed: subscribers receive everything published, then end with 0.

Slow subscribers: by default the publisher waits for the slowest one, at most
--timeout seconds, then drops it; with --latest it never waits and a slow
subscriber skips what was overwritten (and says how much on stderr).

Examples:
  shmsock pub ticks -i pub.key --subscribers 2 < lines.txt
  tail -f app.log | shmsock pub logs -i pub.key --latest
  shmsock pub frames -i pub.key --binary --max-message 1048576 --slots 16

Exit codes: see `shmsock --help`.";

pub const SUB_EXAMPLES: &str = "\
Messages are printed as `shmsock listen` prints them (lines, or --binary records).
Ends with 0 when the publisher closes the topic; 6 when it dies.

Examples:
  shmsock sub ticks --server-key pub.key.pub
  shmsock sub logs -s shmsock-pk:AbC... --wait 10 | grep ERROR

Exit codes: see `shmsock --help`.";

/// Arguments of `shmsock pub`.
#[derive(Args)]
pub struct PubArgs {
    /// The topic name: 1 to 100 characters from A-Z a-z 0-9 . _ -
    #[arg(value_name = "NAME", value_parser = crate::endpoint_name)]
    name: String,
    /// This publisher's key file [default: a new key for this run]
    #[arg(short = 'i', long = "key", value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Accept only subscribers with this key (`shmsock-pk:` text or a key or .pub file); repeatable
    #[arg(short = 'a', long = "allow", value_name = "KEY")]
    allow: Vec<String>,
    /// Wait for N subscribers before publishing
    #[arg(short = 'n', long = "subscribers", value_name = "N", default_value_t = 0)]
    subscribers: usize,
    /// Never wait for slow subscribers: overwrite, and let them report the loss
    #[arg(long)]
    latest: bool,
    /// Reliable topics: how long to wait for a slow subscriber before dropping it
    #[arg(long, value_name = "SECONDS", value_parser = crate::seconds, default_value = "5")]
    timeout: Duration,
    /// Slots in the ring (a power of two)
    #[arg(long, value_name = "N", default_value_t = 64)]
    slots: u32,
    /// The largest message in bytes
    #[arg(long = "max-message", value_name = "BYTES", default_value_t = 65536)]
    max_message: u32,
    /// Length-prefixed binary records instead of text lines
    #[arg(short = 'b', long)]
    binary: bool,
    /// No informational lines on stderr
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Arguments of `shmsock sub`.
#[derive(Args)]
pub struct SubArgs {
    /// The topic name
    #[arg(value_name = "NAME", value_parser = crate::endpoint_name)]
    name: String,
    /// The publisher's public key (`shmsock-pk:` text, or a key file or .pub file)
    #[arg(short = 's', long = "server-key", value_name = "KEY", required = true)]
    server_key: String,
    /// This subscriber's key file [default: a new key]
    #[arg(short = 'i', long = "key", value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// If no publisher is there yet, keep trying for up to SECONDS
    #[arg(short = 'w', long = "wait", value_name = "SECONDS", value_parser = crate::seconds)]
    wait: Option<Duration>,
    /// Length-prefixed binary records instead of text lines
    #[arg(short = 'b', long)]
    binary: bool,
    /// No informational lines on stderr
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn mode(binary: bool) -> Mode {
    if binary {
        Mode::Binary
    } else {
        Mode::Text
    }
}

/// Runs `shmsock pub`.
pub fn run_pub(a: PubArgs) -> Result<u8, CliError> {
    let keypair = match &a.key {
        Some(path) => crate::keys::load_identity(path)?,
        None => Keypair::generate(),
    };
    let public = *keypair.public();
    let allow = a.allow.iter().map(|k| crate::keys::parse_public_key(k, "--allow")).collect::<Result<Vec<_>, _>>()?;
    let mut options = Options::new().keypair(keypair);
    if !allow.is_empty() {
        options = options.allow_clients(allow);
    }
    let policy = if a.latest { SlowSubscribers::Latest } else { SlowSubscribers::Reliable { timeout: a.timeout } };
    let topic = TopicOptions::new().slots(a.slots).max_message_size(a.max_message).policy(policy);
    let name = &a.name;
    let publisher = Publisher::bind_with(name, &options, &topic).map_err(|e| {
        let what = format!("publishing topic '{name}'");
        match e.kind() {
            ErrorKind::AddressInUse => {
                CliError::new(code::IN_USE, what, e.message(), "Choose another name or stop that process")
            }
            _ => CliError::core(what, &e),
        }
    })?;
    pipe::info(a.quiet, format_args!("publishing '{name}' with key {public} (fingerprint {})", public.fingerprint()));
    pipe::info(a.quiet, format_args!("subscribers run: shmsock sub {name} --server-key {public}"));
    if a.subscribers > 0 {
        publisher
            .wait_for_subscribers(a.subscribers, None)
            .map_err(|e| CliError::core(format!("waiting for subscribers of '{name}'"), &e))?;
    }
    let stdin = std::io::stdin().lock();
    let mut reader = RecordReader::new(stdin, mode(a.binary), a.max_message as usize);
    while let Some(message) = reader.next_message()? {
        publisher.publish(&message).map_err(|e| CliError::core(format!("publishing to '{name}'"), &e))?;
    }
    let dropped = publisher.dropped_count();
    publisher.close();
    if dropped > 0 {
        pipe::info(a.quiet, format_args!("{dropped} slow subscriber(s) were dropped"));
    }
    Ok(code::OK)
}

/// Runs `shmsock sub`.
pub fn run_sub(a: SubArgs) -> Result<u8, CliError> {
    let server_key = crate::keys::parse_public_key(&a.server_key, "--server-key")?;
    let mut options = Options::new().server_key(server_key);
    if let Some(path) = &a.key {
        options = options.keypair(crate::keys::load_identity(path)?);
    }
    options = options.connect_wait(a.wait.unwrap_or_default());
    let name = &a.name;
    let subscriber =
        Subscriber::connect(name, &options).map_err(|e| CliError::core(format!("subscribing to '{name}'"), &e))?;
    pipe::info(a.quiet, format_args!("subscribed to '{name}' (publisher {})", server_key.fingerprint()));
    let mut out = RecordWriter::new(std::io::stdout().lock(), mode(a.binary));
    loop {
        match subscriber.recv_timeout(None) {
            Ok(m) => {
                if m.lost > 0 {
                    pipe::info(a.quiet, format_args!("lost {} message(s): this subscriber fell behind", m.lost));
                }
                if out.write_message(&m.data).is_err() {
                    // stdout closed (e.g. `| head`): a normal end.
                    return Ok(code::OK);
                }
            }
            Err(e) if e.kind() == ErrorKind::PeerClosed && e.message().contains("closed the topic") => {
                let _ = std::io::stdout().flush();
                pipe::info(a.quiet, format_args!("the publisher closed the topic"));
                return Ok(code::OK);
            }
            Err(e) => return Err(CliError::core(format!("receiving from '{name}'"), &e)),
        }
    }
}
