#pragma once
// Whole-file reads and atomic writes. Everything the course writes for the
// user (IDX files, weights, CSV) goes through write_file_atomic, so a crash or
// Ctrl-C never leaves a half-written file: readers see the old file or the
// new one.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace nn {

// Reads a whole regular file; throws nn::Error naming the file if it is
// missing, a folder, a FIFO or a device (never blocks on one), or unreadable.
std::vector<std::uint8_t> read_file(const std::filesystem::path& file);

// Several files of one folder read as one set, while another process may
// swap a new set in under the folder's name (as Sequential::save does): the
// folder is opened once, and its files are opened relative to it, all before
// any is read. A file that is open stays readable after the swap and after the
// old set is deleted, so what is read is the set that was there when the
// files were opened.
class FolderReader {
 public:
  explicit FolderReader(const std::filesystem::path& dir);  // nn::Error if it cannot be opened
  ~FolderReader();
  FolderReader(const FolderReader&) = delete;
  FolderReader& operator=(const FolderReader&) = delete;

  // Opens `name` in the folder for a later read(); false if it does not exist.
  bool open(const std::string& name);
  // The whole file, as read_file reads one (opened now if open() was not called).
  std::vector<std::uint8_t> read(const std::string& name);

 private:
  std::filesystem::path dir_;
  int dir_fd_ = -1;
  std::map<std::string, int> open_;
};

// A file being written that replaces `file` only when complete:
//
//   nn::PendingFile out(file);   // refuses a folder, device, FIFO or socket at `file`
//   out.write(bytes);            // into ".<name>.<random>.tmp" beside it
//   out.commit();                // fsync, then rename over `file`
//
// The temporary's name is fresh and unpredictable, and it is created only if
// nothing is there (O_CREAT|O_EXCL|O_NOFOLLOW): a file or a symbolic link that
// someone planted beside `file` is never opened, followed or overwritten.
// Without commit() (an error, an exception) the temporary is removed and
// `file` is untouched. A symbolic link at `file` is followed once: the file it
// names is replaced, and the link keeps pointing at it. A replaced file keeps
// its permissions.
class PendingFile {
 public:
  explicit PendingFile(const std::filesystem::path& file);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  // The open temporary (for a child process to write into, as gnuplot does).
  int fd() const { return fd_; }
  void write(std::span<const std::uint8_t> bytes);
  void commit();

 private:
  std::filesystem::path target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `bytes` to `file` through a PendingFile.
void write_file_atomic(const std::filesystem::path& file, std::span<const std::uint8_t> bytes);
void write_file_atomic(const std::filesystem::path& file, std::string_view text);

// What a save may replace: given an existing folder and the names of the
// regular files in it, the reason one of them is not a file an earlier save
// wrote ("holds notes.txt, which its manifest.txt does not list"), or "".
using ForeignFiles =
    std::function<std::string(const std::filesystem::path& dir, const std::vector<std::string>& files)>;

// Replaces the folder `dir` by a new set of files as one step: a reader sees
// the complete old set or the complete new set, never a mix, even when the
// disk fills or the process is killed midway. `fill` writes the new set into
// the empty folder it is given (a fresh sibling of `dir`); every file and the
// folder are then fsynced and swapped in. Temporaries that a killed run left
// beside `dir` are cleaned up first. An existing `dir` is replaced only when
// `foreign` finds nothing in it and its files can be deleted; else an
// nn::Error that names the folder and the cause, before anything changed. A
// failed `fill` or swap leaves `dir` untouched too. Two saves into the same
// folder at once (threads or processes) both succeed; the last one's set stays.
void replace_folder_atomic(const std::filesystem::path& dir,
                           const std::function<void(const std::filesystem::path& staging)>& fill,
                           const ForeignFiles& foreign);

// Creates the folder `dir` and its missing parents; an nn::Error naming it and
// the cause when it cannot (a file in the way, no permission).
void create_folders(const std::filesystem::path& dir);

// For tests only: every later replace_folder_atomic fails at `step` with the
// errno `error`, as the system call would: "remove" (the old set's files
// cannot be deleted, as in a chmod 555 folder), "create" (the new folder),
// "swap" (the exchange of the two folders). "" turns the failure off.
void fail_folder_step(const std::string& step, int error);

// For tests only: the next `writes` calls of write_file_atomic succeed, then
// every later one fails as a full disk does (half the bytes written, then an
// error). A negative value turns the failure off again.
void fail_writes_after(std::int64_t writes);

// gzip (RFC 1952) compression of a buffer, with zlib.
std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes);

// The process's peak resident memory (VmHWM in /proc/self/status), in bytes;
// 0 where it cannot be read.
double peak_rss_bytes();

}  // namespace nn
