// Confined, fd-relative file-system primitives for the virtio-fs passthrough server: every
// operation is relative to a file descriptor the server holds (an O_PATH handle per inode), never
// to a path, so a guest that names files by (parent inode, name) cannot reach anything outside the
// shared directory. No FUSE or device logic lives here.
//
// How confinement is kept (openat2(2), path_resolution(7)):
// - A name is one path component: empty, ".", "..", anything with '/' or NUL, or longer than
//   NAME_MAX is refused with EINVAL (ENAMETOOLONG for length) before any system call, the errno
//   virtiofsd answers such names with. The throwing "syscall" is "checkName".
// - Lookups use openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS and
//   O_PATH | O_NOFOLLOW: a symlink comes back as a handle on the link itself, never its target.
//   RESOLVE_NO_XDEV is not set by default: a mount inside the share is the host's choice and part
//   of what it shares (the guest cannot mount on the host); lookupAt's `sameMount` sets it, and
//   every stat carries the mount id so the server can tell submounts apart.
// - Operations Linux only offers by path (re-opening an O_PATH handle for I/O, chmod, hard links
//   of a held inode, xattrs) go through /proc/self/fd, opened once as an O_PATH directory fd
//   (checked to be procfs). The only name ever resolved under it is the decimal number of an fd
//   this process holds, a magic link to exactly the inode that fd refers to: no directory walk
//   and nothing the guest names, so it cannot lead outside. It and the share root (openRoot) are
//   the only absolute paths in this file.
// - Nothing here follows a symlink: *at calls get AT_SYMLINK_NOFOLLOW / O_NOFOLLOW, and the
//   /proc/self/fd re-open refuses symlink handles first (the kernel would answer ELOOP anyway).
//
// All calls are synchronous. Those that can block for long on a slow disk and belong on a worker
// thread: fsync/fdatasync, copyFileRange, readDir with a large budget, truncate (fallocate is
// fileio.cc's, on the threadpool).
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"

namespace tsvmm {
namespace {

constexpr uint64_t kResolveName = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
// The flags openFile passes through (open(2)); everything else (O_CREAT, O_EXCL, O_TMPFILE,
// O_PATH, O_NOFOLLOW, O_NOCTTY, ...) is refused with EINVAL. O_CLOEXEC is always added.
constexpr int kOpenFlags = O_ACCMODE | O_APPEND | O_TRUNC | O_DIRECT | O_SYNC | O_DSYNC | O_NOATIME | O_NONBLOCK | O_DIRECTORY;
constexpr uint32_t kStatxMask = STATX_BASIC_STATS | STATX_MNT_ID;
constexpr size_t kMaxReadDirBudget = 1 << 20;
constexpr size_t kMaxXattrSize = 1 << 16;  // XATTR_SIZE_MAX and XATTR_LIST_MAX (linux/limits.h)

template <typename F>
auto Retry(F f) {
  decltype(f()) r;
  do {
    r = f();
  } while (r < 0 && errno == EINTR);
  return r;
}

Napi::Error Refused(Napi::Env env, const char* op, int err, const std::string& why) {
  return ErrnoError(env, op, err, why);
}

// A byte-string argument (a Uint8Array), copied so that a NUL can terminate it.
std::string ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array");
  auto a = info[i].As<Napi::Uint8Array>();
  return std::string(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
}

// A file name: exactly one path component (see the top of the file).
std::string ArgName(const Napi::CallbackInfo& info, size_t i, const char* name = "name") {
  Napi::Env env = info.Env();
  std::string s = ArgBytes(info, i, name);
  if (s.empty()) throw Refused(env, "checkName", EINVAL, std::string(name) + " is empty");
  if (s == "." || s == "..") throw Refused(env, "checkName", EINVAL, std::string(name) + " is '" + s + "'");
  if (s.find('/') != std::string::npos) throw Refused(env, "checkName", EINVAL, std::string(name) + " contains '/'");
  if (s.find('\0') != std::string::npos) throw Refused(env, "checkName", EINVAL, std::string(name) + " contains NUL");
  if (s.size() > NAME_MAX)
    throw Refused(env, "checkName", ENAMETOOLONG, std::string(name) + " is " + std::to_string(s.size()) + " bytes, NAME_MAX is 255");
  return s;
}

// A symlink target or xattr name: stored or passed verbatim, so only NUL and length matter.
std::string ArgCString(const Napi::CallbackInfo& info, size_t i, const char* name, size_t max) {
  Napi::Env env = info.Env();
  std::string s = ArgBytes(info, i, name);
  if (s.empty()) throw Refused(env, "checkName", EINVAL, std::string(name) + " is empty");
  if (s.find('\0') != std::string::npos) throw Refused(env, "checkName", EINVAL, std::string(name) + " contains NUL");
  if (s.size() > max)
    throw Refused(env, "checkName", ENAMETOOLONG, std::string(name) + " is " + std::to_string(s.size()) + " bytes, at most " + std::to_string(max));
  return s;
}

int64_t ArgI64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (info[i].IsBigInt()) {
    bool lossless = false;
    int64_t v = info[i].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(name) + " does not fit in 64 bits");
    return v;
  }
  if (info[i].IsNumber()) {
    double d = info[i].As<Napi::Number>().DoubleValue();
    if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != double(int64_t(d)))
      throw Napi::RangeError::New(env, std::string(name) + " must be a safe integer");
    return int64_t(d);
  }
  throw Napi::TypeError::New(env, std::string(name) + " must be a number or bigint");
}

std::string FdContext(int fd) { return "fd " + std::to_string(fd); }
std::string NameContext(int dirfd, const std::string& name) { return "fd " + std::to_string(dirfd) + " name '" + name + "'"; }

// /proc/self/fd as an O_PATH directory fd, opened on first use and kept for the process's life
// (close-on-exec). fstatfs checks it is procfs, so a bind mount over /proc cannot stand in.
int ProcSelfFd(Napi::Env env) {
  static std::mutex mu;
  static int fd = -1;
  std::lock_guard<std::mutex> lock(mu);
  if (fd >= 0) return fd;
  UniqueFd p(Retry([] { return open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC); }));
  if (!p.Valid()) throw ErrnoError(env, "open", errno, "/proc/self/fd");
  struct statfs sfs;
  Check(env, Retry([&] { return fstatfs(p.Get(), &sfs); }), "fstatfs", "/proc/self/fd");
  if (sfs.f_type != PROC_SUPER_MAGIC) throw ErrnoError(env, "fstatfs", EXDEV, "/proc/self/fd is not procfs");
  fd = p.Release();
  return fd;
}

std::string ProcName(int fd) { return std::to_string(fd); }

int Openat2(int dirfd, const char* name, uint64_t flags, uint64_t mode, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  return int(Retry([&] { return syscall(SYS_openat2, dirfd, name, &how, sizeof how); }));
}

struct statx StatxFd(Napi::Env env, int fd, uint32_t mask = kStatxMask) {
  struct statx stx = {};
  Check(env, Retry([&] { return statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, mask, &stx); }), "statx", FdContext(fd));
  return stx;
}

mode_t TypeOf(Napi::Env env, int fd) { return StatxFd(env, fd, STATX_TYPE).stx_mode & S_IFMT; }

bool IsOPath(Napi::Env env, int fd) { return Check(env, fcntl(fd, F_GETFL), "fcntl", FdContext(fd)) & O_PATH; }

Napi::BigInt Big(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

Napi::Uint8Array BytesOf(Napi::Env env, const char* data, size_t len) {
  auto out = Napi::Uint8Array::New(env, len);
  if (len) memcpy(out.Data(), data, len);
  return out;
}

std::string Octal(unsigned v) {
  char s[16];
  snprintf(s, sizeof s, "0%o", v);
  return s;
}

Napi::Object StatObject(Napi::Env env, const struct statx& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ino", Big(env, s.stx_ino));
  o.Set("dev", Big(env, makedev(s.stx_dev_major, s.stx_dev_minor)));
  o.Set("mntId", Big(env, (s.stx_mask & STATX_MNT_ID) ? s.stx_mnt_id : 0));
  o.Set("mode", Napi::Number::New(env, s.stx_mode));
  o.Set("nlink", Napi::Number::New(env, s.stx_nlink));
  o.Set("uid", Napi::Number::New(env, s.stx_uid));
  o.Set("gid", Napi::Number::New(env, s.stx_gid));
  o.Set("rdev", Big(env, makedev(s.stx_rdev_major, s.stx_rdev_minor)));
  o.Set("size", Big(env, s.stx_size));
  o.Set("blocks", Big(env, s.stx_blocks));
  o.Set("blksize", Napi::Number::New(env, s.stx_blksize));
  o.Set("atimeSec", Napi::BigInt::New(env, int64_t(s.stx_atime.tv_sec)));
  o.Set("atimeNsec", Napi::Number::New(env, s.stx_atime.tv_nsec));
  o.Set("mtimeSec", Napi::BigInt::New(env, int64_t(s.stx_mtime.tv_sec)));
  o.Set("mtimeNsec", Napi::Number::New(env, s.stx_mtime.tv_nsec));
  o.Set("ctimeSec", Napi::BigInt::New(env, int64_t(s.stx_ctime.tv_sec)));
  o.Set("ctimeNsec", Napi::Number::New(env, s.stx_ctime.tv_nsec));
  return o;
}

// { fd, stat } for an O_PATH handle; the handle passes to JS only once the object is built.
Napi::Object EntryObject(Napi::Env env, UniqueFd& fd) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("stat", StatObject(env, StatxFd(env, fd.Get())));
  o.Set("fd", Napi::Number::New(env, fd.Release()));
  return o;
}

// One component of dirfd, never following a symlink or crossing out of dirfd.
UniqueFd LookupFd(Napi::Env env, int dirfd, const std::string& name, bool sameMount) {
  uint64_t resolve = kResolveName | (sameMount ? RESOLVE_NO_XDEV : 0);
  UniqueFd fd(Openat2(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, resolve));
  if (!fd.Valid()) throw ErrnoError(env, "openat2", errno, NameContext(dirfd, name));
  return fd;
}

// A new fd for the inode `fd` refers to, via its /proc/self/fd magic link (see the top).
// Symlink handles are refused with ELOOP (open(2) with O_NOFOLLOW does the same), and for I/O
// only regular files and directories are opened: opening a FIFO could block, a device node do
// anything; FUSE opens no special files (the guest kernel handles them), so those get ENXIO.
UniqueFd Reopen(Napi::Env env, int fd, int flags, const char* why) {
  mode_t type = TypeOf(env, fd);
  if (type == S_IFLNK) throw Refused(env, why, ELOOP, FdContext(fd) + " is a symlink");
  if (!(flags & O_PATH) && type != S_IFREG && type != S_IFDIR)
    throw Refused(env, why, ENXIO, FdContext(fd) + " is not a regular file or directory");
  int proc = ProcSelfFd(env);
  std::string n = ProcName(fd);
  UniqueFd out(Retry([&] { return openat(proc, n.c_str(), flags | O_CLOEXEC); }));
  if (!out.Valid()) throw ErrnoError(env, "openat", errno, "/proc/self/fd/" + n);
  return out;
}

// openRoot(path) -> O_PATH directory fd of the share root: the one absolute path, named by the
// host's operator (symlinks in it are followed; everything below it is confined).
Napi::Value OpenRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "openRoot: path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  UniqueFd fd(Retry([&] { return open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); }));
  if (!fd.Valid()) throw ErrnoError(env, "open", errno, path);
  ProcSelfFd(env);  // opened now, so that later calls never meet a missing /proc half-way
  return Napi::Number::New(env, fd.Release());
}

// lookupAt(dirfd, name, sameMount?) -> { fd: O_PATH handle, stat }.
Napi::Value LookupAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = ArgFd(info, 0, "dirfd");
  std::string name = ArgName(info, 1);
  UniqueFd fd = LookupFd(env, dirfd, name, info[2].ToBoolean());
  return EntryObject(env, fd);
}

Napi::Value StatAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return StatObject(env, StatxFd(env, ArgFd(info, 0, "fd")));
}

Napi::Value StatfsFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct statfs s;
  Check(env, Retry([&] { return fstatfs(fd, &s); }), "fstatfs", FdContext(fd));
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Big(env, uint64_t(s.f_type)));
  o.Set("bsize", Napi::Number::New(env, double(s.f_bsize)));
  o.Set("frsize", Napi::Number::New(env, double(s.f_frsize)));
  o.Set("blocks", Big(env, s.f_blocks));
  o.Set("bfree", Big(env, s.f_bfree));
  o.Set("bavail", Big(env, s.f_bavail));
  o.Set("files", Big(env, s.f_files));
  o.Set("ffree", Big(env, s.f_ffree));
  o.Set("namelen", Napi::Number::New(env, double(s.f_namelen)));
  o.Set("flags", Napi::Number::New(env, double(s.f_flags)));
  return o;
}

int ArgOpenFlags(const Napi::CallbackInfo& info, size_t i, int extra) {
  int flags = int(ArgU64(info, i, "flags", uint64_t(INT32_MAX)));
  if (flags & ~(kOpenFlags | extra))
    throw Refused(info.Env(), "checkFlags", EINVAL, "open flags " + Octal(unsigned(flags)) + " include refused bits " + Octal(unsigned(flags & ~(kOpenFlags | extra))));
  if ((flags & O_ACCMODE) == O_ACCMODE) throw Refused(info.Env(), "checkFlags", EINVAL, "access mode 3");
  return flags;
}

// openFile(fd, flags) -> fd for I/O on the inode an O_PATH handle refers to.
Napi::Value OpenFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int flags = ArgOpenFlags(info, 1, 0);
  return Napi::Number::New(env, Reopen(env, fd, flags, "openFile").Release());
}

// createAt(dirfd, name, flags, mode) -> { fd (O_PATH), ioFd (for I/O), stat }. O_CREAT|O_EXCL
// first, so that nothing existing is opened by openat2 itself; when the name exists and the
// caller did not ask for O_EXCL, the entry is looked up without following and re-opened only if
// it is a regular file (a symlink: ELOOP, a directory: EISDIR, anything else: ENXIO).
Napi::Value CreateAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = ArgFd(info, 0, "dirfd");
  std::string name = ArgName(info, 1);
  int flags = ArgOpenFlags(info, 2, O_EXCL | O_CREAT);
  mode_t mode = mode_t(ArgU64(info, 3, "mode", 07777));
  if (flags & O_DIRECTORY) throw Refused(env, "checkFlags", EINVAL, "O_DIRECTORY with O_CREAT");
  int base = (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC;
  for (int attempt = 0;; attempt++) {
    UniqueFd fd(Openat2(dirfd, name.c_str(), base | O_CREAT | O_EXCL | O_NOFOLLOW, mode, kResolveName));
    UniqueFd pathFd;
    if (fd.Valid()) {
      pathFd = Reopen(env, fd.Get(), O_PATH, "createAt");
    } else if (errno == EEXIST && !(flags & O_EXCL)) {
      // Gone again before the lookup (ENOENT): created and removed by someone else; try anew.
      int dfd = Openat2(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, kResolveName);
      if (dfd < 0 && errno == ENOENT && attempt < 3) continue;
      pathFd.Reset(dfd);
      if (!pathFd.Valid()) throw ErrnoError(env, "openat2", errno, NameContext(dirfd, name));
      mode_t type = TypeOf(env, pathFd.Get());
      if (type == S_IFDIR) throw Refused(env, "createAt", EISDIR, NameContext(dirfd, name) + " is a directory");
      if (type != S_IFREG && type != S_IFLNK)
        throw Refused(env, "createAt", ENXIO, NameContext(dirfd, name) + " is not a regular file");
      fd = Reopen(env, pathFd.Get(), base, "createAt");
    } else {
      throw ErrnoError(env, "openat2", errno, NameContext(dirfd, name));
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("stat", StatObject(env, StatxFd(env, pathFd.Get())));
    o.Set("ioFd", Napi::Number::New(env, fd.Release()));
    o.Set("fd", Napi::Number::New(env, pathFd.Release()));
    return o;
  }
}

// mkdirAt(dirfd, name, mode) -> { fd, stat } of the new directory. The lookup after mkdirat is
// by name, so a concurrent rename could hand back another entry; it is still confined.
Napi::Value MkdirAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = ArgFd(info, 0, "dirfd");
  std::string name = ArgName(info, 1);
  mode_t mode = mode_t(ArgU64(info, 2, "mode", 07777));
  Check(env, Retry([&] { return mkdirat(dirfd, name.c_str(), mode); }), "mkdirat", NameContext(dirfd, name));
  UniqueFd fd = LookupFd(env, dirfd, name, false);
  return EntryObject(env, fd);
}

// mknodAt(dirfd, name, mode, rdev) -> { fd, stat }: regular files, FIFOs and sockets only; a
// character or block device is refused with EPERM (what mknod(2) answers without CAP_MKNOD).
Napi::Value MknodAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = ArgFd(info, 0, "dirfd");
  std::string name = ArgName(info, 1);
  mode_t mode = mode_t(ArgU64(info, 2, "mode", UINT32_MAX));
  mode_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
    throw Refused(env, "mknodAt", EPERM, "file type " + Octal(type) + " (only regular, FIFO, socket)");
  if (mode & ~(S_IFMT | 07777)) throw Refused(env, "mknodAt", EINVAL, "mode has unknown bits");
  Check(env, Retry([&] { return mknodat(dirfd, name.c_str(), mode, 0); }), "mknodat", NameContext(dirfd, name));
  UniqueFd fd = LookupFd(env, dirfd, name, false);
  return EntryObject(env, fd);
}

// symlinkAt(target, dirfd, name) -> { fd, stat }: the target is stored verbatim and never
// resolved here.
Napi::Value SymlinkAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target = ArgCString(info, 0, "target", PATH_MAX - 1);
  int dirfd = ArgFd(info, 1, "dirfd");
  std::string name = ArgName(info, 2);
  Check(env, Retry([&] { return symlinkat(target.c_str(), dirfd, name.c_str()); }), "symlinkat", NameContext(dirfd, name));
  UniqueFd fd = LookupFd(env, dirfd, name, false);
  return EntryObject(env, fd);
}

// linkAt(fd, newdirfd, newname) -> { fd, stat }: a hard link to the inode `fd` holds. linkat
// with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on Linux 6.1 (later kernels relax it for fds the
// caller opened); linkat of the /proc/self/fd magic link with AT_SYMLINK_FOLLOW needs neither, and
// lands on the held inode itself (a symlink included: the magic link's target is not followed
// further). Seen working unprivileged (uid 65534) on the development host.
Napi::Value LinkAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int newdirfd = ArgFd(info, 1, "newdirfd");
  std::string name = ArgName(info, 2, "newname");
  int proc = ProcSelfFd(env);
  std::string n = ProcName(fd);
  Check(env, Retry([&] { return linkat(proc, n.c_str(), newdirfd, name.c_str(), AT_SYMLINK_FOLLOW); }), "linkat",
        FdContext(fd) + " -> " + NameContext(newdirfd, name));
  UniqueFd out = LookupFd(env, newdirfd, name, false);
  return EntryObject(env, out);
}

Napi::Value UnlinkAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = ArgFd(info, 0, "dirfd");
  std::string name = ArgName(info, 1);
  int flags = info[2].ToBoolean() ? AT_REMOVEDIR : 0;
  Check(env, Retry([&] { return unlinkat(dirfd, name.c_str(), flags); }), "unlinkat", NameContext(dirfd, name));
  return env.Undefined();
}

// renameAt2(olddirfd, oldname, newdirfd, newname, flags): flags 0, RENAME_NOREPLACE or
// RENAME_EXCHANGE (RENAME_WHITEOUT is for overlay file systems and needs CAP_MKNOD: refused).
Napi::Value RenameAt2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int olddirfd = ArgFd(info, 0, "olddirfd");
  std::string oldname = ArgName(info, 1, "oldname");
  int newdirfd = ArgFd(info, 2, "newdirfd");
  std::string newname = ArgName(info, 3, "newname");
  unsigned flags = unsigned(ArgU64(info, 4, "flags", UINT32_MAX));
  if (flags != 0 && flags != RENAME_NOREPLACE && flags != RENAME_EXCHANGE)
    throw Refused(env, "checkFlags", EINVAL, "rename flags " + std::to_string(flags));
  Check(env, Retry([&] { return renameat2(olddirfd, oldname.c_str(), newdirfd, newname.c_str(), flags); }), "renameat2",
        NameContext(olddirfd, oldname) + " -> " + NameContext(newdirfd, newname));
  return env.Undefined();
}

// readlinkAt(fd) -> Uint8Array: the target of the symlink an O_PATH handle refers to (readlinkat
// with an empty path, readlink(2)).
Napi::Value ReadlinkAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  char buf[PATH_MAX];
  ssize_t n = Retry([&] { return readlinkat(fd, "", buf, sizeof buf); });
  if (n < 0) throw ErrnoError(env, "readlinkat", errno, FdContext(fd));
  if (size_t(n) == sizeof buf) throw ErrnoError(env, "readlinkat", ENAMETOOLONG, FdContext(fd));
  return BytesOf(env, buf, size_t(n));
}

// chmodInode(fd, mode): fchmod on a real fd; on an O_PATH handle fchmodat of its /proc/self/fd
// link (fchmod answers EBADF on O_PATH). A symlink's mode cannot be changed on Linux:
// EOPNOTSUPP, what fchmodat(AT_SYMLINK_NOFOLLOW) answers.
Napi::Value ChmodInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  mode_t mode = mode_t(ArgU64(info, 1, "mode", 07777));
  if (TypeOf(env, fd) == S_IFLNK) throw Refused(env, "chmodInode", EOPNOTSUPP, FdContext(fd) + " is a symlink");
  if (IsOPath(env, fd)) {
    int proc = ProcSelfFd(env);
    std::string n = ProcName(fd);
    Check(env, Retry([&] { return fchmodat(proc, n.c_str(), mode, 0); }), "fchmodat", "/proc/self/fd/" + n);
  } else {
    Check(env, Retry([&] { return fchmod(fd, mode); }), "fchmod", FdContext(fd));
  }
  return env.Undefined();
}

// chownInode(fd, uid, gid): fchownat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), which works on
// O_PATH handles and changes a symlink itself. 0xffffffff leaves an id as it is.
Napi::Value ChownInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uid_t uid = uid_t(ArgU64(info, 1, "uid", UINT32_MAX));
  gid_t gid = gid_t(ArgU64(info, 2, "gid", UINT32_MAX));
  Check(env, Retry([&] { return fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); }), "fchownat", FdContext(fd));
  return env.Undefined();
}

// utimensInode(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec): utimensat(fd, "", AT_EMPTY_PATH)
// (Linux 5.8), on O_PATH handles and symlinks alike. nsec UTIME_NOW / UTIME_OMIT as utimensat(2).
Napi::Value UtimensInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct timespec ts[2];
  for (int k = 0; k < 2; k++) {
    ts[k].tv_sec = time_t(ArgI64(info, 1 + 2 * k, k ? "mtimeSec" : "atimeSec"));
    long nsec = long(ArgU64(info, 2 + 2 * k, k ? "mtimeNsec" : "atimeNsec", UINT32_MAX));
    if (nsec >= 1000000000L && nsec != UTIME_NOW && nsec != UTIME_OMIT)
      throw Napi::RangeError::New(env, "utimensInode: nsec " + std::to_string(nsec) + " out of range");
    ts[k].tv_nsec = nsec;
  }
  Check(env, Retry([&] { return utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); }), "utimensat", FdContext(fd));
  return env.Undefined();
}

// truncateInode(fd, size): ftruncate on a real fd; an O_PATH handle is re-opened O_WRONLY through
// /proc/self/fd first (regular files only), so no path-based truncate(2) is needed.
Napi::Value TruncateInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t size = ArgU64(info, 1, "size", uint64_t(INT64_MAX));
  UniqueFd reopened;
  int use = fd;
  if (IsOPath(env, fd)) {
    reopened = Reopen(env, fd, O_WRONLY | O_NONBLOCK, "truncateInode");
    use = reopened.Get();
  }
  Check(env, Retry([&] { return ftruncate(use, off_t(size)); }), "ftruncate", FdContext(fd));
  return env.Undefined();
}

// readDir(dirfd, budget) -> [{ ino, off, type, name }]: one getdents64(2) into `budget` bytes
// (at most 1 MiB) from the directory fd's position; [] at the end. `off` is the cookie that
// seekDir takes to resume after that entry. "." and ".." are returned as the kernel lists them.
Napi::Value ReadDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "dirfd");
  size_t budget = size_t(ArgU64(info, 1, "budget", kMaxReadDirBudget));
  std::vector<char> buf(budget);
  ssize_t n = Retry([&] { return getdents64(fd, buf.data(), buf.size()); });
  if (n < 0) throw ErrnoError(env, "getdents64", errno, FdContext(fd) + " budget " + std::to_string(budget));
  Napi::Array out = Napi::Array::New(env);
  uint32_t count = 0;
  for (size_t pos = 0; pos < size_t(n);) {
    struct dirent64 d;
    memcpy(&d, buf.data() + pos, offsetof(struct dirent64, d_name));
    if (d.d_reclen <= offsetof(struct dirent64, d_name) || pos + d.d_reclen > size_t(n))
      throw ErrnoError(env, "getdents64", EIO, FdContext(fd) + ": malformed record at " + std::to_string(pos));
    const char* name = buf.data() + pos + offsetof(struct dirent64, d_name);
    size_t maxLen = d.d_reclen - offsetof(struct dirent64, d_name);
    size_t len = strnlen(name, maxLen);
    Napi::Object e = Napi::Object::New(env);
    e.Set("ino", Big(env, d.d_ino));
    e.Set("off", Napi::BigInt::New(env, int64_t(d.d_off)));
    e.Set("type", Napi::Number::New(env, d.d_type));
    e.Set("name", BytesOf(env, name, len));
    out.Set(count++, e);
    pos += d.d_reclen;
  }
  return out;
}

// seekDir(dirfd, cookie): lseek(SEEK_SET) to an entry's `off`, so readDir resumes after it.
// Cookies are opaque 63-bit values on many file systems (ext4 hashes), hence bigint.
Napi::Value SeekDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "dirfd");
  int64_t cookie = ArgI64(info, 1, "cookie");
  if (Retry([&] { return lseek(fd, off_t(cookie), SEEK_SET); }) < 0)
    throw ErrnoError(env, "lseek", errno, FdContext(fd) + " cookie " + std::to_string(cookie));
  return env.Undefined();
}

// The fd the f*xattr calls act on. They answer EBADF on O_PATH handles and Linux 6.1 has no
// *xattrat calls, so a handle on a regular file or directory is re-opened read-only through
// /proc/self/fd (as virtiofsd does); symlinks and special files (whose user.* xattrs Linux
// refuses anyway) get EOPNOTSUPP rather than a path-based l*xattr call or a chdir.
UniqueFd XattrFd(Napi::Env env, int fd, int* use, const char* op) {
  *use = fd;
  if (!IsOPath(env, fd)) return UniqueFd();
  mode_t type = TypeOf(env, fd);
  if (type != S_IFREG && type != S_IFDIR)
    throw Refused(env, op, EOPNOTSUPP, FdContext(fd) + ": xattrs only on regular files and directories");
  UniqueFd r = Reopen(env, fd, O_RDONLY | O_NONBLOCK, op);
  *use = r.Get();
  return r;
}

// getXattr(fd, name, size) -> Uint8Array, or with size 0 the value's length (a number).
Napi::Value GetXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::string name = ArgCString(info, 1, "xattr name", XATTR_NAME_MAX);
  size_t size = size_t(ArgU64(info, 2, "size", kMaxXattrSize));
  int use;
  UniqueFd keep = XattrFd(env, fd, &use, "getXattr");
  std::vector<char> buf(size);
  ssize_t n = Retry([&] { return fgetxattr(use, name.c_str(), size ? buf.data() : nullptr, size); });
  if (n < 0) throw ErrnoError(env, "fgetxattr", errno, FdContext(fd) + " " + name);
  if (size == 0) return Napi::Number::New(env, double(n));
  return BytesOf(env, buf.data(), size_t(n));
}

// setXattr(fd, name, value, flags): flags 0, XATTR_CREATE or XATTR_REPLACE.
Napi::Value SetXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::string name = ArgCString(info, 1, "xattr name", XATTR_NAME_MAX);
  std::string value = ArgBytes(info, 2, "value");
  int flags = int(ArgU64(info, 3, "flags", XATTR_CREATE | XATTR_REPLACE));
  if (value.size() > kMaxXattrSize) throw Refused(env, "setXattr", E2BIG, "value of " + std::to_string(value.size()) + " bytes");
  int use;
  UniqueFd keep = XattrFd(env, fd, &use, "setXattr");
  Check(env, Retry([&] { return fsetxattr(use, name.c_str(), value.data(), value.size(), flags); }), "fsetxattr",
        FdContext(fd) + " " + name);
  return env.Undefined();
}

// listXattr(fd, size) -> Uint8Array of NUL-terminated names, or with size 0 the length needed.
Napi::Value ListXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  size_t size = size_t(ArgU64(info, 1, "size", kMaxXattrSize));
  int use;
  UniqueFd keep = XattrFd(env, fd, &use, "listXattr");
  std::vector<char> buf(size);
  ssize_t n = Retry([&] { return flistxattr(use, size ? buf.data() : nullptr, size); });
  if (n < 0) throw ErrnoError(env, "flistxattr", errno, FdContext(fd));
  if (size == 0) return Napi::Number::New(env, double(n));
  return BytesOf(env, buf.data(), size_t(n));
}

Napi::Value RemoveXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::string name = ArgCString(info, 1, "xattr name", XATTR_NAME_MAX);
  int use;
  UniqueFd keep = XattrFd(env, fd, &use, "removeXattr");
  Check(env, Retry([&] { return fremovexattr(use, name.c_str()); }), "fremovexattr", FdContext(fd) + " " + name);
  return env.Undefined();
}

// lseek(fd, offset, whence) -> bigint: SEEK_SET/CUR/END/DATA/HOLE (ENXIO past the data).
Napi::Value Lseek(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int64_t offset = ArgI64(info, 1, "offset");
  int whence = int(ArgU64(info, 2, "whence", SEEK_HOLE));
  off_t r = Retry([&] { return lseek(fd, off_t(offset), whence); });
  if (r < 0) throw ErrnoError(env, "lseek", errno, FdContext(fd));
  return Napi::BigInt::New(env, int64_t(r));
}

// copyFileRange(fdIn, offIn, fdOut, offOut, length, flags) -> bytes copied (flags must be 0).
Napi::Value CopyFileRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fdIn = ArgFd(info, 0, "fdIn");
  loff_t offIn = loff_t(ArgU64(info, 1, "offIn", uint64_t(INT64_MAX)));
  int fdOut = ArgFd(info, 2, "fdOut");
  loff_t offOut = loff_t(ArgU64(info, 3, "offOut", uint64_t(INT64_MAX)));
  size_t length = size_t(ArgU64(info, 4, "length", uint64_t(SSIZE_MAX)));
  unsigned flags = unsigned(ArgU64(info, 5, "flags", UINT32_MAX));
  ssize_t n = Retry([&] { return copy_file_range(fdIn, &offIn, fdOut, &offOut, length, flags); });
  if (n < 0) throw ErrnoError(env, "copy_file_range", errno, FdContext(fdIn) + " -> " + FdContext(fdOut));
  return Napi::Number::New(env, double(n));
}

// fsync(fd, dataOnly): fdatasync when dataOnly.
Napi::Value Fsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  bool data = info[1].ToBoolean();
  Check(env, Retry([&] { return data ? fdatasync(fd) : fsync(fd); }), data ? "fdatasync" : "fsync", FdContext(fd));
  return env.Undefined();
}

struct flock ArgLock(const Napi::CallbackInfo& info) {
  struct flock fl = {};
  int type = int(ArgU64(info, 1, "type", 2));
  if (type != F_RDLCK && type != F_WRLCK && type != F_UNLCK) throw Napi::RangeError::New(info.Env(), "lock type must be F_RDLCK, F_WRLCK or F_UNLCK");
  fl.l_type = short(type);
  fl.l_whence = SEEK_SET;
  fl.l_start = off_t(ArgU64(info, 2, "start", uint64_t(INT64_MAX)));
  fl.l_len = off_t(ArgU64(info, 3, "length", uint64_t(INT64_MAX)));
  fl.l_pid = 0;  // OFD locks need 0 (fcntl(2))
  return fl;
}

// getLock(fd, type, start, length) -> null, or the first conflicting lock { type, start, length,
// pid } (pid -1 for an OFD lock). F_OFD_GETLK (fcntl(2)).
Napi::Value GetLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct flock fl = ArgLock(info);
  Check(env, Retry([&] { return fcntl(fd, F_OFD_GETLK, &fl); }), "fcntl", FdContext(fd) + " F_OFD_GETLK");
  if (fl.l_type == F_UNLCK) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Napi::Number::New(env, fl.l_type));
  o.Set("start", Napi::BigInt::New(env, int64_t(fl.l_start)));
  o.Set("length", Napi::BigInt::New(env, int64_t(fl.l_len)));
  o.Set("pid", Napi::Number::New(env, fl.l_pid));
  return o;
}

// setLock(fd, type, start, length) -> true when taken or released, false on a conflict. Only
// F_OFD_SETLK: F_OFD_SETLKW would block the calling thread until another holder lets go.
Napi::Value SetLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct flock fl = ArgLock(info);
  if (Retry([&] { return fcntl(fd, F_OFD_SETLK, &fl); }) == 0) return Napi::Boolean::New(env, true);
  if (errno == EAGAIN || errno == EACCES) return Napi::Boolean::New(env, false);
  throw ErrnoError(env, "fcntl", errno, FdContext(fd) + " F_OFD_SETLK");
}

}  // namespace

void InitFsAt(Napi::Env env, Napi::Object exports) {
  Napi::Object fs = Napi::Object::New(env);
  struct Fn {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Fn fns[] = {
      {"openRoot", OpenRoot},       {"lookupAt", LookupAt},         {"statAt", StatAt},
      {"statfsFd", StatfsFd},       {"openFile", OpenFile},         {"createAt", CreateAt},
      {"mkdirAt", MkdirAt},         {"mknodAt", MknodAt},           {"symlinkAt", SymlinkAt},
      {"linkAt", LinkAt},           {"unlinkAt", UnlinkAt},         {"renameAt2", RenameAt2},
      {"readlinkAt", ReadlinkAt},   {"chmodInode", ChmodInode},     {"chownInode", ChownInode},
      {"utimensInode", UtimensInode}, {"truncateInode", TruncateInode}, {"readDir", ReadDir},
      {"seekDir", SeekDir},         {"getXattr", GetXattr},         {"setXattr", SetXattr},
      {"listXattr", ListXattr},     {"removeXattr", RemoveXattr},
      {"lseek", Lseek},             {"copyFileRange", CopyFileRange}, {"fsync", Fsync},
      {"getLock", GetLock},         {"setLock", SetLock},
  };
  for (const Fn& f : fns) fs.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  exports.Set("fsAt", fs);
}

}  // namespace tsvmm
