// The C++ interop agent: keygen, pubkey, an echo server and a checking client
// (here), a publisher and a checking subscriber (pubsub.cpp), on the C++
// package of shmsock only (shmsock.hpp).
//
// The command line, the output lines and the exit codes are the contract in
// tests/interop/README.md ("The agent command line"). Build it with ./build.sh
// next to this file, run it with ./agent.
//
// `serve` runs a shmsock::Listener with one thread per client rather than a
// shmsock::Server: a shmsock::Connection does not tell its cipher, which the
// `connect` line prints, while a shmsock::Stream does. The main thread polls
// stdin (end of file: stop), a signalfd (SIGTERM, SIGINT: stop) and the
// listener's fd (a client is waiting: accept it).
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <shmsock.hpp>

#include "agent.hpp"

namespace agent {

constexpr const char* kDefaultSizes = "0,1,64,65536,262144";
constexpr double kMaxSeconds = 1e9;  // longer --seconds / --timeout values are refused

constexpr const char* kUsageText =
    "usage: agent keygen FILE\n"
    "       agent pubkey FILE\n"
    "       agent serve --name NAME --key FILE [--allow PUBLIC]... [--backend memfd|named]\n"
    "       agent client --name NAME --server-key PUBLIC [--key FILE]\n"
    "                    [--cipher aegis-128l|chacha20-poly1305] [--ring-size BYTES]\n"
    "                    [--sizes LIST] [--seconds S] [--timeout S]\n"
    "       agent publish --name NAME --key FILE [--count N] [--sizes LIST]\n"
    "                     [--subscribers K] [--timeout S] [--cipher aegis-128l|chacha20-poly1305]\n"
    "       agent subscribe --name NAME --server-key PUBLIC [--key FILE] [--count N]\n"
    "                       [--sizes LIST] [--timeout S] [--cipher aegis-128l|chacha20-poly1305]\n"
    "(see tests/interop/README.md)";


std::mutex output_mutex;

/// One stdout line, flushed at once; whole even when threads print at once.
void say(const std::string& line) {
    std::lock_guard<std::mutex> lock(output_mutex);
    std::cout << line << '\n' << std::flush;
}

void note(const std::string& line) {
    std::lock_guard<std::mutex> lock(output_mutex);
    std::cerr << line << '\n' << std::flush;
}

std::string fixed3(double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", value);
    return text;
}

// ------------------------------------------------------------------ arguments

std::optional<std::string> Args::next_option() {
    if (at_ == items_.size()) return std::nullopt;
    const std::string& arg = items_[at_++];
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    return arg;
}

std::string Args::value(const std::string& option) {
    if (at_ == items_.size()) throw UsageError(option + " needs a value");
    return items_[at_++];
}

void set_once(std::optional<std::string>& slot, const std::string& option, std::string value) {
    if (slot) throw UsageError(option + " given twice");
    slot = std::move(value);
}

std::string required(const std::optional<std::string>& slot, const std::string& option) {
    if (!slot) throw UsageError(option + " is required");
    return *slot;
}

std::optional<std::uint32_t> parse_u32(const std::string& text) {
    if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
    errno = 0;
    char* end = nullptr;
    unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || value > UINT32_MAX) return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

/// A positive number of seconds, at most kMaxSeconds.
double parse_seconds(const std::string& text, const std::string& option) {
    errno = 0;
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || errno != 0 || !std::isfinite(value) || value <= 0 || value > kMaxSeconds) {
        throw UsageError(option + ": '" + text + "' is not a positive number of seconds (at most 1e9)");
    }
    return value;
}

std::vector<std::size_t> parse_sizes(const std::string& text) {
    std::vector<std::size_t> sizes;
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = text.find(',', start);
        std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto size = parse_u32(part);
        if (!size) throw UsageError("--sizes: '" + part + "' is not a size in bytes (in '" + text + "')");
        sizes.push_back(*size);
        if (comma == std::string::npos) return sizes;
        start = comma + 1;
    }
}


void fill_message(std::vector<std::uint8_t>& message, std::uint64_t i, std::size_t n) {
    message.resize(n);
    auto byte = static_cast<std::uint8_t>(i + n);
    for (std::size_t j = 0; j < n; j++, byte = static_cast<std::uint8_t>(byte + 31)) message[j] = byte;
}

/// What differs between an echo of `len` bytes in `got` and the message sent.
std::string difference(std::size_t len, const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& expected) {
    if (len != expected.size()) return "received " + std::to_string(len) + " bytes";
    std::size_t j = 0;
    while (j < len && got[j] == expected[j]) j++;
    if (j == len) return "no difference";
    return "byte " + std::to_string(j) + " is " + std::to_string(got[j]) + ", expected " + std::to_string(expected[j]);
}

}  // namespace agent

namespace {

using namespace agent;

// ----------------------------------------------------------------------- keys

void keygen(const std::string& path) {
    auto keypair = shmsock::Keypair::generate();
    keypair.save(path);
    say("public " + keypair.public_key_text());
}

void pubkey(const std::string& path) {
    auto keypair = shmsock::Keypair::load(path);
    say("public " + keypair.public_key_text() + " " + keypair.fingerprint());
}

// --------------------------------------------------------------------- server

// The streams of the connected clients, each served by its own detached
// thread. The set lets stopping close them; a thread removes and destroys its
// stream under the lock, so nobody touches a destroyed stream.
std::mutex clients_mutex;
std::condition_variable clients_gone;
std::set<shmsock::Stream*> clients;

/// Sends every message back until the client leaves or the server stops.
void echo(std::unique_ptr<shmsock::Stream> stream) {
    std::string fingerprint = "?";
    shmsock::Stats stats;
    try {
        fingerprint = stream->peer_public_key().fingerprint();
        say("connect " + fingerprint + " " + stream->cipher());
        std::vector<std::uint8_t> buf(64 * 1024);
        for (;;) {
            std::size_t n = 0;
            try {
                n = stream->recv_into(buf.data(), buf.size());
            } catch (const shmsock::Error& e) {
                if (e.code() != shmsock::ErrorCode::BufferTooSmall) throw;
                buf.resize(e.needed());  // the message is kept: grow and retry
                continue;
            }
            stream->send(buf.data(), n);
        }
    } catch (const shmsock::Error& e) {
        if (e.code() != shmsock::ErrorCode::PeerClosed && e.code() != shmsock::ErrorCode::Closed) {
            note("client " + fingerprint + ": " + e.name() + ": " + e.what());
        }
    } catch (const std::exception& e) {
        note("client " + fingerprint + ": " + e.what());
    }
    try {
        stats = stream->stats();
        stream->close();
    } catch (const shmsock::Error&) {
    }
    say("close " + fingerprint + " " + std::to_string(stats.messages_received) + " " +
        std::to_string(stats.bytes_received));
    std::lock_guard<std::mutex> lock(clients_mutex);
    clients.erase(stream.get());
    stream.reset();
    clients_gone.notify_all();
}

void start_client(shmsock::Stream accepted) {
    auto owned = std::make_unique<shmsock::Stream>(std::move(accepted));
    shmsock::Stream* stream = owned.get();
    {
        std::lock_guard<std::mutex> lock(clients_mutex);
        clients.insert(stream);
    }
    try {
        std::thread([stream] { echo(std::unique_ptr<shmsock::Stream>(stream)); }).detach();
        owned.release();  // the thread owns it now
    } catch (const std::system_error& e) {
        note(std::string("dropping a client: cannot start a thread: ") + e.what());
        std::lock_guard<std::mutex> lock(clients_mutex);
        clients.erase(stream);
    }
}

/// Closes every client's stream (their threads wake up and end) and waits.
void stop_clients() {
    std::unique_lock<std::mutex> lock(clients_mutex);
    for (shmsock::Stream* stream : clients) {
        try {
            stream->close();
        } catch (const shmsock::Error&) {
        }
    }
    clients_gone.wait(lock, [] { return clients.empty(); });
}

/// Prints a `reject` line for each client the listener refused since last time.
void report_rejections(const shmsock::Listener& listener, std::uint64_t& seen) {
    std::uint64_t count = listener.rejected_count();
    if (count == seen) return;
    auto last = listener.last_rejection();
    for (; seen < count; ++seen) say(std::string("reject ") + (last ? last->name() : "UNKNOWN"));
    if (last) note(std::string("rejected a client: ") + last->name() + ": " + last->what());
}

/// Closes a file descriptor at the end of its scope.
struct FdGuard {
    int fd;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
};

/// Accepts clients until stdin ends or SIGTERM / SIGINT comes.
void serve_loop(shmsock::Listener& listener, int signal_fd) {
    std::uint64_t rejected = 0;
    for (;;) {
        pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {signal_fd, POLLIN, 0}, {listener.fd(), POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            throw shmsock::Error(shmsock::ErrorCode::Io, std::string("poll: ") + std::strerror(errno));
        }
        if (fds[1].revents) {
            signalfd_siginfo info{};
            bool got = ::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info);
            note(std::string("stopping (") + (got ? strsignal(static_cast<int>(info.ssi_signo)) : "signal") + ")");
            return;
        }
        if (fds[0].revents) {
            char sink[4096];
            ssize_t got = (fds[0].revents & POLLNVAL) ? 0 : ::read(STDIN_FILENO, sink, sizeof sink);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                note("stopping (end of input)");
                return;
            }
        }
        if (fds[2].revents) {
            // Timeout 0: only the client that is waiting (its handshake runs here).
            try {
                start_client(listener.accept(std::chrono::nanoseconds(0)));
            } catch (const shmsock::Error& e) {
                if (e.code() != shmsock::ErrorCode::Timeout) note(std::string("accept failed: ") + e.name() + ": " + e.what());
            }
            report_rejections(listener, rejected);
        }
    }
}

void serve(Args args) {
    std::optional<std::string> name, key, backend_text;
    std::vector<std::string> allow;
    while (auto option = args.next_option()) {
        if (*option == "--name") {
            set_once(name, *option, args.value(*option));
        } else if (*option == "--key") {
            set_once(key, *option, args.value(*option));
        } else if (*option == "--backend") {
            set_once(backend_text, *option, args.value(*option));
        } else if (*option == "--allow") {
            allow.push_back(args.value(*option));
        } else {
            throw UsageError("unknown option '" + *option + "' for serve");
        }
    }
    std::string endpoint = required(name, "--name"), key_file = required(key, "--key");
    auto backend = shmsock::Backend::Memfd;
    if (backend_text && *backend_text == "named") {
        backend = shmsock::Backend::Named;
    } else if (backend_text && *backend_text != "memfd") {
        throw UsageError("--backend: '" + *backend_text + "' is not memfd or named");
    }

    // Before any thread starts, so that every thread inherits the mask and the
    // signals only reach the signalfd.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    FdGuard signal_fd{::signalfd(-1, &stop, SFD_CLOEXEC)};
    if (signal_fd.fd < 0) throw shmsock::Error(shmsock::ErrorCode::Io, std::string("signalfd: ") + std::strerror(errno));

    auto keypair = shmsock::Keypair::load(key_file);
    shmsock::Options options;
    options.keypair(keypair).backend(backend);
    if (!allow.empty()) {
        std::vector<shmsock::PublicKey> keys;
        for (const auto& text : allow) keys.push_back(shmsock::PublicKey::from_text(text));
        options.allow_clients(keys);
    }
    auto listener = shmsock::Listener::bind(endpoint, options);
    say("ready " + endpoint + " " + keypair.public_key_text() + " " + keypair.fingerprint());
    try {
        serve_loop(listener, signal_fd.fd);
    } catch (...) {
        listener.close();
        stop_clients();
        throw;
    }
    listener.close();  // removes the endpoint
    stop_clients();
}

// --------------------------------------------------------------------- client

/// Message `i` of size `n`: byte `j` is (i + 31 * j + n) mod 256.

void client(Args args) {
    std::optional<std::string> name, server_text, key, cipher_text, ring, sizes_text, seconds_text, timeout_text;
    while (auto option = args.next_option()) {
        std::optional<std::string>* slot = *option == "--name"         ? &name
                                           : *option == "--server-key" ? &server_text
                                           : *option == "--key"        ? &key
                                           : *option == "--cipher"     ? &cipher_text
                                           : *option == "--ring-size"  ? &ring
                                           : *option == "--sizes"      ? &sizes_text
                                           : *option == "--seconds"    ? &seconds_text
                                           : *option == "--timeout"    ? &timeout_text
                                                                       : nullptr;
        if (!slot) throw UsageError("unknown option '" + *option + "' for client");
        set_once(*slot, *option, args.value(*option));
    }
    std::string endpoint = required(name, "--name"), server_public = required(server_text, "--server-key");
    std::string cipher = cipher_text.value_or("aegis-128l");
    if (cipher != "aegis-128l" && cipher != "chacha20-poly1305") {
        throw UsageError("--cipher: '" + cipher + "' is not aegis-128l or chacha20-poly1305");
    }
    std::optional<std::uint32_t> ring_size;
    if (ring && !(ring_size = parse_u32(*ring))) throw UsageError("--ring-size: '" + *ring + "' is not a size in bytes");
    std::vector<std::size_t> sizes = parse_sizes(sizes_text.value_or(kDefaultSizes));
    std::optional<double> seconds;
    if (seconds_text) seconds = parse_seconds(*seconds_text, "--seconds");
    double timeout = timeout_text ? parse_seconds(*timeout_text, "--timeout") : 10.0;

    auto server_key = shmsock::PublicKey::from_text(server_public);
    shmsock::Options options;
    options.server_key(server_key)
        .recv_timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(timeout)))
        .require_chacha(cipher == "chacha20-poly1305");
    if (key) options.keypair(shmsock::Keypair::load(*key));
    if (ring_size) options.ring_size(*ring_size);
    auto stream = shmsock::Stream::connect(endpoint, options);
    if (stream.peer_public_key() != server_key) {
        throw VerifyError("mismatch: server key is " + stream.peer_public_key().to_text() + ", expected " +
                          server_key.to_text());
    }
    if (stream.cipher() != cipher) throw VerifyError("mismatch: cipher is " + stream.cipher() + ", expected " + cipher);
    std::string client_fingerprint = stream.local_public_key().fingerprint();  // taken while open

    using clock = std::chrono::steady_clock;
    auto start = clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
    double next_progress = 1;
    std::uint64_t i = 0, total = 0;
    std::vector<std::uint8_t> message;
    // One byte more than the largest message, so a longer echo shows as such.
    std::vector<std::uint8_t> reply(*std::max_element(sizes.begin(), sizes.end()) + 1);
    for (;; i++) {
        if (seconds ? elapsed() >= *seconds : i == sizes.size()) break;
        std::size_t n = sizes[i % sizes.size()];
        fill_message(message, i, n);
        stream.send(message.data(), message.size());
        std::size_t len = 0;
        try {
            len = stream.recv_into(reply.data(), reply.size());
        } catch (const shmsock::Error& e) {
            if (e.code() != shmsock::ErrorCode::BufferTooSmall) throw;
            len = e.needed();
        }
        if (len != n || !std::equal(message.begin(), message.end(), reply.begin())) {
            throw VerifyError("mismatch: message " + std::to_string(i) + " (" + std::to_string(n) +
                              " B): " + difference(len, reply, message));
        }
        total += n;
        if (seconds && elapsed() >= next_progress) {
            next_progress += 1;
            say("progress " + std::to_string(i + 1) + " " + std::to_string(total) + " " + fixed3(elapsed()));
        }
    }
    double seconds_taken = elapsed();
    stream.close();
    say("ok cipher=" + cipher + " server=" + server_key.fingerprint() + " client=" + client_fingerprint +
        " messages=" + std::to_string(i) + " bytes=" + std::to_string(total) +
        " seconds=" + fixed3(seconds_taken));
}

// ----------------------------------------------------------------------- main

int run(int argc, char** argv) {
    if (argc < 2) throw UsageError("no command");
    std::string command = argv[1];
    if (command == "keygen" || command == "pubkey") {
        if (argc < 3) throw UsageError(command + " needs a FILE");
        if (argc > 3) throw UsageError(std::string("unexpected argument '") + argv[3] + "'");
        command == "keygen" ? keygen(argv[2]) : pubkey(argv[2]);
    } else if (command == "serve") {
        serve(Args(argv + 2, argv + argc));
    } else if (command == "client") {
        client(Args(argv + 2, argv + argc));
    } else if (command == "publish") {
        publish(Args(argv + 2, argv + argc));
    } else if (command == "subscribe") {
        subscribe(Args(argv + 2, argv + argc));
    } else if (command == "--help" || command == "-h" || command == "help") {
        say(kUsageText);
    } else {
        throw UsageError("unknown command '" + command + "'");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill us
    try {
        return run(argc, argv);
    } catch (const UsageError& e) {
        note(std::string("usage error: ") + e.what() + " (run 'agent --help' for the command line)");
        return kUsage;
    } catch (const VerifyError& e) {
        note(e.what());
        return kVerify;
    } catch (const shmsock::Error& e) {
        note(std::string("error ") + e.name() + ": " + e.what());
        return kShmsock;
    } catch (const std::exception& e) {
        note(std::string("error IO: ") + e.what());
        return kShmsock;
    }
}
