// Optimized npu_convert_weight_to_int4pack: Highway SIMD with runtime dispatch, threaded.
// Bit-exact to reference/ops/int4pack.cpp (the op is integer-only and deterministic).
//
// Per vector of int32 lanes: keep the low nibble (And 0xF), narrow to bytes, then merge byte
// pairs viewed as u16 lanes: lo | hi << 4 (the even element in the low nibble), and narrow
// again. Memory-bound: 32 bytes in, 4 bytes out per word.

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/int4pack.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include "qconf/ops/int4pack.h"

#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Packs n int32 (n % 8 == 0) into n / 8 words.
void PackInt4(const int32_t* HWY_RESTRICT in, int32_t* HWY_RESTRICT out, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<int32_t> d32;
  const hn::Rebind<uint8_t, decltype(d32)> d8;        // one byte per int32 lane
  const hn::Repartition<uint16_t, decltype(d8)> d16;  // byte pairs
  const hn::Rebind<uint8_t, decltype(d16)> d8h;       // one byte per pair
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
  const auto mask = hn::Set(d32, 0xF);
  const auto lo_byte = hn::Set(d16, 0x00FF);
  if (lanes >= 8) {
    auto* out8 = reinterpret_cast<uint8_t*>(out);
    for (; i + lanes <= n; i += lanes) {
      auto v = hn::And(hn::LoadU(d32, in + i), mask);  // 0..15 per lane
      auto b = hn::DemoteTo(d8, v);                    // exact: values fit a byte
      auto p = hn::BitCast(d16, b);                    // [odd:even] per u16
      auto merged = hn::Or(hn::And(p, lo_byte), hn::ShiftRight<4>(hn::AndNot(lo_byte, p)));
      hn::StoreU(hn::DemoteTo(d8h, hn::BitCast(hn::RebindToSigned<decltype(d16)>(), merged)), d8h,
                 out8 + i / 2);
    }
  }
#endif
  for (; i < n; i += 8) {  // tail (and targets narrower than 8 lanes)
    uint32_t w = 0;
    for (int t = 0; t < 8; ++t) w |= static_cast<uint32_t>(in[i + t] & 0xF) << (4 * t);
    out[i / 8] = static_cast<int32_t>(w);
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf {
namespace opt {
HWY_EXPORT(PackInt4);

void pack_int4(const int32_t* in, int32_t* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(PackInt4)(in, out, n);
}

Tensor npu_convert_weight_to_int4pack(const Tensor& weight) {
  check_int4pack_input(weight);
  Shape shape = weight.shape();
  shape.back() /= kInt4PerInt32;
  Tensor out(DType::kI32, shape);
  const int32_t* in = weight.data<int32_t>();
  int32_t* o = out.data<int32_t>();
  // Chunks of 1 Mi words (4 MiB in): small tensors stay on the calling thread.
  const int64_t words = out.numel();
  parallel_for(words, int64_t{1} << 20, [&](int64_t b, int64_t e) {
    pack_int4(in + b * kInt4PerInt32, o + b, (e - b) * kInt4PerInt32);
  });
  return out;
}
}  // namespace opt
}  // namespace qconf
#endif
