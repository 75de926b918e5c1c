// Helpers shared by the C++ examples: key files and the key argument.
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <shmsock.hpp>

namespace example {

/// The keypair in `path`, created (mode 0600) if the file does not exist yet.
inline shmsock::Keypair load_or_create(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) return shmsock::Keypair::load(path);
    auto keypair = shmsock::Keypair::generate();
    keypair.save(path);
    return keypair;
}

/// A public key given as text (`shmsock-pk:...`) or as the path of a key file.
inline shmsock::PublicKey public_key_arg(const std::string& arg) {
    if (arg.rfind("shmsock-pk:", 0) == 0) return shmsock::PublicKey::from_text(arg);
    return shmsock::Keypair::load(arg).public_key();
}

/// Exits with a one-line error, as command-line tools do.
[[noreturn]] inline void die(const std::string& context, const std::string& message) {
    std::fprintf(stderr, "error: %s: %s\n", context.c_str(), message.c_str());
    std::exit(1);
}

}  // namespace example
