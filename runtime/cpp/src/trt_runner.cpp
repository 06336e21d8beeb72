// TensorRT engine runner (see include/onevision/trt_runner.h): TensorRT + the CUDA runtime API, no libtorch.
#include "onevision/trt_runner.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

namespace onevision {
namespace {

const char* const kPixels = "pixel_values";
const char* const kPositions = "patch_positions";
constexpr uintptr_t kAlignment = 256;  // what setTensorAddress requires of every I/O pointer

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

nvinfer1::Dims to_dims(const Shape& shape) {
  nvinfer1::Dims dims{};
  if (shape.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS)) throw std::invalid_argument("rank too large");
  dims.nbDims = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims.d[i] = shape[i];
  return dims;
}

Shape to_shape(const nvinfer1::Dims& dims) { return Shape(dims.d, dims.d + std::max(dims.nbDims, 0)); }

bool inside(const Shape& shape, const Shape& lo, const Shape& hi) {
  if (shape.size() != lo.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < lo[i] || shape[i] > hi[i]) return false;
  return true;
}

ElementType from_trt(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return ElementType::kFloat32;
    case nvinfer1::DataType::kHALF: return ElementType::kFloat16;
    case nvinfer1::DataType::kBF16: return ElementType::kBFloat16;
    case nvinfer1::DataType::kINT64: return ElementType::kInt64;
    case nvinfer1::DataType::kINT32: return ElementType::kInt32;
    case nvinfer1::DataType::kUINT8: return ElementType::kUInt8;
    case nvinfer1::DataType::kBOOL: return ElementType::kBool;
    default: throw std::invalid_argument("unsupported TensorRT I/O type " + std::to_string(static_cast<int>(type)));
  }
}

void check_type(const TensorView& view, const char* name, ElementType expected) {
  if (view.type != expected)
    throw std::invalid_argument(std::string(name) + ": the engine takes " + element_name(expected) + ", got " +
                                element_name(view.type));
}

bool aligned(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % kAlignment == 0; }

// Device memory freed on scope exit (run_host, staged inputs). cudaMalloc returns 256-byte aligned memory.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { check_cuda(cudaMalloc(&ptr, std::max<size_t>(bytes, 1)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Makes `device` current and restores the caller's device on scope exit (the runner never leaves it changed).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// An input as TensorRT may read it: the caller's pointer when it is 256-byte aligned, else a copy into fresh
// (aligned) device memory, enqueued on `producer` after whatever wrote the input (as the Python runner copies).
TensorView staged(const TensorView& view, std::unique_ptr<DeviceBuffer>& holder, cudaStream_t producer) {
  if (aligned(view.data)) return view;
  holder = std::make_unique<DeviceBuffer>(view.nbytes());
  check_cuda(cudaMemcpyAsync(holder->ptr, view.data, view.nbytes(), cudaMemcpyDeviceToDevice, producer),
             "cudaMemcpyAsync");
  return {holder->ptr, view.shape, view.type};
}

}  // namespace

void TrtEngine::Logger::log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept {
  if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << '\n';
}

TrtEngine::Slot::~Slot() {
  context.reset();  // before the stream its work ran on
  if (done) cudaEventDestroy(done);
  if (ready) cudaEventDestroy(ready);
  if (stream) cudaStreamDestroy(stream);
}

TrtEngine::TrtEngine(const std::string& path, int device) : device_(device) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(path + ": cannot open the engine file");
  const std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const DeviceGuard guard(device_);
  runtime_.reset(nvinfer1::createInferRuntime(logger_));
  if (!runtime_) throw std::runtime_error("TensorRT: createInferRuntime failed");
  engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
  if (!engine_)
    throw std::runtime_error(path + ": TensorRT cannot deserialize this engine (built with another TensorRT version "
                                    "or for another GPU? see the [TensorRT] lines above)");
  for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
    const char* name = engine_->getIOTensorName(i);
    if (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kOUTPUT) output_ = name;
  }
  for (const char* input : {kPixels, kPositions})
    if (engine_->getTensorIOMode(input) != nvinfer1::TensorIOMode::kINPUT)
      throw std::runtime_error(path + ": the engine has no input '" + input + "'");
  if (output_.empty()) throw std::runtime_error(path + ": the engine has no output");
  for (int32_t k = 0; k < engine_->getNbOptimizationProfiles(); ++k) {
    std::vector<Range> per_input;
    for (const char* input : {kPixels, kPositions})
      per_input.push_back({to_shape(engine_->getProfileShape(input, k, nvinfer1::OptProfileSelector::kMIN)),
                           to_shape(engine_->getProfileShape(input, k, nvinfer1::OptProfileSelector::kMAX))});
    ranges_.push_back(std::move(per_input));
    slots_.push_back(std::make_unique<Slot>());
  }
}

TrtEngine::~TrtEngine() = default;

ElementType TrtEngine::tensor_type(const std::string& name) const {
  return from_trt(engine_->getTensorDataType(name.c_str()));
}

int TrtEngine::select_profile(const Shape& pixel_shape, const Shape& position_shape) const {
  for (size_t k = 0; k < ranges_.size(); ++k)
    if (inside(pixel_shape, ranges_[k][0].min, ranges_[k][0].max) &&
        inside(position_shape, ranges_[k][1].min, ranges_[k][1].max))
      return static_cast<int>(k);
  return -1;
}

int TrtEngine::profile_for(const TensorView& pixels, const TensorView& positions) const {
  const int k = select_profile(pixels.shape, positions.shape);
  if (k < 0)
    throw std::invalid_argument("no optimisation profile of the engine covers pixel_values " +
                                shape_str(pixels.shape) + ", patch_positions " + shape_str(positions.shape));
  return k;
}

void TrtEngine::open_slot(Slot& slot, int profile) {
  if (slot.context) return;
  check_cuda(cudaStreamCreateWithFlags(&slot.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_cuda(cudaEventCreateWithFlags(&slot.ready, cudaEventDisableTiming), "cudaEventCreate");
  check_cuda(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "cudaEventCreate");
  std::unique_ptr<nvinfer1::IExecutionContext> context(engine_->createExecutionContext());
  if (!context) throw std::runtime_error("TensorRT: createExecutionContext failed (out of GPU memory?)");
  if (profile != 0 && !context->setOptimizationProfileAsync(profile, slot.stream))
    throw std::runtime_error("TensorRT refused optimisation profile " + std::to_string(profile));
  slot.context = std::move(context);
}

TensorView TrtEngine::run(const TensorView& pixels_in, const TensorView& positions_in,
                          const std::function<void*(const Shape&)>& alloc, cudaStream_t producer) {
  check_type(pixels_in, kPixels, tensor_type(kPixels));
  check_type(positions_in, kPositions, tensor_type(kPositions));
  const int k = profile_for(pixels_in, positions_in);
  Slot& slot = *slots_[k];
  // Held until the work enqueued below has finished: the context's memory (and any staged input) is in use until then.
  std::lock_guard<std::mutex> lock(slot.mutex);
  const DeviceGuard guard(device_);
  std::unique_ptr<DeviceBuffer> pixel_copy, position_copy;  // live until the engine has read them (synchronised below)
  const TensorView pixels = staged(pixels_in, pixel_copy, producer);
  const TensorView positions = staged(positions_in, position_copy, producer);
  open_slot(slot, k);
  // The inputs were written on `producer`: the profile's stream starts after that (recorded now, not earlier).
  if (producer != slot.stream) {
    check_cuda(cudaEventRecord(slot.ready, producer), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(slot.stream, slot.ready, 0), "cudaStreamWaitEvent");
  }
  nvinfer1::IExecutionContext& context = *slot.context;
  if (!context.setInputShape(kPixels, to_dims(pixels.shape)) ||
      !context.setInputShape(kPositions, to_dims(positions.shape)))
    throw std::invalid_argument("TensorRT refused input shapes " + shape_str(pixels.shape) + ", " +
                                shape_str(positions.shape));
  if (!context.setInputTensorAddress(kPixels, pixels.data) || !context.setInputTensorAddress(kPositions, positions.data))
    throw std::runtime_error("TensorRT refused an input address");
  TensorView out;
  out.shape = to_shape(context.getTensorShape(output_.c_str()));
  out.type = tensor_type(output_);
  for (int64_t d : out.shape)
    if (d < 0) throw std::runtime_error("TensorRT could not infer the output shape " + shape_str(out.shape));
  out.data = alloc(out.shape);
  if (!context.setTensorAddress(output_.c_str(), out.data))
    throw std::runtime_error("TensorRT refused the output address (not 256-byte aligned?)");
  if (!context.enqueueV3(slot.stream)) throw std::runtime_error("TensorRT enqueueV3 failed (see the [TensorRT] lines)");
  check_cuda(cudaEventRecord(slot.done, slot.stream), "cudaEventRecord");
  check_cuda(cudaEventSynchronize(slot.done), "cudaEventSynchronize");  // then the lock is released
  return out;
}

Shape TrtEngine::run_host(const TensorView& pixels, const TensorView& positions, std::vector<uint8_t>& out) {
  const DeviceGuard guard(device_);
  profile_for(pixels, positions);  // refuse before allocating
  DeviceBuffer d_pixels(pixels.nbytes()), d_positions(positions.nbytes());
  // Synchronous copies: the inputs are on the device before run() orders its stream after the legacy stream.
  check_cuda(cudaMemcpy(d_pixels.ptr, pixels.data, pixels.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy");
  check_cuda(cudaMemcpy(d_positions.ptr, positions.data, positions.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy");
  std::unique_ptr<DeviceBuffer> d_out;
  const TensorView result = run(
      {d_pixels.ptr, pixels.shape, pixels.type}, {d_positions.ptr, positions.shape, positions.type},
      [&](const Shape& shape) {
        d_out = std::make_unique<DeviceBuffer>(static_cast<size_t>(numel(shape)) * element_size(output_type()));
        return d_out->ptr;
      },
      cudaStreamLegacy);
  out.resize(result.nbytes());
  check_cuda(cudaMemcpy(out.data(), result.data, out.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return result.shape;
}

}  // namespace onevision
