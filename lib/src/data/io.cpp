#include "nn/io.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "nn/error.hpp"

namespace nn {

namespace fs = std::filesystem;

namespace {

std::string file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

namespace {

// Opens `file` (relative to the folder `dir_fd`, or to the working folder
// with AT_FDCWD) for reading. O_NONBLOCK: opening a FIFO that no one writes to
// would otherwise block forever; for a regular file it changes nothing.
// Returns -1 with errno set.
int open_for_reading(int dir_fd, const fs::path& file) {
  return ::openat(dir_fd, file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

[[noreturn]] void throw_cannot_open(const fs::path& shown) {
  if (errno == ENOENT) throw Error(fmt::format("{}: no such file", shown.string()));
  throw Error(fmt::format("{}: cannot open: {}", shown.string(), std::strerror(errno)));
}

// The whole content of the open file `fd`, named `shown` in messages. fstat
// looks at what was opened, not at a path that may have changed since (no
// race between the check and the read).
std::vector<std::uint8_t> read_open_file(int fd, const fs::path& shown) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(fmt::format("{}: cannot stat: {}", shown.string(), std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: is a folder, not a file", shown.string()));
  // A FIFO or a device has no size to trust: /dev/zero never ends.
  if (!S_ISREG(st.st_mode))
    throw Error(fmt::format("{}: not a regular file ({}); only regular files are read", shown.string(),
                            file_kind(st.st_mode)));
  // One allocation of the file's size and one read; then check nothing was
  // appended meanwhile (a file still being written).
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(fmt::format("{}: cannot read: {}", shown.string(), std::strerror(errno)));
    if (n == 0) break;  // it shrank
    got += static_cast<std::size_t>(n);
  }
  std::uint8_t extra;
  ssize_t more;
  do more = ::read(fd, &extra, 1);  // 0 at the end of the file, 1 if it grew
  while (more < 0 && errno == EINTR);
  if (got != bytes.size() || more != 0)
    throw Error(fmt::format("{}: the file changed size while being read", shown.string()));
  return bytes;
}

}  // namespace

std::vector<std::uint8_t> read_file(const fs::path& file) {
  const int fd = open_for_reading(AT_FDCWD, file);
  if (fd < 0) throw_cannot_open(file);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  return read_open_file(fd, file);
}

// ---- Files of one folder, read as one set ------------------------------------

FolderReader::FolderReader(const fs::path& dir) : dir_(dir) {
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) throw Error(fmt::format("{}: cannot open the folder: {}", dir.string(), std::strerror(errno)));
}

FolderReader::~FolderReader() {
  for (const auto& [name, fd] : open_) ::close(fd);
  ::close(dir_fd_);
}

bool FolderReader::open(const std::string& name) {
  if (open_.count(name)) return true;
  const int fd = open_for_reading(dir_fd_, name);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    throw_cannot_open(dir_ / name);
  }
  open_.emplace(name, fd);
  return true;
}

std::vector<std::uint8_t> FolderReader::read(const std::string& name) {
  if (!open(name)) throw_cannot_open(dir_ / name);  // errno is ENOENT
  return read_open_file(open_.at(name), dir_ / name);
}

namespace {

// The test hook of fail_writes_after: writes left before the failure; < 0: none.
std::atomic<std::int64_t> writes_before_failure{-1};

// True when this write is the one (or after the one) the test hook fails.
bool injected_failure() {
  std::int64_t left = writes_before_failure.load();
  while (left > 0 && !writes_before_failure.compare_exchange_weak(left, left - 1)) {
  }
  return left == 0;
}

}  // namespace

void fail_writes_after(std::int64_t writes) { writes_before_failure.store(writes < 0 ? -1 : writes); }

// ---- One file replaced as one step ---------------------------------------

PendingFile::PendingFile(const fs::path& file) : target_(file) {
  // A link is followed once, here, to the file it names: the new bytes replace
  // that file and the link keeps pointing at it. Nothing else is followed.
  struct stat st {};
  if (::lstat(file.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::error_code ec;
    target_ = fs::canonical(file, ec);
    if (ec) throw Error(fmt::format("{}: a symbolic link to nothing ({}); refusing to write through it",
                                    file.string(), ec.message()));
  }
  const bool exists = ::stat(target_.c_str(), &st) == 0;
  if (!exists && errno != ENOENT)
    throw Error(fmt::format("{}: cannot write: {}", file.string(), std::strerror(errno)));
  if (exists && S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: is a folder, not a file", file.string()));
  // Renaming over a device, a FIFO or a socket would replace it by a regular
  // file (as root, /dev/full itself): only regular files are replaced.
  if (exists && !S_ISREG(st.st_mode))
    throw Error(fmt::format("{}: is {}, not a regular file; refusing to replace it", file.string(),
                            file_kind(st.st_mode)));

  // A fresh name that no one can predict, created only if nothing is there
  // (O_EXCL; with O_CREAT it also refuses a symbolic link planted at the name).
  std::string base = target_.filename().string().substr(0, 200);  // room in NAME_MAX for the rest
  std::random_device random;
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    const std::uint64_t r = (std::uint64_t{random()} << 32) ^ random();
    tmp_ = target_.parent_path() / fmt::format(".{}.{:012x}.tmp", base, r & 0xffffffffffffULL);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST)
      throw Error(fmt::format("{}: cannot write: {}", file.string(), std::strerror(errno)));
  }
  if (fd_ < 0) throw Error(fmt::format("{}: cannot create a temporary file beside it", file.string()));
  // A replaced file keeps its permissions (the new one otherwise gets 0666 less the umask).
  if (exists) (void)::fchmod(fd_, st.st_mode & 07777);
}

PendingFile::~PendingFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void PendingFile::write(std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(fmt::format("{}: write failed: {}", target_.string(), std::strerror(errno)));
    done += static_cast<std::size_t>(n);
  }
}

void PendingFile::commit() {
  // On the disk before the rename makes it visible: else a power cut after the
  // rename could leave the new name with no data behind it.
  if (::fsync(fd_) != 0)
    throw Error(fmt::format("{}: write failed: {}", target_.string(), std::strerror(errno)));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw Error(fmt::format("{}: write failed: {}", target_.string(), std::strerror(errno)));
  if (::rename(tmp_.c_str(), target_.c_str()) != 0)
    throw Error(fmt::format("{}: cannot rename into place: {}", target_.string(), std::strerror(errno)));
  committed_ = true;
}

void write_file_atomic(const fs::path& file, std::span<const std::uint8_t> bytes) {
  PendingFile out(file);
  if (injected_failure()) {  // a full disk, for the tests: half the bytes, then an error
    out.write(bytes.first(bytes.size() / 2));
    throw Error(fmt::format("{}: write failed: {}", file.string(), std::strerror(ENOSPC)));
  }
  out.write(bytes);
  out.commit();
}

void write_file_atomic(const fs::path& file, std::string_view text) {
  write_file_atomic(file, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// ---- A folder of files replaced as one ------------------------------------
//
// The new set is written into ".<name>.saving-<pid>.<n>" beside `dir` (n
// counts this process's saves: two threads may save at once), then swapped
// with `dir` by renameat2(RENAME_EXCHANGE): one system call that exchanges
// the two names, so there is no moment at which `dir` is missing or mixed.
// The old set, now under the temporary name, is then removed. Why not a
// symlink `dir` -> ".<name>.set-N" flipped by a rename? It would work as well,
// but `dir` would stop being a plain folder (what older versions of the
// course wrote and what NumPy users open), and the first save over such a
// plain folder would need two renames anyway. Filesystems without
// RENAME_EXCHANGE (some network ones) get those two renames: `dir` ->
// ".<name>.old-<pid>.<n>", then the new set -> `dir`. A kill between the two
// leaves no `dir` but the complete old set under the .old name, and the next
// save renames it back before anything else.
namespace {

// The test hook of fail_folder_step: the step that fails, and its errno.
std::mutex hook_mutex;
std::string failing_step;
int failing_errno = 0;

// -1 with errno set, as `step`'s system call fails, when the test hook says so; else 0.
int injected_failure(std::string_view step) {
  std::lock_guard lock(hook_mutex);
  if (failing_step != step) return 0;
  errno = failing_errno;
  return -1;
}

// The temporaries of this process's saves in progress: clean_up_stale leaves
// them alone (another thread's save), and removes this pid's others (left by
// a killed process that had the same pid, or a removal that failed).
std::mutex active_mutex;
std::set<std::string> active_temporaries;
std::atomic<std::uint64_t> temporaries_made{0};

// Marks a temporary as in use for its lifetime.
struct InUse {
  std::string path;
  explicit InUse(const fs::path& p) : path(p.string()) {
    std::lock_guard lock(active_mutex);
    active_temporaries.insert(path);
  }
  ~InUse() {
    std::lock_guard lock(active_mutex);
    active_temporaries.erase(path);
  }
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;
};

bool in_use(const fs::path& p) {
  std::lock_guard lock(active_mutex);
  return active_temporaries.count(p.string()) != 0;
}

// fsync of a file or a folder (a folder's fsync makes the renames inside it durable).
void sync_path(const fs::path& path, bool folder) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (folder ? O_DIRECTORY : 0));
  if (fd < 0) throw Error(fmt::format("{}: cannot open to sync: {}", path.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) throw Error(fmt::format("{}: fsync failed: {}", path.string(), std::strerror(saved)));
}

// The temporaries of a save to `name`: ".<name>.saving-<pid>.<n>" and ".<name>.old-<pid>.<n>".
std::string temporary_name(const std::string& name, const char* kind, std::uint64_t n) {
  return fmt::format(".{}.{}-{}.{}", name, kind, ::getpid(), n);
}

// The pid in a temporary's name after its prefix: "<pid>.<n>", or "<pid>" as
// older versions named them; -1 for anything else (not ours).
long pid_of_temporary(std::string_view rest) {
  const std::string_view pid = rest.substr(0, rest.find('.'));
  const std::string_view n = pid.size() < rest.size() ? rest.substr(pid.size() + 1) : std::string_view("0");
  auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string_view::npos;
  };
  if (!digits(pid) || pid.size() > 9 || !digits(n)) return -1;
  return std::stol(std::string(pid));
}

// The entries of a folder, sorted, each with whether it is a regular file (a
// symlink is not); nn::Error naming the folder and the cause when it cannot be read.
std::vector<std::pair<std::string, bool>> list_folder(const fs::path& dir) {
  std::vector<std::pair<std::string, bool>> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code kind_ec;
    const bool file = it->symlink_status(kind_ec).type() == fs::file_type::regular;
    out.emplace_back(it->path().filename().string(), file && !kind_ec);
  }
  if (ec) throw Error(fmt::format("{}: cannot list the folder: {}", dir.string(), ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

// Removes the temporaries that killed saves left beside `dir` (those of live
// processes are another save in progress: left alone), and puts back an old
// set that a kill between the two fallback renames left without a `dir`.
// Best effort: what cannot be removed stays, under a name no save reuses.
void clean_up_stale(const fs::path& dir) {
  const std::string name = dir.filename().string();
  std::error_code ec;
  fs::directory_iterator it(dir.parent_path(), ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    for (const char* kind : {"saving", "old"}) {
      const std::string prefix = fmt::format(".{}.{}-", name, kind);
      if (!file.starts_with(prefix)) continue;
      const long pid = pid_of_temporary(std::string_view(file).substr(prefix.size()));
      if (pid < 0) continue;
      const bool alive = pid == ::getpid() ? in_use(it->path())
                                           : ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
      if (alive) continue;
      std::error_code ignored;
      if (std::string_view(kind) == "old" && fs::symlink_status(dir, ignored).type() == fs::file_type::not_found)
        fs::rename(it->path(), dir, ignored);  // the complete old set, back in place
      else
        fs::remove_all(it->path(), ignored);
    }
  }
}

// Swaps two folders in one step: Linux's renameat2(RENAME_EXCHANGE). Where the
// C library has no such call (Emscripten's, for the WebAssembly build), fails
// with ENOSYS, as an old kernel does, and the caller falls back to renames.
int exchange_folders(const fs::path& a, const fs::path& b) {
  if (injected_failure("swap") != 0) return -1;
#if defined(RENAME_EXCHANGE)
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
#else
  (void)a, (void)b;
  errno = ENOSYS;
  return -1;
#endif
}

// Whether `dir` exists; nn::Error when it cannot be looked at (a symlink loop, a folder without permission).
bool exists_or_error(const fs::path& dir, const fs::path& shown) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dir, ec);
  if (st.type() == fs::file_type::not_found) return false;
  if (ec) throw Error(fmt::format("{}: cannot look at it: {}", shown.string(), ec.message()));
  if (!fs::is_directory(st)) throw Error(fmt::format("{}: exists and is not a folder", shown.string()));
  return true;
}

// Refuses to replace an existing `dir` that holds anything the caller did not
// write, or whose files cannot be deleted: checked before anything is
// changed, so a refusal leaves everything as it was.
void check_replaceable(const fs::path& dir, const fs::path& shown, const ForeignFiles& foreign) {
  std::vector<std::string> files;
  for (const auto& [file, regular] : list_folder(dir)) {
    if (!regular)
      throw Error(fmt::format("{}: holds {}, which is not a file a save wrote; refusing to replace the folder "
                              "(choose another one)",
                              shown.string(), file));
    files.push_back(file);
  }
  if (const std::string why = foreign(dir, files); !why.empty())
    throw Error(fmt::format("{}: {}; a save would delete it: refusing to replace the folder (choose another one)",
                            shown.string(), why));
  // Replacing the set deletes its files, which needs write permission on the
  // folder (a chmod 555 one keeps its files; root ignores the mode).
  if (injected_failure("remove") != 0 || ::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    throw Error(fmt::format("{}: cannot replace the files in it: {}; the folder is left as it was", shown.string(),
                            std::strerror(errno)));
}

}  // namespace

void fail_folder_step(const std::string& step, int error) {
  std::lock_guard lock(hook_mutex);
  failing_step = step;
  failing_errno = error;
}

void create_folders(const fs::path& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw Error(fmt::format("{}: cannot create folder: it exists and is not a folder", dir.string()));
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create folder: {}", dir.string(), ec.message()));
}

void replace_folder_atomic(const fs::path& dir_given, const std::function<void(const fs::path&)>& fill,
                           const ForeignFiles& foreign) {
  // Work on the real folder: "weights/" and "./weights" name the same one,
  // and a symlink to a folder elsewhere keeps pointing at it.
  std::error_code ec;
  fs::path dir = fs::absolute(dir_given, ec).lexically_normal();
  if (ec) throw Error(fmt::format("{}: cannot find the folder: {}", dir_given.string(), ec.message()));
  if (!dir.has_filename()) dir = dir.parent_path();
  if (fs::is_symlink(dir, ec)) {
    dir = fs::canonical(dir, ec);
    if (ec) throw Error(fmt::format("{}: a symlink to a folder that does not exist ({})", dir_given.string(),
                                    ec.message()));
  }
  const fs::path parent = dir.parent_path();
  const std::string name = dir.filename().string();
  fs::create_directories(parent, ec);
  if (ec) throw Error(fmt::format("{}: cannot create folder: {}", parent.string(), ec.message()));
  clean_up_stale(dir);
  if (exists_or_error(dir, dir_given)) check_replaceable(dir, dir_given, foreign);

  const std::uint64_t n = temporaries_made++;
  const fs::path staging = parent / temporary_name(name, "saving", n);
  const fs::path old = parent / temporary_name(name, "old", n);
  const InUse staging_in_use(staging), old_in_use(old);
  if (injected_failure("create") != 0 || ::mkdir(staging.c_str(), 0777) != 0)
    throw Error(fmt::format("{}: cannot create folder: {}", staging.string(), std::strerror(errno)));
  bool old_is_spare = false;  // the fallback's old set, once the new one is in place
  try {
    fill(staging);
    for (const auto& [file, regular] : list_folder(staging))
      if (regular) sync_path(staging / file, false);
    sync_path(staging, true);
    // A few tries: another save may put a set in place, or take it away,
    // between the look and the rename; its set is then replaced like any other.
    for (int attempt = 1;; ++attempt) {
      const bool retry = attempt < 10;
      if (!exists_or_error(dir, dir_given)) {
        if (::rename(staging.c_str(), dir.c_str()) == 0) break;
        if ((errno == ENOTEMPTY || errno == EEXIST) && retry) continue;  // a set appeared meanwhile
        throw Error(fmt::format("{}: cannot move the new files into place: {}", dir_given.string(),
                                std::strerror(errno)));
      }
      check_replaceable(dir, dir_given, foreign);
      if (exchange_folders(staging, dir) == 0) break;
      if (errno == ENOENT && retry) continue;  // the set went away meanwhile
      if (errno != EINVAL && errno != ENOSYS)
        throw Error(fmt::format("{}: cannot swap in the new files: {}", dir_given.string(), std::strerror(errno)));
      // No RENAME_EXCHANGE here: two renames.
      if (::rename(dir.c_str(), old.c_str()) != 0) {
        if (errno == ENOENT && retry) continue;
        throw Error(fmt::format("{}: cannot move the old files aside: {}", dir_given.string(), std::strerror(errno)));
      }
      if (::rename(staging.c_str(), dir.c_str()) != 0) {
        const int cause = errno;
        ::rename(old.c_str(), dir.c_str());  // the old set, back in place
        if ((cause == ENOTEMPTY || cause == EEXIST) && retry) continue;
        throw Error(fmt::format("{}: cannot move the new files into place: {}", dir_given.string(),
                                std::strerror(cause)));
      }
      old_is_spare = true;
      break;
    }
    sync_path(parent, true);
  } catch (...) {
    fs::remove_all(staging, ec);  // the new set, never swapped in (or, after a swap, the old one)
    if (old_is_spare) fs::remove_all(old, ec);  // else it may be the only old set: the next save puts it back
    throw;
  }
  // The old set, under either temporary name. Should its removal fail, it
  // stays there, and the next save's clean-up tries again.
  fs::remove_all(staging, ec);
  fs::remove_all(old, ec);
}

std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes) {
  z_stream z{};
  // windowBits 15 + 16 asks zlib for a gzip wrapper instead of a zlib one.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error("zlib: deflateInit2 failed");
  std::vector<std::uint8_t> out(deflateBound(&z, bytes.size()) + 32);
  z.next_in = const_cast<Bytef*>(bytes.data());
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error("zlib: deflate did not finish");
  return out;
}

double peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmHWM:")) return std::stod(line.substr(6)) * 1024.0;  // "VmHWM:   123456 kB"
  return 0.0;
}

}  // namespace nn
