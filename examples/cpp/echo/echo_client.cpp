// Echo client: `echo_client NAME SERVER_KEY [MESSAGE...]` sends each message and
// prints the echo. SERVER_KEY is `shmsock-pk:...` or the server's key file.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

int main(int argc, char** argv) {
    if (argc < 3) example::die("usage", "echo_client NAME SERVER_KEY [MESSAGE...]");
    std::vector<std::string> messages(argv + 3, argv + argc);
    if (messages.empty()) messages.push_back("hello");
    try {
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
