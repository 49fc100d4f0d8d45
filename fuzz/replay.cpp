// Replays every file of a seed corpus through a fuzz target, without
// libFuzzer: `idx_fuzz_replay fuzz/corpus`, `npy_fuzz_replay fuzz/corpus-npy`,
// `pgm_fuzz_replay fuzz/corpus-pgm`. Built and run as tests by the ordinary
// (g++) build.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& e : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream in(e.path(), std::ios::binary);
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++files;
    }
  }
  std::cout << "replayed " << files << " corpus files\n";
  return files > 0 ? 0 : 1;
}
