// Backend "torchscript": a frozen, traced TorchScript module (export/torchscript.py) loaded with torch::jit::load.
//
// Device rule (the Python runner's, runtime/backends/torchscript.py): a frozen module names no device in its graph,
// so it loads onto any device (torch::jit::load places its constants there). Runs under at::NoGradGuard like the
// Python runner's torch.no_grad(), so both execute the same graph the same way (outputs bit-identical, tested).
#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "onevision/runtime.h"

namespace onevision {
namespace {

class TorchScriptBackend : public Backend {
 public:
  TorchScriptBackend(const std::string& path, const c10::Device& device) {
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      throw ArtifactError(path + ": torch::jit::load failed: " + e.what());
    }
    module_.eval();
  }

  at::Tensor run(const at::Tensor& pixel_values, const at::Tensor& patch_positions) override {
    return forward({pixel_values, patch_positions});
  }

  // A packed module (traced with pixel_patches, patch_positions, cu_seqlens) takes the three as they are.
  at::Tensor run_packed(const at::Tensor& pixel_patches, const at::Tensor& patch_positions,
                        const at::Tensor& cu_seqlens) override {
    return forward({pixel_patches, patch_positions, cu_seqlens});
  }

  std::string provider() const override { return "torchscript"; }

 private:
  at::Tensor forward(std::vector<c10::IValue> inputs) {
    at::NoGradGuard no_grad;
    c10::IValue out = module_.forward(std::move(inputs));
    if (out.isTuple()) out = out.toTupleRef().elements().at(0);
    if (!out.isTensor()) throw ArtifactError("TorchScript module returned no tensor");
    return out.toTensor();
  }

  // torch::jit::Module::forward is const-safe to call from several threads (the graph executor synchronises its
  // own specialisation); the copy held here is not mutated after construction.
  torch::jit::Module module_;
};

}  // namespace

std::unique_ptr<Backend> make_torchscript_backend(const std::string& path, const Manifest& /*manifest*/,
                                                  const c10::Device& device) {
  return std::make_unique<TorchScriptBackend>(path, device);
}

}  // namespace onevision
