#pragma once
// Counter-based random numbers for the layers that are random in training
// (Dropout, RandomTranslation): the number for element `index` of draw `draw`
// depends only on (seed, draw, index), so a mask is the same whatever the
// thread count and whichever thread computes which element, and a test can
// replay any draw.
#include <cstdint>

namespace nn {

// SplitMix64's finaliser: a bijection of 64-bit integers that mixes every
// input bit into every output bit.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The key of one draw (one training call of a layer): mixes the seed and the
// draw number.
constexpr std::uint64_t draw_key(std::uint64_t seed, std::uint64_t draw) { return mix64(mix64(seed) ^ draw); }

// A uniform number in [0, 1), a multiple of 2^-24 (exact in float), for
// element `index` of the draw with key `key`.
constexpr float uniform01(std::uint64_t key, std::uint64_t index) {
  // The top 24 bits, through int32 (exact below 2^24), which vectorizes where
  // a 64-bit integer to float conversion does not.
  return static_cast<float>(static_cast<std::int32_t>(mix64(key + index) >> 40)) * 0x1p-24f;
}

}  // namespace nn
