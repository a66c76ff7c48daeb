#include "qconf/opt/cpu.h"

#include <cpuid.h>

#include <cstdlib>
#include <thread>

namespace qconf::opt {

namespace {
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;
  const bool amx_os = (xcr0 & 0x60000) == 0x60000;
  f.f16c = ((c >> 29) & 1) && avx && ymm_os;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ((b >> 5) & 1) && ymm_os;
  f.avx512f = ((b >> 16) & 1) && zmm_os;
  f.avx512dq = ((b >> 17) & 1) && zmm_os;
  f.avx512bw = ((b >> 30) & 1) && zmm_os;
  f.avx512vnni = ((c >> 11) & 1) && zmm_os;
  f.avx512vbmi = ((c >> 1) & 1) && zmm_os;
  f.amx_int8 = ((d >> 25) & 1) && amx_os;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512bf16 = ((a1 >> 5) & 1) && zmm_os;
  return f;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string cpu_features_str() {
  const auto& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* n) {
    if (on) s += (s.empty() ? "" : " ") + std::string(n);
  };
  add(f.f16c, "f16c");
  add(f.avx2, "avx2");
  add(f.avx512f, "avx512f");
  add(f.avx512dq, "avx512dq");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512vbmi, "avx512vbmi");
  add(f.avx512bf16, "avx512bf16");
  add(f.amx_int8, "amx-int8");
  return s.empty() ? "none" : s;
}

int default_threads() {
  if (const char* e = std::getenv("QCONF_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1) return n;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? static_cast<int>(h) : 1;
}

}  // namespace qconf::opt
