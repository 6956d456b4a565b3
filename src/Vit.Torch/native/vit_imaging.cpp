// vit_imaging (libvit_imaging.so): decoding, resizing, augmentation ops and batch normalisation over OpenCV,
// for Vit.Torch.Imaging. It links OpenCV only (core, imgproc, imgcodecs): no libtorch.
//
// Rules (vit_status.h): every export returns a status (0 ok, 1 error) and catches every C++ exception; the
// error text of the last failed call on this thread is read with vit_imaging_last_error; results come back
// through out-parameters.
//  - An image handle (VitImage*) owns one cv::Mat: HWC, 8-bit, 1, 3 or 4 channels in RGB(A) order (OpenCV's
//    BGR is converted at decode and encode), continuous. It is released with exactly one vit_image_free;
//    vit_image_free(NULL) is a no-op. Every op returns a new handle and never changes its input, so handles
//    may share pixel memory (cv::Mat reference counting) and be read from several threads at once.
//  - An encoded-bytes handle (VitBlob*) is released with vit_blob_free.
//  - Decoding first reads the image size from the header bytes (PNG IHDR, JPEG SOFn, BMP info header,
//    WebP VP8/VP8L/VP8X) and refuses images above a pixel limit before OpenCV allocates anything
//    (decompression bombs), and checks that the data is complete (libjpeg would silently gray-fill a
//    truncated JPEG). Only those four formats are accepted: for the others OpenCV reads, the size could not
//    be checked first.
#include "vit_status.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

struct VitImage {
  cv::Mat mat;  // CV_8UC1/3/4, RGB(A), continuous
};

struct VitBlob {
  std::vector<uchar> bytes;
};

using vit::check_out;

namespace {

std::atomic<int64_t> g_live_images{0};

// Largest side and largest buffer an op may create; keeps int arithmetic in OpenCV far from overflow.
constexpr int kMaxSide = 1 << 16;
constexpr int64_t kMaxBytes = (int64_t{1} << 31) - 1;

VitImage* wrap(cv::Mat m) {
  if (m.depth() != CV_8U) throw std::logic_error("internal: image is not 8-bit");
  if (!m.isContinuous()) m = m.clone();
  auto* h = new VitImage{std::move(m)};
  g_live_images.fetch_add(1, std::memory_order_relaxed);
  return h;
}

const cv::Mat& mat_of(const VitImage* h) {
  if (h == nullptr) throw std::invalid_argument("null image handle");
  return h->mat;
}

void check_size(int w, int h, const char* what) {
  if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide) {
    std::ostringstream s;
    s << what << " " << w << "x" << h << " is invalid: width and height must be in [1, " << kMaxSide << "]";
    throw std::invalid_argument(s.str());
  }
}

int to_cv_interp(int interp, bool for_resize) {
  switch (interp) {
    case 0: return for_resize ? cv::INTER_NEAREST_EXACT : cv::INTER_NEAREST;  // EXACT: same pixels as PIL
    case 1: return cv::INTER_LINEAR;
    case 2: return cv::INTER_CUBIC;
    case 3: return for_resize ? cv::INTER_AREA : cv::INTER_LINEAR;  // warpAffine has no area mode
    default: throw std::invalid_argument("unknown interpolation code " + std::to_string(interp));
  }
}

// cv::resize, except where OpenCV 4.6's INTER_NEAREST_EXACT would read outside the source. Its resizeNN_bitexact
// takes the 16.16 fixed-point step of each axis as ((side << 16) + to / 2) / to in int, which overflows for a
// source side of 32768 or more (the offsets go negative: a 63000x8 JPEG resized to 13x21 read up to 7 KB before
// the pixels and crashed, found by tools/fuzz-native), and starts at offset step / 2 - 1 = -1 when a 1-pixel
// side is stretched to more than 43690. In those cases the same mapping is computed here in 64 bits and clamped
// to the source; elsewhere OpenCV's own code runs (they give identical pixels).
void resize_into(const cv::Mat& src, cv::Mat& dst, cv::Size size, int flag) {
  auto step_of = [](int from, int to) { return ((int64_t{from} << 16) + to / 2) / to; };
  auto opencv_safe = [&](int from, int to) { return from < (1 << 15) && step_of(from, to) >= 2; };
  if (flag != cv::INTER_NEAREST_EXACT || size == src.size() ||
      (opencv_safe(src.cols, size.width) && opencv_safe(src.rows, size.height))) {
    cv::resize(src, dst, size, 0, 0, flag);
    return;
  }
  auto offsets = [&](int from, int to) {
    const int64_t step = step_of(from, to), start = step / 2 - 1;
    std::vector<int> o(static_cast<size_t>(to));
    for (int i = 0; i < to; ++i) o[i] = static_cast<int>(std::clamp<int64_t>((step * i + start) >> 16, 0, from - 1));
    return o;
  };
  const std::vector<int> xs = offsets(src.cols, size.width), ys = offsets(src.rows, size.height);
  cv::Mat out(size, src.type());
  const size_t px = src.elemSize();
  for (int y = 0; y < size.height; ++y) {
    const uchar* s = src.ptr(ys[y]);
    uchar* d = out.ptr(y);
    for (int x = 0; x < size.width; ++x) std::memcpy(d + x * px, s + static_cast<size_t>(xs[x]) * px, px);
  }
  dst = out;
}

// ---------------------------------------------------------------------------------------------------------
// Header probing: the size before decoding, and whether the data is complete
// ---------------------------------------------------------------------------------------------------------

enum class Format { Jpeg, Png, Bmp, WebP };

const char* name_of(Format f) {
  switch (f) {
    case Format::Jpeg: return "JPEG";
    case Format::Png: return "PNG";
    case Format::Bmp: return "BMP";
    case Format::WebP: return "WebP";
  }
  return "?";
}

struct Probe {
  explicit Probe(Format f) : format(f) {}
  Format format;
  int64_t width = 0, height = 0;
  std::string incomplete;  // non-empty: why the data is truncated or damaged (found after the size)
};

// A decode failure: the text is the reason alone; the C# side adds the file name.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t le24(const uint8_t* p) { return (uint32_t{p[2]} << 16) | le16(p); }
uint32_t le32(const uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

[[noreturn]] void fail(const std::string& why) { throw DecodeError(why); }

std::string truncated(Format f, size_t n, const std::string& where) {
  std::ostringstream s;
  s << "truncated " << name_of(f) << ": the data (" << n << " bytes) ends " << where;
  return s.str();
}

// PNG: signature, then chunks (length, type, data, CRC); IHDR first holds the size; IEND ends the file.
Probe probe_png(const uint8_t* d, size_t n) {
  Probe p(Format::Png);
  if (n < 8 + 8 + 13) fail(truncated(Format::Png, n, "inside the header (IHDR)"));
  if (be32(d + 8) != 13 || std::memcmp(d + 12, "IHDR", 4) != 0) fail("corrupt PNG: the first chunk is not a valid IHDR");
  p.width = be32(d + 16);
  p.height = be32(d + 20);
  if (p.width == 0 || p.height == 0 || p.width > 0x7fffffff || p.height > 0x7fffffff)
    fail("corrupt PNG: IHDR gives the size " + std::to_string(p.width) + "x" + std::to_string(p.height));
  size_t pos = 8;
  for (;;) {
    if (pos + 8 > n) {
      p.incomplete = truncated(Format::Png, n, "before the end chunk (IEND)");
      break;
    }
    const uint64_t len = be32(d + pos);
    const std::string type(reinterpret_cast<const char*>(d + pos + 4), 4);
    if (len > 0x7fffffff) {
      p.incomplete = "corrupt PNG: chunk at byte " + std::to_string(pos) + " has an invalid length";
      break;
    }
    if (pos + 12 + len > n) {
      p.incomplete = truncated(Format::Png, n, "inside the " + type + " chunk at byte " + std::to_string(pos));
      break;
    }
    if (type == "IEND") break;
    pos += 12 + len;
  }
  return p;
}

bool is_sof(int m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

// JPEG: SOI, then marker segments up to the first scan (SOS); the frame header (SOFn) holds the size; the
// entropy-coded data after SOS never contains FF D9 except as the end-of-image marker (FF is stuffed as FF 00).
Probe probe_jpeg(const uint8_t* d, size_t n) {
  Probe p(Format::Jpeg);
  size_t pos = 2;
  bool have_size = false;
  for (;;) {
    if (pos >= n) {
      if (!have_size) fail(truncated(Format::Jpeg, n, "before the frame header (SOF)"));
      p.incomplete = truncated(Format::Jpeg, n, "before the image data (SOS)");
      return p;
    }
    if (d[pos] != 0xFF) {
      if (!have_size) fail("corrupt JPEG: expected a marker at byte " + std::to_string(pos));
      p.incomplete = "corrupt JPEG: expected a marker at byte " + std::to_string(pos);
      return p;
    }
    while (pos < n && d[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) continue;
    const int m = d[pos++];
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // markers without a segment
    if (m == 0xD9) {
      if (!have_size) fail("corrupt JPEG: the end-of-image marker comes before any frame header");
      p.incomplete = "corrupt JPEG: the end-of-image marker comes before any image data";
      return p;
    }
    if (pos + 2 > n || pos + be16(d + pos) > n) {
      const std::string where = "inside a marker segment at byte " + std::to_string(pos - 2);
      if (!have_size) fail(truncated(Format::Jpeg, n, where));
      p.incomplete = truncated(Format::Jpeg, n, where);
      return p;
    }
    const size_t len = be16(d + pos);
    if (len < 2) fail("corrupt JPEG: marker segment of length " + std::to_string(len) + " at byte " + std::to_string(pos - 2));
    if (is_sof(m) && !have_size) {
      if (len < 8) fail("corrupt JPEG: frame header too short");
      p.height = be16(d + pos + 3);
      p.width = be16(d + pos + 5);
      if (p.width == 0 || p.height == 0)
        fail("unsupported JPEG: the frame header gives the size " + std::to_string(p.width) + "x" +
             std::to_string(p.height) + " (a height defined later by a DNL marker is not supported)");
      have_size = true;
    }
    if (m == 0xDA) {
      if (!have_size) fail("corrupt JPEG: image data (SOS) before any frame header");
      const uint8_t eoi[2] = {0xFF, 0xD9};
      const auto* end = d + n;
      if (std::search(d + pos + len, end, eoi, eoi + 2) == end)
        p.incomplete = truncated(Format::Jpeg, n, "before the end-of-image marker (the file was probably cut short)");
      return p;
    }
    pos += len;
  }
}

// BMP: file header (14 bytes) then an info header whose first field is its own size.
Probe probe_bmp(const uint8_t* d, size_t n) {
  Probe p(Format::Bmp);
  if (n < 26) fail(truncated(Format::Bmp, n, "inside the header"));
  const uint32_t offset = le32(d + 10);
  const uint32_t info = le32(d + 14);
  int64_t w, h;
  uint32_t bpp, compression = 0;
  if (info == 12) {  // BITMAPCOREHEADER
    w = le16(d + 18);
    h = le16(d + 20);
    bpp = le16(d + 24);
  } else if (info >= 40) {
    if (n < 14 + 40) fail(truncated(Format::Bmp, n, "inside the header"));
    w = static_cast<int32_t>(le32(d + 18));
    h = static_cast<int32_t>(le32(d + 22));  // negative: rows stored top-down
    bpp = le16(d + 28);
    compression = le32(d + 30);
  } else {
    fail("corrupt BMP: unknown info header size " + std::to_string(info));
  }
  if (w <= 0 || h == 0) fail("corrupt BMP: the header gives the size " + std::to_string(w) + "x" + std::to_string(h));
  p.width = w;
  p.height = h < 0 ? -h : h;
  // Uncompressed (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS): rows padded to 4 bytes; the size is known.
  if (compression == 0 || compression == 3 || compression == 6) {
    const __int128 stride = (static_cast<__int128>(p.width) * bpp + 31) / 32 * 4;
    const __int128 need = static_cast<__int128>(offset) + stride * p.height;
    if (need > static_cast<__int128>(n))
      p.incomplete = truncated(Format::Bmp, n, "inside the pixel data (" + std::to_string(static_cast<int64_t>(
                                                   std::min<__int128>(need, INT64_MAX))) + " bytes expected)");
  }
  return p;
}

// WebP: RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended, canvas size).
Probe probe_webp(const uint8_t* d, size_t n) {
  Probe p(Format::WebP);
  if (n < 30) fail(truncated(Format::WebP, n, "inside the header"));
  const char* chunk = reinterpret_cast<const char*>(d + 12);
  if (std::memcmp(chunk, "VP8 ", 4) == 0) {
    if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A) fail("corrupt WebP: bad VP8 start code");
    p.width = le16(d + 26) & 0x3FFF;
    p.height = le16(d + 28) & 0x3FFF;
  } else if (std::memcmp(chunk, "VP8L", 4) == 0) {
    if (d[20] != 0x2F) fail("corrupt WebP: bad VP8L signature");
    const uint32_t bits = le32(d + 21);
    p.width = (bits & 0x3FFF) + 1;
    p.height = ((bits >> 14) & 0x3FFF) + 1;
  } else if (std::memcmp(chunk, "VP8X", 4) == 0) {
    p.width = int64_t{le24(d + 24)} + 1;
    p.height = int64_t{le24(d + 27)} + 1;
  } else {
    fail("corrupt WebP: unknown first chunk '" + std::string(chunk, 4) + "'");
  }
  if (p.width == 0 || p.height == 0) fail("corrupt WebP: zero width or height");
  const uint64_t riff = le32(d + 4);
  if (n < 8 + riff) p.incomplete = truncated(Format::WebP, n, "before the " + std::to_string(8 + riff) + " bytes its header announces");
  return p;
}

// Names what the data is when it is no supported image, so "cat.jpg" that is an HTML page says so.
[[noreturn]] void fail_unknown(const uint8_t* d, size_t n) {
  auto starts = [&](const char* magic, size_t len) { return n >= len && std::memcmp(d, magic, len) == 0; };
  const std::string supported = " (supported: JPEG, PNG, BMP, WebP)";
  if (starts("GIF8", 4)) fail("GIF images are not supported" + supported);
  if (starts("II*\0", 4) || starts("MM\0*", 4)) fail("TIFF images are not supported" + supported);
  size_t printable = 0;
  const size_t k = std::min<size_t>(n, 24);
  for (size_t i = 0; i < k; ++i)
    if ((d[i] >= 0x20 && d[i] < 0x7F) || d[i] == '\n' || d[i] == '\r' || d[i] == '\t') ++printable;
  std::ostringstream s;
  s << "not an image in a supported format" << supported << ": ";
  if (printable == k) {
    std::string text(reinterpret_cast<const char*>(d), k);
    for (auto& c : text)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    s << "it starts with the text \"" << text << (n > k ? "...\"" : "\"");
  } else {
    s << "it starts with the bytes";
    char hex[4];
    for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
      std::snprintf(hex, sizeof hex, " %02x", d[i]);
      s << hex;
    }
  }
  fail(s.str());
}

Probe probe(const uint8_t* d, size_t n) {
  if (n == 0) fail("the file is empty (0 bytes)");
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(d, png_sig, 8) == 0) return probe_png(d, n);
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return probe_jpeg(d, n);
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return probe_bmp(d, n);
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return probe_webp(d, n);
  fail_unknown(d, n);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding and channel conversion
// ---------------------------------------------------------------------------------------------------------

cv::Mat to_channels(const cv::Mat& m, int channels) {
  const int have = m.channels();
  if (channels != 1 && channels != 3) throw std::invalid_argument("channels must be 1 or 3, got " + std::to_string(channels));
  if (have == channels) return m;
  cv::Mat out;
  if (channels == 1) {
    // ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), OpenCV's and PIL's "L". Alpha is dropped, not blended.
    cv::cvtColor(m, out, have == 4 ? cv::COLOR_RGBA2GRAY : cv::COLOR_RGB2GRAY);
  } else {
    cv::cvtColor(m, out, have == 4 ? cv::COLOR_RGBA2RGB : cv::COLOR_GRAY2RGB);
  }
  return out;
}

// flags: bit 0 = ignore EXIF orientation. channels: 0 = as stored, else 1 or 3.
cv::Mat decode(const uint8_t* d, size_t n, int64_t max_pixels, int channels, int flags) {
  if (channels != 0 && channels != 1 && channels != 3)
    throw std::invalid_argument("requested channels must be 0 (as stored), 1 or 3, got " + std::to_string(channels));
  if (max_pixels <= 0) throw std::invalid_argument("the pixel limit must be positive");
  const Probe p = probe(d, n);
  if (p.width * p.height > max_pixels) {
    std::ostringstream s;  // general format, 6 significant digits: "10000 megapixels", "0.000192 megapixels"
    s << "the " << name_of(p.format) << " header gives the size " << p.width << "x" << p.height << " ("
      << p.width * p.height / 1e6 << " megapixels), more than the limit of " << max_pixels / 1e6
      << " megapixels (a protection against decompression bombs; the limit is configurable)";
    fail(s.str());
  }
  if (p.width * p.height * 4 > kMaxBytes)
    fail("the header gives the size " + std::to_string(p.width) + "x" + std::to_string(p.height) +
         ", too large to hold in one buffer (2 GiB)");
  if (!p.incomplete.empty()) fail(p.incomplete);
  if (n > static_cast<size_t>(kMaxBytes)) fail("the data is larger than 2 GiB");

  // IMREAD_UNCHANGED keeps gray, RGB and RGBA as stored (and 16-bit samples) but skips EXIF orientation;
  // the flags that apply EXIF (IMREAD_ANYCOLOR...) turn RGBA into RGB. Only JPEG carries EXIF here and a
  // JPEG has no alpha, so JPEG decodes with IMREAD_ANYCOLOR and the other formats with IMREAD_UNCHANGED.
  int cv_flags = cv::IMREAD_UNCHANGED;
  if (p.format == Format::Jpeg) cv_flags = cv::IMREAD_ANYCOLOR | ((flags & 1) ? cv::IMREAD_IGNORE_ORIENTATION : 0);
  const cv::Mat buffer(1, static_cast<int>(n), CV_8UC1, const_cast<uint8_t*>(d));
  cv::Mat m = cv::imdecode(buffer, cv_flags);
  if (m.empty()) fail(std::string("the ") + name_of(p.format) + " decoder could not read the data (corrupt or unsupported variant)");

  if (m.depth() == CV_16U) {
    cv::Mat eight;
    m.convertTo(eight, CV_8U, 1.0 / 257.0);  // 65535 -> 255; rounds to nearest
    m = eight;
  } else if (m.depth() != CV_8U) {
    fail(std::string("unsupported sample type in ") + name_of(p.format) + " (only 8- and 16-bit images are supported)");
  }
  cv::Mat rgb;
  switch (m.channels()) {
    case 1: rgb = m; break;
    case 2: cv::extractChannel(m, rgb, 0); break;  // gray + alpha: alpha dropped
    case 3: cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(m, rgb, cv::COLOR_BGRA2RGBA); break;
    default: fail("unsupported channel count " + std::to_string(m.channels()));
  }
  return channels == 0 ? rgb : to_channels(rgb, channels);
}

std::vector<uint8_t> read_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot open the file: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(std::string("cannot read the file: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("it is a directory, not a file");
  if (!S_ISREG(st.st_mode)) fail("it is not a regular file");
  if (st.st_size > kMaxBytes) fail("the file is larger than 2 GiB");
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t r = ::read(fd, data.data() + got, data.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(std::string("cannot read the file: ") + std::strerror(errno));
    }
    if (r == 0) break;  // shrank while reading
    got += static_cast<size_t>(r);
  }
  data.resize(got);
  return data;
}

// ---------------------------------------------------------------------------------------------------------
// Colour helpers
// ---------------------------------------------------------------------------------------------------------

// Applies fn to the colour channels, keeping an alpha channel as it is.
template <typename F>
cv::Mat on_color(const cv::Mat& src, F fn) {
  if (src.channels() != 4) return fn(src);
  cv::Mat rgb, alpha;
  cv::cvtColor(src, rgb, cv::COLOR_RGBA2RGB);
  cv::extractChannel(src, alpha, 3);
  cv::Mat out3 = fn(rgb), out;
  std::vector<cv::Mat> planes;
  cv::split(out3, planes);
  planes.push_back(alpha);
  cv::merge(planes, out);
  return out;
}

cv::Mat gray_of(const cv::Mat& rgb) {
  if (rgb.channels() == 1) return rgb;
  cv::Mat g;
  cv::cvtColor(rgb, g, cv::COLOR_RGB2GRAY);
  return g;
}

// a * f + b * (1 - f), rounded and saturated to 0..255 (PIL's Image.blend, used by ImageEnhance).
cv::Mat blend(const cv::Mat& a, const cv::Mat& b, double f) {
  cv::Mat out;
  cv::addWeighted(a, f, b, 1.0 - f, 0.0, out);
  return out;
}

cv::Mat apply_lut(const cv::Mat& src, const uint8_t* table256) {
  cv::Mat lut(1, 256, CV_8UC1, const_cast<uint8_t*>(table256)), out;
  cv::LUT(src, lut, out);
  return out;
}

// Colour ops, numbered as in the C# ColorOp enum. Factor semantics follow PIL's ImageEnhance (as torchvision
// and RandAugment use them): 1 = unchanged, 0 = the degenerate image (black, mean gray, grayscale, blurred).
cv::Mat adjust(const cv::Mat& src, int op, double amount) {
  switch (op) {
    case 0:  // brightness: blend with black
      return on_color(src, [&](const cv::Mat& m) {
        cv::Mat o;
        m.convertTo(o, -1, amount, 0.0);
        return o;
      });
    case 1:  // contrast: blend with the mean gray level
      return on_color(src, [&](const cv::Mat& m) {
        const double mean = cv::mean(gray_of(m))[0];
        cv::Mat o;
        m.convertTo(o, -1, amount, (1.0 - amount) * mean);
        return o;
      });
    case 2:  // saturation: blend with the grayscale image
      return on_color(src, [&](const cv::Mat& m) {
        if (m.channels() == 1) return m;
        cv::Mat g3;
        cv::cvtColor(gray_of(m), g3, cv::COLOR_GRAY2RGB);
        return blend(m, g3, amount);
      });
    case 3:  // sharpness: blend with PIL's SMOOTH filter (3x3, centre 5, sum 13); border pixels stay
      return on_color(src, [&](const cv::Mat& m) {
        if (m.rows < 3 || m.cols < 3) return m;
        cv::Mat k = (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
        cv::Mat smooth = m.clone(), filtered;
        cv::filter2D(m, filtered, -1, k, cv::Point(-1, -1), 0, cv::BORDER_REPLICATE);
        const cv::Rect inner(1, 1, m.cols - 2, m.rows - 2);
        filtered(inner).copyTo(smooth(inner));
        return blend(m, smooth, amount);
      });
    case 4: {  // solarize: invert pixels >= threshold
      uint8_t t[256];
      for (int i = 0; i < 256; ++i) t[i] = static_cast<uint8_t>(i >= amount ? 255 - i : i);
      return on_color(src, [&](const cv::Mat& m) { return apply_lut(m, t); });
    }
    case 5: {  // posterize: keep the top `amount` bits
      const int bits = static_cast<int>(amount);
      if (bits < 1 || bits > 8) throw std::invalid_argument("posterize bits must be in [1, 8], got " + std::to_string(bits));
      uint8_t t[256];
      const int mask = ~((1 << (8 - bits)) - 1) & 0xFF;
      for (int i = 0; i < 256; ++i) t[i] = static_cast<uint8_t>(i & mask);
      return on_color(src, [&](const cv::Mat& m) { return apply_lut(m, t); });
    }
    case 6:  // autocontrast: stretch each channel's [min, max] to [0, 255]
      return on_color(src, [&](const cv::Mat& m) {
        std::vector<cv::Mat> planes;
        cv::split(m, planes);
        for (auto& p : planes) {
          double lo, hi;
          cv::minMaxLoc(p, &lo, &hi);
          if (hi <= lo) continue;
          cv::Mat o;
          p.convertTo(o, -1, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
          p = o;
        }
        cv::Mat out;
        cv::merge(planes, out);
        return out;
      });
    case 7:  // equalize: per-channel histogram equalisation
      return on_color(src, [&](const cv::Mat& m) {
        std::vector<cv::Mat> planes;
        cv::split(m, planes);
        for (auto& p : planes) {
          cv::Mat o;
          cv::equalizeHist(p, o);
          p = o;
        }
        cv::Mat out;
        cv::merge(planes, out);
        return out;
      });
    case 8: {  // invert
      uint8_t t[256];
      for (int i = 0; i < 256; ++i) t[i] = static_cast<uint8_t>(255 - i);
      return on_color(src, [&](const cv::Mat& m) { return apply_lut(m, t); });
    }
    default: throw std::invalid_argument("unknown colour op " + std::to_string(op));
  }
}

void check_factor(int op, double amount) {
  if (!std::isfinite(amount)) throw std::invalid_argument("colour op amount must be finite");
  if (op <= 3 && amount < 0) throw std::invalid_argument("enhancement factor must be >= 0, got " + std::to_string(amount));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Library: version, errors
// ---------------------------------------------------------------------------------------------------------

// Bumped whenever an export's signature or meaning changes; checked by the C# loader (ImagingNative).
VIT_API int vit_imaging_abi_version() { return 1; }

// Copies this thread's last error text into buf (cap bytes, NUL-terminated, truncated) when buf is not NULL;
// returns the text's full length in bytes. Never fails.
VIT_API int vit_imaging_last_error(char* buf, int cap) { return vit::copy_last_error(buf, cap); }

// ---------------------------------------------------------------------------------------------------------
// Lifetime, threads
// ---------------------------------------------------------------------------------------------------------

// Frees an image handle. NULL is a no-op. The only way an image handle is released.
VIT_API void vit_image_free(VitImage* img) {
  if (img == nullptr) return;
  delete img;
  g_live_images.fetch_sub(1, std::memory_order_relaxed);
}

// Number of image handles alive (for leak tests).
VIT_API int64_t vit_image_live_count() { return g_live_images.load(std::memory_order_relaxed); }

// Frees an encoded-bytes handle. NULL is a no-op.
VIT_API void vit_blob_free(VitBlob* blob) { delete blob; }

// The bytes of a blob; valid until vit_blob_free.
VIT_API int vit_blob_data(const VitBlob* blob, const uint8_t** data, int64_t* size) {
  VIT_TRY
  check_out(data);
  check_out(size);
  if (blob == nullptr) throw std::invalid_argument("null blob handle");
  *data = blob->bytes.data();
  *size = static_cast<int64_t>(blob->bytes.size());
  VIT_CATCH
}

// Threads of OpenCV's own pool (used inside resize, warpAffine...). Loaders parallelise over images
// instead, so the C# side sets 1 by default. n <= 0 restores OpenCV's default.
VIT_API int vit_image_set_threads(int n) {
  VIT_TRY
  cv::setNumThreads(n <= 0 ? -1 : n);
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Decode, create, inspect, encode
// ---------------------------------------------------------------------------------------------------------

// Decodes a JPEG, PNG, BMP or WebP file (UTF-8 path). On failure the error text is the reason only (no
// path): "the file is empty (0 bytes)", "truncated PNG: ...", "the PNG header gives the size ...". See
// decode() for channels and flags. *out: a new image the caller owns.
VIT_API int vit_image_decode_file(const char* path, int64_t max_pixels, int channels, int flags, VitImage** out) {
  VIT_TRY
  check_out(out);
  if (path == nullptr) throw std::invalid_argument("null path");
  const auto data = read_file(path);
  *out = wrap(decode(data.data(), data.size(), max_pixels, channels, flags));
  VIT_CATCH
}

// As vit_image_decode_file, from n bytes in memory (borrowed for the call).
VIT_API int vit_image_decode_bytes(const uint8_t* data, int64_t n, int64_t max_pixels, int channels, int flags, VitImage** out) {
  VIT_TRY
  check_out(out);
  if (n < 0 || (n > 0 && data == nullptr)) throw std::invalid_argument("invalid byte buffer");
  *out = wrap(decode(data, static_cast<size_t>(n), max_pixels, channels, flags));
  VIT_CATCH
}

// A new image holding a copy of h*w*c bytes of HWC pixels (c = 1, 3 or 4; RGB(A) order).
VIT_API int vit_image_from_pixels(const uint8_t* hwc, int64_t nbytes, int w, int h, int c, VitImage** out) {
  VIT_TRY
  check_out(out);
  check_size(w, h, "image size");
  if (c != 1 && c != 3 && c != 4) throw std::invalid_argument("channels must be 1, 3 or 4, got " + std::to_string(c));
  const int64_t need = int64_t{w} * h * c;
  if (need > kMaxBytes) throw std::invalid_argument("image too large");
  if (nbytes != need)
    throw std::invalid_argument(std::to_string(nbytes) + " bytes given for a " + std::to_string(w) + "x" +
                                std::to_string(h) + "x" + std::to_string(c) + " image, which needs " + std::to_string(need));
  if (hwc == nullptr) throw std::invalid_argument("null pixel buffer");
  cv::Mat m(h, w, CV_MAKETYPE(CV_8U, c));
  std::memcpy(m.data, hwc, static_cast<size_t>(need));
  *out = wrap(std::move(m));
  VIT_CATCH
}

// A new w x h image with c channels, every sample = value.
VIT_API int vit_image_new(int w, int h, int c, int value, VitImage** out) {
  VIT_TRY
  check_out(out);
  check_size(w, h, "image size");
  if (c != 1 && c != 3 && c != 4) throw std::invalid_argument("channels must be 1, 3 or 4, got " + std::to_string(c));
  if (int64_t{w} * h * c > kMaxBytes) throw std::invalid_argument("image too large");
  *out = wrap(cv::Mat(h, w, CV_MAKETYPE(CV_8U, c), cv::Scalar::all(std::clamp(value, 0, 255))));
  VIT_CATCH
}

VIT_API int vit_image_info(const VitImage* img, int* w, int* h, int* c) {
  VIT_TRY
  check_out(w);
  check_out(h);
  check_out(c);
  const auto& m = mat_of(img);
  *w = m.cols;
  *h = m.rows;
  *c = m.channels();
  VIT_CATCH
}

// Copies the HWC pixels into dst; nbytes must equal w*h*c.
VIT_API int vit_image_copy_to(const VitImage* img, uint8_t* dst, int64_t nbytes) {
  VIT_TRY
  const auto& m = mat_of(img);
  const int64_t need = static_cast<int64_t>(m.total() * m.elemSize());
  if (nbytes != need) throw std::invalid_argument("destination has " + std::to_string(nbytes) + " bytes, the image " + std::to_string(need));
  if (dst == nullptr) throw std::invalid_argument("null destination");
  std::memcpy(dst, m.data, static_cast<size_t>(need));
  VIT_CATCH
}

// Encodes to format 0 PNG, 1 JPEG (quality 1-100), 2 BMP, 3 WebP (quality 1-100; above 100 lossless).
// JPEG and BMP cannot hold alpha, which is dropped. *out: a new blob the caller owns.
VIT_API int vit_image_encode(const VitImage* img, int format, int quality, VitBlob** out) {
  VIT_TRY
  check_out(out);
  const auto& m = mat_of(img);
  static const char* const ext[] = {".png", ".jpg", ".bmp", ".webp"};
  if (format < 0 || format > 3) throw std::invalid_argument("unknown image format code " + std::to_string(format));
  std::vector<int> params;
  if (format == 1) {
    if (quality < 1 || quality > 100) throw std::invalid_argument("JPEG quality must be in [1, 100], got " + std::to_string(quality));
    params = {cv::IMWRITE_JPEG_QUALITY, quality};
  } else if (format == 3) {
    if (quality < 1 || quality > 101) throw std::invalid_argument("WebP quality must be in [1, 101], got " + std::to_string(quality));
    params = {cv::IMWRITE_WEBP_QUALITY, quality};
  }
  cv::Mat bgr;
  if (m.channels() == 1)
    bgr = m;
  else if (m.channels() == 3)
    cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  else
    cv::cvtColor(m, bgr, (format == 1 || format == 2) ? cv::COLOR_RGBA2BGR : cv::COLOR_RGBA2BGRA);
  auto blob = std::make_unique<VitBlob>();
  if (!cv::imencode(ext[format], bgr, blob->bytes, params)) throw std::runtime_error(std::string("OpenCV could not encode ") + ext[format]);
  *out = blob.release();
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------------------

// Converts to 1 channel (luma; alpha dropped) or 3 (gray replicated; alpha dropped).
VIT_API int vit_image_to_channels(const VitImage* img, int channels, VitImage** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(to_channels(mat_of(img), channels));
  VIT_CATCH
}

// Resizes to w x h. mode 0 stretch; 1 pad (letterbox: fit inside, centre, fill the rest with `fill`);
// 2 crop (scale the shorter side to fit, centre crop). interp 0 nearest, 1 bilinear, 2 bicubic, 3 area.
VIT_API int vit_image_resize(const VitImage* img, int w, int h, int mode, int interp, int fill, VitImage** out) {
  VIT_TRY
  check_out(out);
  check_size(w, h, "target size");
  const auto& m = mat_of(img);
  const int flag = to_cv_interp(interp, true);
  auto scaled = [&](int sw, int sh) {
    if (sw == m.cols && sh == m.rows) return m;
    cv::Mat o;
    resize_into(m, o, cv::Size(sw, sh), flag);
    return o;
  };
  switch (mode) {
    case 0: *out = wrap(scaled(w, h)); break;
    case 1: {
      const double s = std::min(double(w) / m.cols, double(h) / m.rows);
      const int sw = std::clamp(static_cast<int>(std::lround(m.cols * s)), 1, w);
      const int sh = std::clamp(static_cast<int>(std::lround(m.rows * s)), 1, h);
      cv::Mat canvas(h, w, m.type(), cv::Scalar::all(std::clamp(fill, 0, 255)));
      scaled(sw, sh).copyTo(canvas(cv::Rect((w - sw) / 2, (h - sh) / 2, sw, sh)));
      *out = wrap(std::move(canvas));
      break;
    }
    case 2: {
      const double s = std::max(double(w) / m.cols, double(h) / m.rows);
      const int sw = std::max(w, static_cast<int>(std::lround(m.cols * s)));
      const int sh = std::max(h, static_cast<int>(std::lround(m.rows * s)));
      check_size(sw, sh, "intermediate size");
      *out = wrap(scaled(sw, sh)(cv::Rect((sw - w) / 2, (sh - h) / 2, w, h)).clone());
      break;
    }
    default: throw std::invalid_argument("unknown resize mode " + std::to_string(mode));
  }
  VIT_CATCH
}

// The region (x, y, w, h), which must lie inside the image, resized to out_w x out_h (no resize when equal).
VIT_API int vit_image_crop_resize(const VitImage* img, int x, int y, int w, int h, int out_w, int out_h, int interp, VitImage** out) {
  VIT_TRY
  check_out(out);
  const auto& m = mat_of(img);
  if (w < 1 || h < 1 || x < 0 || y < 0 || x > m.cols - w || y > m.rows - h) {
    std::ostringstream s;
    s << "crop (x " << x << ", y " << y << ", " << w << "x" << h << ") is not inside the " << m.cols << "x" << m.rows << " image";
    throw std::invalid_argument(s.str());
  }
  check_size(out_w, out_h, "target size");
  const cv::Mat roi = m(cv::Rect(x, y, w, h));
  cv::Mat o;
  if (out_w == w && out_h == h)
    o = roi.clone();
  else
    resize_into(roi, o, cv::Size(out_w, out_h), to_cv_interp(interp, true));
  *out = wrap(std::move(o));
  VIT_CATCH
}

// Mirrors left-right (horizontal != 0) and/or top-bottom (vertical != 0).
VIT_API int vit_image_flip(const VitImage* img, int horizontal, int vertical, VitImage** out) {
  VIT_TRY
  check_out(out);
  const auto& m = mat_of(img);
  if (!horizontal && !vertical) {
    *out = wrap(m);
  } else {
    cv::Mat o;
    cv::flip(m, o, horizontal && vertical ? -1 : horizontal ? 1 : 0);
    *out = wrap(std::move(o));
  }
  VIT_CATCH
}

// Affine warp into an out_w x out_h image. matrix: 2x3 row-major, mapping source (x, y) to destination
// coordinates (pixel centres at integers). Pixels from outside the source get `fill`.
VIT_API int vit_image_affine(const VitImage* img, const double* matrix, int out_w, int out_h, int interp, int fill, VitImage** out) {
  VIT_TRY
  check_out(out);
  if (matrix == nullptr) throw std::invalid_argument("null matrix");
  for (int i = 0; i < 6; ++i)
    if (!std::isfinite(matrix[i])) throw std::invalid_argument("affine matrix has a non-finite entry");
  check_size(out_w, out_h, "target size");
  const auto& m = mat_of(img);
  const cv::Mat M(2, 3, CV_64F, const_cast<double*>(matrix));
  cv::Mat o;
  cv::warpAffine(m, o, M, cv::Size(out_w, out_h), to_cv_interp(interp, false), cv::BORDER_CONSTANT,
                 cv::Scalar::all(std::clamp(fill, 0, 255)));
  *out = wrap(std::move(o));
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Colour and erasing
// ---------------------------------------------------------------------------------------------------------

// op: 0 brightness, 1 contrast, 2 saturation, 3 sharpness (amount = factor, 1 = unchanged); 4 solarize
// (amount = threshold); 5 posterize (amount = bits kept); 6 autocontrast; 7 equalize; 8 invert (amount unused).
// Alpha, when present, is kept unchanged.
VIT_API int vit_image_adjust(const VitImage* img, int op, double amount, VitImage** out) {
  VIT_TRY
  check_out(out);
  check_factor(op, amount);
  *out = wrap(adjust(mat_of(img), op, amount));
  VIT_CATCH
}

// A copy with the region (x, y, w, h) (clipped to the image) overwritten: mode 0 with `value` in every
// channel, mode 1 with uniform random bytes from OpenCV's generator seeded with `seed` (reproducible).
VIT_API int vit_image_erase(const VitImage* img, int x, int y, int w, int h, int mode, int value, uint64_t seed, VitImage** out) {
  VIT_TRY
  check_out(out);
  const auto& m = mat_of(img);
  cv::Mat o = m.clone();
  const cv::Rect r = cv::Rect(x, y, std::max(w, 0), std::max(h, 0)) & cv::Rect(0, 0, m.cols, m.rows);
  if (r.area() > 0) {
    cv::Mat roi = o(r);
    if (mode == 0) {
      roi.setTo(cv::Scalar::all(std::clamp(value, 0, 255)));
    } else if (mode == 1) {
      cv::RNG rng(seed == 0 ? 1 : seed);  // cv::RNG maps 0 to a fixed non-zero state anyway
      rng.fill(roi, cv::RNG::UNIFORM, 0, 256);
    } else {
      throw std::invalid_argument("unknown erase mode " + std::to_string(mode));
    }
  }
  *out = wrap(std::move(o));
  VIT_CATCH
}

// (1 - alpha) * base + alpha * overlay per sample, rounded and saturated (cv::addWeighted): a heat map laid over
// a picture (Vit.Torch.Reports' attention overlays). Both images must have the same size and channel count;
// alpha in [0, 1]. *out: a new image the caller owns; the inputs are unchanged.
VIT_API int vit_image_blend(const VitImage* base, const VitImage* overlay, double alpha, VitImage** out) {
  VIT_TRY
  check_out(out);
  const auto& a = mat_of(base);
  const auto& b = mat_of(overlay);
  if (!(alpha >= 0.0 && alpha <= 1.0))  // also refuses NaN
    throw std::invalid_argument("blend weight must be in [0, 1], got " + std::to_string(alpha));
  if (a.size() != b.size() || a.channels() != b.channels()) {
    std::ostringstream s;
    s << "cannot blend a " << b.cols << "x" << b.rows << " image with " << b.channels() << " channel(s) over a "
      << a.cols << "x" << a.rows << " image with " << a.channels() << " channel(s): size and channels must match";
    throw std::invalid_argument(s.str());
  }
  cv::Mat o;
  cv::addWeighted(a, 1.0 - alpha, b, alpha, 0.0, o);
  *out = wrap(std::move(o));
  VIT_CATCH
}

// Per-channel sums of v/255 and (v/255)^2 over all pixels, into sum[c] and sum_sq[c] (cap >= channels).
VIT_API int vit_image_channel_sums(const VitImage* img, double* sum, double* sum_sq, int cap) {
  VIT_TRY
  check_out(sum);
  check_out(sum_sq);
  const auto& m = mat_of(img);
  const int c = m.channels();
  if (cap < c) throw std::invalid_argument("room for " + std::to_string(cap) + " channels, the image has " + std::to_string(c));
  // Integer histogram-free accumulation: exact in 64-bit, then scaled once.
  std::vector<uint64_t> s(c, 0), s2(c, 0);
  const uint8_t* p = m.data;
  const size_t n = m.total();
  for (size_t i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k) {
      const uint64_t v = p[i * c + k];
      s[k] += v;
      s2[k] += v * v;
    }
  for (int k = 0; k < c; ++k) {
    sum[k] = static_cast<double>(s[k]) / 255.0;
    sum_sq[k] = static_cast<double>(s2[k]) / (255.0 * 255.0);
  }
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Batches: HWC uint8 images <-> planar CHW float32
// ---------------------------------------------------------------------------------------------------------

// The hot path. Writes n images, each channels x height x width, normalised as (v/255 - mean[c]) / std[c],
// into dst as planar (n, C, H, W) float32: image i starts at dst + i*C*H*W. dst_count is the number of floats
// the caller has room for. Images are borrowed; a mismatching image is named by its index.
VIT_API int vit_image_batch_write(const VitImage* const* images, int n, int channels, int height, int width,
                                  const float* mean, const float* std, float* dst, int64_t dst_count) {
  VIT_TRY
  if (n < 0) throw std::invalid_argument("negative image count");
  if (n > 0 && (images == nullptr || dst == nullptr)) throw std::invalid_argument("null image list or destination");
  if (mean == nullptr || std == nullptr) throw std::invalid_argument("null mean or std");
  if (channels < 1 || channels > 4) throw std::invalid_argument("channels must be 1 to 4");
  check_size(width, height, "batch image size");
  const int64_t plane = int64_t{height} * width, per = plane * channels;
  if (per * n > dst_count)
    throw std::invalid_argument("destination has room for " + std::to_string(dst_count) + " floats, " +
                                std::to_string(n) + " images need " + std::to_string(per * n));
  for (int i = 0; i < n; ++i) {
    const auto& m = mat_of(images[i]);
    if (m.cols != width || m.rows != height || m.channels() != channels) {
      std::ostringstream s;
      s << "image " << i << " is " << m.cols << "x" << m.rows << " with " << m.channels() << " channel(s); the batch needs "
        << width << "x" << height << " with " << channels;
      throw std::invalid_argument(s.str());
    }
  }
  // One table per channel: 256 possible inputs, each normalised once (in double, then rounded to float).
  std::vector<float> lut(static_cast<size_t>(channels) * 256);
  for (int c = 0; c < channels; ++c) {
    if (!(std[c] > 0) || !std::isfinite(std[c]) || !std::isfinite(mean[c]))
      throw std::invalid_argument("std must be positive and mean/std finite (channel " + std::to_string(c) + ")");
    for (int v = 0; v < 256; ++v)
      lut[c * 256 + v] = static_cast<float>((v / 255.0 - static_cast<double>(mean[c])) / static_cast<double>(std[c]));
  }
  for (int i = 0; i < n; ++i) {
    const uint8_t* src = images[i]->mat.data;
    float* out = dst + per * i;
    if (channels == 1) {
      for (int64_t p = 0; p < plane; ++p) out[p] = lut[src[p]];
    } else if (channels == 3) {
      float* r = out;
      float* g = out + plane;
      float* b = out + 2 * plane;
      const float* lr = lut.data();
      const float* lg = lr + 256;
      const float* lb = lg + 256;
      for (int64_t p = 0; p < plane; ++p) {
        r[p] = lr[src[3 * p]];
        g[p] = lg[src[3 * p + 1]];
        b[p] = lb[src[3 * p + 2]];
      }
    } else {
      for (int64_t p = 0; p < plane; ++p)
        for (int c = 0; c < channels; ++c) out[c * plane + p] = lut[c * 256 + src[p * channels + c]];
    }
  }
  VIT_CATCH
}

// The inverse, for looking at a batch: planar (C, H, W) float32 normalised with mean/std -> an HWC uint8
// image, v = round((x * std + mean) * 255) clamped to 0..255.
VIT_API int vit_image_from_normalized(const float* chw, int channels, int height, int width, const float* mean,
                                      const float* std, VitImage** out) {
  VIT_TRY
  check_out(out);
  if (chw == nullptr || mean == nullptr || std == nullptr) throw std::invalid_argument("null buffer");
  if (channels != 1 && channels != 3 && channels != 4) throw std::invalid_argument("channels must be 1, 3 or 4");
  check_size(width, height, "image size");
  const int64_t plane = int64_t{height} * width;
  cv::Mat m(height, width, CV_MAKETYPE(CV_8U, channels));
  for (int c = 0; c < channels; ++c) {
    const float* src = chw + c * plane;
    const double s = std[c] * 255.0, b = mean[c] * 255.0;
    for (int64_t p = 0; p < plane; ++p) {
      const double v = src[p] * s + b;
      m.data[p * channels + c] = static_cast<uint8_t>(std::isnan(v) ? 0 : std::clamp(std::lround(v), 0L, 255L));
    }
  }
  *out = wrap(std::move(m));
  VIT_CATCH
}
