// qinfer/core/mapped_file.hpp — a whole file's bytes, read-only: mapped when possible, else read.
//
// Model weights are used straight from the mapping (no copy), so this object must outlive
// every view into it. Moving it keeps the bytes where they are, so views survive a move.
// Where mapping is unavailable (no mmap, a pipe, mmap refused) the file is read into a
// page-aligned buffer instead; callers cannot tell the difference except by `is_mapped()`.
// A mapped file that another process truncates raises SIGBUS when the lost pages are read;
// use mode::read for files that may change underneath.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#  include <fcntl.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <unistd.h>
#  define QINFER_HAVE_MMAP 1
#else
#  define QINFER_HAVE_MMAP 0
#endif

#include "config.hpp"
#include "error.hpp"

QINFER_NAMESPACE_BEGIN

class mapped_file {
public:
    enum class mode {
        map,   // mmap the file; read it into memory only if mapping fails
        read,  // always read into memory (tests of the fallback, files about to change)
    };

    explicit mapped_file(const std::filesystem::path& path, mode how = mode::map) : path_(path) {
#if QINFER_HAVE_MMAP
        open_posix(how);
#else
        (void)how;
        read_with_stream();
#endif
    }

    mapped_file(mapped_file&& other) noexcept { swap(other); }
    mapped_file& operator=(mapped_file&& other) noexcept {
        if (this != &other) {
            mapped_file tmp(std::move(other));
            swap(tmp);
        }
        return *this;
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() { release(); }

    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    const std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    const std::filesystem::path& path() const noexcept { return path_; }
    bool is_mapped() const noexcept { return mapped_; }

private:
    // Page-aligned so that tensor data keeps the alignment the file promises for it.
    static constexpr std::align_val_t buffer_alignment{4096};

    struct buffer_deleter {
        void operator()(std::byte* p) const noexcept { ::operator delete[](p, buffer_alignment); }
    };
    using buffer = std::unique_ptr<std::byte[], buffer_deleter>;

    static buffer allocate(std::size_t n) {
        return buffer(static_cast<std::byte*>(::operator new[](n, buffer_alignment)));
    }

    [[noreturn]] void fail(const char* action, const std::string& reason) const {
        throw error(std::string("cannot ") + action + " '" + path_.string() + "': " + reason, errc::io);
    }
    [[noreturn]] void fail_errno(const char* action) const { fail(action, std::strerror(errno)); }

    void adopt(std::vector<std::byte>&& bytes) {
        if (bytes.empty()) return;
        owned_ = allocate(bytes.size());
        std::memcpy(owned_.get(), bytes.data(), bytes.size());
        data_ = owned_.get();
        size_ = bytes.size();
    }

#if QINFER_HAVE_MMAP
    void open_posix(mode how) {
        int fd;
        do fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) fail_errno("open");
        // The descriptor is only needed until the bytes are mapped or read.
        struct closer {
            int fd;
            ~closer() { ::close(fd); }
        } guard{fd};

        struct stat st {};
        if (::fstat(fd, &st) != 0) fail_errno("stat");
        if (S_ISDIR(st.st_mode)) fail("read", "it is a directory");
        if (!S_ISREG(st.st_mode)) {  // pipe, character device: size unknown up front
            read_until_eof(fd);
            return;
        }
        if (st.st_size < 0 || static_cast<std::uintmax_t>(st.st_size) > SIZE_MAX)
            fail("map", "it is larger than the address space");
        const auto n = static_cast<std::size_t>(st.st_size);
        if (n == 0) return;  // mmap rejects length 0; an empty span is the honest answer

        if (how == mode::map) {
            void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p != MAP_FAILED) {
                data_ = static_cast<const std::byte*>(p);
                size_ = n;
                mapped_ = true;
                return;
            }
            // fall through: e.g. a file system without mmap support
        }
        read_exactly(fd, n);
    }

    void read_exactly(int fd, std::size_t n) {
        buffer buf = allocate(n);
        std::size_t done = 0;
        while (done < n) {
            const ::ssize_t got = ::read(fd, buf.get() + done, n - done);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) fail_errno("read");
            if (got == 0) fail("read", "the file shrank while being read");
            done += static_cast<std::size_t>(got);
        }
        owned_ = std::move(buf);
        data_ = owned_.get();
        size_ = n;
    }

    void read_until_eof(int fd) {
        std::vector<std::byte> bytes;
        std::byte chunk[65536];
        for (;;) {
            const ::ssize_t got = ::read(fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) fail_errno("read");
            if (got == 0) break;
            bytes.insert(bytes.end(), chunk, chunk + got);
        }
        adopt(std::move(bytes));
    }
#endif

    void read_with_stream() {
        std::ifstream in(path_, std::ios::binary);
        if (!in) fail("open", "the file cannot be opened for reading");
        std::vector<std::byte> bytes;
        char chunk[65536];
        while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
            const auto* p = reinterpret_cast<const std::byte*>(chunk);
            bytes.insert(bytes.end(), p, p + in.gcount());
            if (!in) break;
        }
        if (in.bad()) fail("read", "an I/O error occurred");
        adopt(std::move(bytes));
    }

    void release() noexcept {
#if QINFER_HAVE_MMAP
        if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
        owned_.reset();
        data_ = nullptr;
        size_ = 0;
        mapped_ = false;
    }

    void swap(mapped_file& other) noexcept {
        std::swap(path_, other.path_);
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
        std::swap(mapped_, other.mapped_);
        std::swap(owned_, other.owned_);
    }

    std::filesystem::path path_;
    const std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    bool mapped_ = false;
    buffer owned_;  // the bytes when read rather than mapped
};

QINFER_NAMESPACE_END
