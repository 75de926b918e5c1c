// Helpers shared by the C++ tests: a private runtime directory, unique endpoint
// names, connected pairs, expected errors, and child processes (this same test
// binary, run with --child MODE ...).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include <shmsock.hpp>

namespace support {

using namespace std::chrono_literals;

/// The private (0700) directory that SHMSOCK_RUNTIME_DIR names for this process.
const std::string& runtime_dir();
/// A private scratch directory for files of the tests (key files, ...).
const std::string& scratch_dir();
/// Creates both directories and sets SHMSOCK_RUNTIME_DIR (test_main does it).
void init_dirs();
/// Removes both directories.
void remove_dirs();

/// An endpoint name unique to this process and call.
std::string unique_name(const std::string& prefix);

/// Options of a server with a fresh keypair (returned in `keypair`).
shmsock::Options server_options(const shmsock::Keypair& keypair);

/// A listener and both ends of one connection to it.
struct Pair {
    shmsock::Keypair server_keypair;
    shmsock::Listener listener;
    shmsock::Stream client;
    shmsock::Stream server;
};
/// Binds a fresh endpoint and connects to it. `server_extra` / `client_extra`
/// adjust the options (the keys are set here).
Pair connect_pair(const std::function<void(shmsock::Options&)>& server_extra = {},
                  const std::function<void(shmsock::Options&)>& client_extra = {});

/// A client on its own thread: connects to `name` pinning `key`, sends `count`
/// messages (of varied sizes, bytes seeded by `seed`), checks each echo before
/// the next, closes; "ok" or what went wrong.
std::future<std::string> echo_client(const std::string& name, const shmsock::PublicKey& key, unsigned seed, int count);

/// Runs `f`, expects it to throw shmsock::Error with `code`, and returns it.
shmsock::Error expect_error(shmsock::ErrorCode code, const std::function<void()>& f);

/// Bytes 0, 1, 2, ... (mod 251) of length n, seeded.
std::vector<std::uint8_t> pattern(std::size_t n, unsigned seed = 0);

/// Message i of the pub/sub tests: sizes cycle through 0 B .. 60 KiB, the bytes seeded by i.
std::vector<std::uint8_t> topic_message(std::size_t i);

/// Polls until `predicate` or `timeout`; true if it held.
bool eventually(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 5000ms);

/// A child process running this test binary with `--child args...`; its
/// stdout is a pipe we read lines from. Killed and reaped on destruction.
class Child {
public:
    explicit Child(const std::vector<std::string>& args);
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();
    /// The next line (without newline) within `timeout`, or "" at EOF/timeout.
    std::string read_line(std::chrono::milliseconds timeout = 10000ms);
    void kill(int signal);
    /// The exit status (as from waitpid) within `timeout`, or -1.
    int wait(std::chrono::milliseconds timeout = 10000ms);
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffered_;
    bool reaped_ = false;
};

/// The child side: runs mode argv[0] with its arguments; returns the exit code.
int run_child(int argc, char** argv);

}  // namespace support

#define EXPECT_SHMSOCK_ERROR(code, statement) ::support::expect_error((code), [&] { statement; })
