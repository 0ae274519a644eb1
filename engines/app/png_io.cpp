#include "png_io.h"

#include "error.h"

#include <png.h>

#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace asap {
namespace app {

namespace {

// libpng reports errors by longjmp; the functions that call it hold only plain data so that no
// destructor is skipped. The message is copied here before the jump.
struct PngErrorSink {
    char message[256] = {0};
};

void onPngError(png_structp png, png_const_charp message) {
    auto* sink = static_cast<PngErrorSink*>(png_get_error_ptr(png));
    std::snprintf(sink->message, sizeof sink->message, "%s", message ? message : "unknown error");
    png_longjmp(png, 1);
}

void onPngWarning(png_structp, png_const_charp) {}  // ancillary-chunk quirks do not matter here

struct ReadState {
    FILE* file;
    png_structp png;
    png_infop info;
    PngErrorSink sink;
    png_uint_32 width, height;
    int bitDepth, colorType, channels;
    unsigned char* pixels;  // malloc'd so that a longjmp cannot skip a destructor
    png_bytep* rows;
    size_t rowBytes;
    char problem[256];  // a non-libpng refusal (size), reported by the caller
};

// 0 on success; 1 libpng error (sink.message); 2 refusal (problem).
int readWithLibpng(ReadState* s) {
    if (setjmp(png_jmpbuf(s->png))) return 1;
    png_init_io(s->png, s->file);
    png_set_sig_bytes(s->png, 8);
    png_read_info(s->png, s->info);
    s->width = png_get_image_width(s->png, s->info);
    s->height = png_get_image_height(s->png, s->info);
    s->bitDepth = png_get_bit_depth(s->png, s->info);
    s->colorType = png_get_color_type(s->png, s->info);
    if (s->width > static_cast<png_uint_32>(kMaxImageSide) || s->height > static_cast<png_uint_32>(kMaxImageSide)) {
        std::snprintf(s->problem, sizeof s->problem, "is %ux%u pixels; the limit is %dx%d", s->width, s->height,
                      kMaxImageSide, kMaxImageSide);
        return 2;
    }
    if (s->colorType == PNG_COLOR_TYPE_GRAY && s->bitDepth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (s->colorType == PNG_COLOR_TYPE_PALETTE && s->bitDepth < 8) png_set_packing(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);
    s->channels = png_get_channels(s->png, s->info);
    s->rowBytes = png_get_rowbytes(s->png, s->info);
    s->pixels = static_cast<unsigned char*>(std::malloc(s->rowBytes * s->height));
    s->rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * s->height));
    if (!s->pixels || !s->rows) png_error(s->png, "out of memory");
    for (png_uint_32 y = 0; y < s->height; ++y) s->rows[y] = s->pixels + y * s->rowBytes;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, nullptr);
    return 0;
}

struct WriteState {
    FILE* file;
    png_structp png;
    png_infop info;
    PngErrorSink sink;
    int width, height, colorType;
    png_bytep* rows;
};

int writeWithLibpng(WriteState* s) {
    if (setjmp(png_jmpbuf(s->png))) return 1;
    png_init_io(s->png, s->file);
    png_set_IHDR(s->png, s->info, static_cast<png_uint_32>(s->width), static_cast<png_uint_32>(s->height), 8,
                 s->colorType, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    png_write_image(s->png, s->rows);
    png_write_end(s->png, nullptr);
    return 0;
}

std::string errnoText() { return std::strerror(errno); }

}  // namespace

std::string Raster::describe() const {
    std::string kind;
    if (palette)
        kind = "palette";
    else if (channels == 1)
        kind = "grayscale";
    else if (channels == 2)
        kind = "grayscale+alpha";
    else if (channels == 3)
        kind = "RGB";
    else
        kind = "RGBA";
    return std::to_string(bitDepth) + "-bit " + kind;
}

Raster readPng(std::string const& path) {
    FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) throw Error(path + ": cannot open (" + errnoText() + ")");
    unsigned char signature[8];
    size_t const got = std::fread(signature, 1, sizeof signature, file);
    if (got != sizeof signature || png_sig_cmp(signature, 0, sizeof signature) != 0) {
        std::fclose(file);
        throw Error(path + ": not a PNG file");
    }
    ReadState s{};
    s.file = file;
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s.sink, onPngError, onPngWarning);
    s.info = s.png ? png_create_info_struct(s.png) : nullptr;
    if (!s.png || !s.info) {
        png_destroy_read_struct(s.png ? &s.png : nullptr, nullptr, nullptr);
        std::fclose(file);
        throw Error(path + ": out of memory initialising libpng");
    }
    int const status = readWithLibpng(&s);
    png_destroy_read_struct(&s.png, &s.info, nullptr);
    std::fclose(file);
    if (status != 0) {
        std::free(s.pixels);
        std::free(s.rows);
        if (status == 2) throw Error(path + " " + s.problem);
        throw Error(path + ": damaged or truncated PNG (libpng: " + s.sink.message + ")");
    }
    Raster r;
    r.width = static_cast<int>(s.width);
    r.height = static_cast<int>(s.height);
    r.channels = s.channels;
    r.bitDepth = s.bitDepth;
    r.palette = s.colorType == PNG_COLOR_TYPE_PALETTE;
    size_t const perRow = static_cast<size_t>(r.width) * r.channels;
    r.samples.resize(perRow * r.height);
    bool const wide = s.bitDepth == 16;  // big-endian samples after png_read_update_info
    for (int y = 0; y < r.height; ++y) {
        unsigned char const* row = s.rows[y];
        uint16_t* out = r.samples.data() + y * perRow;
        for (size_t i = 0; i < perRow; ++i)
            out[i] = wide ? static_cast<uint16_t>((row[2 * i] << 8) | row[2 * i + 1]) : row[i];
    }
    std::free(s.pixels);
    std::free(s.rows);
    return r;
}

void writePng(std::string const& path, uint8_t const* pixels, int width, int height, int channels) {
    if (channels != 1 && channels != 3)
        throw Error(path + ": can only write grayscale or RGB images, not " + std::to_string(channels) + " channels");
    if (width <= 0 || height <= 0 || width > kMaxImageSide || height > kMaxImageSide)
        throw Error(path + ": invalid image size " + std::to_string(width) + "x" + std::to_string(height));
    namespace fs = std::filesystem;
    fs::path const target(path);
    fs::path const folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error(path + ": cannot create the folder " + folder.string() + " (" + ec.message() + ")");
    if (fs::is_directory(target, ec)) throw Error(path + " is a folder; give a file name ending in .png");

    // O_EXCL with mode 0666: a fresh name of our own whose permissions the umask decides
    // (mkstemp would make it 0600).
    static std::atomic<unsigned> counter{0};
    std::string tmp;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        tmp = (folder / ("." + target.filename().string() + "." + std::to_string(getpid()) + "." +
                         std::to_string(counter++) + ".tmp"))
                  .string();
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) throw Error(path + ": cannot write in " + folder.string() + " (" + errnoText() + ")");
    FILE* file = ::fdopen(fd, "wb");
    if (!file) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(path + ": cannot write (" + errnoText() + ")");
    }
    std::vector<png_bytep> rows(static_cast<size_t>(height));
    size_t const rowBytes = static_cast<size_t>(width) * channels;
    for (int y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(pixels + y * rowBytes);

    WriteState s{};
    s.file = file;
    s.width = width;
    s.height = height;
    s.colorType = channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY;
    s.rows = rows.data();
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s.sink, onPngError, onPngWarning);
    s.info = s.png ? png_create_info_struct(s.png) : nullptr;
    int status = (s.png && s.info) ? writeWithLibpng(&s) : 1;
    if (!s.png || !s.info) std::snprintf(s.sink.message, sizeof s.sink.message, "out of memory");
    png_destroy_write_struct(s.png ? &s.png : nullptr, s.info ? &s.info : nullptr);
    bool const flushed = std::fflush(file) == 0;
    std::string const flushError = flushed ? "" : errnoText();
    bool const closed = std::fclose(file) == 0;
    if (status != 0 || !flushed || !closed) {
        ::unlink(tmp.c_str());
        throw Error(
            path + ": writing failed (" +
            (status != 0 ? std::string("libpng: ") + s.sink.message : (flushError.empty() ? errnoText() : flushError)) +
            ")");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::string const why = errnoText();
        ::unlink(tmp.c_str());
        throw Error(path + ": cannot move the finished file into place (" + why + ")");
    }
}

}  // namespace app
}  // namespace asap
