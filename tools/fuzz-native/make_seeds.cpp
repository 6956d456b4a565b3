// Writes the seed corpora for decode_fuzzer: small valid images per format, made with cv::imencode (plus a
// few hand-built BMP variants and JPEGs with an EXIF orientation tag that imencode does not produce).
//
// Usage: make_seeds OUT_DIR   ->  OUT_DIR/{jpeg,png,bmp,webp}/<name>-<sel>
// Every file starts with decode_fuzzer's two selector bytes (see decode_fuzzer.cpp), so each image is
// written a few times with different selectors (channels, EXIF flag, resize mode, round-trip format).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace {

using Bytes = std::vector<uint8_t>;

std::string g_out;
int g_count = 0;

// sel: 3 channels, EXIF applied, stretch, nearest, PNG round trip
//      "as stored", EXIF ignored, pad, bilinear, PNG round trip
//      1 channel, EXIF applied, crop, bicubic, BMP round trip
const uint8_t kSelectors[][2] = {{0x01, 0x22}, {0x2E, 0x37}, {0xD0, 0x53}};

void write_seed(const std::string& fmt, const std::string& name, const Bytes& img) {
  const std::string dir = g_out + "/" + fmt;
  ::mkdir(dir.c_str(), 0755);
  for (const auto& s : kSelectors) {
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "-%02x", s[0]);
    const std::string path = dir + "/" + name + suffix;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) {
      std::perror(path.c_str());
      std::exit(1);
    }
    std::fwrite(s, 1, 2, f);
    std::fwrite(img.data(), 1, img.size(), f);
    std::fclose(f);
    ++g_count;
  }
}

// A small pattern with edges and gradients, so the encoders produce non-trivial streams.
cv::Mat pattern(int w, int h, int type) {
  cv::Mat m(h, w, type);
  const int cn = m.channels();
  const bool wide = m.depth() == CV_16U;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < cn; ++c) {
        int v = ((x * 37 + y * 11 + c * 90) ^ ((x / 4 + y / 4) % 2 ? 0xA5 : 0)) & 0xFF;
        if (c == 3) v = 255 - (x * 255) / std::max(1, w - 1);  // alpha ramp
        if (wide)
          m.ptr<uint16_t>(y)[x * cn + c] = static_cast<uint16_t>(v * 257 + x);
        else
          m.ptr<uint8_t>(y)[x * cn + c] = static_cast<uint8_t>(v);
      }
  return m;
}

Bytes encode(const char* ext, const cv::Mat& m, std::initializer_list<int> params = {}) {
  Bytes out;
  if (!cv::imencode(ext, m, out, std::vector<int>(params))) {
    std::fprintf(stderr, "imencode %s failed\n", ext);
    std::exit(1);
  }
  return out;
}

// --- JPEG with EXIF -------------------------------------------------------------------------------------

void put16(Bytes& b, uint32_t v, bool be) {
  if (be) {
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
  } else {
    b.push_back(uint8_t(v));
    b.push_back(uint8_t(v >> 8));
  }
}

void put32(Bytes& b, uint32_t v, bool be) {
  if (be) {
    put16(b, v >> 16, true);
    put16(b, v & 0xFFFF, true);
  } else {
    put16(b, v & 0xFFFF, false);
    put16(b, v >> 16, false);
  }
}

// An APP1 "Exif" segment whose IFD0 holds the orientation (and, for variety, an XResolution rational and a
// pointer to an Exif sub-IFD with one entry).
Bytes exif_app1(int orientation, bool big_endian) {
  Bytes t;  // TIFF structure, offsets relative to its start
  t.push_back(big_endian ? 'M' : 'I');
  t.push_back(big_endian ? 'M' : 'I');
  put16(t, 42, big_endian);
  put32(t, 8, big_endian);  // IFD0 at 8
  const uint32_t entries = 3;
  const uint32_t ifd0_end = 8 + 2 + entries * 12 + 4;  // where the out-of-line data starts
  put16(t, entries, big_endian);
  // 0x0112 Orientation, SHORT, 1, value (left-justified in the 4-byte field)
  put16(t, 0x0112, big_endian);
  put16(t, 3, big_endian);
  put32(t, 1, big_endian);
  put16(t, uint32_t(orientation), big_endian);
  put16(t, 0, big_endian);
  // 0x011A XResolution, RATIONAL, 1, offset
  put16(t, 0x011A, big_endian);
  put16(t, 5, big_endian);
  put32(t, 1, big_endian);
  put32(t, ifd0_end, big_endian);
  // 0x8769 ExifIFD pointer, LONG, 1, offset
  put16(t, 0x8769, big_endian);
  put16(t, 4, big_endian);
  put32(t, 1, big_endian);
  put32(t, ifd0_end + 8, big_endian);
  put32(t, 0, big_endian);  // no next IFD
  put32(t, 72, big_endian);  // the rational 72/1
  put32(t, 1, big_endian);
  // Exif sub-IFD: 0x9000 ExifVersion, UNDEFINED, 4, "0230"
  put16(t, 1, big_endian);
  put16(t, 0x9000, big_endian);
  put16(t, 7, big_endian);
  put32(t, 4, big_endian);
  for (char c : {'0', '2', '3', '0'}) t.push_back(uint8_t(c));
  put32(t, 0, big_endian);

  Bytes seg = {0xFF, 0xE1};
  const uint32_t len = 2 + 6 + uint32_t(t.size());
  put16(seg, len, true);
  for (char c : {'E', 'x', 'i', 'f', '\0', '\0'}) seg.push_back(uint8_t(c));
  seg.insert(seg.end(), t.begin(), t.end());
  return seg;
}

Bytes with_exif(const Bytes& jpeg, int orientation, bool big_endian) {
  Bytes out(jpeg.begin(), jpeg.begin() + 2);  // SOI
  const Bytes app1 = exif_app1(orientation, big_endian);
  out.insert(out.end(), app1.begin(), app1.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// --- Hand-built BMPs ------------------------------------------------------------------------------------

struct BmpSpec {
  uint32_t info_size = 40;  // 12 core, 40 info, 108 V4, 124 V5
  int32_t width = 0, height = 0;
  uint16_t bpp = 24;
  uint32_t compression = 0;     // 0 RGB, 1 RLE8, 2 RLE4, 3 BITFIELDS
  std::vector<uint32_t> masks;  // R, G, B (, A) for BITFIELDS
  Bytes palette;                // BGRx entries (BGR for the core header)
  Bytes pixels;
};

Bytes build_bmp(const BmpSpec& s) {
  const bool core = s.info_size == 12;
  Bytes info;
  put32(info, s.info_size, false);
  if (core) {
    put16(info, uint32_t(s.width), false);
    put16(info, uint32_t(s.height), false);
    put16(info, 1, false);
    put16(info, s.bpp, false);
  } else {
    put32(info, uint32_t(s.width), false);
    put32(info, uint32_t(s.height), false);
    put16(info, 1, false);
    put16(info, s.bpp, false);
    put32(info, s.compression, false);
    put32(info, uint32_t(s.pixels.size()), false);
    put32(info, 2835, false);  // 72 dpi
    put32(info, 2835, false);
    const uint32_t colours = s.palette.empty() ? 0 : uint32_t(s.palette.size() / 4);
    put32(info, colours, false);
    put32(info, 0, false);
    if (s.info_size > 40) {
      for (size_t k = 0; k < 4; ++k) put32(info, k < s.masks.size() ? s.masks[k] : 0, false);
      put32(info, 0x73524742, false);  // 'sRGB' colour space
      while (info.size() < s.info_size) info.push_back(0);
    }
  }
  Bytes extra;  // BITFIELDS masks after a 40-byte header
  if (s.info_size == 40 && s.compression == 3)
    for (size_t k = 0; k < 3; ++k) put32(extra, s.masks[k], false);
  const uint32_t offset = 14 + uint32_t(info.size() + extra.size() + s.palette.size());
  Bytes f = {'B', 'M'};
  put32(f, offset + uint32_t(s.pixels.size()), false);
  put32(f, 0, false);
  put32(f, offset, false);
  f.insert(f.end(), info.begin(), info.end());
  f.insert(f.end(), extra.begin(), extra.end());
  f.insert(f.end(), s.palette.begin(), s.palette.end());
  f.insert(f.end(), s.pixels.begin(), s.pixels.end());
  return f;
}

Bytes palette4(bool core) {
  const uint8_t colours[4][3] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {40, 80, 200}};
  Bytes p;
  for (const auto& c : colours) {
    p.insert(p.end(), c, c + 3);
    if (!core) p.push_back(0);
  }
  return p;
}

void hand_made_bmps() {
  {  // BITMAPCOREHEADER, 24-bit, 3x2 (rows of 9 bytes padded to 12)
    BmpSpec s;
    s.info_size = 12;
    s.width = 3;
    s.height = 2;
    for (int y = 0; y < 2; ++y) {
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 3; ++c) s.pixels.push_back(uint8_t(40 * x + 90 * y + 60 * c));
      s.pixels.insert(s.pixels.end(), 3, 0);
    }
    write_seed("bmp", "core-24bit", build_bmp(s));
  }
  {  // RLE8, 6x3: runs, an absolute run, a delta, end of line / bitmap
    BmpSpec s;
    s.width = 6;
    s.height = 3;
    s.bpp = 8;
    s.compression = 1;
    s.palette = palette4(false);
    s.pixels = {4, 1, 2, 2, 0, 0,           // row 0: 4 x colour 1, 2 x colour 2, EOL
                0, 3, 3, 1, 2, 0, 3, 0, 0, 0,  // row 1: absolute 3 bytes (padded), a run of 3, EOL
                0, 2, 2, 0, 2, 3, 0, 1};    // row 2: delta (2, 0), 2 x colour 3, end of bitmap
    write_seed("bmp", "rle8", build_bmp(s));
  }
  {  // RLE4, 5x2
    BmpSpec s;
    s.width = 5;
    s.height = 2;
    s.bpp = 4;
    s.compression = 2;
    s.palette = palette4(false);
    s.pixels = {5, 0x12, 0, 0,        // row 0: 5 pixels alternating 1, 2; EOL
                0, 5, 0x30, 0x12, 0x10, 0, 0, 1};  // row 1: absolute 5 nibbles (padded to a word); EOB
    write_seed("bmp", "rle4", build_bmp(s));
  }
  {  // 16-bit BITFIELDS 5-6-5, 3x2 (rows of 6 bytes padded to 8)
    BmpSpec s;
    s.width = 3;
    s.height = 2;
    s.bpp = 16;
    s.compression = 3;
    s.masks = {0xF800, 0x07E0, 0x001F};
    for (int y = 0; y < 2; ++y) {
      for (int x = 0; x < 3; ++x) put16(s.pixels, uint32_t((x * 10) << 11 | (y * 30) << 5 | (x + y) * 7), false);
      s.pixels.insert(s.pixels.end(), 2, 0);
    }
    write_seed("bmp", "bitfields-565", build_bmp(s));
  }
  {  // 16-bit BI_RGB (5-5-5), top-down (negative height), 2x2
    BmpSpec s;
    s.width = 2;
    s.height = -2;
    s.bpp = 16;
    for (uint32_t v : {0x7C00u, 0x03E0u, 0x001Fu, 0x7FFFu}) put16(s.pixels, v, false);
    write_seed("bmp", "rgb555-topdown", build_bmp(s));
  }
  {  // 32-bit BITMAPV4HEADER with an alpha mask, 2x2
    BmpSpec s;
    s.info_size = 108;
    s.width = 2;
    s.height = 2;
    s.bpp = 32;
    s.compression = 3;
    s.masks = {0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000};
    for (uint32_t v : {0x80FF0000u, 0xFF00FF00u, 0x400000FFu, 0x00FFFFFFu}) put32(s.pixels, v, false);
    write_seed("bmp", "v4-argb", build_bmp(s));
  }
  {  // 1-bit, 10x2 (rows of 2 bytes padded to 4), two-colour palette
    BmpSpec s;
    s.width = 10;
    s.height = 2;
    s.bpp = 1;
    s.palette = {0, 0, 0, 0, 255, 255, 255, 0};
    s.pixels = {0xA5, 0xC0, 0, 0, 0x5A, 0x40, 0, 0};
    write_seed("bmp", "mono-1bit", build_bmp(s));
  }
  {  // 4-bit uncompressed, 3x2 with the core header: a full palette of 16 three-byte entries
    BmpSpec s;
    s.info_size = 12;
    s.width = 3;
    s.height = 2;
    s.bpp = 4;
    s.palette = palette4(true);
    s.palette.resize(16 * 3, 128);
    s.pixels = {0x12, 0x30, 0, 0, 0x32, 0x10, 0, 0};
    write_seed("bmp", "core-4bit", build_bmp(s));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  ::mkdir(g_out.c_str(), 0755);

  const cv::Mat rgb = pattern(16, 12, CV_8UC3), rgba = pattern(12, 10, CV_8UC4), gray = pattern(13, 9, CV_8UC1);
  const cv::Mat rgb16 = pattern(8, 6, CV_16UC3), rgba16 = pattern(6, 5, CV_16UC4), gray16 = pattern(7, 5, CV_16UC1);
  const cv::Mat one = pattern(1, 1, CV_8UC3), wide = pattern(24, 8, CV_8UC3);

  // PNG: the colour types and bit depths OpenCV writes
  write_seed("png", "rgb8", encode(".png", rgb));
  write_seed("png", "rgba8", encode(".png", rgba));
  write_seed("png", "gray8", encode(".png", gray, {cv::IMWRITE_PNG_COMPRESSION, 9}));
  write_seed("png", "rgb16", encode(".png", rgb16));
  write_seed("png", "rgba16", encode(".png", rgba16));
  write_seed("png", "gray16", encode(".png", gray16));
  write_seed("png", "bilevel", encode(".png", gray, {cv::IMWRITE_PNG_BILEVEL, 1}));
  write_seed("png", "1x1", encode(".png", one, {cv::IMWRITE_PNG_STRATEGY, cv::IMWRITE_PNG_STRATEGY_FIXED}));

  // JPEG: baseline, gray, progressive, optimised Huffman tables, restart markers, EXIF orientations
  const Bytes base = encode(".jpg", wide, {cv::IMWRITE_JPEG_QUALITY, 75});
  write_seed("jpeg", "baseline", encode(".jpg", rgb, {cv::IMWRITE_JPEG_QUALITY, 80}));
  write_seed("jpeg", "gray", encode(".jpg", gray, {cv::IMWRITE_JPEG_QUALITY, 60}));
  write_seed("jpeg", "progressive", encode(".jpg", rgb, {cv::IMWRITE_JPEG_PROGRESSIVE, 1, cv::IMWRITE_JPEG_QUALITY, 50}));
  write_seed("jpeg", "optimized-rst", encode(".jpg", wide, {cv::IMWRITE_JPEG_OPTIMIZE, 1, cv::IMWRITE_JPEG_RST_INTERVAL, 1}));
  write_seed("jpeg", "1x1", encode(".jpg", one));
  write_seed("jpeg", "exif-orient6-le", with_exif(base, 6, false));
  write_seed("jpeg", "exif-orient3-be", with_exif(base, 3, true));
  write_seed("jpeg", "exif-orient8-le", with_exif(encode(".jpg", gray), 8, false));

  // BMP: what imencode writes (24-bit, 8-bit gray palette; RGBA loses alpha) and hand-made variants
  write_seed("bmp", "rgb24", encode(".bmp", rgb));
  write_seed("bmp", "gray8", encode(".bmp", gray));
  write_seed("bmp", "1x1", encode(".bmp", one));
  hand_made_bmps();

  // WebP: lossy, lossless (quality > 100), with alpha (VP8X + ALPH), gray input
  write_seed("webp", "lossy", encode(".webp", rgb, {cv::IMWRITE_WEBP_QUALITY, 60}));
  write_seed("webp", "lossless", encode(".webp", rgb, {cv::IMWRITE_WEBP_QUALITY, 101}));
  write_seed("webp", "lossy-alpha", encode(".webp", rgba, {cv::IMWRITE_WEBP_QUALITY, 60}));
  write_seed("webp", "lossless-alpha", encode(".webp", rgba, {cv::IMWRITE_WEBP_QUALITY, 101}));
  write_seed("webp", "gray", encode(".webp", gray, {cv::IMWRITE_WEBP_QUALITY, 80}));
  write_seed("webp", "1x1", encode(".webp", one, {cv::IMWRITE_WEBP_QUALITY, 101}));

  std::printf("wrote %d seed files under %s\n", g_count, g_out.c_str());
  return 0;
}
