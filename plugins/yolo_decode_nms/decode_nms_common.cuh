/* Portable helpers for decode_nms.cuh: the HOST_DEVICE qualifier, float bits, FP16 loads and
 * the float64 maths the numpy reference (yolov3_trt/postprocess.py) uses, written so one file
 * compiles with NVRTC (no host headers), nvcc and a plain C++ compiler. */
#ifndef YOLO_DECODE_NMS_COMMON_CUH
#define YOLO_DECODE_NMS_COMMON_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#ifndef HOST_DEVICE
#define HOST_DEVICE __host__ __device__
#endif
#else
#ifndef HOST_DEVICE
#define HOST_DEVICE
#endif
#include <cmath>
#include <cstring>
using std::exp;
using std::fabs;
using std::log;
#endif

#include "yolo_params.h"

typedef unsigned long long yolo_u64;

HOST_DEVICE inline unsigned float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

HOST_DEVICE inline float bits_float(unsigned u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* IEEE half (as its 16 bits) to float, exactly, without cuda_fp16.h (not a host header NVRTC
 * always has, and the host build has no CUDA at all). */
HOST_DEVICE inline float half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h >> 15) << 31, expo = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (expo == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13)); /* inf, NaN */
    if (expo != 0) return bits_float(sign | ((expo + 112u) << 23) | (mant << 13));
    if (mant == 0) return bits_float(sign);
    unsigned e = 113u; /* subnormal: shift the leading 1 into the implicit bit */
    while (!(mant & 0x400u)) { mant <<= 1; --e; }
    return bits_float(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

/* Head values; on the GPU through the read-only data cache (heads are never written here). */
HOST_DEVICE inline float load_value(const float* p, long long i) {
#if defined(__CUDA_ARCH__)
    return __ldg(p + i);
#else
    return p[i];
#endif
}
HOST_DEVICE inline float load_value(const unsigned short* p, long long i) {
#if defined(__CUDA_ARCH__)
    return half_to_float(__ldg(p + i));
#else
    return half_to_float(p[i]);
#endif
}

/* The reference's sigmoid: float64, `num / (1 + e^-|x|)` with num = 1 (x >= 0) or e^-|x|. */
HOST_DEVICE inline double sigmoid_d(double x) {
    double e = exp(-fabs(x));
    double num = x >= 0.0 ? 1.0 : e;
    return num / (1.0 + e);
}

/* numpy's maximum/minimum: NaN wins. */
HOST_DEVICE inline double max_nan(double a, double b) { return (a != a || a > b) ? a : b; }
HOST_DEVICE inline double min_nan(double a, double b) { return (a != a || a < b) ? a : b; }

/* Candidate key: score bits high, then the complement of the flat index (box * C + class), so
 * a larger key is a higher score, and among equal scores the lower flat index. Keys are unique,
 * so sorting and selecting by key is deterministic whatever order candidates arrive in. Scores
 * are > conf >= 0, so their bits order like the floats and no key is 0 (0 pads the sort). */
HOST_DEVICE inline yolo_u64 make_key(float score, unsigned flat) {
    return ((yolo_u64)float_bits(score) << 32) | (yolo_u64)(0xffffffffu - flat);
}
HOST_DEVICE inline float key_score(yolo_u64 key) { return bits_float((unsigned)(key >> 32)); }
HOST_DEVICE inline unsigned key_flat(yolo_u64 key) { return 0xffffffffu - (unsigned)(key & 0xffffffffu); }

#endif
