// onevision_runtime: load an exported OneVision encoder artifact through its manifest and run it from C++.
//
//   onevision::Runner runner("artifacts/aoti-fp32-image-448.pt2");       // manifest + sha256 checked first
//   at::Tensor out = runner(pixel_values, patch_positions);             // (B, L, hidden) on runner.device()
//
// Inputs are checked against the manifest before the backend sees them, with the same rules (and messages) as the
// Python runtime (runtime/validation.py): rank 5 (B, 3, T, H, W) or rank 4 (B, 3, H, W) taken as T = 1; 3
// channels; H, W positive multiples of the patch size p (the manifest's profile.patch, 14 for the published
// checkpoint); patch_positions (B, L, 3) integer (int32 converted losslessly to int64), in [0, 2**24),
// L = T*(H/p)*(W/p); same B; (B, T, H, W) inside the artifact's profile; pixel dtype equal
// to the artifact precision (never cast silently); no NaN/Inf; no empty tensor. Violations throw InputError.
//
// Packed artifacts (contract/packing.py; the manifest's inputs are pixel_patches, patch_positions, cu_seqlens):
//
//   at::Tensor out = runner.run_packed(pixel_patches, patch_positions, cu_seqlens);   // (N, hidden)
//
// checked whole as the Python runtime's Runner.run_packed_call checks one call (runtime/packed.py check_call): the
// manifest's layout (rows (N, C*p*p) and (N, 3), or flat), the precision's dtype, int64 positions, int32/int64
// offsets from 0, strictly increasing, ending at N (or 3N, Triton's position-element counts), N tokens and B items
// inside the profile's budget, finite pixels, non-negative positions.
//
// Backends, one line each in backend_factories() (src/runtime.cpp): "aoti" (AOTInductor package,
// torch::inductor::AOTIModelPackageLoader) and "torchscript" (frozen TorchScript, torch::jit::load) are built in;
// "trt" and "trt-rtx" are added by cmake/tensorrt.cmake (ONEVISION_WITH_TENSORRT), which defines
// make_tensorrt_backend() below.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace onevision {

// A bad input: names the input, the expected and the actual value.
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// An artifact that cannot be used: missing/unreadable manifest, sha256 mismatch, wrong device, load failure.
class ArtifactError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Range {
  int64_t min = 1, opt = 1, max = 1;
  bool contains(int64_t v) const { return min <= v && v <= max; }
};

// contract/profiles.py ShapeProfile: ranges of batch, frames, height and width (pixels); or a PackedProfile
// (`packed`): a call's tokens and items, each item's frames, height and width.
struct Profile {
  std::string name;
  Range batch, frames, height, width;
  bool packed = false;
  Range tokens, items;  // packed: N and B of one call
  int64_t patch = 14;  // read from the manifest (profile.patch); 14 where a format-1 manifest has none
  // "<axis> <value> outside profile '<name>' range [min, max]" for each violated axis (empty if inside).
  std::vector<std::string> violations(int64_t b, int64_t t, int64_t h, int64_t w) const;
};

// One file an artifact consists of (manifest `files`): a plain name beside the manifest, its sha256 and size.
struct ManifestFile {
  std::string path, sha256;
  int64_t size = -1;  // -1: not recorded (format 1 manifests)
};

// The fields of `<artifact>.json` the runtime uses (contract/manifest.py).
struct Manifest {
  std::string kind, path, sha256, precision, device;
  Profile profile;
  int64_t hidden_size = -1;  // from outputs[0].shape[-1], -1 if symbolic
  std::vector<ManifestFile> files;  // the artifact first, then its side files
  std::vector<std::string> input_names;  // `inputs`' names, in order
  bool packed = false;  // inputs pixel_patches, patch_positions, cu_seqlens (and a packed profile)
  bool packed_flat = false;  // packed inputs flat (N*C*p*p,) and (3N,) (ONNX graphs), else rows

  // Read `<artifact>.json` beside the artifact; with verify, check every file it lists (size, sha256).
  static Manifest read(const std::string& artifact, bool verify = true);
};

// fp32 -> kFloat, bf16 -> kBFloat16, fp16 -> kHalf (ArtifactError otherwise).
c10::ScalarType precision_dtype(const std::string& precision);

// Validate and normalise inputs for an artifact (rank 4 -> 5, positions -> int64, contiguous). Throws InputError.
void check_inputs(at::Tensor& pixel_values, at::Tensor& patch_positions, const Profile& profile, c10::ScalarType dtype);

// Validate one packed call for a packed artifact (runtime/packed.py check_call; cu_seqlens -> int32). Throws
// InputError.
void check_packed(const at::Tensor& pixel_patches, const at::Tensor& patch_positions, at::Tensor& cu_seqlens,
                  const Manifest& manifest, c10::ScalarType dtype);

// What a backend implements: validated, contiguous inputs on the runner's device -> last_hidden_state there.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual at::Tensor run(const at::Tensor& pixel_values, const at::Tensor& patch_positions) = 0;
  // A packed artifact's call (validated, contiguous, on the runner's device) -> (N, hidden). The default refuses:
  // a backend that runs packed artifacts overrides it.
  virtual at::Tensor run_packed(const at::Tensor& pixel_patches, const at::Tensor& patch_positions,
                                const at::Tensor& cu_seqlens);
  virtual std::string provider() const = 0;
};

std::unique_ptr<Backend> make_aoti_backend(const std::string& path, const Manifest& manifest, const c10::Device& device);
// src/torchscript_backend.cpp: a frozen TorchScript module through torch::jit::load.
std::unique_ptr<Backend> make_torchscript_backend(const std::string& path, const Manifest& manifest,
                                                  const c10::Device& device);
#ifdef ONEVISION_WITH_TENSORRT
// Defined by the TensorRT sources that cmake/tensorrt.cmake adds to the library.
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const Manifest& manifest,
                                               const c10::Device& device);
#endif
using BackendFactory = std::unique_ptr<Backend> (*)(const std::string& path, const Manifest& manifest,
                                                    const c10::Device& device);
// Manifest kind -> factory, for every kind this build runs (src/runtime.cpp).
const std::map<std::string, BackendFactory>& backend_factories();

class Runner {
 public:
  // device: "" = the manifest's device, else "cpu", "cuda", "cuda:N". verify: check the sha256 first.
  explicit Runner(const std::string& artifact, const std::string& device = "", bool verify = true);

  // Checks, converts, moves the inputs to device(), then runs the backend. Safe to call from several threads
  // (the AOTI model container synchronises runs itself).
  at::Tensor operator()(at::Tensor pixel_values, at::Tensor patch_positions) const;

  // A packed artifact (manifest().packed): one packed call, checked (check_packed), moved to device(), run ->
  // (N, hidden). Safe to call from several threads like operator().
  at::Tensor run_packed(at::Tensor pixel_patches, at::Tensor patch_positions, at::Tensor cu_seqlens) const;
  bool packed() const { return manifest_.packed; }

  const Manifest& manifest() const { return manifest_; }
  const c10::Device& device() const { return device_; }
  c10::ScalarType dtype() const { return dtype_; }
  std::string provider() const { return backend_->provider(); }

 private:
  Manifest manifest_;
  c10::Device device_;
  c10::ScalarType dtype_;
  std::unique_ptr<Backend> backend_;
};

}  // namespace onevision
