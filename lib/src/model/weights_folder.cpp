#include <fmt/format.h>

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/model.hpp"
#include "nn/npy.hpp"

// Sequential::save and load: the weights folder.
//
// One .npy file per weight tensor, with Keras's names, and a manifest.txt
// written last that ties them into one set:
//
//   # Line by Line weights: load() checks every file against this list.
//   format 1
//   epoch 3
//   file conv2d.kernel.npy 1280 crc32 5f1c0a2b
//   ...
//
// The save swaps the whole folder in at once (nn::replace_folder_atomic), so a
// full disk or a kill never leaves a mix; the manifest catches a folder mixed
// by hand, or files from an older version that wrote no manifest. It also
// says what a later save may replace: the files it lists, and nothing else.
namespace nn {

namespace {

constexpr const char* kManifest = "manifest.txt";
constexpr int kManifestFormat = 1;

std::uint32_t crc32_of(std::span<const std::uint8_t> bytes) {
  return static_cast<std::uint32_t>(::crc32_z(0L, bytes.data(), bytes.size()));  // zlib's CRC-32, as Python's zlib.crc32
}

struct ManifestEntry {
  std::uintmax_t bytes = 0;
  std::uint32_t crc = 0;
};

struct Manifest {
  int epoch = 0;
  std::map<std::string, ManifestEntry> files;
};

Error no_manifest(const std::filesystem::path& dir) {
  return Error(fmt::format("{}: no {}: not a complete set of weights saved by this version of the course (an older "
                           "version, or a save that never finished); save the weights again with ch10-fit",
                           dir.string(), kManifest));
}

// The manifest's text, read from `file`.
Manifest parse_manifest(const std::vector<std::uint8_t>& bytes, const std::filesystem::path& file) {
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  Manifest m;
  int format = -1;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string key, name, crc_word, crc_hex, extra;
    bool ok = false;
    if (words >> key; key == "format") {
      ok = static_cast<bool>(words >> format);
    } else if (key == "epoch") {
      ok = static_cast<bool>(words >> m.epoch);
    } else if (key == "file") {
      ManifestEntry e;
      ok = words >> name >> e.bytes >> crc_word >> crc_hex && crc_word == "crc32" && crc_hex.size() == 8 &&
           crc_hex.find_first_not_of("0123456789abcdef") == std::string::npos;
      if (ok) e.crc = static_cast<std::uint32_t>(std::stoul(crc_hex, nullptr, 16));
      ok = ok && m.files.emplace(name, e).second;  // a name listed twice is malformed
    }
    if (!ok || words >> extra)
      throw Error(fmt::format("{}: line {} is malformed: '{}'", file.string(), line_no, line));
  }
  if (format != kManifestFormat)
    throw Error(fmt::format("{}: format {} is not the {} this version reads", file.string(), format, kManifestFormat));
  return m;
}

Manifest read_manifest(const std::filesystem::path& dir) {
  const auto file = dir / kManifest;
  std::error_code ec;
  const bool found = std::filesystem::exists(file, ec);
  if (ec) throw Error(fmt::format("{}: cannot look at it: {}", file.string(), ec.message()));
  if (!found) throw no_manifest(dir);
  return parse_manifest(read_file(file), file);
}

// The folder's identity: which directory its name points at, and when its
// entries last changed. A save that swaps in a new set changes it.
struct FolderId {
  dev_t device = 0;
  ino_t inode = 0;
  std::int64_t changed_ns = 0;
  bool operator==(const FolderId&) const = default;
};

FolderId folder_id(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

// What a load reads from a folder, checked, before any of it goes into the model.
struct LoadedSet {
  int epoch = 0;
  std::vector<Tensor> tensors;  // in the order of the model's named_parameters()
};

LoadedSet read_set(const std::filesystem::path& dir, const std::vector<NamedParameter>& ws) {
  // Every file is opened before any is read: what is read is the set that was
  // in the folder at that moment, even if a save swaps in another meanwhile.
  FolderReader folder(dir);
  const bool has_manifest = folder.open(kManifest);
  for (const NamedParameter& w : ws) folder.open(w.name + ".npy");
  if (!has_manifest) throw no_manifest(dir);
  const Manifest manifest = parse_manifest(folder.read(kManifest), dir / kManifest);
  LoadedSet set{.epoch = manifest.epoch, .tensors = {}};
  for (const NamedParameter& w : ws) {
    const std::string name = w.name + ".npy";
    const auto file = dir / name;
    const auto listed = manifest.files.find(name);
    if (listed == manifest.files.end())
      throw Error(fmt::format("{}: lists no {}: the folder holds the weights of another model", (dir / kManifest).string(),
                              name));
    const auto bytes = folder.read(name);
    if (bytes.size() != listed->second.bytes || crc32_of(bytes) != listed->second.crc)
      throw Error(fmt::format("{}: does not match the manifest ({} bytes, crc32 {:08x}; it lists {} bytes, crc32 "
                              "{:08x}): the folder mixes files from different saves",
                              file.string(), bytes.size(), crc32_of(bytes), listed->second.bytes, listed->second.crc));
    Tensor t = decode_npy(bytes, file.string());  // the very bytes the checksum covered
    if (!(t.shape() == w.parameter->value.shape()))
      throw Error(fmt::format("{}: shape {} does not match the model's {} {}", file.string(), t.shape().str(), w.name,
                              w.parameter->value.shape().str()));
    const float* bad = std::find_if(t.data(), t.data() + t.size(), [](float v) { return !std::isfinite(v); });
    if (bad != t.data() + t.size())
      throw Error(fmt::format("{}: value {} is {}; these weights are not usable (training diverged?)", file.string(),
                              bad - t.data(), std::isnan(*bad) ? "NaN" : *bad > 0 ? "inf" : "-inf"));
    set.tensors.push_back(std::move(t));
  }
  for (const auto& listed : manifest.files) {  // every listed file was loaded above
    const std::string& name = listed.first;      // (clang 14 cannot capture a structured binding)
    if (std::none_of(ws.begin(), ws.end(), [&](const NamedParameter& w) { return w.name + ".npy" == name; }))
      throw Error(fmt::format("{}: lists {}, which the model has no weight for: the folder holds the weights of "
                              "another model",
                              (dir / kManifest).string(), name));
  }
  return set;
}

}  // namespace

void Sequential::save(const std::filesystem::path& dir, int epoch) {
  const std::vector<NamedParameter> ws = named_parameters();
  // A save replaces only what an earlier save wrote: the files its manifest
  // lists, whatever the layers call their weights. A folder without a
  // manifest is an older version's set (it wrote the same names, without a
  // manifest, and could leave a .npy.tmp) when it holds nothing else than
  // this model's weight files; anything else in a folder is the user's.
  auto foreign = [&](const std::filesystem::path& old, const std::vector<std::string>& files) -> std::string {
    std::set<std::string> written;
    const bool has_manifest = std::find(files.begin(), files.end(), kManifest) != files.end();
    if (has_manifest) {
      try {
        for (const auto& listed : read_manifest(old).files) written.insert(listed.first);
      } catch (const Error& e) {
        return fmt::format("holds a {} that does not read as a saved set's ({})", kManifest, e.what());
      }
      written.insert(kManifest);
    } else {
      for (const NamedParameter& w : ws) {
        written.insert(w.name + ".npy");
        written.insert(w.name + ".npy.tmp");
      }
    }
    for (const std::string& file : files)
      if (!written.count(file))
        return has_manifest ? fmt::format("holds {}, which its {} does not list", file, kManifest)
                            : fmt::format("holds {}, which is not a weight file of this model (and there is no {} "
                                          "to say a save wrote it)",
                                          file, kManifest);
    return "";
  };
  replace_folder_atomic(
      dir,
      [&](const std::filesystem::path& staging) {
        std::string manifest = fmt::format(
            "# Line by Line weights: load() checks every file against this list.\nformat {}\nepoch {}\n",
            kManifestFormat, epoch);
        for (const NamedParameter& w : ws) {
          const std::string file = w.name + ".npy";
          const std::vector<std::uint8_t> bytes = encode_npy(w.parameter->value);
          write_file_atomic(staging / file, bytes);
          manifest += fmt::format("file {} {} crc32 {:08x}\n", file, bytes.size(), crc32_of(bytes));
        }
        write_file_atomic(staging / kManifest, manifest);  // last: a set without it is incomplete
      },
      foreign);
}

int Sequential::load(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(dir, ec);
  if (ec && status.type() != std::filesystem::file_type::not_found)
    throw Error(fmt::format("{}: cannot open the weights folder: {}", dir.string(), ec.message()));
  if (!std::filesystem::is_directory(status)) throw Error(fmt::format("{}: no such weights folder", dir.string()));
  // Read and check everything first, so that a bad file leaves the model
  // unchanged. Another process may swap in a new set while the files are
  // read: the checksums then catch a mix, the folder's identity tells that it
  // changed, and the load starts again on the new set.
  const std::vector<NamedParameter> ws = named_parameters();
  constexpr int kTries = 20;
  for (int attempt = 1;; ++attempt) {
    const FolderId before = folder_id(dir);
    try {
      LoadedSet set = read_set(dir, ws);
      for (std::size_t i = 0; i < ws.size(); ++i) ws[i].parameter->value = std::move(set.tensors[i]);
      return set.epoch;
    } catch (const Error&) {
      if (folder_id(dir) == before) throw;  // the same set all along: the error is the folder's
      if (attempt == kTries)
        throw Error(fmt::format("{}: a new set of weights was saved into it {} times while it was being read; load "
                                "it once the saving is done",
                                dir.string(), kTries));
    }
  }
}

}  // namespace nn
