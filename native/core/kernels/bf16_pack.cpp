#include "bf16.h"

namespace bl {

void pack_bf16_pairs(const float* src, int64_t channels, int64_t stride, int64_t n, uint16_t* dst, int64_t c0,
                     int64_t c1) {
  // [c0, c1) is a range of pairs, so threads split the work without sharing a destination pair.
  for (int64_t pair = c0; pair < c1; ++pair) {
    const float* a = src + 2 * pair * stride;
    const bool has_b = 2 * pair + 1 < channels;
    const float* b = a + stride;
    uint16_t* out = dst + 2 * pair * stride;
    for (int64_t p = 0; p < n; ++p) {
      out[2 * p] = f32_to_bf16(a[p]);
      out[2 * p + 1] = has_b ? f32_to_bf16(b[p]) : 0;
    }
  }
}

void pack_bf16_weights_pairs_raw(const float* w, int64_t cout, int64_t cin, int64_t taps, int co_block, uint16_t* w2,
                                 int64_t b0, int64_t b1) {
  const int64_t pairs = (cin + 1) / 2;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t pr = 0; pr < pairs; ++pr)
      for (int64_t t = 0; t < taps; ++t)
        for (int c = 0; c < co_block; ++c)
          for (int j = 0; j < 2; ++j) {
            const int64_t ci = 2 * pr + j, co = b * co_block + c;
            w2[(((b * pairs + pr) * taps + t) * co_block + c) * 2 + j] =
                ci < cin && co < cout ? f32_to_bf16(w[(co * cin + ci) * taps + t]) : 0;
          }
}

void pack_bf16_weight_pairs(const float* w, int64_t channels, int64_t taps, int co_block, uint16_t* w2, int64_t b0,
                            int64_t b1) {
  const int64_t pairs = (channels + 1) / 2;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t pr = 0; pr < pairs; ++pr)
      for (int64_t t = 0; t < taps; ++t)
        for (int c = 0; c < co_block; ++c)
          for (int j = 0; j < 2; ++j) {
            const int64_t ci = 2 * pr + j;
            w2[(((b * pairs + pr) * taps + t) * co_block + c) * 2 + j] =
                ci < channels ? f32_to_bf16(w[((b * channels + ci) * taps + t) * co_block + c]) : 0;
          }
}

}  // namespace bl
