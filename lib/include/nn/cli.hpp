#pragma once
// The command line every chapter executable shares:
// --data DIR, --plots DIR, --seed N, --help, plus the chapter's own options.
//
//   nn::cli::Parser cli("ch01-idx-loading", "Loads MNIST from its IDX files.");
//   nn::cli::Common common;
//   cli.add_common(common);
//   int rows = 5;
//   cli.option("--rows", "N", "rows in the digit grid", &rows, {0, 100});
//
// Every numeric option states its valid values, which --help shows and parse
// checks: "--rows 101 is outside 0..100". A string or path option refuses an
// empty value.
//   if (!cli.parse(argc, argv)) return 0;   // --help was printed
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "nn/model.hpp"

namespace nn::cli {

struct Common {
  std::filesystem::path data;    // --data, else $MNIST_DIR, else <repo>/data/mnist
  std::filesystem::path plots;   // --plots, else <build>/plots
  std::optional<std::uint64_t> seed;  // --seed; empty when not given

  // The seed to use: --seed if given, else a fresh random one (print it so a
  // run can be repeated).
  std::uint64_t seed_or_random() const;
};

std::filesystem::path default_data_dir();
std::filesystem::path default_plots_dir();
// Where chapter 10 saves its weights and chapter 11 loads them: <build>/weights.
std::filesystem::path default_weights_dir();
// The course's model (nn::make_mnist_model) with the weights chapter 10 saved
// in `dir` (Sequential::load); an nn::Error that says to run chapter 10 first
// when `dir` holds none.
Sequential load_trained_model(const std::filesystem::path& dir);

// --probabilities FILE (ch11-predict, ch12-beyond): p, the test set's
// (N, classes) probabilities from model.predict, written to FILE as .npy
// (whole or not at all), and the line "test set: loss L accuracy A" from
// `test`, model.evaluate on the same images: what
// tools/keras-reference/check-weights.mjs compares with Keras.
void write_probabilities(const std::filesystem::path& file, const Tensor& p, const Evaluation& test);

// An integer option's valid values, both ends included: {1, 1000} is 1..1000.
struct IntRange {
  std::int64_t min, max;
  const char* shown = nullptr;  // what --help and errors say instead of min..max, if set
  std::string str() const;  // "1..1000"
};

// A real option's valid values: [min, max], an end left out where it is open
// ({.min = 0, .max = 1, .open_max = true} is [0, 1)). Infinities and NaN are never valid.
struct RealRange {
  double min, max;
  bool open_min = false, open_max = false;
  std::string str() const;  // "[0, 1)"
};

// An --index option: parsed as any value an IDX file's uint32 dims could
// make sense of, negative ones included, so that checked_index, which knows
// the count once the data is loaded, says "--index -2 is outside 0..9".
inline constexpr IntRange kIndexRange{-4294967295, 4294967294, "0..(the number of images - 1)"};

class Parser {
 public:
  Parser(std::string program, std::string about);

  void flag(std::string name, std::string help, bool* target);
  void option(std::string name, std::string metavar, std::string help, std::string* target);
  void option(std::string name, std::string metavar, std::string help, std::filesystem::path* target);
  // The range must fit the target's type (a logic_error otherwise).
  void option(std::string name, std::string metavar, std::string help, int* target, IntRange range);
  void option(std::string name, std::string metavar, std::string help, std::int64_t* target, IntRange range);
  void option(std::string name, std::string metavar, std::string help, double* target, RealRange range);
  // A seed: any value of 0..2^64-1.
  void option(std::string name, std::string metavar, std::string help,
              std::optional<std::uint64_t>* target);
  // An integer that may be left out (its default shows as `unset_text`).
  void option(std::string name, std::string metavar, std::string help, std::optional<std::int64_t>* target,
              std::string unset_text, IntRange range);
  // --data, --plots and (unless with_seed is false) --seed.
  void add_common(Common& common, bool with_seed = true);

  // Parses argv. Returns false after printing the usage for --help; throws
  // nn::Error for an unknown option, a missing or empty value, a malformed
  // number ("--epochs 1.5 is not an integer") or one outside its range
  // ("--epochs 4294967296 is outside 1..1000").
  bool parse(int argc, char** argv);
  std::string usage() const;
  const std::string& program() const { return program_; }

 private:
  struct Option {
    std::string name, metavar, help, default_text;
    std::string range_text;  // "1..1000" for a numeric option, else empty
    std::function<void(const std::string&)> set;  // null for flags
    bool* flag = nullptr;
  };
  void add(Option o);
  std::string program_, about_;
  std::vector<Option> options_;
};

// An --index option's value checked against a set of `count` items (`what`:
// "the test set"): returns it, or throws nn::Error "--index -2 is outside
// 0..9", or "--index 0: the test set is empty".
std::size_t checked_index(const std::string& option, std::int64_t index, std::size_t count, const std::string& what);

// Refuses a set of `count` images (`set`: "training set") that a chapter needs
// `needed` of, before anything is drawn from it: "<data>: the training set is
// empty: <why>", or "... holds only 5 images: <why>".
void require_images(const std::filesystem::path& data, std::size_t count, std::size_t needed, const std::string& set,
                    const std::string& why);

// Runs a chapter's body, turning an nn::Error (or any other exception) into
// one line on stderr, "<program>: error: <message>", and exit status 1.
int run(const std::string& program, const std::function<int()>& body);

}  // namespace nn::cli
