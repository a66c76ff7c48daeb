// CPU feature queries for optimized kernels and for tests that use the hardware as an oracle.
#pragma once

#include <string>

namespace qconf::opt {

struct CpuFeatures {
  bool f16c = false;  // VCVTPS2PH / VCVTPH2PS
  bool avx2 = false;
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vnni = false;
  bool avx512vbmi = false;  // VPERMB / VPERMI2B / VPERMT2B (byte permutes)
  bool avx512bf16 = false;  // VCVTNEPS2BF16
  bool amx_int8 = false;    // needs arch_prctl(ARCH_REQ_XCOMP_PERM) before use
};

// Detected once (CPUID plus OS XSAVE support), then cached.
const CpuFeatures& cpu_features();
std::string cpu_features_str();

// Number of worker threads for optimized kernels: QCONF_THREADS if set, else hardware
// concurrency. Results never depend on it.
int default_threads();

}  // namespace qconf::opt
