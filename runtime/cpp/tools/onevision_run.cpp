// onevision_run: run an exported OneVision encoder artifact on .npy inputs and write the output as .npy.
//
//   onevision_run --artifact artifacts/aoti-fp32-image-448.pt2
//                 --pixel-values pv.npy --positions pos.npy --out out.npy [--device cpu|cuda[:N]] [--repeat N]
//                 [--threads N]
//   onevision_run --artifact artifacts/aoti-fp32-packed-any.pt2           (a packed artifact: one packed call)
//                 --pixel-patches pp.npy --positions pos.npy --cu-seqlens cu.npy --out out.npy [...]
//
// pv.npy: (B, 3, T, H, W) or (B, 3, H, W) float32 (fp32 and bf16 artifacts; bf16 rounds to nearest even) or float16
// (fp16 artifacts). pos.npy: (B, L, 3) int64 or int32. out.npy: (B, L, hidden) float32 (fp32, bf16) or float16.
// Packed (contract/packing.py): pp.npy (N, 3*14*14) patches in the pixel dtype (flat (N*3*14*14,) for a flat
// artifact), pos.npy (N, 3) int64 (flat (3N,)), cu.npy (B+1,) int32 or int64 offsets 0, L_1, ..., N; out.npy
// (N, hidden).
// Exit status: 0 ok, 1 unexpected failure, 2 bad usage or input (message names the input), 3 unusable artifact,
// 4 --threads found an output that differs from the sequential run of the same input.
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "onevision/npy.h"
#include "onevision/runtime.h"

namespace {

const char* kUsage =
    "usage: onevision_run --artifact FILE --pixel-values PV.npy --positions POS.npy --out OUT.npy\n"
    "       onevision_run --artifact FILE --pixel-patches PP.npy --positions POS.npy --cu-seqlens CU.npy --out OUT.npy\n"
    "                     [--device cpu|cuda|cuda:N] [--repeat N] [--threads N] [--no-verify] [--quiet]\n"
    "  --artifact      AOTInductor package (.pt2) or TorchScript module (.pt) with its manifest FILE.json beside it\n"
    "  --pixel-values  (B, 3, T, H, W) or (B, 3, H, W) float32 .npy (float16 for fp16 artifacts; bf16 artifacts\n"
    "                  take float32 and round to bfloat16)\n"
    "  --positions     (B, L, 3) int64 or int32 .npy of [t, h, w] per token\n"
    "  --pixel-patches a packed artifact's call: (N, 3*14*14) patches .npy, in the pixel dtype as above\n"
    "  --cu-seqlens    with --pixel-patches: (B+1,) int32 or int64 .npy of offsets 0, L_1, L_1+L_2, ..., N;\n"
    "                  --positions is then (N, 3) int64\n"
    "  --out           output .npy: (B, L, hidden), packed (N, hidden); float32 (float16 for fp16 artifacts)\n"
    "  --device        default: the manifest's device\n"
    "  --repeat        run N times and report the mean latency (default 1)\n"
    "  --threads       thread-safety check: N threads call the one runner at once, --repeat times each, each on its\n"
    "                  own input (the pixel values scaled by 1 + k/N); every output must equal the sequential run of\n"
    "                  that input bit for bit (exit 4 otherwise)\n"
    "  --no-verify     skip the artifact's sha256 check against its manifest\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

at::Tensor to_tensor(const onevision::NpyArray& a) {
  const std::map<std::string, c10::ScalarType> types = {{"f4", c10::ScalarType::Float},
                                                        {"f2", c10::ScalarType::Half},
                                                        {"i8", c10::ScalarType::Long},
                                                        {"i4", c10::ScalarType::Int}};
  auto t = at::empty(a.shape, at::TensorOptions().dtype(types.at(a.dtype)));
  if (!a.data.empty()) std::memcpy(t.data_ptr(), a.data.data(), a.data.size());
  return t;
}

void save(const std::string& path, at::Tensor out) {
  out = out.to(c10::kCPU);
  if (out.scalar_type() == c10::ScalarType::BFloat16) out = out.to(c10::ScalarType::Float);  // exact
  out = out.contiguous();
  std::string dtype;
  if (out.scalar_type() == c10::ScalarType::Float) {
    dtype = "f4";
  } else if (out.scalar_type() == c10::ScalarType::Half) {
    dtype = "f2";
  } else {
    throw std::runtime_error(std::string("cannot save output dtype ") + c10::toString(out.scalar_type()));
  }
  onevision::write_npy(path, dtype, out.sizes().vec(), out.data_ptr(), static_cast<size_t>(out.nbytes()));
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  bool verify = true, quiet = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      }
      if (a == "--no-verify") {
        verify = false;
      } else if (a == "--quiet") {
        quiet = true;
      } else if (a == "--artifact" || a == "--pixel-values" || a == "--positions" || a == "--out" ||
                 a == "--device" || a == "--repeat" || a == "--threads" || a == "--pixel-patches" ||
                 a == "--cu-seqlens") {
        if (i + 1 >= argc) throw UsageError(a + " needs a value");
        args[a] = argv[++i];
      } else {
        throw UsageError("unknown argument " + a);
      }
    }
    if (args.count("--pixel-values") && args.count("--pixel-patches"))
      throw UsageError("--pixel-values (a batched call) and --pixel-patches (a packed call) exclude each other");
    if (args.count("--pixel-patches") != args.count("--cu-seqlens"))
      throw UsageError("--pixel-patches and --cu-seqlens go together (a packed call)");
    const char* pixels = args.count("--pixel-patches") ? "--pixel-patches" : "--pixel-values";
    for (const char* need : {"--artifact", pixels, "--positions", "--out"})
      if (!args.count(need)) throw UsageError(std::string("missing ") + need);
  } catch (const UsageError& e) {
    std::cerr << "onevision_run: " << e.what() << "\n" << kUsage;
    return 2;
  }

  try {
    const int repeat = args.count("--repeat") ? std::stoi(args["--repeat"]) : 1;
    if (repeat < 1) throw UsageError("--repeat must be >= 1");
    const int threads = args.count("--threads") ? std::stoi(args["--threads"]) : 0;
    if (args.count("--threads") && threads < 1) throw UsageError("--threads must be >= 1");
    auto t0 = std::chrono::steady_clock::now();
    onevision::Runner runner(args["--artifact"], args.count("--device") ? args["--device"] : "", verify);
    auto t1 = std::chrono::steady_clock::now();

    const bool packed_call = args.count("--pixel-patches") > 0;
    if (packed_call != runner.packed())
      throw onevision::InputError(
          runner.packed() ? args["--artifact"] + " is a packed artifact (profile '" + runner.manifest().profile.name +
                                "'): pass --pixel-patches, --positions and --cu-seqlens"
                          : args["--artifact"] + " is a batched artifact (profile '" + runner.manifest().profile.name +
                                "'): pass --pixel-values and --positions");
    at::Tensor pv, pos, cu;
    try {
      pv = to_tensor(onevision::read_npy(args[packed_call ? "--pixel-patches" : "--pixel-values"]));
      pos = to_tensor(onevision::read_npy(args["--positions"]));
      if (packed_call) cu = to_tensor(onevision::read_npy(args["--cu-seqlens"]));
    } catch (const std::runtime_error& e) {
      throw onevision::InputError(e.what());
    }
    // numpy has no bfloat16: a bf16 artifact takes float32 pixel values, rounded here (documented in npy.h).
    if (runner.dtype() == c10::ScalarType::BFloat16 && pv.scalar_type() == c10::ScalarType::Float)
      pv = pv.to(c10::ScalarType::BFloat16);
    // One call of either kind: pixels (values or patches) first, then positions (and the offsets when packed).
    auto call = [&](const at::Tensor& pixels) {
      return packed_call ? runner.run_packed(pixels, pos, cu) : runner(pixels, pos);
    };

    at::Tensor out;
    double total_ms = 0;
    for (int r = 0; r < repeat; ++r) {
      auto s = std::chrono::steady_clock::now();
      out = call(pv);
      if (runner.device().is_cuda()) out = out.to(c10::kCPU);  // synchronises
      total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
    }
    save(args["--out"], out);
    if (threads > 0) {
      // Each thread k runs its own input; the reference is the sequential run of that input on the same runner.
      std::vector<at::Tensor> inputs, expected;
      for (int k = 0; k < threads; ++k) {
        const double scale = 1.0 + static_cast<double>(k) / threads;
        inputs.push_back(k == 0 ? pv : (pv.to(c10::kFloat) * scale).to(pv.scalar_type()));
        expected.push_back(call(inputs.back()).to(c10::kCPU));
      }
      std::atomic<int> mismatches{0}, failures{0};
      std::atomic<bool> go{false};
      std::vector<std::thread> pool;
      for (int k = 0; k < threads; ++k)
        pool.emplace_back([&, k] {
          while (!go.load()) std::this_thread::yield();  // start together
          for (int r = 0; r < repeat; ++r) {
            try {
              if (!at::equal(call(inputs[k]).to(c10::kCPU), expected[k])) ++mismatches;
            } catch (const std::exception& e) {
              std::cerr << "onevision_run: thread " << k << ": " << e.what() << "\n";
              ++failures;
            }
          }
        });
      go = true;
      for (auto& t : pool) t.join();
      if (failures) throw std::runtime_error(std::to_string(failures.load()) + " threaded call(s) failed");
      if (mismatches) {
        std::cerr << "onevision_run: threads " << threads << " x " << repeat << ": " << mismatches.load()
                  << " output(s) differ from the sequential run of the same input\n";
        return 4;
      }
      if (!quiet)
        std::cout << "threads " << threads << " x " << repeat << ": all " << threads * repeat
                  << " outputs identical to the sequential runs\n";
    }
    if (!quiet) {
      std::cout << "artifact " << args["--artifact"] << " (" << runner.manifest().kind << ", "
                << runner.manifest().precision << ", " << runner.provider() << " on " << runner.device().str()
                << ", profile " << runner.manifest().profile.name << ")\n"
                << "load_ms " << std::chrono::duration<double, std::milli>(t1 - t0).count() << "\n"
                << "run_ms " << total_ms / repeat << " (mean of " << repeat << ")\n"
                << "output " << args["--out"] << " shape " << out.sizes() << "\n";
    }
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "onevision_run: " << e.what() << "\n";
    return 2;
  } catch (const onevision::InputError& e) {
    std::cerr << "onevision_run: input error: " << e.what() << "\n";
    return 2;
  } catch (const onevision::ArtifactError& e) {
    std::cerr << "onevision_run: artifact error: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "onevision_run: error: " << e.what() << "\n";
    return 1;
  }
}
