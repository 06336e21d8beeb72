// TensorRT engine runner (see include/onevision/trt_runner.h) and the `kind: trt` backend of onevision::Runner.
#include "onevision/trt_runner.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "onevision/runtime.h"

namespace onevision {
namespace {

const char* const kPixels = "pixel_values";
const char* const kPositions = "patch_positions";

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

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool inside(const Shape& shape, const Shape& lo, const Shape& hi) {
  if (shape.size() != lo.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < lo[i] || shape[i] > hi[i]) return false;
  return true;
}

// Device memory freed on scope exit (run_host).
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { check_cuda(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

size_t element_size(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kHALF: case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kINT8: case nvinfer1::DataType::kUINT8: case nvinfer1::DataType::kBOOL: return 1;
    default: throw std::invalid_argument("unsupported TensorRT I/O type " + std::to_string(static_cast<int>(type)));
  }
}

void TrtEngine::Logger::log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept {
  if (severity <= Severity::kWARNING) std::cerr << "[TensorRT] " << msg << '\n';
}

TrtEngine::TrtEngine(const std::string& path, int device) : device_(device) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(path + ": cannot open the engine file");
  const std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
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

nvinfer1::DataType TrtEngine::tensor_type(const std::string& name) const {
  return engine_->getTensorDataType(name.c_str());
}

int TrtEngine::select_profile(const Shape& pixel_shape, const Shape& position_shape) const {
  for (size_t k = 0; k < ranges_.size(); ++k)
    if (inside(pixel_shape, ranges_[k][0].min, ranges_[k][0].max) &&
        inside(position_shape, ranges_[k][1].min, ranges_[k][1].max))
      return static_cast<int>(k);
  return -1;
}

Shape TrtEngine::run(const void* pixels, const Shape& pixel_shape, const void* positions, const Shape& position_shape,
                     const std::function<void*(const Shape&)>& alloc, cudaStream_t stream) {
  const int k = select_profile(pixel_shape, position_shape);
  if (k < 0)
    throw std::invalid_argument("no optimisation profile of the engine covers pixel_values " + str(pixel_shape) +
                                ", patch_positions " + str(position_shape));
  Slot& slot = *slots_[k];
  std::lock_guard<std::mutex> lock(slot.mutex);
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  if (!slot.context) {
    slot.context.reset(engine_->createExecutionContext());
    if (!slot.context) throw std::runtime_error("TensorRT: createExecutionContext failed (out of GPU memory?)");
    if (k != 0 && !slot.context->setOptimizationProfileAsync(k, stream))
      throw std::runtime_error("TensorRT refused optimisation profile " + std::to_string(k));
  }
  nvinfer1::IExecutionContext& context = *slot.context;
  if (!context.setInputShape(kPixels, to_dims(pixel_shape)) ||
      !context.setInputShape(kPositions, to_dims(position_shape)))
    throw std::invalid_argument("TensorRT refused input shapes " + str(pixel_shape) + ", " + str(position_shape));
  if (!context.setInputTensorAddress(kPixels, pixels) || !context.setInputTensorAddress(kPositions, positions))
    throw std::runtime_error("TensorRT refused an input address (not 256-byte aligned?)");
  const Shape out_shape = to_shape(context.getTensorShape(output_.c_str()));
  for (int64_t d : out_shape)
    if (d < 0) throw std::runtime_error("TensorRT could not infer the output shape " + str(out_shape));
  if (!context.setTensorAddress(output_.c_str(), alloc(out_shape)))
    throw std::runtime_error("TensorRT refused the output address");
  if (!context.enqueueV3(stream)) throw std::runtime_error("TensorRT enqueueV3 failed (see the [TensorRT] lines)");
  return out_shape;
}

Shape TrtEngine::run_host(const void* pixels, const Shape& pixel_shape, const int64_t* positions,
                          const Shape& position_shape, std::vector<uint8_t>& out) {
  if (tensor_type(kPositions) != nvinfer1::DataType::kINT64)
    throw std::runtime_error("run_host expects the engine's int64 patch_positions input");
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  std::unique_ptr<CUstream_st, decltype(&cudaStreamDestroy)> stream_guard(stream, &cudaStreamDestroy);
  const size_t pixel_bytes = numel(pixel_shape) * element_size(tensor_type(kPixels));
  const size_t position_bytes = numel(position_shape) * sizeof(int64_t);
  DeviceBuffer d_pixels(pixel_bytes), d_positions(position_bytes);
  std::unique_ptr<DeviceBuffer> d_out;
  check_cuda(cudaMemcpyAsync(d_pixels.ptr, pixels, pixel_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
  check_cuda(cudaMemcpyAsync(d_positions.ptr, positions, position_bytes, cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  const size_t out_elem = element_size(tensor_type(output_));
  const Shape out_shape = run(
      d_pixels.ptr, pixel_shape, d_positions.ptr, position_shape,
      [&](const Shape& shape) {
        d_out = std::make_unique<DeviceBuffer>(numel(shape) * out_elem);
        return d_out->ptr;
      },
      stream);
  out.resize(numel(out_shape) * out_elem);
  check_cuda(cudaMemcpyAsync(out.data(), d_out->ptr, out.size(), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return out_shape;
}

namespace {

c10::ScalarType torch_type(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return at::kFloat;
    case nvinfer1::DataType::kHALF: return at::kHalf;
    case nvinfer1::DataType::kBF16: return at::kBFloat16;
    case nvinfer1::DataType::kINT64: return at::kLong;
    case nvinfer1::DataType::kINT32: return at::kInt;
    default: throw ArtifactError("engine output type " + std::to_string(static_cast<int>(type)) + " has no torch dtype");
  }
}

// kind "trt" for onevision::Runner: validated CUDA tensors in, bound by pointer (no copies).
class TensorRTBackend : public Backend {
 public:
  TensorRTBackend(const std::string& path, const Manifest& manifest, const c10::Device& device) : device_(device) {
    if (!device.is_cuda()) throw ArtifactError(path + ": a TensorRT engine runs on a CUDA device, not " + device.str());
    try {
      engine_ = std::make_unique<TrtEngine>(path, device.index());
    } catch (const std::exception& e) {
      throw ArtifactError(e.what());
    }
    if (engine_->tensor_type(kPixels) != engine_type_of(manifest.precision))
      throw ArtifactError(path + ": the engine's pixel_values type does not match precision " + manifest.precision);
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    provider_ = "tensorrt-" + std::to_string(getInferLibVersion());  // e.g. 101300 for 10.13.0
  }
  ~TensorRTBackend() override { cudaStreamDestroy(stream_); }

  at::Tensor run(const at::Tensor& pixel_values, const at::Tensor& patch_positions) override {
    // Our stream starts after the caller's (the inputs were written there) and is synchronised before returning.
    const cudaStream_t caller = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    cudaEvent_t ready = nullptr;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    cudaEventRecord(ready, caller);
    cudaStreamWaitEvent(stream_, ready, 0);
    cudaEventDestroy(ready);
    const at::Tensor positions = patch_positions.to(torch_type(engine_->tensor_type(kPositions))).contiguous();
    at::Tensor out;
    const auto options = pixel_values.options().dtype(torch_type(engine_->tensor_type(engine_->output_name())));
    try {
      engine_->run(
          pixel_values.data_ptr(), pixel_values.sizes().vec(), positions.data_ptr(), positions.sizes().vec(),
          [&](const Shape& shape) {
            out = at::empty(shape, options);
            return out.data_ptr();
          },
          stream_);
    } catch (const std::invalid_argument& e) {
      throw InputError(e.what());
    }
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return out;
  }

  std::string provider() const override { return provider_; }

 private:
  static nvinfer1::DataType engine_type_of(const std::string& precision) {
    if (precision == "bf16") return nvinfer1::DataType::kBF16;
    if (precision == "fp16") return nvinfer1::DataType::kHALF;
    return nvinfer1::DataType::kFLOAT;
  }

  c10::Device device_;
  std::unique_ptr<TrtEngine> engine_;
  cudaStream_t stream_ = nullptr;
  std::string provider_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const Manifest& manifest,
                                               const c10::Device& device) {
  return std::make_unique<TensorRTBackend>(path, manifest, device);
}

}  // namespace onevision
