#include "snippets.hpp"

#include "nn/io.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace snippets {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// "<!-- snippet: PATH NAME -->" gives PATH and NAME.
bool parse_quote(const std::string& line, std::string& path, std::string& name) {
  const std::string open = "<!-- snippet: ", close = "-->";
  std::string t = trim(line);
  if (!t.starts_with(open) || !t.ends_with(close)) return false;
  std::istringstream words(t.substr(open.size(), t.size() - open.size() - close.size()));
  std::string extra;
  return static_cast<bool>(words >> path >> name) && !(words >> extra);
}

// A quote found in Markdown: the comment line, and the fenced block's body lines [begin, end).
struct Quote {
  std::size_t comment = 0, begin = 0, end = 0;
  std::string source, name;
};

std::vector<Quote> find_quotes(const fs::path& markdown, const std::vector<std::string>& lines) {
  std::vector<Quote> quotes;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string path, name;
    if (!parse_quote(lines[i], path, name)) continue;
    Quote q{i, 0, 0, path, name};
    if (i + 1 >= lines.size() || !lines[i + 1].starts_with("```"))
      throw std::runtime_error(markdown.string() + ":" + std::to_string(i + 1) +
                               ": a snippet comment must be followed by a ``` fence");
    q.begin = i + 2;
    q.end = q.begin;
    while (q.end < lines.size() && trim(lines[q.end]) != "```") ++q.end;
    if (q.end == lines.size())
      throw std::runtime_error(markdown.string() + ":" + std::to_string(i + 1) + ": unclosed ``` fence");
    quotes.push_back(q);
    i = q.end;
  }
  return quotes;
}

std::string join(const std::vector<std::string>& lines, std::size_t begin, std::size_t end) {
  std::string out;
  for (std::size_t i = begin; i < end; ++i) out += lines[i] + "\n";
  return out;
}

}  // namespace

std::string extract(const fs::path& source, const std::string& name) {
  auto lines = read_lines(source);
  const std::string open = "[snippet " + name + "]", close = "[end snippet " + name + "]";
  std::size_t begin = lines.size(), end = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (begin == lines.size() && lines[i].find(open) != std::string::npos) begin = i + 1;
    else if (begin != lines.size() && lines[i].find(close) != std::string::npos) { end = i; break; }
  }
  if (begin == lines.size())
    throw std::runtime_error(source.string() + ": no marker '" + open + "'");
  if (end == lines.size())
    throw std::runtime_error(source.string() + ": no marker '" + close + "'");
  std::size_t indent = std::string::npos;
  for (std::size_t i = begin; i < end; ++i)
    if (!trim(lines[i]).empty()) indent = std::min(indent, lines[i].find_first_not_of(" \t"));
  std::string out;
  for (std::size_t i = begin; i < end; ++i)
    out += (lines[i].size() > indent ? lines[i].substr(indent) : trim(lines[i])) + "\n";
  return out;
}

std::vector<fs::path> markdown_files(const fs::path& root) {
  std::vector<fs::path> files;
  if (fs::exists(root / "README.md")) files.push_back(root / "README.md");
  // The chapters' test inventories quote the tests too.
  if (fs::exists(root / "tests/README.md")) files.push_back(root / "tests/README.md");
  for (const char* dir : {"chapters", "docs"}) {
    if (!fs::is_directory(root / dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / dir))
      if (e.is_regular_file() && e.path().extension() == ".md") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Problem> check(const fs::path& root, const fs::path& markdown, int* count) {
  auto lines = read_lines(markdown);
  auto quotes = find_quotes(markdown, lines);
  if (count) *count = static_cast<int>(quotes.size());
  std::vector<Problem> problems;
  for (const Quote& q : quotes) {
    Problem p{markdown, static_cast<int>(q.comment + 1), ""};
    std::string want;
    try {
      want = extract(root / q.source, q.name);
    } catch (const std::exception& e) {
      p.message = e.what();
      problems.push_back(p);
      continue;
    }
    std::string have = join(lines, q.begin, q.end);
    if (have == want) continue;
    std::istringstream a(have), b(want);
    std::string la, lb;
    int n = 1;
    while (true) {
      bool ga = static_cast<bool>(std::getline(a, la)), gb = static_cast<bool>(std::getline(b, lb));
      if (!ga && !gb) break;
      if (!ga || !gb || la != lb) {
        p.message = "quote of " + q.source + " [" + q.name + "] differs at its line " +
                    std::to_string(n) + ":\n  README: " + (ga ? la : "<end>") +
                    "\n  source: " + (gb ? lb : "<end>");
        break;
      }
      ++n;
    }
    problems.push_back(p);
  }
  return problems;
}

bool update(const fs::path& root, const fs::path& markdown) {
  auto lines = read_lines(markdown);
  auto quotes = find_quotes(markdown, lines);
  std::vector<std::string> out;
  std::size_t next = 0;
  for (const Quote& q : quotes) {
    out.insert(out.end(), lines.begin() + next, lines.begin() + q.begin);
    std::istringstream body(extract(root / q.source, q.name));
    for (std::string l; std::getline(body, l);) out.push_back(l);
    next = q.end;
  }
  out.insert(out.end(), lines.begin() + next, lines.end());
  if (out == lines) return false;
  std::string text;
  for (const auto& l : out) text += l + "\n";
  nn::write_file_atomic(markdown, text);  // a fresh temporary beside it, then one rename
  return true;
}

}  // namespace snippets
