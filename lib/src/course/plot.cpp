#include "nn/plot.hpp"

#include <fmt/format.h>
#include <gnuplot-iostream.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <sstream>

#include "nn/error.hpp"
#include "nn/io.hpp"

extern char** environ;

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

namespace {
// `text` with its control characters written as escapes, for a message.
std::string printable(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return out;
}

// `fd` moved above 0, 1 and 2 (a process started with one of them closed
// gets it back from pipe()): dup2 onto a descriptor it already is would not
// clear O_CLOEXEC.
int above_stdio(int fd) {
  if (fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}
}  // namespace

std::string quote(const std::string& text) {
  // In single quotes gnuplot expands nothing: no back-quoted shell command, no
  // backslash escape; a quote is written twice. A control character could end
  // the command (a newline starts the next one): refused.
  std::string out = "'";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      throw Error(fmt::format("\"{}\": cannot be a plot's text: it holds a control character", printable(text)));
    out += c == '\'' ? std::string("''") : std::string(1, c);
  }
  return out + "'";
}

std::vector<double> spread_labels(const std::vector<double>& wanted, double min_gap) {
  if (!(std::isfinite(min_gap) && min_gap > 0))
    throw Error(fmt::format("spread_labels: the gap {} is not a positive number", min_gap));
  for (double w : wanted)
    if (!std::isfinite(w)) throw Error(fmt::format("spread_labels: the position {} is not finite", w));
  std::vector<std::size_t> order(wanted.size());  // the labels from the lowest wanted position up
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return wanted[a] < wanted[b]; });
  struct Group {
    std::size_t first, count;  // a run of `order`
    double sum;                // of its labels' wanted positions: it centres on their mean
  };
  auto low = [&](const Group& g) {
    const auto n = static_cast<double>(g.count);
    return g.sum / n - (n - 1) * 0.5 * min_gap;
  };
  auto high = [&](const Group& g) { return low(g) + static_cast<double>(g.count - 1) * min_gap; };
  std::vector<Group> groups;
  for (std::size_t i = 0; i < order.size(); ++i) {
    groups.push_back({i, 1, wanted[order[i]]});
    // A merged group recentres, which can make it reach down into the group
    // below: merge again until the two top groups are min_gap apart.
    while (groups.size() > 1 && low(groups.back()) - high(groups[groups.size() - 2]) < min_gap) {
      Group& below = groups[groups.size() - 2];
      below = {below.first, below.count + groups.back().count, below.sum + groups.back().sum};
      groups.pop_back();
    }
  }
  std::vector<double> placed(wanted.size());
  for (const Group& g : groups)
    for (std::size_t k = 0; k < g.count; ++k) placed[order[g.first + k]] = low(g) + static_cast<double>(k) * min_gap;
  return placed;
}

// gnuplot runs with its standard input a pipe from us, its output the
// PNG's pending file and its messages a nameless temporary file: no shell
// starts it and no file name reaches it.
struct Png::Impl {
  Impl(const fs::path& file) : out(file) {}
  PendingFile out;
  std::FILE* log = nullptr;
  pid_t pid = -1;
  std::unique_ptr<Gnuplot> gp;

  ~Impl() {
    gp.reset();  // gnuplot reads the end of its input and exits
    wait();
    if (log) std::fclose(log);
  }
  // gnuplot's exit status (-1 when it did not exit normally).
  int wait() {
    if (pid < 0) return -1;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

Png::Png(fs::path file, int width, int height) : file_(std::move(file)) {
  if (!gnuplot_available())
    throw Error(fmt::format("{}: cannot draw: gnuplot is not installed (apt-get install gnuplot-nox)",
                            file_.string()));
  std::error_code ec;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), ec);
  if (ec) throw Error(fmt::format("{}: cannot create folder: {}", file_.parent_path().string(), ec.message()));
  impl_ = std::make_unique<Impl>(file_);
  impl_->log = std::tmpfile();
  if (!impl_->log) throw Error(fmt::format("{}: cannot draw: no temporary file for gnuplot's messages: {}",
                                           file_.string(), std::strerror(errno)));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw Error(fmt::format("{}: cannot draw: pipe: {}", file_.string(), std::strerror(errno)));
  pipe_fds[0] = above_stdio(pipe_fds[0]);
  pipe_fds[1] = above_stdio(pipe_fds[1]);
  // dup2 onto 0, 1 and 2 in the child clears O_CLOEXEC there; every other
  // descriptor of ours stays closed to gnuplot.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
  posix_spawn_file_actions_adddup2(&actions, impl_->out.fd(), 1);
  posix_spawn_file_actions_adddup2(&actions, ::fileno(impl_->log), 2);
  char name[] = "gnuplot";
  char* argv[] = {name, nullptr};
  const int rc = ::posix_spawnp(&impl_->pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[0]);
  if (rc != 0) {
    ::close(pipe_fds[1]);
    impl_->pid = -1;
    throw Error(fmt::format("{}: cannot start gnuplot: {}", file_.string(), std::strerror(rc)));
  }
  // If gnuplot dies early, writes to its pipe must fail, not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::FILE* to_gnuplot = ::fdopen(pipe_fds[1], "w");
  if (!to_gnuplot) {
    ::close(pipe_fds[1]);
    throw Error(fmt::format("{}: cannot draw: fdopen: {}", file_.string(), std::strerror(errno)));
  }
  impl_->gp = std::make_unique<Gnuplot>(to_gnuplot);
  // No `set output`: the PNG goes to gnuplot's standard output.
  *impl_->gp << fmt::format("set terminal pngcairo size {},{} font 'Sans,10'\n", width, height);
}

Png::~Png() = default;  // without finish(): gnuplot is waited for and the pending file removed

std::ostream& Png::gp() { return *impl_->gp; }

void Png::finish() {
  impl_->gp.reset();  // closes the pipe: gnuplot finishes the PNG and exits
  const int status = impl_->wait();
  std::string log;
  std::rewind(impl_->log);
  for (int c; (c = std::fgetc(impl_->log)) != EOF;) log += static_cast<char>(c);
  struct stat st {};
  const bool empty = ::fstat(impl_->out.fd(), &st) != 0 || st.st_size == 0;
  if (status != 0 || empty) {
    // gnuplot's message spans lines (the command, a caret, the reason): keep them on one.
    std::string reason;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      auto b = line.find_first_not_of(" \t^");
      if (b != std::string::npos) reason += (reason.empty() ? "" : " | ") + line.substr(b);
    }
    if (reason.empty()) reason = status != 0 ? fmt::format("exit status {}", status) : "it drew nothing";
    impl_.reset();
    throw Error(fmt::format("{}: gnuplot failed: {}", file_.string(), reason));
  }
  impl_->out.commit();
  impl_.reset();
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
