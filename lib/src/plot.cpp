#include "nn/plot.hpp"

#include <fmt/format.h>
#include <gnuplot-iostream.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "nn/error.hpp"

namespace nn::plot {

namespace fs = std::filesystem;

bool gnuplot_available() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::error_code ec;
    if (!dir.empty() && fs::is_regular_file(fs::path(dir) / "gnuplot", ec)) return true;
  }
  return false;
}

std::string quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

namespace {
// A shell word for popen's command line.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

struct Png::Impl {
  explicit Impl(const std::string& cmd) : gp(cmd) {}
  Gnuplot gp;
};

Png::Png(fs::path file, int width, int height) : file_(std::move(file)) {
  if (!gnuplot_available())
    throw Error(fmt::format("{}: cannot draw: gnuplot is not installed (apt-get install gnuplot-nox)",
                            file_.string()));
  std::error_code ec;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), ec);
  if (ec) throw Error(fmt::format("{}: cannot create folder: {}", file_.parent_path().string(), ec.message()));
  tmp_ = file_;
  tmp_ += ".tmp";
  log_ = file_;
  log_ += ".log";
  // gnuplot's messages go to the log; a non-zero exit is recorded in it too.
  std::string cmd = fmt::format("gnuplot 2>{0} || echo \"gnuplot-exit-status $?\" >>{0}",
                                shell_quote(log_.string()));
  // If gnuplot dies early, writes to its pipe must fail, not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  impl_ = std::make_unique<Impl>(cmd);
  impl_->gp << fmt::format("set terminal pngcairo size {},{} font 'Sans,10'\nset output {}\n",
                           width, height, quote(tmp_.string()));
}

Png::~Png() {
  if (impl_) {  // finish() was not called: an exception is unwinding
    impl_.reset();
    std::error_code ec;
    fs::remove(tmp_, ec);
    fs::remove(log_, ec);
  }
}

std::ostream& Png::gp() { return impl_->gp; }

void Png::finish() {
  impl_->gp << "set output\n";
  impl_.reset();  // closes the pipe and waits for gnuplot to exit
  std::ifstream log_in(log_);
  std::string log((std::istreambuf_iterator<char>(log_in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  fs::remove(log_, ec);
  bool failed = log.find("gnuplot-exit-status") != std::string::npos;
  if (failed || !fs::exists(tmp_) || fs::file_size(tmp_, ec) == 0) {
    fs::remove(tmp_, ec);
    // gnuplot's message spans lines (the command, a caret, the reason): keep them on one.
    std::string reason;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      auto b = line.find_first_not_of(" \t^");
      if (b == std::string::npos || line.starts_with("gnuplot-exit-status")) continue;
      reason += (reason.empty() ? "" : " | ") + line.substr(b);
    }
    throw Error(fmt::format("{}: gnuplot failed: {}", file_.string(), reason));
  }
  fs::rename(tmp_, file_, ec);
  if (ec) throw Error(fmt::format("{}: cannot rename into place: {}", file_.string(), ec.message()));
}

std::vector<float> channel_image(const Tensor& t, std::size_t n, std::size_t c) {
  if (t.rank() != 4 || n >= t.dim(0) || c >= t.dim(3))
    throw Error(fmt::format("channel_image: no image {} channel {} in a tensor of shape {}", n, c, t.shape().str()));
  const std::size_t h = t.dim(1), w = t.dim(2), channels = t.dim(3);
  std::vector<float> out(h * w);  // out: (H, W)
  for (std::size_t i = 0; i < h * w; ++i) out[i] = t[(n * h * w + i) * channels + c];
  return out;
}

namespace {
template <typename T>
void send_matrix_impl(std::ostream& gp, const T* data, std::size_t rows, std::size_t cols) {
  std::string text;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      if constexpr (std::is_same_v<T, float>)
        text += fmt::format("{:.6g} ", data[r * cols + c]);
      else
        text += fmt::format("{} ", +data[r * cols + c]);
    }
    text += '\n';
  }
  gp << text << "e\n";
}
}  // namespace

namespace {
template <typename T>
void image_impl(std::ostream& gp, const T* data, std::size_t rows, std::size_t cols) {
  gp << fmt::format("set xrange [-0.5:{}]; set yrange [{}:-0.5]\nplot '-' matrix with image\n", cols - 0.5,
                    rows - 0.5);
  send_matrix(gp, data, rows, cols);
}
}  // namespace

void image(std::ostream& gp, const std::uint8_t* data, std::size_t rows, std::size_t cols) {
  image_impl(gp, data, rows, cols);
}
void image(std::ostream& gp, const float* data, std::size_t rows, std::size_t cols) {
  image_impl(gp, data, rows, cols);
}

void send_matrix(std::ostream& gp, const std::uint8_t* data, std::size_t rows, std::size_t cols) {
  send_matrix_impl(gp, data, rows, cols);
}
void send_matrix(std::ostream& gp, const float* data, std::size_t rows, std::size_t cols) {
  send_matrix_impl(gp, data, rows, cols);
}

}  // namespace nn::plot
