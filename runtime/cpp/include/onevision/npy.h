// .npy files (NumPy format 1.0/2.0/3.0), the tensor files of onevision_run.
//
// Supported: little-endian ('<' or '|'; '=' on little-endian hosts), C order (fortran_order False), dtypes
//   '<f4' float32, '<f2' float16, '<i8' int64, '<i4' int32.
// Anything else (big-endian, Fortran order, float64, object arrays, ...) is refused with a clear message.
// bfloat16: numpy has no bfloat16 dtype, so bf16 tensors travel as float32 .npy files: a bf16 artifact reads
// float32 pixel values and rounds them to bfloat16 (round to nearest even), and its bf16 output is written as
// float32 (exact: every bfloat16 value is a float32 value). The Python runtime follows the same convention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace onevision {

struct NpyArray {
  std::string dtype;           // "f4", "f2", "i8" or "i4" (always little-endian in memory)
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::vector<char> data;      // C order, size == numel() * itemsize()

  int64_t numel() const;
  size_t itemsize() const;
};

// Read a .npy file; throws std::runtime_error naming the file and the problem (truncated, bad header, dtype, ...).
NpyArray read_npy(const std::string& path);

// Write a version 1.0 .npy file (header padded to 64 bytes); dtype is "f4", "f2", "i8" or "i4".
void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape, const void* data,
               size_t nbytes);

}  // namespace onevision
