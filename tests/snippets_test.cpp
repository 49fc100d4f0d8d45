// Code quoted in the course's Markdown must match the source it quotes.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "snippets.hpp"
#include "testing.hpp"

namespace {

using testing_nn::source_dir;
using testing_nn::TempDir;

void write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(Snippets, EveryQuoteInTheCourseMatchesItsSource) {
  int total = 0;
  for (const auto& md : snippets::markdown_files(source_dir())) {
    int quotes = 0;
    for (const auto& p : snippets::check(source_dir(), md, &quotes))
      ADD_FAILURE() << p.markdown.string() << ":" << p.line << ": " << p.message
                    << "\n(run build/bin/snippets --update after changing the source)";
    total += quotes;
  }
  // The course quotes its code; if no quote is found the scanner is broken.
  EXPECT_GT(total, 0);
}

TEST(Snippets, ADriftedQuoteIsReportedAndUpdateRepairsIt) {
  TempDir dir;
  write(dir / "lib/a.cpp", "int f() {\n  // [snippet body]\n  return 1;\n  // [end snippet body]\n}\n");
  write(dir / "README.md",
        "Text\n<!-- snippet: lib/a.cpp body -->\n```cpp\nreturn 2;\n```\nMore\n");
  auto problems = snippets::check(dir.path(), dir / "README.md");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].line, 2);
  EXPECT_NE(problems[0].message.find("README: return 2;"), std::string::npos) << problems[0].message;
  EXPECT_NE(problems[0].message.find("source: return 1;"), std::string::npos) << problems[0].message;

  EXPECT_TRUE(snippets::update(dir.path(), dir / "README.md"));
  EXPECT_TRUE(snippets::check(dir.path(), dir / "README.md").empty());
  std::ifstream in(dir / "README.md");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "Text\n<!-- snippet: lib/a.cpp body -->\n```cpp\nreturn 1;\n```\nMore\n");
}

// tests/README.md holds the chapters' test inventories, with code quoted from
// the tests; its quotes are checked like a chapter's. The fixtures' READMEs
// quote nothing and stay out.
TEST(Snippets, TheTestsReadmeIsCheckedButNotTheFixtures) {
  TempDir dir;
  write(dir / "README.md", "x\n");
  write(dir / "tests/README.md", "x\n");
  write(dir / "tests/fixtures/data/README.md", "x\n");
  auto files = snippets::markdown_files(dir.path());
  auto listed = [&](const std::filesystem::path& p) {
    return std::find(files.begin(), files.end(), p) != files.end();
  };
  EXPECT_TRUE(listed(dir / "README.md"));
  EXPECT_TRUE(listed(dir / "tests/README.md"));
  EXPECT_FALSE(listed(dir / "tests/fixtures/data/README.md"));
}

TEST(Snippets, AMissingRegionIsReported) {
  TempDir dir;
  write(dir / "lib/a.cpp", "int x;\n");
  write(dir / "README.md", "<!-- snippet: lib/a.cpp gone -->\n```cpp\nint x;\n```\n");
  auto problems = snippets::check(dir.path(), dir / "README.md");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].message.find("no marker '[snippet gone]'"), std::string::npos);
}

}  // namespace
