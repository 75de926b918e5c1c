// main of every C++ test binary: either a child mode (--child MODE ...) or the
// tests, with SHMSOCK_RUNTIME_DIR set to a fresh private directory.
#include <gtest/gtest.h>

#include <cstring>

#include "support.hpp"

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--child") == 0) {
        return support::run_child(argc - 2, argv + 2);
    }
    support::init_dirs();
    ::testing::InitGoogleTest(&argc, argv);
    int result = RUN_ALL_TESTS();
    support::remove_dirs();
    return result;
}
