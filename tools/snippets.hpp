#pragma once
// Code quoted in the course's Markdown stays a copy of the real source.
//
// In a source file, a region is marked with comments:
//     // [snippet idx-header]
//     ...code...
//     // [end snippet idx-header]
//
// In a README, the quote names the file and the region, and the fenced block
// after it holds the region's lines with their common indentation removed:
//     <!-- snippet: lib/src/data/idx.cpp idx-header -->
//     ```cpp
//     ...code...
//     ```
//
// check() lists every quote whose copy differs from the source; update()
// rewrites the quotes from the source (run `build/bin/snippets --update`).
#include <filesystem>
#include <string>
#include <vector>

namespace snippets {

struct Problem {
  std::filesystem::path markdown;
  int line = 0;             // 1-based line of the <!-- snippet: --> comment
  std::string message;      // what is wrong, with the first differing line
};

// The region `name` of `source`, dedented; throws std::runtime_error if absent.
std::string extract(const std::filesystem::path& source, const std::string& name);

// The Markdown files of the course under `root`: README.md, tests/README.md,
// chapters/*/README.md, docs/*.md.
std::vector<std::filesystem::path> markdown_files(const std::filesystem::path& root);

// Checks every quote in `markdown` (paths in it are relative to `root`).
// `quotes` counts the quotes found.
std::vector<Problem> check(const std::filesystem::path& root, const std::filesystem::path& markdown,
                           int* quotes = nullptr);

// Rewrites every quote in `markdown` from its source; returns true if the file changed.
bool update(const std::filesystem::path& root, const std::filesystem::path& markdown);

}  // namespace snippets
