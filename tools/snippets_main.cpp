// snippets: checks (default) or rewrites (--update) the code quoted in the
// course's Markdown from the real source. See snippets.hpp for the markers.
#include <iostream>
#include <string>

#include "snippets.hpp"

int main(int argc, char** argv) {
  std::string root = NN_SOURCE_DIR;
  bool do_update = argc > 1 && std::string(argv[1]) == "--update";
  if (argc > 1 && !do_update) {
    std::cout << "usage: snippets [--update]\n  checks (or rewrites) every quoted snippet in the "
                 "course's Markdown\n";
    return std::string(argv[1]) == "--help" ? 0 : 2;
  }
  int bad = 0;
  try {
    for (const auto& md : snippets::markdown_files(root)) {
      if (do_update) {
        if (snippets::update(root, md)) std::cout << "updated " << md.string() << "\n";
      } else {
        for (const auto& p : snippets::check(root, md)) {
          std::cerr << p.markdown.string() << ":" << p.line << ": " << p.message << "\n";
          ++bad;
        }
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "snippets: error: " << e.what() << "\n";
    return 1;
  }
  return bad == 0 ? 0 : 1;
}
