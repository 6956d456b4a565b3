// libFuzzer harness for the native image decoder (src/Vit.Torch/native/vit_imaging.cpp).
//
// Built and run by eng/fuzz-native.sh, which compiles vit_imaging.cpp into the same binary with
// AddressSanitizer + UndefinedBehaviorSanitizer (OpenCV itself stays uninstrumented; ASan still sees its
// malloc/free and the libc calls it makes).
//
// Input layout:  [sel] [size] [encoded image bytes ...]
//   sel  bits 0-1  requested channels: 0 -> 1, 1 -> 3, 2 -> 0 ("as stored"), 3 -> 3
//        bit  2    decode flags bit 0 (1 = ignore the EXIF orientation)
//        bits 3-4  resize mode for the follow-up resize (0 stretch, 1 pad, 2 crop; 3 -> stretch)
//        bits 5-6  interpolation for the resize (0 nearest, 1 bilinear, 2 bicubic, 3 area)
//        bit  7    round trip through PNG (0) or BMP (1)
//   size low nibble / high nibble: resize target width / height, 1 + 4 * nibble (1..61)
//
// Replay: decode_fuzzer FILE...  (VIT_FUZZ_VERBOSE=1 prints each decode's status and error text or size.)
//
// OpenCV is not instrumented, so ASan cannot see it read or write past a buffer. To catch that anyway, every
// cv::Mat buffer is placed between inaccessible guard pages (a cv::MatAllocator installed as OpenCV's default),
// flush against the trailing guard for inputs of even size and against the leading one for odd sizes, and the
// encoded bytes are handed to the decoder flush against a trailing guard page: an access outside them is a
// SEGV at once, deterministically, instead of a read of whatever lies next to the buffer. VIT_FUZZ_GUARD=0
// turns this off (faster; ASan's own allocator then holds the pixels).
//
// A status of 1 with a message is the expected answer to bad data. Findings are crashes, sanitizer reports,
// leaks, timeouts, out-of-memory, and the contract checks below (CHECK aborts, which libFuzzer reports as a
// crash): what the API promises about the decoded image (size within the pixel limit, the channels asked
// for, error text on failure, no handle left alive).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vit_status.h"  // vit::g_last_error (a char buffer)

struct VitImage;
struct VitBlob;

extern "C" {
int vit_image_decode_bytes(const uint8_t* data, int64_t n, int64_t max_pixels, int channels, int flags, VitImage** out);
int vit_image_info(const VitImage* img, int* w, int* h, int* c);
int vit_image_to_channels(const VitImage* img, int channels, VitImage** out);
int vit_image_resize(const VitImage* img, int w, int h, int mode, int interp, int fill, VitImage** out);
int vit_image_copy_to(const VitImage* img, uint8_t* dst, int64_t nbytes);
int vit_image_encode(const VitImage* img, int format, int quality, VitBlob** out);
int vit_blob_data(const VitBlob* blob, const uint8_t** data, int64_t* size);
int vit_image_set_threads(int n);
int64_t vit_image_live_count();
void vit_image_free(VitImage* img);
void vit_blob_free(VitBlob* blob);
}

namespace {

constexpr int64_t kMaxPixels = 4000000;

[[noreturn]] void check_failed(const char* cond, const char* file, int line, const std::string& detail) {
  std::fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s\n  %s\n", file, line, cond, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

#define CHECK(cond, detail)                                        \
  do {                                                             \
    if (!(cond)) check_failed(#cond, __FILE__, __LINE__, (detail)); \
  } while (0)

std::string last_error() { return std::string(vit::g_last_error); }

// VIT_FUZZ_VERBOSE=1: print each decode's outcome (for replaying inputs by hand).
bool verbose() {
  static const bool v = std::getenv("VIT_FUZZ_VERBOSE") != nullptr;
  return v;
}

// A failed call must leave its out-parameter untouched and say why.
void expect_error_text(const char* call) {
  const std::string e = last_error();
  CHECK(!e.empty(), std::string(call) + " returned 1 with an empty error text");
}

// --- Guarded buffers -------------------------------------------------------------------------------------

constexpr size_t kLeadGuard = 64 << 10;  // negative offsets are often large (a row or more): a wide guard
constexpr size_t kTailGuard = 16 << 10;
constexpr size_t kAlign = 16;            // SSE alignment; more would leave a gap before the trailing guard
constexpr size_t kAutoStep = 0x7fffffff;  // OpenCV's CV_AUTOSTEP (core/core_c.h): "compute this step"

bool g_guard = true;      // VIT_FUZZ_GUARD != 0
bool g_flush_end = true;  // this input: buffers end at the trailing guard (else start at the leading one)

struct Region {
  uint8_t* base;
  size_t length;
};
std::mutex g_regions_mutex;
std::unordered_map<const void*, Region>* g_regions = nullptr;  // data pointer -> its mapping

size_t page_size() {
  static const size_t p = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

uint8_t* guarded_alloc(size_t n, bool flush_end) {
  const size_t page = page_size();
  const size_t body = (std::max<size_t>(n, 1) + kAlign + page - 1) / page * page;
  const size_t length = kLeadGuard + body + kTailGuard;
  void* p = ::mmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto* base = static_cast<uint8_t*>(p);
  if (::mprotect(base + kLeadGuard, body, PROT_READ | PROT_WRITE) != 0) {
    ::munmap(p, length);
    return nullptr;
  }
  uint8_t* data = base + kLeadGuard;
  if (flush_end) data = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base + kLeadGuard + body) - n) & ~(kAlign - 1));
  std::lock_guard<std::mutex> lock(g_regions_mutex);
  (*g_regions)[data] = Region{base, length};
  return data;
}

void guarded_free(void* data) {
  if (data == nullptr) return;
  Region r{};
  {
    std::lock_guard<std::mutex> lock(g_regions_mutex);
    auto it = g_regions->find(data);
    if (it == g_regions->end()) {
      std::fprintf(stderr, "==FUZZ== freeing a Mat buffer this allocator did not make\n");
      std::abort();
    }
    r = it->second;
    g_regions->erase(it);
  }
  ::munmap(r.base, r.length);
}

size_t live_regions() {
  std::lock_guard<std::mutex> lock(g_regions_mutex);
  return g_regions->size();
}

// The same bookkeeping as OpenCV's standard allocator (steps, total size, user-provided data), with the pixels
// in a guarded mapping.
class GuardedMatAllocator final : public cv::MatAllocator {
 public:
  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data0, size_t* step, cv::AccessFlag,
                         cv::UMatUsageFlags) const override {
    size_t total = CV_ELEM_SIZE(type);
    for (int i = dims - 1; i >= 0; --i) {
      if (step != nullptr) {
        if (data0 != nullptr && step[i] != kAutoStep) {
          CV_Assert(total <= step[i]);
          total = step[i];
        } else {
          step[i] = total;
        }
      }
      total *= static_cast<size_t>(sizes[i]);
    }
    uint8_t* data = data0 != nullptr ? static_cast<uint8_t*>(data0) : guarded_alloc(total, g_flush_end);
    if (data == nullptr) CV_Error(cv::Error::StsNoMem, "guarded allocation failed");
    auto* u = new cv::UMatData(this);
    u->data = u->origdata = data;
    u->size = total;
    if (data0 != nullptr) u->flags |= cv::UMatData::USER_ALLOCATED;
    return u;
  }

  bool allocate(cv::UMatData* u, cv::AccessFlag, cv::UMatUsageFlags) const override { return u != nullptr; }

  void deallocate(cv::UMatData* u) const override {
    if (u == nullptr) return;
    CV_Assert(u->urefcount == 0 && u->refcount == 0);
    if (!(u->flags & cv::UMatData::USER_ALLOCATED)) guarded_free(u->origdata);
    delete u;
  }
};

struct Info {
  int w = 0, h = 0, c = 0;
};

Info info_of(const VitImage* img) {
  Info i;
  const int rc = vit_image_info(img, &i.w, &i.h, &i.c);
  CHECK(rc == 0, "vit_image_info failed: " + last_error());
  CHECK(i.w >= 1 && i.h >= 1, "image size " + std::to_string(i.w) + "x" + std::to_string(i.h));
  CHECK(i.c == 1 || i.c == 3 || i.c == 4, "channel count " + std::to_string(i.c));
  return i;
}

std::vector<uint8_t> pixels_of(const VitImage* img, const Info& i) {
  const int64_t need = int64_t{i.w} * i.h * i.c;
  std::vector<uint8_t> px(static_cast<size_t>(need));
  CHECK(vit_image_copy_to(img, px.data(), need) == 0, "vit_image_copy_to failed: " + last_error());
  // A wrong size is refused, never written.
  CHECK(vit_image_copy_to(img, px.data(), need - 1) == 1, "vit_image_copy_to accepted a short buffer");
  return px;
}

// Encodes img losslessly (PNG or BMP), decodes the bytes again and checks the pixels came back.
void round_trip(const VitImage* img, const Info& i, const std::vector<uint8_t>& px, bool bmp) {
  VitBlob* blob = nullptr;
  if (vit_image_encode(img, bmp ? 2 : 0, 0, &blob) != 0) {
    expect_error_text("vit_image_encode");
    CHECK(false, "encoding a decoded image failed: " + last_error());
  }
  const uint8_t* bytes = nullptr;
  int64_t n = 0;
  CHECK(vit_blob_data(blob, &bytes, &n) == 0 && bytes != nullptr && n > 0, "vit_blob_data: " + last_error());
  // BMP drops alpha; ask for 3 channels then and compare the colour channels only.
  const int want = (i.c == 4 && bmp) ? 3 : 0;
  VitImage* back = nullptr;
  const int rc = vit_image_decode_bytes(bytes, n, kMaxPixels, want, 0, &back);
  CHECK(rc == 0, std::string("re-decoding our own ") + (bmp ? "BMP" : "PNG") + " failed: " + last_error());
  const Info j = info_of(back);
  CHECK(j.w == i.w && j.h == i.h, "round trip changed the size");
  const std::vector<uint8_t> px2 = pixels_of(back, j);
  if (j.c == i.c) {
    CHECK(px2 == px, "round trip changed the pixels");
  } else {
    CHECK(i.c == 4 && j.c == 3, "round trip changed the channels " + std::to_string(i.c) + " -> " + std::to_string(j.c));
    for (size_t p = 0; p < size_t(i.w) * i.h; ++p)
      for (int k = 0; k < 3; ++k) CHECK(px2[p * 3 + k] == px[p * 4 + k], "round trip changed the colour channels");
  }
  vit_image_free(back);
  vit_blob_free(blob);
}

// Touches OpenCV's lazily created state (codec list, colour tables, thread-local buffers) once, so that
// LeakSanitizer does not count those one-time allocations against the first inputs.
void warm_up() {
  cv::Mat rgb(9, 7, CV_8UC3, cv::Scalar(10, 200, 30)), rgba(9, 7, CV_8UC4, cv::Scalar(1, 2, 3, 4));
  cv::Mat gray(9, 7, CV_8UC1, cv::Scalar(77));
  cv::Mat rgb16(9, 7, CV_16UC3, cv::Scalar(1000, 2000, 60000));
  const char* exts[] = {".png", ".jpg", ".bmp", ".webp"};
  for (const char* ext : exts)
    for (const cv::Mat* m : {&rgb, &rgba, &gray, &rgb16}) {
      std::vector<uchar> buf;
      if (!cv::imencode(ext, *m, buf)) continue;
      for (int ch : {0, 1, 3})
        for (int fl : {0, 1}) {
          VitImage* img = nullptr;
          if (vit_image_decode_bytes(buf.data(), int64_t(buf.size()), kMaxPixels, ch, fl, &img) != 0) continue;
          for (int mode = 0; mode < 3; ++mode)
            for (int interp = 0; interp < 4; ++interp) {
              VitImage* r = nullptr;
              if (vit_image_resize(img, 5, 3, mode, interp, 0, &r) == 0) vit_image_free(r);
            }
          vit_image_free(img);
        }
    }
}

// --- PNG CRC repair ---------------------------------------------------------------------------------------
// libpng refuses a critical chunk (IHDR, PLTE, IDAT) whose CRC is wrong, and since OpenCV is not instrumented
// libFuzzer cannot learn the CRC by itself: almost every mutation of a PNG would end at the CRC check. The
// custom mutator below therefore rewrites the CRCs of the chunks of a mutated PNG (seven times in eight, so
// that bad CRCs are still tried too).

uint32_t crc32_of(const uint8_t* p, size_t n) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void fix_png_crcs(uint8_t* d, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n < 8 || std::memcmp(d, sig, 8) != 0) return;
  size_t pos = 8;
  while (pos + 12 <= n) {
    const uint64_t len = (uint64_t{d[pos]} << 24) | (uint64_t{d[pos + 1]} << 16) | (uint64_t{d[pos + 2]} << 8) | d[pos + 3];
    if (len > n - pos - 12) return;  // incomplete chunk: nothing more to repair
    const uint32_t crc = crc32_of(d + pos + 4, static_cast<size_t>(4 + len));
    uint8_t* c = d + pos + 8 + len;
    c[0] = uint8_t(crc >> 24);
    c[1] = uint8_t(crc >> 16);
    c[2] = uint8_t(crc >> 8);
    c[3] = uint8_t(crc);
    pos += 12 + static_cast<size_t>(len);
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size > 2 && (seed & 7) != 0) fix_png_crcs(data + 2, size - 2);
  return size;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  vit_image_set_threads(1);  // what the C# side sets by default; also keeps the run on one core
  const char* g = std::getenv("VIT_FUZZ_GUARD");
  g_guard = g == nullptr || std::strcmp(g, "0") != 0;
  if (g_guard) {
    g_regions = new std::unordered_map<const void*, Region>();
    static GuardedMatAllocator allocator;
    cv::Mat::setDefaultAllocator(&allocator);
  }
  warm_up();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t sel = data[0], dim = data[1];
  static const int kChannels[4] = {1, 3, 0, 3};
  const int channels = kChannels[sel & 3];
  const int flags = (sel >> 2) & 1;
  const int mode = ((sel >> 3) & 3) % 3;
  const int interp = (sel >> 5) & 3;
  const bool bmp = (sel >> 7) & 1;
  const int tw = 1 + 4 * (dim & 15), th = 1 + 4 * (dim >> 4);

  const int64_t live_before = vit_image_live_count();

  // The encoded bytes, ending at a guard page (OpenCV's decoders read them uninstrumented).
  const size_t n = size - 2;
  const uint8_t* bytes = data + 2;
  uint8_t* copy = nullptr;
  if (g_guard) {
    g_flush_end = (size & 1) == 0;
    copy = guarded_alloc(n, true);
    CHECK(copy != nullptr, "guarded_alloc failed");
    std::memcpy(copy, bytes, n);
    bytes = copy;
  }
  const size_t regions_before = g_guard ? live_regions() : 0;
  struct FreeCopy {
    uint8_t* p;
    ~FreeCopy() { guarded_free(p); }
  } free_copy{copy};

  VitImage* img = nullptr;
  const int rc = vit_image_decode_bytes(bytes, int64_t(n), kMaxPixels, channels, flags, &img);
  if (verbose()) {
    if (rc == 0) {
      int w = 0, h = 0, c = 0;
      vit_image_info(img, &w, &h, &c);
      std::fprintf(stderr, "decode(channels %d, flags %d): %dx%dx%d\n", channels, flags, w, h, c);
    } else {
      std::fprintf(stderr, "decode(channels %d, flags %d): status %d: %s\n", channels, flags, rc, last_error().c_str());
    }
  }
  if (rc != 0) {
    CHECK(rc == 1, "status " + std::to_string(rc));
    CHECK(img == nullptr, "a failed decode set its out-parameter");
    expect_error_text("vit_image_decode_bytes");
    CHECK(vit_image_live_count() == live_before, "a failed decode left an image handle alive");
    if (g_guard) CHECK(live_regions() == regions_before, "a failed decode left a pixel buffer alive");
    return 0;
  }
  CHECK(img != nullptr, "decode returned 0 and no image");

  const Info i = info_of(img);
  CHECK(int64_t{i.w} * i.h <= kMaxPixels,
        "decoded " + std::to_string(i.w) + "x" + std::to_string(i.h) + ", above the pixel limit of " + std::to_string(kMaxPixels));
  if (channels != 0) CHECK(i.c == channels, "asked for " + std::to_string(channels) + " channels, got " + std::to_string(i.c));
  (void)pixels_of(img, i);

  // The other channel count, then a small resize of it.
  VitImage* conv = nullptr;
  const int other = i.c == 1 ? 3 : 1;
  CHECK(vit_image_to_channels(img, other, &conv) == 0, "vit_image_to_channels failed: " + last_error());
  const Info ci = info_of(conv);
  CHECK(ci.w == i.w && ci.h == i.h && ci.c == other, "vit_image_to_channels gave the wrong shape");

  VitImage* small = nullptr;
  const int rrc = vit_image_resize(img, tw, th, mode, interp, 114, &small);
  if (rrc != 0) {
    // Crop mode scales the shorter side up first; a very thin image can exceed the side limit: refused.
    CHECK(rrc == 1 && small == nullptr, "resize status " + std::to_string(rrc));
    expect_error_text("vit_image_resize");
    CHECK(mode == 2, "resize " + std::to_string(i.w) + "x" + std::to_string(i.h) + " -> " + std::to_string(tw) + "x" +
                         std::to_string(th) + " mode " + std::to_string(mode) + " failed: " + last_error());
  } else {
    const Info si = info_of(small);
    CHECK(si.w == tw && si.h == th && si.c == i.c, "vit_image_resize gave the wrong shape");
    const std::vector<uint8_t> spx = pixels_of(small, si);
    round_trip(small, si, spx, bmp);
    vit_image_free(small);
  }

  vit_image_free(conv);
  vit_image_free(img);
  CHECK(vit_image_live_count() == live_before, "image handles left alive");
  if (g_guard) CHECK(live_regions() == regions_before, "pixel buffers left alive");
  return 0;
}
