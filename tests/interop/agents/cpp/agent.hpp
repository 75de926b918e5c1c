// Shared by the C++ interop agent's files (agent.cpp: keys, serve, client,
// main; pubsub.cpp: publish, subscribe): the exit codes, output lines, and
// the command-line and message helpers of the contract in tests/interop/README.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace agent {

inline constexpr int kVerify = 1, kUsage = 2, kShmsock = 3;

/// A bad command line (exit 2).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// A failed check (exit 1); what() is the whole stderr line.
struct VerifyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One stdout line, flushed at once; whole even when threads print at once.
void say(const std::string& line);
/// One stderr line.
void note(const std::string& line);
std::string fixed3(double value);

/// The arguments after the command: `--option value` pairs.
class Args {
public:
    Args(char** begin, char** end) : items_(begin, end) {}
    std::optional<std::string> next_option();
    std::string value(const std::string& option);

private:
    std::vector<std::string> items_;
    std::size_t at_ = 0;
};

void set_once(std::optional<std::string>& slot, const std::string& option, std::string value);
std::string required(const std::optional<std::string>& slot, const std::string& option);
std::optional<std::uint32_t> parse_u32(const std::string& text);
/// A positive number of seconds, at most 1e9.
double parse_seconds(const std::string& text, const std::string& option);
std::vector<std::size_t> parse_sizes(const std::string& text);

/// Message `i` of size `n`: byte `j` is (i + 31 * j + n) mod 256.
void fill_message(std::vector<std::uint8_t>& message, std::uint64_t i, std::size_t n);
/// What differs between `len` bytes received in `got` and the message expected.
std::string difference(std::size_t len, const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& expected);

/// `agent publish ...` and `agent subscribe ...` (pubsub.cpp).
void publish(Args args);
void subscribe(Args args);

}  // namespace agent
