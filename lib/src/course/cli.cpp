#include "nn/cli.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <cstdlib>
#include <iostream>
#include <new>
#include <random>

#include "nn/error.hpp"
#include "nn/npy.hpp"

namespace nn::cli {

namespace fs = std::filesystem;

fs::path default_data_dir() {
  if (const char* env = std::getenv("MNIST_DIR"); env && *env) return env;
  return NN_DEFAULT_DATA_DIR;
}

fs::path default_plots_dir() { return NN_DEFAULT_PLOTS_DIR; }

fs::path default_weights_dir() { return NN_DEFAULT_WEIGHTS_DIR; }

Sequential load_trained_model(const fs::path& dir) {
  // A folder that cannot be looked at (no permission, a symlink loop) goes on
  // to load, which names the cause.
  std::error_code manifest_ec, kernel_ec;
  if (!fs::exists(dir / "manifest.txt", manifest_ec) && !fs::exists(dir / "dense.kernel.npy", kernel_ec) &&
      !manifest_ec && !kernel_ec)
    throw Error(fmt::format("{}: no saved weights here. Run chapter 10 first: build/bin/ch10-fit "
                            "(it saves its weights in {}), or pass --load DIR",
                            dir.string(), default_weights_dir().string()));
  Sequential model = make_mnist_model(0);
  model.load(dir);
  return model;
}

std::uint64_t Common::seed_or_random() const {
  if (seed) return *seed;
  return (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
}

std::string IntRange::str() const { return shown ? std::string(shown) : fmt::format("{}..{}", min, max); }

std::string RealRange::str() const {
  return fmt::format("{}{}, {}{}", open_min ? "(" : "[", min, max, open_max ? ")" : "]");
}

Parser::Parser(std::string program, std::string about)
    : program_(std::move(program)), about_(std::move(about)) {
  add({.name = "--help", .metavar = "", .help = "print this help and exit", .default_text = "", .range_text = "",
       .set = nullptr, .flag = nullptr});
}

void Parser::add(Option o) { options_.push_back(std::move(o)); }

void Parser::flag(std::string name, std::string help, bool* target) {
  add({.name = std::move(name), .metavar = "", .help = std::move(help), .default_text = "", .range_text = "",
       .set = nullptr, .flag = target});
}

namespace {

// Whether `text` spells an integer: an optional minus sign, then digits.
bool spells_integer(std::string_view text) {
  if (text.starts_with('-')) text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The integer `text` spells, checked against `range`. A number too large for
// 64 bits is outside any range, not malformed: it is reported as such.
std::int64_t parse_integer(const std::string& option, const std::string& text, IntRange range) {
  if (!spells_integer(text)) throw Error(fmt::format("{} {} is not an integer", option, text));
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range || value < range.min || value > range.max)
    throw Error(fmt::format("{} {} is outside {}", option, text, range.str()));
  return value;
}

double parse_real(const std::string& option, const std::string& text, RealRange range) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
    throw Error(fmt::format("{} {} is not a number", option, text));
  // from_chars reads "inf" and "nan"; 1e999 does not fit a double.
  if (ec == std::errc() && !std::isfinite(value))
    throw Error(fmt::format("{} {} is not a finite number", option, text));
  const bool above_min = range.open_min ? value > range.min : value >= range.min;
  const bool below_max = range.open_max ? value < range.max : value <= range.max;
  if (ec == std::errc::result_out_of_range || !above_min || !below_max) throw Error(fmt::format("{} {} is outside {}", option, text, range.str()));
  return value;
}

// A range wider than the target's type would let a value wrap when stored.
template <typename T>
void check_fits(const std::string& option, IntRange range) {
  if (range.min > range.max || range.min < std::numeric_limits<T>::min() || range.max > std::numeric_limits<T>::max())
    throw std::logic_error(fmt::format("{}: range {} does not fit its type", option, range.str()));
}

}  // namespace

void Parser::option(std::string name, std::string metavar, std::string help, std::string* target) {
  add({name, std::move(metavar), std::move(help), *target, "", [target](const std::string& v) { *target = v; }});
}

void Parser::option(std::string name, std::string metavar, std::string help, fs::path* target) {
  add({name, std::move(metavar), std::move(help), target->string(), "",
       [target](const std::string& v) { *target = v; }});
}

void Parser::option(std::string name, std::string metavar, std::string help, int* target, IntRange range) {
  check_fits<int>(name, range);
  add({name, std::move(metavar), std::move(help), std::to_string(*target), range.str(),
       [target, name, range](const std::string& v) { *target = static_cast<int>(parse_integer(name, v, range)); }});
}

void Parser::option(std::string name, std::string metavar, std::string help, std::int64_t* target, IntRange range) {
  check_fits<std::int64_t>(name, range);
  add({name, std::move(metavar), std::move(help), std::to_string(*target), range.str(),
       [target, name, range](const std::string& v) { *target = parse_integer(name, v, range); }});
}

void Parser::option(std::string name, std::string metavar, std::string help, double* target, RealRange range) {
  if (!(range.min <= range.max) || !std::isfinite(range.min) || !std::isfinite(range.max))
    throw std::logic_error(fmt::format("{}: range {} is not a finite interval", name, range.str()));
  add({name, std::move(metavar), std::move(help), fmt::format("{}", *target), range.str(),
       [target, name, range](const std::string& v) { *target = parse_real(name, v, range); }});
}

void Parser::option(std::string name, std::string metavar, std::string help,
                    std::optional<std::uint64_t>* target) {
  add({name, std::move(metavar), std::move(help), *target ? std::to_string(**target) : "random",
       fmt::format("0..{}", UINT64_MAX), [target, name](const std::string& v) {
         if (!spells_integer(v)) throw Error(fmt::format("{} {} is not an integer", name, v));
         std::uint64_t value = 0;
         auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);  // "-1" fails: no sign
         if (v.starts_with('-') || ec == std::errc::result_out_of_range)
           throw Error(fmt::format("{} {} is outside 0..{}", name, v, UINT64_MAX));
         *target = value;
       }});
}

void Parser::option(std::string name, std::string metavar, std::string help, std::optional<std::int64_t>* target,
                    std::string unset_text, IntRange range) {
  check_fits<std::int64_t>(name, range);
  add({name, std::move(metavar), std::move(help), *target ? std::to_string(**target) : std::move(unset_text),
       range.str(), [target, name, range](const std::string& v) { *target = parse_integer(name, v, range); }});
}

void Parser::add_common(Common& common, bool with_seed) {
  common.data = default_data_dir();
  common.plots = default_plots_dir();
  option("--data", "DIR", "dataset folder: MNIST or Fashion-MNIST IDX files, raw or .gz "
                          "(else $MNIST_DIR)", &common.data);
  option("--plots", "DIR", "folder for the PNG plots this run draws", &common.plots);
  if (with_seed) option("--seed", "N", "seed for every random choice, to repeat a run", &common.seed);
}

std::string Parser::usage() const {
  std::string out = fmt::format("usage: {} [options]\n\n{}\n\noptions:\n", program_, about_);
  for (const Option& o : options_) {
    std::string left = o.metavar.empty() ? o.name : o.name + " " + o.metavar;
    out += fmt::format("  {:<18} {}", left, o.help);
    if (!o.range_text.empty()) out += fmt::format(" (in {}; default: {})", o.range_text, o.default_text);
    else if (!o.default_text.empty()) out += fmt::format(" (default: {})", o.default_text);
    out += "\n";
  }
  return out;
}

bool Parser::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (arg == "--help" || arg == "-h") {
      std::cout << usage();
      return false;
    }
    const Option* found = nullptr;
    for (const Option& o : options_)
      if (o.name == arg) found = &o;
    if (found == nullptr) {
      if (arg.starts_with("-"))
        throw Error(fmt::format("unknown option '{}' (see --help)", arg));
      throw Error(fmt::format("unexpected argument '{}' (see --help)", arg));
    }
    if (found->flag != nullptr) {
      if (has_value) throw Error(fmt::format("option {} takes no value", arg));
      *found->flag = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) throw Error(fmt::format("option {} needs a value: {} {}", arg, arg, found->metavar));
      value = argv[++i];
    }
    // An empty value is a slip (an unset shell variable, --save=), never a choice.
    if (value.empty()) throw Error(fmt::format("{} needs a value (got an empty string)", arg));
    found->set(value);
  }
  return true;
}

std::size_t checked_index(const std::string& option, std::int64_t index, std::size_t count, const std::string& what) {
  if (count == 0) throw Error(fmt::format("{} {}: {} is empty", option, index, what));
  if (index < 0 || static_cast<std::uint64_t>(index) >= count)
    throw Error(fmt::format("{} {} is outside 0..{}", option, index, count - 1));
  return static_cast<std::size_t>(index);
}

void require_images(const fs::path& data, std::size_t count, std::size_t needed, const std::string& set,
                    const std::string& why) {
  if (count >= needed) return;
  throw Error(fmt::format("{}: the {} {}: {}", data.string(), set,
                          count == 0 ? "is empty" : fmt::format("holds only {} image{}", count, count == 1 ? "" : "s"),
                          why));
}

int run(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": internal error: " << e.what() << "\n";
  }
  return 1;
}

void write_probabilities(const std::filesystem::path& file, const Tensor& p, const Evaluation& test) {
  save_npy(file, p);  // written whole or not at all
  fmt::print("\ntest set: loss {:.6f} accuracy {:.6f}\nWrote the probabilities {} to {}\n", test.loss, test.accuracy,
             p.shape().str(), file.string());
}

}  // namespace nn::cli
