#include "support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>

extern char** environ;

namespace support {

namespace {
std::string g_runtime_dir;
std::string g_scratch_dir;
std::atomic<unsigned> g_counter{0};

std::string make_private_dir(const char* prefix) {
    std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
        std::perror("mkdtemp");
        std::abort();
    }
    chmod(buf.data(), 0700);
    return std::string(buf.data());
}
}  // namespace

const std::string& runtime_dir() { return g_runtime_dir; }
const std::string& scratch_dir() { return g_scratch_dir; }

void init_dirs() {
    g_runtime_dir = make_private_dir("shmsock-cpp-rt");
    g_scratch_dir = make_private_dir("shmsock-cpp-tmp");
    setenv("SHMSOCK_RUNTIME_DIR", g_runtime_dir.c_str(), 1);
}

void remove_dirs() {
    std::error_code ignored;
    if (!g_runtime_dir.empty()) std::filesystem::remove_all(g_runtime_dir, ignored);
    if (!g_scratch_dir.empty()) std::filesystem::remove_all(g_scratch_dir, ignored);
}

std::string unique_name(const std::string& prefix) {
    return "cpp-" + prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(g_counter++);
}

shmsock::Options server_options(const shmsock::Keypair& keypair) {
    shmsock::Options options;
    options.keypair(keypair);
    return options;
}

Pair connect_pair(const std::function<void(shmsock::Options&)>& server_extra,
                  const std::function<void(shmsock::Options&)>& client_extra) {
    Pair pair;
    pair.server_keypair = shmsock::Keypair::generate();
    shmsock::Options server_opts = server_options(pair.server_keypair);
    if (server_extra) server_extra(server_opts);
    std::string name = unique_name("pair");
    pair.listener = shmsock::Listener::bind(name, server_opts);
    shmsock::Options client_opts;
    client_opts.server_key(pair.server_keypair.public_key());
    if (client_extra) client_extra(client_opts);
    auto connecting = std::async(std::launch::async, [&] { return shmsock::Stream::connect(name, client_opts); });
    pair.server = pair.listener.accept(10s);
    pair.client = connecting.get();
    return pair;
}

shmsock::Error expect_error(shmsock::ErrorCode code, const std::function<void()>& f) {
    try {
        f();
    } catch (const shmsock::Error& e) {
        EXPECT_EQ(e.code(), code) << "expected " << shmsock::to_string(code) << ", got " << e.name() << ": " << e.what();
        EXPECT_STRNE(e.what(), "") << "an error without a message";
        return e;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected shmsock::Error " << shmsock::to_string(code) << ", got another exception: " << e.what();
        return shmsock::Error(shmsock::ErrorCode::Io, "wrong exception type");
    }
    ADD_FAILURE() << "expected shmsock::Error " << shmsock::to_string(code) << ", nothing was thrown";
    return shmsock::Error(shmsock::ErrorCode::Io, "nothing thrown");
}

std::vector<std::uint8_t> pattern(std::size_t n, unsigned seed) {
    std::vector<std::uint8_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>((i + seed * 7) % 251);
    return out;
}

std::future<std::string> echo_client(const std::string& name, const shmsock::PublicKey& key, unsigned seed, int count) {
    return std::async(std::launch::async, [name, key, seed, count] {
        auto stream = shmsock::Stream::connect(name, shmsock::Options().server_key(key));
        for (int i = 0; i < count; ++i) {
            auto message = pattern(1 + static_cast<std::size_t>(i * 37) % 3000, seed * 1000 + static_cast<unsigned>(i));
            stream.send(message, 10s);
            if (stream.recv(10s) != message) return "echo " + std::to_string(i) + " of client " + std::to_string(seed) + " differs";
        }
        stream.close();
        return std::string("ok");
    });
}

std::vector<std::uint8_t> topic_message(std::size_t i) {
    static const std::size_t sizes[] = {0, 1, 64, 4096, 60000, 17};
    return pattern(sizes[i % 6], static_cast<unsigned>(i));
}

bool eventually(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return predicate();
}

// ------------------------------------------------------------------ children

Child::Child(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<std::string> argv_s{"/proc/self/exe", "--child"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_ = fds[0];
    if (rc != 0) {
        close(out_);
        throw std::runtime_error("posix_spawn failed");
    }
}

Child::~Child() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) close(out_);
}

std::string Child::read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto nl = buffered_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffered_.substr(0, nl);
            buffered_.erase(0, nl + 1);
            return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return "";
        pollfd p{out_, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return "";
        char buf[256];
        ssize_t n = read(out_, buf, sizeof buf);
        if (n <= 0) return "";
        buffered_.append(buf, static_cast<std::size_t>(n));
    }
}

void Child::kill(int signal) {
    if (!reaped_ && pid_ > 0) ::kill(pid_, signal);
}

int Child::wait(std::chrono::milliseconds timeout) {
    if (reaped_) return -1;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return status;
        }
        std::this_thread::sleep_for(5ms);
    }
    return -1;
}

namespace {

void say(const char* line) {
    std::printf("%s\n", line);
    std::fflush(stdout);
}

// echo-server NAME KEYFILE: serves one client, echoing every message, until it closes.
int child_echo_server(int argc, char** argv) {
    if (argc != 2) return 2;
    auto keypair = shmsock::Keypair::load(argv[1]);
    auto listener = shmsock::Listener::bind(argv[0], server_options(keypair));
    say("ready");
    auto stream = listener.accept(20s);
    std::vector<std::uint8_t> buf(1 << 20);
    for (;;) {
        try {
            auto message = stream.recv(20s);
            stream.send(message);
        } catch (const shmsock::Error& e) {
            if (e.code() == shmsock::ErrorCode::PeerClosed) break;
            std::fprintf(stderr, "child echo-server: %s: %s\n", e.name(), e.what());
            return 1;
        }
    }
    say("done");
    return 0;
}

// connect-and-die NAME SERVERKEY: connects, sends "hi", then waits to be killed.
int child_connect_and_die(int argc, char** argv) {
    if (argc != 2) return 2;
    shmsock::Options options;
    options.server_key(shmsock::PublicKey::from_text(argv[1]));
    auto stream = shmsock::Stream::connect(argv[0], options);
    stream.send(std::string_view("hi"));
    say("sent");
    for (;;) pause();
}

// starved-server NAME KEYFILE: serves NAME with a single file descriptor left
// (for the accepted socket), so creating a client's segment fails.
int child_starved_server(int argc, char** argv) {
    if (argc != 2) return 2;
    auto keypair = shmsock::Keypair::load(argv[1]);
    auto listener = shmsock::Listener::bind(argv[0], server_options(keypair));
    int probe = open("/dev/null", O_RDONLY);
    if (probe < 0) return 1;
    close(probe);
    rlimit low{};
    getrlimit(RLIMIT_NOFILE, &low);
    low.rlim_cur = static_cast<rlim_t>(probe) + 1;  // room for the accepted socket only
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) return 1;
    say("ready");
    // Refused clients are skipped; the parent kills us when it is done.
    for (;;) (void)listener.accept(60s);
}

// subscriber NAME PUBLISHER_KEY COUNT: subscribes, says "subscribed", checks
// COUNT messages (topic_message(i)), says "ok COUNT".
int child_subscriber(int argc, char** argv) {
    if (argc != 3) return 2;
    auto sub = shmsock::Subscriber::connect(argv[0], shmsock::Options().server_key(shmsock::PublicKey::from_text(argv[1])));
    say("subscribed");
    std::size_t count = std::stoul(argv[2]);
    for (std::size_t i = 0; i < count; ++i) {
        auto m = sub.recv_message(20s);
        if (m.data != topic_message(i) || m.sequence != i || m.lost != 0) {
            std::fprintf(stderr, "child subscriber: message %zu differs\n", i);
            return 1;
        }
    }
    say(("ok " + std::to_string(count)).c_str());
    return 0;
}

// publisher NAME KEYFILE: binds, says "ready", publishes "first" to its first
// subscriber, then waits to be killed.
int child_publisher(int argc, char** argv) {
    if (argc != 2) return 2;
    auto publisher = shmsock::Publisher::bind(argv[0], shmsock::Options().keypair(shmsock::Keypair::load(argv[1])));
    say("ready");
    publisher.wait_for_subscribers(1, 20s);
    publisher.publish(std::string_view("first"));
    for (;;) pause();
}

}  // namespace

int run_child(int argc, char** argv) {
    if (argc < 1) return 2;
    std::string mode = argv[0];
    try {
        if (mode == "echo-server") return child_echo_server(argc - 1, argv + 1);
        if (mode == "connect-and-die") return child_connect_and_die(argc - 1, argv + 1);
        if (mode == "starved-server") return child_starved_server(argc - 1, argv + 1);
        if (mode == "subscriber") return child_subscriber(argc - 1, argv + 1);
        if (mode == "publisher") return child_publisher(argc - 1, argv + 1);
    } catch (const shmsock::Error& e) {
        std::fprintf(stderr, "child %s: %s: %s\n", mode.c_str(), e.name(), e.what());
        return 1;
    }
    std::fprintf(stderr, "unknown child mode %s\n", mode.c_str());
    return 2;
}

}  // namespace support
