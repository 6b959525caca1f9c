#include "context.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace bl {

namespace {

// The pool's spin time: the option, else BRAIN_LDM_SPIN_US (a whole number of microseconds, at most 1 s), else the
// default.
Status spin_micros_for(const ContextOptions& options, int64_t* out) {
  *out = ThreadPool::kDefaultSpinMicros;
  if (options.spin_micros >= 0) {
    *out = options.spin_micros;
    return Status::ok();
  }
  const char* v = std::getenv("BRAIN_LDM_SPIN_US");
  if (!v || !*v) return Status::ok();
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(v, &end, 10);
  if (*end != '\0' || errno != 0 || parsed < 0 || parsed > 1000000)
    return Status::range_error(std::string("environment variable BRAIN_LDM_SPIN_US must be a whole number of "
                                           "microseconds from 0 to 1000000, got '") + v + "'");
  *out = parsed;
  return Status::ok();
}

// Whether Network::run splits a batch among the threads: BRAIN_LDM_SPLIT_BATCH, 1 or 0; by default on natively and
// off in wasm. There a share's one thread took as long for one item as the two threads for the batch of 2 (the
// default-size UNet, wasm-simd-threads on the EPYC VM: 343 ms of layers against 354), and the two shares side by side
// 416-418 ms against the whole batch's 347-356, in slow and calm minutes alike.
Status split_batch_for(bool* out) {
#if defined(__EMSCRIPTEN__)
  *out = false;
#else
  *out = true;
#endif
  const char* v = std::getenv("BRAIN_LDM_SPLIT_BATCH");
  if (!v || !*v) return Status::ok();
  const std::string s(v);
  if (s != "0" && s != "1")
    return Status::range_error("environment variable BRAIN_LDM_SPLIT_BATCH must be 0 or 1, got '" + s + "'");
  *out = s == "1";
  return Status::ok();
}

}  // namespace

const char* core_version() { return "0.1.0"; }

Status Context::create(const ContextOptions& options, std::unique_ptr<Context>* out) {
  Isa isa;
  BL_RETURN_IF_ERROR(parse_isa(options.isa, &isa));
  if (options.threads < 0 || options.threads > 1024)
    return Status::range_error("threads must be between 0 (auto) and 1024, got " + std::to_string(options.threads));
  const Bf16Kernels* bf16 = nullptr;
  if (options.precision == "bf16") {
    bf16 = bf16_kernels();
    if (!bf16)
      return Status::range_error("precision 'bf16' needs a CPU with AVX512-BF16 and a native build for x86-64; this "
                                 "one has none (use precision 'fp32')");
    if (isa != Isa::Avx512)
      return Status::range_error(std::string("precision 'bf16' runs with isa 'avx512'; isa '") + isa_name(isa) +
                                 "' was asked for");
  } else if (options.precision != "fp32" && !options.precision.empty()) {
    return Status::range_error("precision '" + options.precision + "' is unknown; expected fp32 or bf16");
  }
  int64_t spin_micros = 0;
  BL_RETURN_IF_ERROR(spin_micros_for(options, &spin_micros));
  bool split_batch = true;
  BL_RETURN_IF_ERROR(split_batch_for(&split_batch));
  try {
    out->reset(new Context(kernels_for(isa), bf16, options.threads, spin_micros, split_batch));
  } catch (const std::exception& e) {
    return Status::runtime_error("could not start " + std::to_string(options.threads) + " threads: " + e.what());
  }
  return Status::ok();
}

Status Context::workers(int n, int threads, std::vector<Context*>* out) {
  try {
    if (!workers_.empty() && workers_[0]->threads() != threads) workers_.clear();
    while (static_cast<int>(workers_.size()) < n)
      workers_.emplace_back(new Context(kernels_, bf16_, threads, pool_.spin_micros(), false));
  } catch (const std::exception& e) {
    return Status::runtime_error(std::string("could not make a worker context: ") + e.what());
  }
  out->clear();
  for (int i = 0; i < n; ++i) out->push_back(workers_[i].get());
  return Status::ok();
}

double Context::probe_peak_gflops(double seconds_per_repeat, int repeats) {
  const KernelTable& k = kernels();
  std::atomic<float> sink{0.0f};
  auto run = [&](int64_t iters) {
    auto t0 = std::chrono::steady_clock::now();
    pool_.parallel_for(pool_.size(), [&](int64_t, int64_t, int) { sink = sink + k.peak_probe(iters); });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  int64_t iters = 1 << 16;
  while (run(iters) < seconds_per_repeat / 4 && iters < (int64_t(1) << 40)) iters *= 2;
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    double t = run(iters);
    double gflops = double(iters) * k.peak_flops_per_iter * pool_.size() / t * 1e-9;
    if (gflops > best) best = gflops;
  }
  return best;
}

}  // namespace bl
