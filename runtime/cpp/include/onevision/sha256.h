// SHA-256 of a file or bytes, as lowercase hex (OpenSSL EVP): checks an artifact against its manifest.
#pragma once

#include <string>

namespace onevision {

std::string sha256_file(const std::string& path);
std::string sha256_hex(const std::string& bytes);

}  // namespace onevision
