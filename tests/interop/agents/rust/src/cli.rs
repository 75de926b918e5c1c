//! The command line, parsed by clap: the commands, their arguments and
//! defaults, and the parsing of seconds.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shmsock::CipherSuite;

const DEFAULT_SIZES: &str = "0,1,64,65536,262144";
/// A topic's slots hold 64 KiB by default: its largest message.
const DEFAULT_TOPIC_SIZES: &str = "0,1,64,4096,65536";

/// The Rust interop agent (see tests/interop/README.md, "The agent command line").
#[derive(Parser)]
#[command(name = "agent", disable_version_flag = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate a keypair, save it to FILE, print `public <key>`
    Keygen {
        /// The key file to write
        file: PathBuf,
    },
    /// Print `public <key> <fingerprint>` of the keypair in FILE
    Pubkey {
        /// The key file to read
        file: PathBuf,
    },
    /// An echo server on NAME until stdin ends or SIGTERM/SIGINT
    Serve(ServeArgs),
    /// Send messages to NAME and check each echo
    Client(ClientArgs),
    /// Publish messages on topic NAME to K subscribers, then close it
    Publish(PublishArgs),
    /// Subscribe to topic NAME and check every message
    Subscribe(SubscribeArgs),
}

#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The topic name
    #[arg(long)]
    pub(crate) name: String,
    /// The publisher's key file
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Messages to publish
    #[arg(long, default_value_t = 100)]
    pub(crate) count: u64,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_TOPIC_SIZES)]
    pub(crate) sizes: Vec<u32>,
    /// Subscribers to wait for before publishing
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub(crate) subscribers: usize,
    /// Limit on the wait for subscribers, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    pub(crate) timeout: Duration,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    pub(crate) cipher: CipherArg,
}

#[derive(clap::Args)]
pub(crate) struct SubscribeArgs {
    /// The topic name
    #[arg(long)]
    pub(crate) name: String,
    /// The publisher's public key (`shmsock-pk:` text)
    #[arg(long, value_name = "PUBLIC")]
    pub(crate) server_key: String,
    /// This subscriber's key file [default: a fresh key per run]
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// Messages to receive
    #[arg(long, default_value_t = 100)]
    pub(crate) count: u64,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_TOPIC_SIZES)]
    pub(crate) sizes: Vec<u32>,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    pub(crate) cipher: CipherArg,
    /// Limit on each receive, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    pub(crate) timeout: Duration,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The endpoint name
    #[arg(long)]
    pub(crate) name: String,
    /// The server's key file
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Accept only this client key (`shmsock-pk:` text); repeatable
    #[arg(long, value_name = "PUBLIC")]
    pub(crate) allow: Vec<String>,
    /// The segment backend
    #[arg(long, value_enum, default_value_t = BackendArg::Memfd)]
    pub(crate) backend: BackendArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    Memfd,
    Named,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum CipherArg {
    #[value(name = "aegis-128l")]
    Aegis128L,
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

#[derive(clap::Args)]
pub(crate) struct ClientArgs {
    /// The endpoint name
    #[arg(long)]
    pub(crate) name: String,
    /// The server's public key (`shmsock-pk:` text)
    #[arg(long, value_name = "PUBLIC")]
    pub(crate) server_key: String,
    /// This client's key file [default: a fresh key per run]
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    pub(crate) cipher: CipherArg,
    /// The ring size to ask the server for [default: the server's choice]
    #[arg(long, value_name = "BYTES")]
    pub(crate) ring_size: Option<u32>,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_SIZES)]
    pub(crate) sizes: Vec<u32>,
    /// Keep cycling through the sizes for S seconds, printing progress lines
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub(crate) seconds: Option<Duration>,
    /// Limit on each receive, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    pub(crate) timeout: Duration,
}

/// Longer `--seconds` / `--timeout` values are refused (as in the C and C++
/// agents; the core's `Instant + timeout` would overflow near 2^63 seconds).
const MAX_SECONDS: f64 = 1e9;

/// A positive number of seconds, at most MAX_SECONDS.
fn seconds(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a positive number of seconds (at most 1e9)");
    let value: f64 = text.parse().map_err(|_| bad())?;
    if value.is_nan() || value <= 0.0 || value > MAX_SECONDS {
        return Err(bad());
    }
    Duration::try_from_secs_f64(value).map_err(|_| bad())
}

impl CipherArg {
    pub(crate) fn suite(self) -> CipherSuite {
        match self {
            CipherArg::Aegis128L => CipherSuite::Aegis128L,
            CipherArg::ChaCha20Poly1305 => CipherSuite::ChaCha20Poly1305,
        }
    }
}
