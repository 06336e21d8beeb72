// Backend "aoti": an AOTInductor package loaded by libtorch's torch::inductor::AOTIModelPackageLoader.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include "onevision/runtime.h"

namespace onevision {
namespace {

class AotiBackend : public Backend {
 public:
  AotiBackend(const std::string& path, const Manifest& manifest, const c10::Device& device) {
    const c10::Device built_for(manifest.device);
    if (built_for.type() != device.type())
      throw ArtifactError(path + ": this AOTInductor package was compiled for " + c10::DeviceTypeName(built_for.type(), true) +
                          "; it cannot run on " + device.str());
    const c10::DeviceIndex index = device.is_cuda() ? device.index() : -1;
    try {
      // model name "model", run_single_threaded=false (runs are synchronised), one runner.
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1, index);
    } catch (const std::exception& e) {
      throw ArtifactError(path + ": AOTIModelPackageLoader failed: " + e.what());
    }
    provider_ = std::string("aoti-") + c10::DeviceTypeName(device.type(), true);
  }

  at::Tensor run(const at::Tensor& pixel_values, const at::Tensor& patch_positions) override {
    std::vector<at::Tensor> outputs = loader_->run({pixel_values, patch_positions});
    if (outputs.empty()) throw ArtifactError("AOTInductor package returned no output");
    return outputs[0];
  }

  // A packed package (its manifest's inputs pixel_patches, patch_positions, cu_seqlens) takes the three as they are.
  at::Tensor run_packed(const at::Tensor& pixel_patches, const at::Tensor& patch_positions,
                        const at::Tensor& cu_seqlens) override {
    std::vector<at::Tensor> outputs = loader_->run({pixel_patches, patch_positions, cu_seqlens});
    if (outputs.empty()) throw ArtifactError("AOTInductor package returned no output");
    return outputs[0];
  }

  std::string provider() const override { return provider_; }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  std::string provider_;
};

}  // namespace

std::unique_ptr<Backend> make_aoti_backend(const std::string& path, const Manifest& manifest,
                                           const c10::Device& device) {
  return std::make_unique<AotiBackend>(path, manifest, device);
}

}  // namespace onevision
