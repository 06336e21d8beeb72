// `kind: trt` / `trt-rtx` for onevision::Runner: validated CUDA tensors in, bound by pointer (no copies), run by
// TrtEngine (src/trt_runner.cpp). Built with ONEVISION_WITH_TENSORRT against a CUDA build of libtorch (it reads the
// caller's current CUDA stream); the runner itself needs no libtorch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include "onevision/runtime.h"
#include "onevision/trt_runner.h"

namespace onevision {
namespace {

c10::ScalarType torch_type(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return at::kFloat;
    case ElementType::kFloat16: return at::kHalf;
    case ElementType::kBFloat16: return at::kBFloat16;
    case ElementType::kInt64: return at::kLong;
    case ElementType::kInt32: return at::kInt;
    default: throw ArtifactError(std::string("engine I/O type ") + element_name(type) + " has no torch dtype here");
  }
}

ElementType element_type(c10::ScalarType type) {
  switch (type) {
    case at::kFloat: return ElementType::kFloat32;
    case at::kHalf: return ElementType::kFloat16;
    case at::kBFloat16: return ElementType::kBFloat16;
    case at::kLong: return ElementType::kInt64;
    case at::kInt: return ElementType::kInt32;
    default: throw InputError(std::string("unsupported tensor dtype ") + c10::toString(type));
  }
}

TensorView view(const at::Tensor& t) { return {t.data_ptr(), t.sizes().vec(), element_type(t.scalar_type())}; }

class TensorRTBackend : public Backend {
 public:
  TensorRTBackend(const std::string& path, const Manifest& manifest, const c10::Device& device) {
    if (!device.is_cuda()) throw ArtifactError(path + ": a TensorRT engine runs on a CUDA device, not " + device.str());
    try {
      engine_ = std::make_unique<TrtEngine>(path, device.index());
    } catch (const std::exception& e) {
      throw ArtifactError(e.what());
    }
    if (torch_type(engine_->tensor_type("pixel_values")) != precision_dtype(manifest.precision))
      throw ArtifactError(path + ": the engine's pixel_values type does not match precision " + manifest.precision);
    provider_ = manifest.kind + "-" + std::to_string(getInferLibVersion());  // e.g. trt-101300 for 10.13.0
  }

  at::Tensor run(const at::Tensor& pixel_values, const at::Tensor& patch_positions) override {
    // Converted first, on the caller's current stream; TrtEngine::run records its start event after this.
    const at::Tensor positions =
        patch_positions.to(torch_type(engine_->tensor_type("patch_positions"))).contiguous();
    const cudaStream_t caller = c10::cuda::getCurrentCUDAStream(pixel_values.device().index()).stream();
    const auto options = pixel_values.options().dtype(torch_type(engine_->output_type()));
    at::Tensor out;
    try {
      engine_->run(
          view(pixel_values), view(positions),
          [&](const Shape& shape) {
            out = at::empty(shape, options);
            return out.data_ptr();
          },
          caller);  // returns once the engine has written `out`
    } catch (const std::invalid_argument& e) {
      throw InputError(e.what());
    }
    return out;
  }

  std::string provider() const override { return provider_; }

 private:
  std::unique_ptr<TrtEngine> engine_;
  std::string provider_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const Manifest& manifest,
                                               const c10::Device& device) {
  return std::make_unique<TensorRTBackend>(path, manifest, device);
}

}  // namespace onevision
