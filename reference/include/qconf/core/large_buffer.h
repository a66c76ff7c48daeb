// Memory for large buffers that kernels stream (packed weights): 64-byte aligned, and from
// kLargeBufferBytes on placed on a 2 MiB boundary and marked MADV_HUGEPAGE (Linux), so that
// the kernel can back them with transparent huge pages. On a kernel whose THP mode is
// "madvise" (Debian's default) nothing else gets huge pages.
//
// Why: a GEMV or a small-M GEMM reads each weight byte once per call. At K = N = 4096 the
// 16 MiB of int8 weights span 4096 pages of 4 KiB, more than Zen 4's 3072-entry L2 TLB, so
// every page of the stream costs a page walk; with 2 MiB pages the stream needs 8 entries.
// W8A8_DYNAMIC linear, M = 1, same-process A/B on the 2-core Zen 4 (docs/perf.md, session 5):
// 6% faster at 2 threads, 8% at 1 thread.
//
// The contents are never affected: this only chooses where the bytes live. A large buffer is
// rounded up to whole 2 MiB pages (less than 2 MiB unused per buffer; none at K = N = 4096).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace qconf {

inline constexpr size_t kLargeBufferBytes = size_t{2} << 20;  // one x86-64 huge page

// Allocates `bytes` (>= 1) as described above; release with free_large_buffer. Throws
// std::bad_alloc when the memory is not available.
inline void* allocate_large_buffer(size_t bytes) {
  const size_t align = bytes >= kLargeBufferBytes ? kLargeBufferBytes : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A hint: where THP is disabled this fails harmlessly and the 4 KiB pages are used.
  if (align == kLargeBufferBytes) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

inline void free_large_buffer(void* p) { std::free(p); }

// std::allocator replacement for containers of streamed bytes (WqbmmWeights::packed).
template <class T>
struct LargeBufferAllocator {
  using value_type = T;
  LargeBufferAllocator() = default;
  template <class U>
  LargeBufferAllocator(const LargeBufferAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(allocate_large_buffer(n == 0 ? 1 : n * sizeof(T)));
  }
  void deallocate(T* p, size_t) { free_large_buffer(p); }
  template <class U>
  bool operator==(const LargeBufferAllocator<U>&) const {
    return true;
  }
};

}  // namespace qconf
