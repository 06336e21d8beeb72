// .npy reader/writer. Layout: "\x93NUMPY", major, minor, header length (uint16 LE for 1.0, uint32 LE for 2.0/3.0),
// then an ASCII Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
// and a final '\n', then the raw C-order data.
#include "onevision/npy.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace onevision {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

size_t dtype_size(const std::string& dtype) {
  if (dtype == "f4" || dtype == "i4") return 4;
  if (dtype == "f2") return 2;
  if (dtype == "i8") return 8;
  return 0;
}

bool little_endian_host() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// The value text after 'key': in the header dict (up to the next top-level ',' or '}' / matching ')').
std::string field(const std::string& header, const std::string& key, const std::string& path) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) fail(path, "npy header has no '" + key + "': " + header);
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) fail(path, "malformed npy header: " + header);
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) fail(path, "malformed npy header: " + header);
  size_t end = header[start] == '(' ? header.find(')', start) + 1 : header.find_first_of(",}", start);
  if (end == std::string::npos || end == 0) fail(path, "malformed npy header: " + header);
  return header.substr(start, end - start);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t NpyArray::itemsize() const { return dtype_size(dtype); }

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail(path, "not a .npy file (bad magic)");
  int major = static_cast<unsigned char>(magic[6]);
  size_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) fail(path, "truncated .npy header");
    header_len = b[0] | (size_t{b[1]} << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) fail(path, "truncated .npy header");
    header_len = b[0] | (size_t{b[1]} << 8) | (size_t{b[2]} << 16) | (size_t{b[3]} << 24);
  } else {
    fail(path, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) fail(path, "implausible .npy header length " + std::to_string(header_len));
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) fail(path, "truncated .npy header");

  NpyArray arr;
  std::string descr = field(header, "descr", path);
  if (descr.size() < 4 || (descr.front() != '\'' && descr.front() != '"')) fail(path, "bad descr " + descr);
  descr = descr.substr(1, descr.size() - 2);  // '<f4' -> <f4
  char order = descr[0];
  std::string type = descr.substr(1);
  if (order == '>' || (order == '=' && !little_endian_host()))
    fail(path, "big-endian data (descr " + descr + ") is not supported; save little-endian arrays");
  if (dtype_size(type) == 0)
    fail(path, "unsupported dtype " + descr +
                   " (supported: <f4 float32, <f2 float16, <i8 int64, <i4 int32; store bfloat16 as float32)");
  if (!little_endian_host()) fail(path, "this reader needs a little-endian host");
  arr.dtype = type;

  std::string fortran = field(header, "fortran_order", path);
  if (fortran.rfind("True", 0) == 0) fail(path, "Fortran-order arrays are not supported; save with C order");

  std::string shape = field(header, "shape", path);  // "(2, 3)", "(5,)", "()"
  size_t pos = 1;
  while (pos < shape.size()) {
    size_t next = shape.find_first_of(",)", pos);
    std::string tok = shape.substr(pos, next - pos);
    size_t a = tok.find_first_not_of(' ');
    if (a != std::string::npos) {
      tok = tok.substr(a, tok.find_last_not_of(' ') - a + 1);
      if (tok.back() == 'L') tok.pop_back();
      try {
        arr.shape.push_back(std::stoll(tok));
      } catch (const std::exception&) {
        fail(path, "bad shape " + shape);
      }
      if (arr.shape.back() < 0) fail(path, "negative dimension in shape " + shape);
    }
    if (next == std::string::npos || shape[next] == ')') break;
    pos = next + 1;
  }

  const size_t nbytes = static_cast<size_t>(arr.numel()) * arr.itemsize();
  arr.data.resize(nbytes);
  if (nbytes && !in.read(arr.data.data(), static_cast<std::streamsize>(nbytes)))
    fail(path, "truncated data: expected " + std::to_string(nbytes) + " bytes for shape " + shape + " " + descr +
                   ", got " + std::to_string(in.gcount()));
  in.peek();
  if (!in.eof()) fail(path, "trailing bytes after the array data (shape " + shape + " " + descr + ")");
  return arr;
}

void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape, const void* data,
               size_t nbytes) {
  if (dtype_size(dtype) == 0) fail(path, "cannot write dtype " + dtype);
  int64_t n = 1;
  std::string dims;  // Python tuple body: "2, 3", "5," for one dimension, "" for a 0-d array
  for (size_t i = 0; i < shape.size(); ++i) {
    n *= shape[i];
    dims += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() == 1) dims += ",";
  if (static_cast<size_t>(n) * dtype_size(dtype) != nbytes) fail(path, "write_npy: byte count does not match shape");
  std::string header = "{'descr': '<" + dtype + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot open for writing");
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char preamble[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.write(preamble, 8);
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
  if (!out) fail(path, "write failed");
}

}  // namespace onevision
