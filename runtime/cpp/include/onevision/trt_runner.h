// TensorRT engine runner (TensorRT 10 and 11 C++ API; the same calls as TensorRT-RTX's): load a `.engine` written
// by `python -m export trt` (or `trt-rtx`) and run it on one CUDA device. Needs TensorRT's NvInferRuntime.h, the
// CUDA runtime API and the bundle's tensor view (tensor_view.h): no libtorch. CI compiles it against the public
// TensorRT 10.13 and 11.1 headers (tests/test_trt_cpp_compile.py); onevision::Runner's `kind: trt` backend wraps it
// (src/trt_backend.cpp, built with ONEVISION_WITH_TENSORRT and a CUDA libtorch).
//
//   onevision::TrtEngine engine("artifacts/trt-bf16-image-448.engine", /*device=*/0);
//   TensorView out = engine.run(pixels, positions, alloc, producer);  // device views; returns when out is written
//   Shape shape = engine.run_host(pixels, positions, bytes);           // host views in, host bytes out
//
// Thread-safety model (the lock is held to completion): the engine has one execution context per optimisation
// profile, each with its own mutex, CUDA stream and events. A call picks the first profile whose [min, max] (read
// from the engine) contains both input shapes, takes that profile's mutex, orders the profile's stream after the
// caller's `producer` stream (where the inputs were written), binds, enqueues, and releases the mutex only after the
// work it enqueued has finished (cudaEventSynchronize). So an execution context's memory, which TensorRT uses from
// enqueueV3 until the stream's work completes, is never shared by two calls in flight, whatever streams the callers
// use; calls on different profiles run concurrently (TensorRT requires contexts in concurrent use to have distinct
// profiles, which this gives by construction). No call creates a stream: each profile's stream is made once, with its
// context. `run` and `run_host` are safe to call from any number of threads.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "onevision/tensor_view.h"

namespace onevision {

class TrtEngine {
 public:
  // Deserialize `path` on CUDA device `device`. Throws std::runtime_error (TensorRT logs the details to stderr).
  explicit TrtEngine(const std::string& path, int device = 0);
  ~TrtEngine();
  TrtEngine(const TrtEngine&) = delete;
  TrtEngine& operator=(const TrtEngine&) = delete;

  // The first optimisation profile containing both input shapes, or -1 if none does.
  int select_profile(const Shape& pixel_shape, const Shape& position_shape) const;

  // Device views in (the engine's input types, written on stream `producer`; a view that is not 256-byte aligned is
  // copied into aligned memory first); `alloc(shape)` returns device memory for the output (256-byte aligned). The
  // caller's current CUDA device is restored on return. Returns the output view once the engine has written it. Throws
  // std::invalid_argument for inputs no profile covers or of the wrong type, std::runtime_error when TensorRT or
  // CUDA refuses.
  TensorView run(const TensorView& pixels, const TensorView& positions,
                 const std::function<void*(const Shape&)>& alloc, cudaStream_t producer);

  // Host views in, the output's bytes (row-major, output_type()) out; synchronous.
  Shape run_host(const TensorView& pixels, const TensorView& positions, std::vector<uint8_t>& out);

  ElementType tensor_type(const std::string& name) const;
  ElementType output_type() const { return tensor_type(output_); }
  const std::string& output_name() const { return output_; }
  int device() const { return device_; }
  int profiles() const { return static_cast<int>(ranges_.size()); }

 private:
  class Logger : public nvinfer1::ILogger {
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;
  };
  // One optimisation profile: its context, the stream its work runs on and the events that order and finish it.
  // Created on first use, under `mutex`.
  struct Slot {
    std::mutex mutex;
    std::unique_ptr<nvinfer1::IExecutionContext> context;
    cudaStream_t stream = nullptr;
    cudaEvent_t ready = nullptr;  // recorded on the producer stream: the inputs are written
    cudaEvent_t done = nullptr;   // recorded on `stream` after enqueueV3: the context is free again
    ~Slot();
  };
  struct Range {
    Shape min, max;
  };

  int profile_for(const TensorView& pixels, const TensorView& positions) const;
  void open_slot(Slot& slot, int profile);  // with slot.mutex held

  Logger logger_;  // declared first: outlives the runtime and engine
  int device_;
  std::string output_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::vector<std::vector<Range>> ranges_;    // [profile][input: pixel_values, patch_positions]
  std::vector<std::unique_ptr<Slot>> slots_;  // destroyed before engine_ (contexts first)
};

}  // namespace onevision
