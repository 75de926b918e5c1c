// Echo server: `echo_server NAME KEYFILE` serves endpoint NAME with the keypair
// in KEYFILE (created, mode 0600, if missing) and sends every message back.
// Stops on SIGINT or SIGTERM.
//
// One thread drives everything through a shmsock::Reactor: the listener, every
// client's stream and a signalfd. Nothing on that thread blocks: accept(0ns)
// advances handshakes without waiting for a silent client, try_recv takes what
// is there, and replies go out with send_resumable, which writes what fits and
// keeps the rest for when the client frees ring space (the reactor reports its
// stream readable then). Replies a client does not read wait in its outbox; a
// client whose outbox passes kMaxQueued bytes is disconnected, so a client that
// never reads costs bounded memory and delays nobody else.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include <shmsock.hpp>

#include "../common/example_keys.hpp"

namespace {

constexpr shmsock::Token kListener = 0;
constexpr shmsock::Token kSignals = 1;
/// Replies waiting for one client, at most (then it is disconnected).
constexpr std::size_t kMaxQueued = 1 << 20;

struct Client {
    shmsock::Stream stream;
    std::deque<std::vector<std::uint8_t>> outbox;  // replies not (fully) in the ring yet
    std::size_t queued = 0;                        // bytes in outbox
};

class EchoServer {
public:
    EchoServer(shmsock::Listener listener, int signal_fd) : listener_(std::move(listener)) {
        reactor_.add(listener_, kListener);
        reactor_.add_fd(signal_fd, kSignals);
    }

    /// Serves until a stop signal.
    void run() {
        std::vector<shmsock::Reactor::Event> events;
        for (;;) {
            reactor_.poll(events);
            for (const auto& event : events) {
                if (event.kind != shmsock::Reactor::EventKind::Readable) continue;
                if (event.token == kSignals) return;
                if (event.token == kListener) {
                    accept_ready();
                } else {
                    serve(event.token);
                }
            }
        }
    }

    /// Closes every client (they see PeerClosed after their last echo).
    ~EchoServer() {
        for (auto& [id, client] : clients_) {
            try {
                client.stream.close();
            } catch (const shmsock::Error&) {
            }
        }
    }

private:
    void accept_ready() {
        for (;;) {
            shmsock::Stream stream;
            try {
                stream = listener_.accept(std::chrono::nanoseconds(0));  // never waits
            } catch (const shmsock::Error& e) {
                if (e.code() != shmsock::ErrorCode::Timeout) std::fprintf(stderr, "accept: %s\n", e.what());
                return;  // nobody else through the handshake now
            }
            shmsock::Token id = next_id_++;
            std::printf("client %llu connected (%s)\n", static_cast<unsigned long long>(id - kSignals),
                        stream.peer_public_key().fingerprint().c_str());
            std::fflush(stdout);
            reactor_.add(stream, id);
            clients_.emplace(id, Client{std::move(stream), {}, 0});
            // A stream reports readiness once a try_ call found nothing: take
            // what came with the handshake now, which arms it.
            serve(id);
        }
    }

    void serve(shmsock::Token id) {
        auto it = clients_.find(id);
        if (it == clients_.end()) return;
        Client& client = it->second;
        try {
            // Everything that arrived, queued as replies (try_recv re-arms the
            // reactor's wake-up when it finds nothing).
            while (auto message = client.stream.try_recv()) {
                client.queued += message->size();
                client.outbox.push_back(std::move(*message));
                if (client.queued > kMaxQueued) {
                    drop(it, "it does not read its replies");
                    return;
                }
            }
            flush(client);
            reactor_.note_activity();
        } catch (const shmsock::Error& e) {
            drop(it, e.code() == shmsock::ErrorCode::PeerClosed ? nullptr : e.what());
        }
    }

    /// Sends what fits of the outbox now; the rest waits for ring space.
    static void flush(Client& client) {
        while (!client.outbox.empty()) {
            auto& reply = client.outbox.front();
            if (!client.stream.send_resumable(reply).complete) return;
            client.queued -= reply.size();
            client.outbox.pop_front();
        }
    }

    void drop(std::map<shmsock::Token, Client>::iterator it, const char* why) {
        auto number = static_cast<unsigned long long>(it->first - kSignals);
        if (why == nullptr) {
            std::printf("client %llu left\n", number);
        } else {
            std::printf("client %llu dropped: %s\n", number, why);
        }
        std::fflush(stdout);
        try {
            reactor_.remove(it->second.stream);
            it->second.stream.close();
        } catch (const shmsock::Error&) {
        }
        clients_.erase(it);
    }

    shmsock::Reactor reactor_;
    shmsock::Listener listener_;
    std::map<shmsock::Token, Client> clients_;
    shmsock::Token next_id_ = kSignals + 1;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) example::die("usage", "echo_server NAME KEYFILE");
    // The stop signals arrive through a signalfd the reactor watches.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    int signal_fd = signalfd(-1, &stop, SFD_CLOEXEC);
    if (signal_fd < 0) example::die("signalfd", "cannot create it");
    try {
        auto keypair = example::load_or_create(argv[2]);
        auto listener = shmsock::Listener::bind(argv[1], shmsock::Options().keypair(keypair));
        std::printf("serving '%s' as %s\n", argv[1], keypair.public_key_text().c_str());
        std::fflush(stdout);
        {
            EchoServer server(std::move(listener), signal_fd);
            server.run();
        }  // closes every client and removes the endpoint
        std::printf("stopped\n");
    } catch (const shmsock::Error& e) {
        example::die(e.name(), e.what());
    }
    close(signal_fd);
    return 0;
}
