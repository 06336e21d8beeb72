// SHA-256 (FIPS 180-4) of a file, as lowercase hex: checks an artifact against its manifest before loading.
#pragma once

#include <string>

namespace onevision {

std::string sha256_file(const std::string& path);
std::string sha256_hex(const std::string& bytes);

}  // namespace onevision
