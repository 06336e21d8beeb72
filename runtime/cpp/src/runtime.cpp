#include "onevision/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "onevision/sha256.h"

namespace onevision {
namespace {

using json = nlohmann::json;

constexpr int kFormatVersion = 2;  // contract/manifest.py FORMAT_VERSION; format 1 (no `files` list) is read too
constexpr int64_t kChannels = 3;
constexpr int64_t kMaxPosition = int64_t{1} << 24;  // float32 holds every integer below it exactly

std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << "(";
  for (int64_t i = 0; i < t.dim(); ++i) s << (i ? ", " : "") << t.size(i);
  s << (t.dim() == 1 ? ",)" : ")");
  return s.str();
}

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Double: return "float64";
    case c10::ScalarType::Long: return "int64";
    case c10::ScalarType::Int: return "int32";
    default: return c10::toString(t);
  }
}

std::string basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_file(const std::string& path) { return std::ifstream(path, std::ios::binary).good(); }

const json& member(const json& obj, const std::string& key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) throw ArtifactError(where + ": manifest has no '" + key + "'");
  return *it;
}

std::string str_member(const json& obj, const std::string& key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_string()) throw ArtifactError(where + ": manifest '" + key + "' is not a string");
  return v.get<std::string>();
}

int64_t int_member(const json& obj, const std::string& key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_number_integer()) throw ArtifactError(where + ": manifest '" + key + "' is not an integer");
  return v.get<int64_t>();
}

// A file name the manifest lists: a plain name in the manifest's folder (no path separators, not . or ..).
std::string plain_name(const std::string& name, const std::string& where) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw ArtifactError(where + ": file '" + name + "' must be a plain file name in the manifest's folder");
  return name;
}

std::string dirname_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// Every file of the artifact (contract/manifest.py `files`): the artifact first, then its side files.
std::vector<ManifestFile> manifest_files(const json& doc, int64_t version, const Manifest& m, const std::string& mpath) {
  std::vector<ManifestFile> files;
  if (version == 1) {  // format 1: the artifact, and the ONNX external data recorded in extra (sizes unknown)
    files.push_back({m.path, m.sha256, -1});
    auto extra = doc.find("extra");
    if (extra != doc.end() && extra->is_object()) {
      auto side = extra->find("external_data");
      auto sha = extra->find("external_data_sha256");
      if (side != extra->end() && side->is_string())
        files.push_back({side->get<std::string>(), sha != extra->end() && sha->is_string() ? sha->get<std::string>() : "",
                         -1});
    }
    return files;
  }
  const json& list = member(doc, "files", mpath);
  if (!list.is_array() || list.empty()) throw ArtifactError(mpath + ": manifest 'files' is not a non-empty list");
  for (const json& entry : list) {
    if (!entry.is_object()) throw ArtifactError(mpath + ": manifest 'files' holds a non-object");
    ManifestFile f{plain_name(str_member(entry, "path", mpath), mpath), str_member(entry, "sha256", mpath), -1};
    auto size = entry.find("size");
    if (size != entry.end() && !size->is_null()) f.size = int_member(entry, "size", mpath);
    files.push_back(std::move(f));
  }
  if (files.front().path != m.path)
    throw ArtifactError(mpath + ": unreadable manifest (its files list must start with " + m.path + ")");
  return files;
}

void verify_files(const Manifest& m, const std::string& artifact, const std::string& mpath) {
  const std::string folder = dirname_of(artifact);
  for (size_t i = 0; i < m.files.size(); ++i) {
    const ManifestFile& f = m.files[i];
    const std::string file = i == 0 ? artifact : folder + f.path;  // the artifact under the name it was given
    const std::string role = i == 0 ? "artifact" : "side file";
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) throw ArtifactError(file + ": " + role + " listed in " + basename(mpath) + " is missing");
    const int64_t size = static_cast<int64_t>(in.tellg());
    if (f.size >= 0 && size != f.size)
      throw ArtifactError(file + ": " + role + " of " + std::to_string(size) + " bytes does not match its manifest (" +
                          std::to_string(f.size) + " bytes): the file is damaged, truncated or was replaced");
    const std::string actual = sha256_file(file);
    if (actual != f.sha256)
      throw ArtifactError(file + ": sha256 " + actual.substr(0, 16) + "... does not match its manifest (" +
                          f.sha256.substr(0, 16) + "...): the file is damaged, truncated or was replaced");
  }
}

}  // namespace

std::vector<std::string> Profile::violations(int64_t b, int64_t t, int64_t h, int64_t w) const {
  std::vector<std::string> out;
  const std::pair<const char*, std::pair<const Range*, int64_t>> axes[] = {
      {"batch", {&batch, b}}, {"frames", {&frames, t}}, {"height", {&height, h}}, {"width", {&width, w}}};
  for (const auto& [axis, rv] : axes) {
    const auto& [r, v] = rv;
    if (!r->contains(v))
      out.push_back(std::string(axis) + " " + std::to_string(v) + " outside profile '" + name + "' range [" +
                    std::to_string(r->min) + ", " + std::to_string(r->max) + "]");
  }
  return out;
}

Manifest Manifest::read(const std::string& artifact_in, bool verify) {
  std::string artifact = artifact_in;
  if (artifact.size() > 5 && artifact.compare(artifact.size() - 5, 5, ".json") == 0)
    artifact.resize(artifact.size() - 5);
  const std::string mpath = artifact + ".json";
  std::ifstream in(mpath, std::ios::binary);
  if (!in)
    throw ArtifactError(artifact + ": no manifest " + basename(mpath) +
                        " beside it (artifacts are loaded through their manifest)");
  std::stringstream buf;
  buf << in.rdbuf();
  json doc;
  try {
    doc = json::parse(buf.str());
  } catch (const json::exception& e) {
    throw ArtifactError(mpath + ": unreadable manifest (" + e.what() + ")");
  }
  if (!doc.is_object()) throw ArtifactError(mpath + ": unreadable manifest (not an object)");
  const int64_t version = int_member(doc, "format_version", mpath);
  if (version != 1 && version != kFormatVersion)
    throw ArtifactError(mpath + ": format_version " + std::to_string(version) + ", expected one of 1, " +
                        std::to_string(kFormatVersion) + " (a newer bundle wrote it: update this one)");

  Manifest m;
  m.kind = str_member(doc, "kind", mpath);
  m.path = str_member(doc, "path", mpath);
  m.sha256 = str_member(doc, "sha256", mpath);
  m.precision = str_member(doc, "precision", mpath);
  m.device = str_member(doc, "device", mpath);
  const json& prof = member(doc, "profile", mpath);
  m.profile.name = prof.contains("name") ? str_member(prof, "name", mpath) : "custom";
  if (prof.contains("patch")) m.profile.patch = int_member(prof, "patch", mpath);
  // The inputs' names say whether the artifact takes packed calls (contract/io.py PACKED_INPUT_NAMES); its profile
  // must agree (a packed profile has the call's tokens and items instead of a batch).
  size_t first_input_rank = 0;
  if (auto ins = doc.find("inputs"); ins != doc.end() && ins->is_array()) {
    for (const json& in : *ins)
      if (in.is_object()) m.input_names.push_back(in.contains("name") ? str_member(in, "name", mpath) : "");
    if (!ins->empty() && ins->front().is_object())
      if (auto shape = ins->front().find("shape"); shape != ins->front().end() && shape->is_array())
        first_input_rank = shape->size();
  }
  m.packed = m.input_names == std::vector<std::string>{"pixel_patches", "patch_positions", "cu_seqlens"};
  m.packed_flat = m.packed && first_input_rank == 1;
  m.profile.packed = prof.contains("packed") && prof.at("packed").is_boolean() && prof.at("packed").get<bool>();
  if (m.profile.packed != m.packed)
    throw ArtifactError(mpath + ": unreadable manifest (" +
                        (m.packed ? "packed inputs (pixel_patches, patch_positions, cu_seqlens) with a batched profile"
                                  : "a packed profile without the packed inputs pixel_patches, patch_positions, "
                                    "cu_seqlens") +
                        ")");
  std::vector<std::pair<const char*, Range*>> axes = {
      {"frames", &m.profile.frames}, {"height", &m.profile.height}, {"width", &m.profile.width}};
  if (m.packed) {
    axes.insert(axes.begin(), {{"tokens", &m.profile.tokens}, {"items", &m.profile.items}});
  } else {
    axes.insert(axes.begin(), {"batch", &m.profile.batch});
  }
  for (auto [axis, range] : axes) {
    const json& r = member(prof, axis, mpath);
    range->min = int_member(r, "min", mpath);
    range->opt = int_member(r, "opt", mpath);
    range->max = int_member(r, "max", mpath);
  }
  if (auto outs = doc.find("outputs"); outs != doc.end() && outs->is_array() && !outs->empty()) {
    auto shape = outs->front().find("shape");
    if (shape != outs->front().end() && shape->is_array() && !shape->empty() && shape->back().is_number_integer())
      m.hidden_size = shape->back().get<int64_t>();
  }
  m.files = manifest_files(doc, version, m, mpath);

  if (!is_file(artifact)) throw ArtifactError(mpath + ": artifact " + basename(artifact) + " is missing");
  if (verify) verify_files(m, artifact, mpath);
  return m;
}

c10::ScalarType precision_dtype(const std::string& precision) {
  if (precision == "fp32") return c10::ScalarType::Float;
  if (precision == "bf16") return c10::ScalarType::BFloat16;
  if (precision == "fp16") return c10::ScalarType::Half;
  throw ArtifactError("unknown precision '" + precision + "' (expected fp32, bf16 or fp16)");
}

void check_inputs(at::Tensor& pv, at::Tensor& pos, const Profile& profile, c10::ScalarType dtype) {
  const int64_t p = profile.patch;
  if (!pv.defined()) throw InputError("pixel_values: expected a tensor, got an undefined one");
  if (!pos.defined()) throw InputError("patch_positions: expected a tensor, got an undefined one");
  if (pv.dim() == 4) {
    pv = pv.unsqueeze(2);
  } else if (pv.dim() != 5) {
    throw InputError("pixel_values: expected rank 5 (B, 3, T, H, W) or rank 4 (B, 3, H, W), got rank " +
                     std::to_string(pv.dim()) + " with shape " + shape_str(pv));
  }
  if (pos.dim() != 3 || pos.size(2) != 3)
    throw InputError("patch_positions: expected shape (B, L, 3) holding [t, h, w] per token, got shape " +
                     shape_str(pos));
  if (pv.numel() == 0) throw InputError("pixel_values: expected a non-empty tensor, got shape " + shape_str(pv));
  if (pos.numel() == 0) throw InputError("patch_positions: expected a non-empty tensor, got shape " + shape_str(pos));
  const int64_t b = pv.size(0), c = pv.size(1), t = pv.size(2), h = pv.size(3), w = pv.size(4);
  if (c != kChannels)
    throw InputError("pixel_values: expected 3 channels (dim 1), got " + std::to_string(c) + " (shape " +
                     shape_str(pv) + ")");
  if (h % p || w % p)
    throw InputError("pixel_values: expected H and W to be positive multiples of " + std::to_string(p) + ", got H=" +
                     std::to_string(h) + ", W=" + std::to_string(w));
  if (pv.scalar_type() != dtype)
    throw InputError("pixel_values: expected dtype " + dtype_name(dtype) + " (the artifact's precision), got " +
                     dtype_name(pv.scalar_type()) + "; cast it first, the runtime never casts silently");
  if (!c10::isIntegralType(pos.scalar_type(), /*includeBool=*/false))
    throw InputError("patch_positions: expected an integer tensor (int64, or int32 converted losslessly), got " +
                     dtype_name(pos.scalar_type()));
  if (pos.scalar_type() != c10::ScalarType::Long) pos = pos.to(c10::ScalarType::Long);
  if (pos.size(0) != b)
    throw InputError("patch_positions: expected batch " + std::to_string(b) + " (the batch of pixel_values), got " +
                     std::to_string(pos.size(0)));
  const int64_t tokens = t * (h / p) * (w / p);
  if (pos.size(1) != tokens) {
    const std::string ps = std::to_string(p);
    throw InputError("patch_positions: expected L = T*(H/" + ps + ")*(W/" + ps + ") = " + std::to_string(t) + "*" +
                     std::to_string(h / p) + "*" + std::to_string(w / p) + " = " + std::to_string(tokens) +
                     " rows, got " + std::to_string(pos.size(1)) + " (shape " + shape_str(pos) + ")");
  }
  const auto bad = profile.violations(b, t, h, w);
  if (!bad.empty()) {
    std::string msg = "pixel_values: shape (B=" + std::to_string(b) + ", T=" + std::to_string(t) + ", H=" +
                      std::to_string(h) + ", W=" + std::to_string(w) + ") is outside the artifact: ";
    for (size_t i = 0; i < bad.size(); ++i) msg += (i ? "; " : "") + bad[i];
    throw InputError(msg);
  }
  const at::Tensor finite = at::isfinite(pv);
  if (!finite.all().item<bool>()) {
    const int64_t nan = at::isnan(pv).sum().item<int64_t>();
    const int64_t inf = pv.numel() - finite.sum().item<int64_t>() - nan;
    throw InputError("pixel_values: expected finite values, got " + std::to_string(nan) + " NaN and " +
                     std::to_string(inf) + " Inf");
  }
  const int64_t low = pos.min().item<int64_t>(), high = pos.max().item<int64_t>();
  if (low < 0)
    throw InputError("patch_positions: expected non-negative [t, h, w], got minimum " + std::to_string(low));
  if (high >= kMaxPosition)
    throw InputError("patch_positions: expected values below 2**24 = " + std::to_string(kMaxPosition) +
                     " (RoPE uses them as float32), got maximum " + std::to_string(high));
}

// Manifest kind -> the factory of its C++ backend: one line per kind whose description says `cpp=True`
// (contract/backends.py; tests/test_contract.py reads this table).
const std::map<std::string, BackendFactory>& backend_factories() {
  static const std::map<std::string, BackendFactory> table = {
      {"aoti", make_aoti_backend},
      {"torchscript", make_torchscript_backend},
#ifdef ONEVISION_WITH_TENSORRT
      // An engine deserializes with the library this build links: libnvinfer for trt, TensorRT-RTX's for trt-rtx.
      {"trt", make_tensorrt_backend},
      {"trt-rtx", make_tensorrt_backend},
#endif
  };
  return table;
}

namespace {

// Python's repr of a list of ints, at most its first 8 (the Python runtime's messages print values[:8]).
std::string list_str(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size() && i < 8; ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

std::string range_str(const Range& r) { return "[" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]"; }

}  // namespace

void check_packed(const at::Tensor& pp, const at::Tensor& pos, at::Tensor& cu, const Manifest& manifest,
                  c10::ScalarType dtype) {
  if (!pp.defined() || !pos.defined() || !cu.defined())
    throw InputError("a packed call takes three tensors: pixel_patches, patch_positions, cu_seqlens");
  const Profile& profile = manifest.profile;
  const bool flat = manifest.packed_flat;
  const int64_t width = 3 * profile.patch * profile.patch;
  const int64_t rows = pos.numel() / 3;
  const std::vector<int64_t> want_pp = flat ? std::vector<int64_t>{rows * width} : std::vector<int64_t>{rows, width};
  const std::vector<int64_t> want_pos = flat ? std::vector<int64_t>{3 * rows} : std::vector<int64_t>{rows, 3};
  const std::pair<const char*, std::pair<const at::Tensor*, const std::vector<int64_t>*>> shapes[] = {
      {"pixel_patches", {&pp, &want_pp}}, {"patch_positions", {&pos, &want_pos}}};
  for (const auto& [name, tw] : shapes) {
    const auto& [t, want] = tw;
    if (t->sizes().vec() != *want) {
      std::string w = "(";
      for (size_t i = 0; i < want->size(); ++i) w += (i ? ", " : "") + std::to_string((*want)[i]);
      w += want->size() == 1 ? ",)" : ")";
      throw InputError(std::string(name) + ": expected shape " + w + " for " + std::to_string(rows) + " tokens, got " +
                       shape_str(*t));
    }
  }
  if (pp.scalar_type() != dtype)
    throw InputError("pixel_patches: expected dtype " + dtype_name(dtype) + " (the artifact's precision), got " +
                     dtype_name(pp.scalar_type()));
  if (pos.scalar_type() != c10::ScalarType::Long ||
      (cu.scalar_type() != c10::ScalarType::Int && cu.scalar_type() != c10::ScalarType::Long) || cu.dim() != 1)
    throw InputError("patch_positions must be int64 and cu_seqlens a 1-D int32, got " + dtype_name(pos.scalar_type()) +
                     " and " + dtype_name(cu.scalar_type()));
  const at::Tensor offsets = cu.to(c10::kCPU, c10::ScalarType::Long).contiguous();
  const std::vector<int64_t> values(offsets.data_ptr<int64_t>(), offsets.data_ptr<int64_t>() + offsets.numel());
  const int64_t items = static_cast<int64_t>(values.size()) - 1;
  if (items < 1 || values[0] != 0)
    throw InputError("cu_seqlens: expected 0, L_1, L_1+L_2, ..., N (B+1 offsets from 0), got " + list_str(values));
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] <= values[i - 1])
      throw InputError("cu_seqlens: expected strictly increasing offsets (every item >= 1 token), got " +
                       list_str(values));
  if (values.back() != rows && values.back() != 3 * rows)
    throw InputError("cu_seqlens: expected the last offset to be N = " + std::to_string(rows) + " (or 3N = " +
                     std::to_string(3 * rows) + ", counted in position elements), got " +
                     std::to_string(values.back()));
  // "'name''s range": the Python runtime's message ({name!r}'s), word for word.
  if (!profile.tokens.contains(rows))
    throw InputError(std::to_string(rows) + " tokens in one call, outside profile '" + profile.name + "''s range " +
                     range_str(profile.tokens));
  if (!profile.items.contains(items))
    throw InputError(std::to_string(items) + " items in one call, outside profile '" + profile.name + "''s range " +
                     range_str(profile.items));
  if (!at::isfinite(pp).all().item<bool>()) throw InputError("pixel_patches: expected finite values");
  if (rows) {
    const int64_t low = pos.min().item<int64_t>();
    if (low < 0) throw InputError("patch_positions: expected non-negative [t, h, w], got minimum " + std::to_string(low));
  }
  cu = cu.to(c10::ScalarType::Int);
}

at::Tensor Backend::run_packed(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw ArtifactError("this backend (" + provider() + ") does not run packed artifacts in C++");
}

Runner::Runner(const std::string& artifact_in, const std::string& device, bool verify)
    : manifest_(Manifest::read(artifact_in, verify)),
      device_(c10::kCPU),
      dtype_(precision_dtype(manifest_.precision)) {
  std::string artifact = artifact_in;
  if (artifact.size() > 5 && artifact.compare(artifact.size() - 5, 5, ".json") == 0)
    artifact.resize(artifact.size() - 5);
  try {
    device_ = c10::Device(device.empty() ? manifest_.device : device);
  } catch (const std::exception&) {
    throw ArtifactError("unsupported device '" + device + "' (use cpu, cuda or cuda:N)");
  }
  if (device_.is_cuda()) {
    if (!at::globalContext().hasCUDA())
      throw ArtifactError(artifact + ": needs device " + device_.str() +
                          ", but this libtorch sees no CUDA device; run it on a GPU machine");
    if (!device_.has_index()) device_.set_index(0);
  } else if (!device_.is_cpu()) {
    throw ArtifactError(artifact + ": unsupported device " + device_.str() + " (use cpu, cuda or cuda:N)");
  }
  const auto& factories = backend_factories();
  const auto factory = factories.find(manifest_.kind);
  if (factory == factories.end()) {
    std::string runs;
    for (const auto& [kind, make] : factories) runs += (runs.empty() ? "" : ", ") + kind;
    throw ArtifactError(artifact + ": kind '" + manifest_.kind + "' cannot run in C++ (this build runs: " + runs +
                        "; torch.export .pt2 and ONNX artifacts run from Python: runtime.load)");
  }
  backend_ = factory->second(artifact, manifest_, device_);
}

at::Tensor Runner::operator()(at::Tensor pixel_values, at::Tensor patch_positions) const {
  if (manifest_.packed)
    throw InputError(basename(manifest_.path) + " is a packed artifact (profile '" + manifest_.profile.name +
                     "'): call run_packed(pixel_patches, patch_positions, cu_seqlens)");
  check_inputs(pixel_values, patch_positions, manifest_.profile, dtype_);
  pixel_values = pixel_values.to(device_).contiguous();
  patch_positions = patch_positions.to(device_).contiguous();
  return backend_->run(pixel_values, patch_positions);
}

at::Tensor Runner::run_packed(at::Tensor pixel_patches, at::Tensor patch_positions, at::Tensor cu_seqlens) const {
  if (!manifest_.packed)
    throw InputError(basename(manifest_.path) + " is a batched artifact (profile '" + manifest_.profile.name +
                     "'): call it with (pixel_values, patch_positions); packed calls need one exported with a "
                     "packed profile");
  check_packed(pixel_patches, patch_positions, cu_seqlens, manifest_, dtype_);
  return backend_->run_packed(pixel_patches.to(device_).contiguous(), patch_positions.to(device_).contiguous(),
                              cu_seqlens.to(device_).contiguous());
}

}  // namespace onevision
