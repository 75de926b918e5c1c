// Echo client: `echo_client NAME SERVER_KEY [MESSAGE...]` sends each message and
// prints the echo. SERVER_KEY is `shmsock-pk:...` or the server's key file.
//
// `echo_client --never-read NAME SERVER_KEY COUNT` is the misbehaving client of
// the server's test: it sends COUNT messages of 1 KiB, never reads a reply,
// prints how many it sent, and waits with its connection open until it is
// killed (or a minute passed, so a failed test leaves nothing running).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

namespace {

void never_read(const std::string& name, const std::string& key, unsigned long count) {
    auto stream = shmsock::Stream::connect(name, shmsock::Options().server_key(example::public_key_arg(key)));
    std::vector<std::uint8_t> message(1024, 'x');
    unsigned long sent = 0;
    try {
        for (; sent < count; ++sent) stream.send(message, std::chrono::seconds(10));
    } catch (const shmsock::Error& e) {
        std::printf("stopped sending: %s\n", e.name());  // the server dropped us
    }
    std::printf("sent %lu messages, read none\n", sent);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::minutes(1));
    std::exit(0);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 5 && std::string(argv[1]) == "--never-read") {
            never_read(argv[2], argv[3], std::strtoul(argv[4], nullptr, 10));
        }
        if (argc < 3) example::die("usage", "echo_client NAME SERVER_KEY [MESSAGE...]");
        std::vector<std::string> messages(argv + 3, argv + argc);
        if (messages.empty()) messages.push_back("hello");
        shmsock::Options options;
        options.server_key(example::public_key_arg(argv[2])).recv_timeout(std::chrono::seconds(10));
        auto stream = shmsock::Stream::connect(argv[1], options);
        for (const auto& message : messages) {
            stream.send(message);
            auto echo = stream.recv();
            std::printf("%.*s\n", static_cast<int>(echo.size()), reinterpret_cast<const char*>(echo.data()));
        }
        stream.close();
    } catch (const shmsock::Error& e) {
        example::die(e.name(), e.what());
    }
    return 0;
}
