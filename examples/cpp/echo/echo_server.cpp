// Echo server: `echo_server NAME KEYFILE` serves endpoint NAME with the keypair
// in KEYFILE (created, mode 0600, if missing) and sends every message back from
// the event-driven server's callbacks. Stops on SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

int main(int argc, char** argv) {
    if (argc != 3) example::die("usage", "echo_server NAME KEYFILE");
    // Block the stop signals in every thread (the library's threads inherit
    // this mask), then wait for one here.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    try {
        auto keypair = example::load_or_create(argv[2]);
        std::printf("serving '%s' as %s\n", argv[1], keypair.public_key_text().c_str());
        std::fflush(stdout);

        shmsock::Server::Handlers handlers;
        handlers.on_connect = [](shmsock::Connection& c) {
            std::printf("client %llu connected (%s)\n", static_cast<unsigned long long>(c.id()),
                        c.peer_public_key().fingerprint().c_str());
            std::fflush(stdout);
        };
        handlers.on_data = [](shmsock::Connection& c, shmsock::ByteView data) {
            try {
                // Never blocks: the ring, or the connection's bounded queue. A
                // client that does not read its replies fills its queue
                // (WouldBlock): its replies are dropped, others are served.
                c.send(data);
            } catch (const shmsock::Error& e) {
                std::fprintf(stderr, "echo to client %llu dropped: %s\n", static_cast<unsigned long long>(c.id()), e.what());
            }
        };
        handlers.on_error = [](shmsock::Connection* c, const shmsock::Error& e) {
            if (c != nullptr) {
                std::fprintf(stderr, "error (client %llu): %s\n", static_cast<unsigned long long>(c->id()), e.what());
            } else {
                std::fprintf(stderr, "error (handshake): %s\n", e.what());
            }
        };
        handlers.on_close = [](shmsock::Connection& c, const shmsock::Error* reason) {
            if (reason == nullptr) {
                std::printf("client %llu left\n", static_cast<unsigned long long>(c.id()));
            } else {
                std::printf("client %llu left: %s\n", static_cast<unsigned long long>(c.id()), reason->what());
            }
            std::fflush(stdout);
        };
        auto server = shmsock::Server::start(argv[1], shmsock::Options().keypair(keypair), std::move(handlers));

        int sig = 0;
        sigwait(&stop, &sig);
        server.close();  // every connection gets on_close, then the endpoint is removed
        std::printf("stopped\n");
    } catch (const shmsock::Error& e) {
        example::die(e.name(), e.what());
    }
    return 0;
}
