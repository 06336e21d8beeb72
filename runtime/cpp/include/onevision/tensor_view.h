// The bundle's own small tensor view: a data pointer (host or device, not owned), a shape and an element type.
// What the TensorRT runner (trt_runner.h) takes and returns, so that it needs TensorRT and the CUDA runtime only,
// not libtorch. Header-only, standard library only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace onevision {

using Shape = std::vector<int64_t>;

enum class ElementType { kFloat32, kFloat16, kBFloat16, kInt64, kInt32, kInt8, kUInt8, kBool };

inline size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: case ElementType::kInt32: return 4;
    case ElementType::kFloat16: case ElementType::kBFloat16: return 2;
    case ElementType::kInt64: return 8;
    case ElementType::kInt8: case ElementType::kUInt8: case ElementType::kBool: return 1;
  }
  throw std::invalid_argument("unknown element type");
}

inline const char* element_name(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return "float32";
    case ElementType::kFloat16: return "float16";
    case ElementType::kBFloat16: return "bfloat16";
    case ElementType::kInt64: return "int64";
    case ElementType::kInt32: return "int32";
    case ElementType::kInt8: return "int8";
    case ElementType::kUInt8: return "uint8";
    case ElementType::kBool: return "bool";
  }
  return "unknown";
}

inline int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

inline std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Contiguous, row-major; `data` is not owned.
struct TensorView {
  void* data = nullptr;
  Shape shape;
  ElementType type = ElementType::kFloat32;

  int64_t numel() const { return onevision::numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(type); }
};

}  // namespace onevision
