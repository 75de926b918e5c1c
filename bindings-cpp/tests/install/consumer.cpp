// Connects to itself through the installed library and checks one echo.
#include <cstdio>
#include <cstring>
#include <future>

#include <shmsock.hpp>

int main() {
    if (shmsock::version() != EXPECTED_VERSION) {
        std::fprintf(stderr, "version %s, package says %s\n", shmsock::version().c_str(), EXPECTED_VERSION);
        return 1;
    }
    auto keypair = shmsock::Keypair::generate();
    auto listener = shmsock::Listener::bind("install-consumer", shmsock::Options().keypair(keypair));
    auto client = std::async(std::launch::async, [&] {
        auto stream = shmsock::Stream::connect("install-consumer", shmsock::Options().server_key(keypair.public_key()));
        stream.send(std::string_view("installed"));
        return stream.recv(std::chrono::seconds(5));
    });
    auto server = listener.accept(std::chrono::seconds(5));
    server.send(server.recv(std::chrono::seconds(5)));
    auto echo = client.get();
    try {
        shmsock::PublicKey::from_text("not a key");
        return 1;
    } catch (const shmsock::Error& e) {
        if (e.code() != shmsock::ErrorCode::InvalidKey) return 1;
    }
    std::printf("consumer: %.*s via shmsock %s\n", static_cast<int>(echo.size()),
                reinterpret_cast<const char*>(echo.data()), shmsock::version().c_str());
    return std::string(echo.begin(), echo.end()) == "installed" ? 0 : 1;
}
