#include "bf16.h"

namespace bl {

void pack_bf16_pairs(const float* src, int64_t channels, int64_t src_stride, int64_t stride, int64_t n, uint16_t* dst,
                     int64_t c0, int64_t c1) {
  // [c0, c1) is a range of pairs, so threads split the work without sharing a destination pair.
  for (int64_t pair = c0; pair < c1; ++pair) {
    const float* a = src + 2 * pair * src_stride;
    const bool has_b = 2 * pair + 1 < channels;
    const float* b = a + src_stride;
    uint16_t* out = dst + 2 * pair * stride;
    for (int64_t p = 0; p < n; ++p) {
      out[2 * p] = f32_to_bf16(a[p]);
      out[2 * p + 1] = has_b ? f32_to_bf16(b[p]) : 0;
    }
  }
}

namespace {

// The one loop behind both weight packers: destination [block][pair][tap][co_block][2], channels past `channels`
// zero; `weight(b, ci, t, c)` reads the source (0 for an output channel past the weights).
template <typename Weight>
void pack_pairs_by_block(int64_t channels, int64_t taps, int co_block, uint16_t* w2, int64_t b0, int64_t b1,
                         Weight weight) {
  const int64_t pairs = (channels + 1) / 2;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t pr = 0; pr < pairs; ++pr)
      for (int64_t t = 0; t < taps; ++t)
        for (int c = 0; c < co_block; ++c)
          for (int j = 0; j < 2; ++j) {
            const int64_t ci = 2 * pr + j;
            w2[(((b * pairs + pr) * taps + t) * co_block + c) * 2 + j] = ci < channels ? f32_to_bf16(weight(b, ci, t, c)) : 0;
          }
}

}  // namespace

void pack_bf16_weights_pairs_raw(const float* w, int64_t cout, int64_t cin, int64_t taps, int co_block, uint16_t* w2,
                                 int64_t b0, int64_t b1) {
  pack_pairs_by_block(cin, taps, co_block, w2, b0, b1, [&](int64_t b, int64_t ci, int64_t t, int c) {
    const int64_t co = b * co_block + c;
    return co < cout ? w[(co * cin + ci) * taps + t] : 0.0f;
  });
}

void pack_bf16_weight_pairs(const float* w, int64_t channels, int64_t taps, int co_block, uint16_t* w2, int64_t b0,
                            int64_t b1) {
  pack_pairs_by_block(channels, taps, co_block, w2, b0, b1, [&](int64_t b, int64_t ci, int64_t t, int c) {
    return w[((b * channels + ci) * taps + t) * co_block + c];
  });
}

}  // namespace bl
