// The producer/consumer of the original sketch.
//
//   producer_consumer NAME KEYFILE                 the consumer: serves NAME and
//                                                  prints "consumed 1k messages", ...
//   producer_consumer -p NAME SERVER_KEY [COUNT]   the producer: sends COUNT messages
#include <cstdio>
#include <string>
#include <vector>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

namespace {

int consume(const std::string& name, const std::string& key_file) {
    auto keypair = example::load_or_create(key_file);
    std::printf("consumer on '%s', key %s\n", name.c_str(), keypair.public_key_text().c_str());
    std::fflush(stdout);
    auto listener = shmsock::Listener::bind(name, shmsock::Options().keypair(keypair));
    std::uint64_t consumed = 0;
    std::vector<std::uint8_t> buffer(64 * 1024);
    for (;;) {
        shmsock::Stream stream = listener.accept();
        for (;;) {
            try {
                stream.recv_into(buffer);
            } catch (const shmsock::Error& e) {
                if (e.code() == shmsock::ErrorCode::PeerClosed || e.code() == shmsock::ErrorCode::PeerGone) break;
                if (e.code() == shmsock::ErrorCode::BufferTooSmall) {
                    buffer.resize(e.needed());
                    continue;
                }
                throw;
            }
            if (++consumed % 1000 == 0) {
                std::printf("consumed %lluk messages\n", static_cast<unsigned long long>(consumed / 1000));
                std::fflush(stdout);
            }
        }
    }
}

int produce(const std::string& name, const std::string& server_key, unsigned long long count) {
    auto stream = shmsock::Stream::connect(name, shmsock::Options().server_key(example::public_key_arg(server_key)));
    for (unsigned long long i = 0; i < count; ++i) stream.send("message " + std::to_string(i));
    stream.close();
    std::printf("produced %llu messages\n", count);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() >= 3 && args.size() <= 4 && args[0] == "-p") {
            unsigned long long count = args.size() == 4 ? std::stoull(args[3]) : 10000;
            return produce(args[1], args[2], count);
        }
        if (args.size() == 2 && args[0] != "-p") return consume(args[0], args[1]);
    } catch (const shmsock::Error& e) {
        example::die(e.name(), e.what());
    } catch (const std::exception& e) {
        example::die("error", e.what());
    }
    example::die("usage", "producer_consumer NAME KEYFILE | producer_consumer -p NAME SERVER_KEY [COUNT]");
}
