// The publish and subscribe commands of the C++ interop agent (the
// "Publish/subscribe" section of tests/interop/README.md), on
// shmsock::Publisher and shmsock::Subscriber.
#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <shmsock.hpp>

#include "agent.hpp"

namespace agent {

namespace {

// Topics carry at most 64 KiB by default (the package's TopicOptions).
constexpr const char* kDefaultTopicSizes = "0,1,64,4096,65536";


/// Parses the options of publish / subscribe into `slots` (by option name).
void topic_options(Args& args, const char* command,
                   std::initializer_list<std::pair<const char*, std::optional<std::string>*>> slots) {
    while (auto option = args.next_option()) {
        std::optional<std::string>* slot = nullptr;
        for (const auto& [name, target] : slots) {
            if (*option == name) slot = target;
        }
        if (!slot) throw UsageError("unknown option '" + *option + "' for " + command);
        set_once(*slot, *option, args.value(*option));
    }
}

std::string cipher_arg(const std::optional<std::string>& text) {
    std::string cipher = text.value_or("aegis-128l");
    if (cipher != "aegis-128l" && cipher != "chacha20-poly1305") {
        throw UsageError("--cipher: '" + cipher + "' is not aegis-128l or chacha20-poly1305");
    }
    return cipher;
}

std::uint64_t count_arg(const std::optional<std::string>& text, const char* option) {
    if (!text) return 100;
    auto count = parse_u32(*text);
    if (!count) throw UsageError(std::string(option) + ": '" + *text + "' is not a count");
    return *count;
}

std::chrono::nanoseconds seconds_arg(const std::optional<std::string>& text) {
    double seconds = text ? parse_seconds(*text, "--timeout") : 10.0;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

}  // namespace

void publish(Args args) {
    std::optional<std::string> name, key, count_text, sizes_text, subscribers_text, timeout_text, cipher_text;
    topic_options(args, "publish",
                  {{"--name", &name}, {"--key", &key}, {"--count", &count_text}, {"--sizes", &sizes_text},
                   {"--subscribers", &subscribers_text}, {"--timeout", &timeout_text}, {"--cipher", &cipher_text}});
    std::string topic_name = required(name, "--name"), key_file = required(key, "--key");
    std::uint64_t count = count_arg(count_text, "--count");
    std::uint64_t subscribers = subscribers_text ? count_arg(subscribers_text, "--subscribers") : 1;
    std::vector<std::size_t> sizes = parse_sizes(sizes_text.value_or(kDefaultTopicSizes));
    std::string cipher = cipher_arg(cipher_text);
    auto timeout = seconds_arg(timeout_text);

    auto keypair = shmsock::Keypair::load(key_file);
    auto topic = shmsock::Publisher::bind(
        topic_name, shmsock::Options().keypair(keypair).require_chacha(cipher == "chacha20-poly1305"));
    say("ready " + topic_name + " " + keypair.public_key_text() + " " + keypair.fingerprint());
    topic.wait_for_subscribers(subscribers, timeout);
    std::vector<std::uint8_t> message;
    std::uint64_t total = 0;
    for (std::uint64_t i = 0; i < count; i++) {
        std::size_t n = sizes[i % sizes.size()];
        fill_message(message, i, n);
        topic.publish(message.data(), message.size());
        total += n;
    }
    say("published messages=" + std::to_string(count) + " bytes=" + std::to_string(total));
    topic.close();  // subscribers receive everything published before the end
}

void subscribe(Args args) {
    std::optional<std::string> name, server_text, key, count_text, sizes_text, timeout_text, cipher_text;
    topic_options(args, "subscribe",
                  {{"--name", &name}, {"--server-key", &server_text}, {"--key", &key}, {"--count", &count_text},
                   {"--sizes", &sizes_text}, {"--timeout", &timeout_text}, {"--cipher", &cipher_text}});
    std::string topic_name = required(name, "--name"), server_public = required(server_text, "--server-key");
    std::uint64_t count = count_arg(count_text, "--count");
    std::vector<std::size_t> sizes = parse_sizes(sizes_text.value_or(kDefaultTopicSizes));
    std::string cipher = cipher_arg(cipher_text);
    auto timeout = seconds_arg(timeout_text);

    auto publisher_key = shmsock::PublicKey::from_text(server_public);
    shmsock::Options options;
    options.server_key(publisher_key).require_chacha(cipher == "chacha20-poly1305");
    if (key) options.keypair(shmsock::Keypair::load(*key));
    auto sub = shmsock::Subscriber::connect(topic_name, options);
    if (sub.publisher_public_key() != publisher_key) {
        throw VerifyError("mismatch: publisher key is " + sub.publisher_public_key().to_text() + ", expected " +
                          publisher_key.to_text());
    }
    if (sub.cipher() != cipher) throw VerifyError("mismatch: cipher is " + sub.cipher() + ", expected " + cipher);
    say("subscribed " + publisher_key.fingerprint() + " " + cipher);

    std::vector<std::uint8_t> expected;
    // One byte more than the largest message, so a longer one shows as such.
    std::vector<std::uint8_t> got(*std::max_element(sizes.begin(), sizes.end()) + 1);
    std::uint64_t total = 0;
    for (std::uint64_t i = 0; i < count; i++) {
        std::size_t n = sizes[i % sizes.size()];
        fill_message(expected, i, n);
        shmsock::Delivery d;
        try {
            d = sub.receive_into(got.data(), got.size(), timeout);
        } catch (const shmsock::Error& e) {
            if (e.code() != shmsock::ErrorCode::BufferTooSmall) throw;
            d.size = e.needed();
        }
        if (d.lost != 0) throw VerifyError("mismatch: lost " + std::to_string(d.lost) + " messages");
        if (d.size != n || !std::equal(expected.begin(), expected.end(), got.begin())) {
            throw VerifyError("mismatch: message " + std::to_string(i) + " (" + std::to_string(n) +
                              " B): " + difference(d.size, got, expected));
        }
        total += n;
    }
    sub.close();
    say("ok cipher=" + cipher + " publisher=" + publisher_key.fingerprint() + " messages=" + std::to_string(count) +
        " bytes=" + std::to_string(total) + " lost=0");
}

}  // namespace agent
