// Client: on_data / on_error / on_close on the reader thread, write and
// try_write, closing from either side, a peer that dies, callbacks that throw.
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ByteView;
using shmsock::Client;
using shmsock::Connection;
using shmsock::Error;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Options;
using shmsock::Server;

namespace {

struct Seen {
    std::mutex mutex;
    std::vector<std::string> data;
    std::vector<Error> errors;
    int closes = 0;
    std::optional<ErrorCode> close_reason;
    std::thread::id callback_thread;

    Client::Handlers handlers(bool throw_on_boom = true) {
        Client::Handlers h;
        h.on_data = [this, throw_on_boom](ByteView d) {
            std::lock_guard<std::mutex> lock(mutex);
            callback_thread = std::this_thread::get_id();
            data.emplace_back(d.as_string_view());
            if (throw_on_boom && d.as_string_view() == "boom") throw std::runtime_error("boom in on_data");
        };
        h.on_error = [this](const Error& e) {
            std::lock_guard<std::mutex> lock(mutex);
            errors.push_back(e);
        };
        h.on_close = [this](const Error* reason) {
            std::lock_guard<std::mutex> lock(mutex);
            ++closes;
            if (reason != nullptr) close_reason = reason->code();
        };
        return h;
    }
    std::size_t count() {
        std::lock_guard<std::mutex> lock(mutex);
        return data.size();
    }
};

struct EchoServer {
    Keypair keypair = Keypair::generate();
    std::string name = support::unique_name("client");
    Server server;
    EchoServer() {
        Server::Handlers h;
        h.on_data = [](Connection& c, ByteView d) {
            if (d.as_string_view() == "bye") {
                c.close();
                return;
            }
            c.send(d);
        };
        server = Server::start(name, support::server_options(keypair), std::move(h));
    }
    Options client_options() const {
        Options o;
        o.server_key(keypair.public_key());
        return o;
    }
};

}  // namespace

TEST(Client, ReceivesOnItsReaderThread) {
    EchoServer s;
    Seen seen;
    auto client = Client::connect(s.name, s.client_options(), seen.handlers());
    EXPECT_EQ(client.server_public_key(), s.keypair.public_key());
    client.write(std::string_view("hello"));
    client.write(std::vector<std::uint8_t>{'a', 'b'}, 5s);
    client.write("", 0);
    EXPECT_TRUE(client.try_write(std::string_view("try")));
    ASSERT_TRUE(support::eventually([&] { return seen.count() == 4; }));
    {
        std::lock_guard<std::mutex> lock(seen.mutex);
        EXPECT_EQ(seen.data, (std::vector<std::string>{"hello", "ab", "", "try"}));
        EXPECT_NE(seen.callback_thread, std::this_thread::get_id());
    }
    EXPECT_EQ(client.stats().messages_sent, 4u);
    client.close();
    {
        std::lock_guard<std::mutex> lock(seen.mutex);
        EXPECT_EQ(seen.closes, 1) << "on_close ran before close() returned";
        EXPECT_FALSE(seen.close_reason.has_value());
        EXPECT_TRUE(seen.errors.empty());
    }
    client.close();  // idempotent
    EXPECT_TRUE(client.is_closed());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.write(std::string_view("late")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.try_write(std::string_view("late")));
    EXPECT_EQ(client.server_public_key(), s.keypair.public_key());
}

TEST(Client, ServerClosingIsACleanClose) {
    EchoServer s;
    Seen seen;
    auto client = Client::connect(s.name, s.client_options(), seen.handlers());
    client.write(std::string_view("bye"));
    ASSERT_TRUE(support::eventually([&] {
        std::lock_guard<std::mutex> lock(seen.mutex);
        return seen.closes == 1;
    }));
    {
        std::lock_guard<std::mutex> lock(seen.mutex);
        EXPECT_FALSE(seen.close_reason.has_value());
    }
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, client.write(std::string_view("after")));
}

TEST(Client, ACallbackThatThrowsIsReportedAndReadingGoesOn) {
    EchoServer s;
    Seen seen;
    auto client = Client::connect(s.name, s.client_options(), seen.handlers());
    client.write(std::string_view("boom"));
    client.write(std::string_view("next"));
    ASSERT_TRUE(support::eventually([&] { return seen.count() == 2; }));
    std::lock_guard<std::mutex> lock(seen.mutex);
    ASSERT_EQ(seen.errors.size(), 1u);
    EXPECT_EQ(seen.errors[0].code(), ErrorCode::Io);
    EXPECT_NE(std::string(seen.errors[0].what()).find("boom in on_data"), std::string::npos) << seen.errors[0].what();
    EXPECT_EQ(seen.closes, 0);
}

TEST(Client, PeerProcessDeathIsReported) {
    auto kp = Keypair::generate();
    auto key_file = support::scratch_dir() + "/client-peer-" + std::to_string(getpid()) + ".key";
    kp.save(key_file);
    auto name = support::unique_name("client-gone");
    support::Child child({"echo-server", name, key_file});
    ASSERT_EQ(child.read_line(), "ready");
    Seen seen;
    Options opts;
    opts.server_key(kp.public_key());
    auto client = Client::connect(name, opts, seen.handlers());
    client.write(std::string_view("ping"));
    ASSERT_TRUE(support::eventually([&] { return seen.count() == 1; }));
    child.kill(SIGKILL);
    child.wait();
    ASSERT_TRUE(support::eventually([&] {
        std::lock_guard<std::mutex> lock(seen.mutex);
        return seen.closes == 1;
    }));
    std::lock_guard<std::mutex> lock(seen.mutex);
    ASSERT_EQ(seen.errors.size(), 1u);
    EXPECT_EQ(seen.errors[0].code(), ErrorCode::PeerGone);
    ASSERT_TRUE(seen.close_reason.has_value());
    EXPECT_EQ(*seen.close_reason, ErrorCode::PeerGone);
}

TEST(Client, ConnectFailures) {
    EchoServer s;
    Seen seen;
    Options wrong;
    wrong.server_key(Keypair::generate().public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::ServerKeyMismatch, Client::connect(s.name, wrong, seen.handlers()));
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Client::connect(support::unique_name("none"), s.client_options(), {}));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Client::connect(s.name, Options(), {}));
}

TEST(Client, CloseFromInsideOnData) {
    EchoServer s;
    Client client;
    std::atomic<bool> closed{false};
    std::atomic<int> close_calls{0};
    Client::Handlers h;
    h.on_data = [&](ByteView) {
        client.close();
        closed = true;
    };
    h.on_close = [&](const Error*) { ++close_calls; };
    client = Client::connect(s.name, s.client_options(), std::move(h));
    client.write(std::string_view("x"));
    ASSERT_TRUE(support::eventually([&] { return closed.load() && close_calls.load() == 1; }));
    EXPECT_TRUE(client.is_closed());
}

TEST(Client, MovedFromClientThrowsClosed) {
    EchoServer s;
    Seen seen;
    auto client = Client::connect(s.name, s.client_options(), seen.handlers());
    Client moved(std::move(client));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.write(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.close());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.stats());
    moved.write(std::string_view("y"));
    ASSERT_TRUE(support::eventually([&] { return seen.count() == 1; }));
}
