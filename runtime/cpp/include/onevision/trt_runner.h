// TensorRT engine runner (TensorRT 10 C++ API, also valid on 11): load a `.engine` written by
// `python -m export trt` and run it on one CUDA device. Built only with ONEVISION_WITH_TENSORRT (cmake/tensorrt.cmake).
//
//   onevision::TrtEngine engine("artifacts/trt-bf16-image-448.engine", /*device=*/0);
//   Shape out = engine.run(d_pixels, {1, 3, 1, 448, 448}, d_positions, {1, 1024, 3}, alloc, stream);  // device ptrs
//   Shape out = engine.run_host(pixels, {...}, positions, {...}, bytes);        // host buffers, synchronous
//
// The optimisation profile is picked per call: the first whose [min, max] (read from the engine) contains both input
// shapes. Each profile has its own execution context behind its own mutex (TensorRT requires contexts in concurrent
// use to have distinct profiles), so run() is thread-safe. `kind: trt` in onevision::Runner wraps this class
// (make_tensorrt_backend in src/trt_runner.cpp).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace onevision {

using Shape = std::vector<int64_t>;

class TrtEngine {
 public:
  // Deserialize `path` on CUDA device `device`. Throws std::runtime_error (TensorRT logs the details to stderr).
  explicit TrtEngine(const std::string& path, int device = 0);
  ~TrtEngine();
  TrtEngine(const TrtEngine&) = delete;
  TrtEngine& operator=(const TrtEngine&) = delete;

  // The first optimisation profile containing both input shapes, or -1 if none does.
  int select_profile(const Shape& pixel_shape, const Shape& position_shape) const;

  // Device pointers in (256-byte aligned, the engine's input types); `alloc(shape)` returns device memory for the
  // output (output_type() elements). Enqueued on `stream`; returns the output shape. Throws std::invalid_argument
  // for shapes no profile covers, std::runtime_error when TensorRT refuses.
  Shape run(const void* pixels, const Shape& pixel_shape, const void* positions, const Shape& position_shape,
            const std::function<void*(const Shape&)>& alloc, cudaStream_t stream);

  // Host buffers in and out: cudaMalloc + cudaMemcpyAsync around run() on a private stream, synchronous. `out`
  // receives the output's bytes (row-major, output_type()).
  Shape run_host(const void* pixels, const Shape& pixel_shape, const int64_t* positions, const Shape& position_shape,
                 std::vector<uint8_t>& out);

  nvinfer1::DataType tensor_type(const std::string& name) const;
  const std::string& output_name() const { return output_; }
  int device() const { return device_; }
  int profiles() const { return static_cast<int>(ranges_.size()); }

 private:
  class Logger : public nvinfer1::ILogger {
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;
  };
  struct Slot {
    std::mutex mutex;
    std::unique_ptr<nvinfer1::IExecutionContext> context;
  };
  struct Range {
    Shape min, max;
  };

  Logger logger_;  // declared first: outlives the runtime and engine
  int device_;
  std::string output_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::vector<std::vector<Range>> ranges_;  // [profile][input: pixel_values, patch_positions]
  std::vector<std::unique_ptr<Slot>> slots_;  // destroyed before engine_ (contexts first)
};

// Bytes per element of a TensorRT I/O type (throws for sub-byte types).
size_t element_size(nvinfer1::DataType type);

}  // namespace onevision
