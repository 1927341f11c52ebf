/* Host build of decode_nms.cuh: the same algorithm with HOST_DEVICE empty and the loop
 * executor, behind the C API of yolo_decode_nms_host.h. Built by setup.py (no CUDA needed). */
#include "yolo_decode_nms_host.h"

#include <cstddef>
#include <vector>

#include "decode_nms.cuh"
#include "executors.cuh"

namespace {

bool valid(const YoloParams& p) {
    if (p.num_classes < 1 || p.num_heads < 1 || p.num_heads > YOLO_MAX_HEADS) return false;
    if (p.input_w < 1 || p.input_h < 1 || p.max_det < 0 || p.pre_nms_top_k < 1) return false;
    if (!(p.conf >= 0.0f) || p.iou != p.iou) return false;
    double flat = 0;
    for (int h = 0; h < p.num_heads; ++h) {
        if (p.num_anchors[h] < 1 || p.num_anchors[h] > YOLO_MAX_ANCHORS) return false;
        if (p.grid_w[h] < 1 || p.grid_h[h] < 1) return false;
        flat += (double)p.num_anchors[h] * p.grid_w[h] * p.grid_h[h] * p.num_classes;
    }
    return flat < 4294967295.0; /* flat candidate indices are 32-bit */
}

template <class T>
int run(const YoloParams& p, const void* const* raw_heads, int batch, int threads, int* num_dets, float* boxes,
        float* scores, int* classes) {
    const T* heads[YOLO_MAX_HEADS] = {};
    for (int h = 0; h < p.num_heads; ++h) heads[h] = static_cast<const T*>(raw_heads[h]);
    std::size_t padded = 1;
    while (padded < (std::size_t)p.pre_nms_top_k) padded <<= 1;
    std::vector<yolo_u64> keys(padded);
    std::vector<float> box_buf((std::size_t)p.pre_nms_top_k * 4);
    std::vector<unsigned char> alive((std::size_t)p.pre_nms_top_k);
    std::vector<unsigned> hist(256), counters(2);
    const YoloWorkspace ws{keys.data(), box_buf.data(), alive.data(), hist.data(), counters.data()};
    const HostExec ex{threads};
    const std::size_t k = (std::size_t)p.max_det;
    for (int b = 0; b < batch; ++b)
        decode_nms_image(ex, p, heads, b, ws, num_dets + b, boxes + b * k * 4, scores + b * k, classes + b * k);
    return YOLO_OK;
}

}  // namespace

extern "C" int yolo_decode_nms_abi_version(void) { return YOLO_ABI_VERSION; }

extern "C" int yolo_decode_nms_params_size(void) { return (int)sizeof(YoloParams); }

extern "C" int yolo_decode_nms_run(const YoloParams* params, const void* const* heads, int fp16, int batch,
                                   int threads, int* num_dets, float* boxes, float* scores, int* classes) {
    if (!params || !heads || batch < 0 || threads < 1 || (fp16 != 0 && fp16 != 1)) return YOLO_BAD_ARGUMENT;
    if (!valid(*params)) return YOLO_BAD_PARAMS;
    if (batch == 0) return YOLO_OK;
    if (!num_dets || !boxes || !scores || !classes) return YOLO_BAD_ARGUMENT;
    for (int h = 0; h < params->num_heads; ++h)
        if (!heads[h]) return YOLO_BAD_ARGUMENT;
    try {
        if (fp16) return run<unsigned short>(*params, heads, batch, threads, num_dets, boxes, scores, classes);
        return run<float>(*params, heads, batch, threads, num_dets, boxes, scores, classes);
    } catch (...) {  // std::bad_alloc: never let an exception cross the C boundary
        return YOLO_NO_MEMORY;
    }
}
