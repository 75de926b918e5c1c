// Every error code the C++ API can produce, reached through the real API
// (the others are in the tests of each class; errors_test.cpp checks the
// mapping of all codes). Not reachable from C++ by design: WouldBlock (the
// try_ calls report it as false / nullopt), ProtocolVersion and NoCommonCipher
// (one implementation always agrees with itself).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Listener;
using shmsock::Options;
using shmsock::Stream;

namespace {

// The shared memory of the connection of this process whose client sent a
// frame, mapped through its memfd: what any process holding the segment could
// write. (The listener also holds a spare segment for its next client, with
// empty rings.)
struct Segment {
    std::uint8_t* base = nullptr;
    std::size_t size = 0;
    Segment() {
        DIR* dir = opendir("/proc/self/fd");
        if (dir == nullptr) return;
        while (dirent* entry = readdir(dir)) {
            char link[256] = {0};
            std::string path = std::string("/proc/self/fd/") + entry->d_name;
            ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
            if (n <= 0 || std::string(link, static_cast<std::size_t>(n)).find("memfd:shmsock") == std::string::npos) {
                continue;
            }
            int fd = std::atoi(entry->d_name);
            struct stat st {};
            if (fstat(fd, &st) != 0 || st.st_size <= 0x1000) continue;
            auto len = static_cast<std::size_t>(st.st_size);
            void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) continue;
            auto* seg = static_cast<std::uint8_t*>(p);
            if (seg[0x1000] != 0) {  // a frame in ring 0
                base = seg;
                size = len;
                break;
            }
            munmap(p, len);
        }
        closedir(dir);
    }
    ~Segment() {
        if (base != nullptr) munmap(base, size);
    }
    // Ring 0 (client to server) data starts at 0x1000.
    std::uint8_t* ring0() const { return base + 0x1000; }
};

}  // namespace

TEST(Reachable, TamperedCiphertextIsAuthenticationFailed) {
    auto pair = support::connect_pair();
    pair.client.send(support::pattern(1000));
    Segment segment;
    ASSERT_NE(segment.base, nullptr) << "no memfd segment found";
    ASSERT_EQ(segment.ring0()[0], 1) << "the first record is a DATA frame";
    segment.ring0()[16 + 100] ^= 0x01;  // one bit of the ciphertext
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::AuthenticationFailed, pair.server.recv(5s));
    EXPECT_TRUE(e.ends_connection());
    // The connection is over for good, on both sides.
    EXPECT_SHMSOCK_ERROR(ErrorCode::AuthenticationFailed, pair.server.recv(5s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerGone, pair.client.recv(5s));
}

TEST(Reachable, TamperedHeaderIsProtocolViolation) {
    auto pair = support::connect_pair();
    pair.client.send(support::pattern(100));
    Segment segment;
    ASSERT_NE(segment.base, nullptr) << "no memfd segment found";
    segment.ring0()[0] = 9;  // no such frame kind
    EXPECT_SHMSOCK_ERROR(ErrorCode::ProtocolViolation, pair.server.recv(5s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::ProtocolViolation, pair.server.try_recv());
}

TEST(Reachable, ServerOutOfFileDescriptorsIsResourceExhausted) {
    // The server (another process) has no descriptor left for the segment's
    // memfd: it refuses the client, which gets ResourceExhausted. (Starving
    // this process instead would also starve the sanitizers, which need
    // descriptors to check the C++ exception on its way out.)
    auto kp = Keypair::generate();
    auto key_file = support::scratch_dir() + "/starved-" + std::to_string(getpid()) + ".key";
    kp.save(key_file);
    auto name = support::unique_name("starved");
    support::Child child({"starved-server", name, key_file});
    ASSERT_EQ(child.read_line(), "ready");
    Options opts;
    opts.server_key(kp.public_key());
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::ResourceExhausted, Stream::connect(name, opts));
    EXPECT_NE(std::string(e.what()).find("could not set up"), std::string::npos) << e.what();
}

TEST(Reachable, UnsafeRuntimeDirectoryIsPermissionDenied) {
    std::string open_dir = support::scratch_dir() + "/world-readable";
    ASSERT_EQ(mkdir(open_dir.c_str(), 0755), 0);
    ASSERT_EQ(chmod(open_dir.c_str(), 0755), 0);
    std::string saved = std::getenv("SHMSOCK_RUNTIME_DIR");
    setenv("SHMSOCK_RUNTIME_DIR", open_dir.c_str(), 1);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::PermissionDenied,
                                  Listener::bind(support::unique_name("unsafe"), support::server_options(Keypair::generate())));
    setenv("SHMSOCK_RUNTIME_DIR", saved.c_str(), 1);
    EXPECT_NE(std::string(e.what()).find("0700"), std::string::npos) << e.what();
}

TEST(Reachable, UidNotAllowedIsRejected) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("uid");
    Options server_opts = support::server_options(kp);
    server_opts.allow_uids({getuid() + 1});
    auto listener = Listener::bind(name, server_opts);
    std::thread acceptor([&] {
        try {
            (void)listener.accept(10s);
        } catch (const shmsock::Error&) {
        }
    });
    Options opts;
    opts.server_key(kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::HandshakeRejected, Stream::connect(name, opts));
    listener.close();  // wakes the acceptor at once
    acceptor.join();
    auto why = listener.last_rejection();
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->code(), ErrorCode::PermissionDenied);
}

TEST(Reachable, MessageTooLargeForThePeer) {
    auto pair = support::connect_pair([](Options& o) { o.max_message_size(1024); });
    std::vector<std::uint8_t> big(1025);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::MessageTooLarge, pair.client.send(big));
    EXPECT_FALSE(e.ends_connection());
    EXPECT_SHMSOCK_ERROR(ErrorCode::MessageTooLarge, pair.client.try_send(big));
    big.resize(1024);
    pair.client.send(big);
    EXPECT_EQ(pair.server.recv(5s).size(), 1024u);
}
