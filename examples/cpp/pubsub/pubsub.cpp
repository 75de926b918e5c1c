// Publish/subscribe in C++: one publisher, each message sealed once for every
// subscriber (PROTOCOL.md section 14).
//
//   pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS]   the publisher
//   pubsub -s NAME SERVER_KEY                   a subscriber
//
// The publisher binds topic NAME with the keypair in KEYFILE (created, mode
// 0600, if missing), prints its public key, waits for SUBSCRIBERS subscribers
// (default 1), publishes COUNT messages (default 1000) and closes the topic.
// A subscriber pins SERVER_KEY (`shmsock-pk:...` or the publisher's key file)
// and prints "received N messages, lost L" when the topic closes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

namespace {

void publish(const std::string& name, const std::string& key_file, std::uint64_t count, std::size_t subscribers) {
    auto keypair = example::load_or_create(key_file);
    std::printf("publisher of '%s', key %s\n", name.c_str(), keypair.public_key_text().c_str());
    std::fflush(stdout);
    // A reliable topic (the default): every subscriber that keeps up gets every message.
    auto topic = shmsock::Publisher::bind(name, shmsock::Options().keypair(keypair));
    topic.wait_for_subscribers(subscribers);
    for (std::uint64_t i = 0; i < count; ++i) topic.publish("tick " + std::to_string(i));
    topic.close();  // subscribers receive everything published, then PeerClosed
    std::printf("published %llu messages\n", static_cast<unsigned long long>(count));
}

void subscribe(const std::string& name, const std::string& server_key) {
    auto sub = shmsock::Subscriber::connect(name, shmsock::Options().server_key(example::public_key_arg(server_key)));
    std::vector<std::uint8_t> buf(sub.max_message_size());
    std::uint64_t received = 0;
    for (;;) {
        try {
            sub.recv_into(buf, shmsock::forever);
            ++received;
        } catch (const shmsock::Error& e) {
            if (e.code() == shmsock::ErrorCode::PeerClosed) break;  // the topic ended
            throw;
        }
    }
    std::printf("received %llu messages, lost %llu\n", static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(sub.lost()));
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 4 && std::string(argv[1]) == "-s") {
            subscribe(argv[2], argv[3]);
        } else if (argc >= 3 && argc <= 5 && argv[1][0] != '-') {
            std::uint64_t count = argc >= 4 ? std::strtoull(argv[3], nullptr, 10) : 1000;
            std::size_t subscribers = argc == 5 ? std::strtoul(argv[4], nullptr, 10) : 1;
            publish(argv[1], argv[2], count, subscribers);
        } else {
            std::fprintf(stderr, "usage: pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS] | pubsub -s NAME SERVER_KEY\n");
            return 2;
        }
    } catch (const shmsock::Error& e) {
        example::die(e.name(), e.what());
    }
    return 0;
}
