/* YOLO decode + per-class NMS for one image, written once over an executor policy
 * (executors.cuh): a CUDA block runs it as the TensorRT plugin kernel, a host loop runs it as
 * the CPU post-processor. Semantics are those of yolov3_trt/postprocess.py (the numpy
 * reference), bit for bit on the host:
 *
 *   score(box, c) = float32(sigmoid(obj)) * float32(sigmoid(cls_c)), sigmoids in float64;
 *   a candidate is a (box, class) pair with score > conf (float32 compare);
 *   when more than `pre_nms_top_k` candidates pass, the `pre_nms_top_k` best by key are kept (key =
 *   score, then lower flat index box * C + class; see make_key): a radix select on the 64-bit
 *   keys, never arrival order;
 *   candidates sorted by key (bitonic sort), boxes decoded in float64 and stored as float32;
 *   greedy per-class NMS in that order, suppressing IoU > iou (float64 IoU, NaN suppresses
 *   nothing), stopping once max_det boxes are kept.
 *
 * Phases are separated by ex.barrier(); between two barriers no thread reads what another
 * writes, except through ex.atomic_add. Values every thread reads after a barrier (counts,
 * histograms, alive flags) are therefore uniform, and so is all control flow around barriers. */
#ifndef YOLO_DECODE_NMS_CUH
#define YOLO_DECODE_NMS_CUH

#include "decode_nms_common.cuh"

/* Shared memory of one image (the block's __shared__ arrays on the GPU, heap on the host). */
struct YoloWorkspace {
    yolo_u64* keys;       /* capacity rounded up to a power of two */
    float* boxes;         /* capacity * 4, xyxy */
    unsigned char* alive; /* capacity */
    unsigned* hist;       /* 256 */
    unsigned* counters;   /* 2 */
};

/* Lowest class logit that can still score `least` (or more) for a box with objectness `obj`,
 * with a margin far above float rounding (a skip must never drop a candidate the exact formula
 * keeps; the kept ones are decided by the exact formula). Saves the exp of hopeless classes. */
HOST_DEVICE inline double logit_floor(float least, float obj) {
    if (!(least > 0.0f)) return -1e300;
    double q = (double)least / (double)obj;
    if (1.0 - q < 1e-3) return -1e300;
    return log(q / (1.0 - q)) - (1e-5 / (1.0 - q) + 1e-6);
}

/* Calls fn(tid, key) for every candidate of `image` (score > conf), each from exactly one
 * logical thread; candidates scoring below `least` may be skipped (the radix passes only need
 * keys >= a prefix, whose score part is `least`: later passes then read few boxes).
 * Work item w of a head is (anchor w / HW, cell w % HW): neighbouring threads read neighbouring
 * addresses. Box index (candidate order of the reference): head offset + cell * A + anchor. */
template <class Exec, class T, class F>
HOST_DEVICE void scan_candidates(const Exec& ex, const YoloParams& p, const T* const* heads, int image, float least,
                                 F& fn) {
    ex.for_each_thread([&](int tid) {
        const int nt = ex.threads();
        const float conf = p.conf;
        const int classes = p.num_classes;
        unsigned box_base = 0;
        for (int h = 0; h < p.num_heads; ++h) {
            const int anchors = p.num_anchors[h], hw = p.grid_w[h] * p.grid_h[h];
            const long long channels = 5 + classes;
            const T* base = heads[h] + (long long)image * anchors * channels * hw;
            for (int w = tid; w < anchors * hw; w += nt) {
                const int a = w / hw, cell = w - a * hw;
                const T* v = base + (long long)a * channels * hw + cell;
                const float obj = (float)sigmoid_d(load_value(v, 4LL * hw));
                /* score <= obj (a float32 product with a factor <= 1): nothing of this box passes */
                if (!(obj > conf) || obj < least) continue;
                const double floor = logit_floor(least > conf ? least : conf, obj);
                const unsigned flat0 = (box_base + (unsigned)(cell * anchors + a)) * (unsigned)classes;
                for (int c = 0; c < classes; ++c) {
                    const float x = load_value(v, (5LL + c) * hw);
                    if ((double)x < floor) continue;
                    const float score = obj * (float)sigmoid_d(x);
                    if (score > conf) fn(tid, make_key(score, flat0 + (unsigned)c));
                }
            }
            box_base += (unsigned)(anchors * hw);
        }
    });
}

/* Score part of a key prefix: the lowest score a key >= prefix can have. */
HOST_DEVICE inline float prefix_score(yolo_u64 prefix) { return bits_float((unsigned)(prefix >> 32)); }

/* The `rank`-th largest candidate key (1-based), found 8 bits at a time from the top; returns
 * the prefix P such that exactly `rank` candidate keys are >= P. ws.hist holds the histogram of
 * the top 8 bits already (phase 1 counts it while collecting). */
template <class Exec, class T>
HOST_DEVICE yolo_u64 select_threshold(const Exec& ex, const YoloParams& p, const T* const* heads, int image,
                                      const YoloWorkspace& ws, unsigned rank) {
    yolo_u64 prefix = 0, mask = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        if (shift != 56) {
            ex.for_each_thread([&](int tid) {
                for (int b = tid; b < 256; b += ex.threads()) ws.hist[b] = 0u;
            });
            ex.barrier();
            auto count = [&](int, yolo_u64 key) {
                if ((key & mask) == prefix) ex.atomic_add(&ws.hist[(unsigned)(key >> shift) & 255u], 1u);
            };
            scan_candidates(ex, p, heads, image, prefix_score(prefix), count);
            ex.barrier();
        }
        unsigned above = 0;
        int digit = 255;
        for (; digit > 0; --digit) {
            if (above + ws.hist[digit] >= rank) break;
            above += ws.hist[digit];
        }
        const unsigned here = ws.hist[digit];
        rank -= above;
        prefix |= (yolo_u64)digit << shift;
        mask |= (yolo_u64)255u << shift;
        ex.barrier(); /* all have read hist before the next pass clears it */
        if (here == rank) break; /* the whole group fits: keys >= prefix are exactly the best */
    }
    return prefix;
}

/* Boxes of the reference (postprocess._box_rows): float64, stored as float32 xyxy. */
template <class T>
HOST_DEVICE void decode_box(const YoloParams& p, const T* const* heads, int image, unsigned box, float* out) {
    int h = 0;
    unsigned count = (unsigned)(p.num_anchors[0] * p.grid_w[0] * p.grid_h[0]);
    while (box >= count && h + 1 < p.num_heads) {
        box -= count;
        ++h;
        count = (unsigned)(p.num_anchors[h] * p.grid_w[h] * p.grid_h[h]);
    }
    const int anchors = p.num_anchors[h], gw = p.grid_w[h], gh = p.grid_h[h], hw = gw * gh;
    const int cell = (int)box / anchors, a = (int)box - cell * anchors;
    const int cy = cell / gw, cx = cell - cy * gw;
    const long long channels = 5 + p.num_classes;
    const T* v = heads[h] + (long long)image * anchors * channels * hw + (long long)a * channels * hw + cell;
    const double bx = (sigmoid_d((double)load_value(v, 0)) + (double)cx) / gw * p.input_w;
    const double by = (sigmoid_d((double)load_value(v, hw)) + (double)cy) / gh * p.input_h;
    const double bw = p.anchors[h][a][0] * exp((double)load_value(v, 2LL * hw));
    const double bh = p.anchors[h][a][1] * exp((double)load_value(v, 3LL * hw));
    out[0] = (float)(bx - bw / 2);
    out[1] = (float)(by - bh / 2);
    out[2] = (float)(bx + bw / 2);
    out[3] = (float)(by + bh / 2);
}

/* IoU of two float32 boxes in float64, as yolov3_trt/boxes.py paired_iou (the same steps, NaN
 * propagating through min/max as numpy's): 0 when the union is not positive (two zero-area boxes,
 * or a NaN coordinate), never 0/0. So for any threshold >= 0 an empty union suppresses nothing. */
HOST_DEVICE inline double box_iou(const float* a, const float* b) {
    const double ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
    const double bx1 = b[0], by1 = b[1], bx2 = b[2], by2 = b[3];
    const double iw = max_nan(min_nan(ax2, bx2) - max_nan(ax1, bx1), 0.0);
    const double ih = max_nan(min_nan(ay2, by2) - max_nan(ay1, by1), 0.0);
    const double inter = iw * ih;
    const double area_union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
    return area_union > 0.0 ? inter / area_union : 0.0;
}

/* Decode + NMS of one image. Outputs of this image: num_dets[0], boxes[max_det * 4],
 * scores[max_det], classes[max_det]; slots past num_dets hold zero boxes and scores, class -1. */
template <class Exec, class T>
HOST_DEVICE void decode_nms_image(const Exec& ex, const YoloParams& p, const T* const* heads, int image,
                                  const YoloWorkspace& ws, int* num_dets, float* boxes, float* scores,
                                  int* classes) {
    const unsigned capacity = (unsigned)p.pre_nms_top_k;
    const unsigned classes_n = (unsigned)p.num_classes;
    ex.for_each_thread([&](int tid) {
        if (tid == 0) ws.counters[0] = ws.counters[1] = 0u;
        for (int b = tid; b < 256; b += ex.threads()) ws.hist[b] = 0u;
    });
    ex.barrier();

    /* 1. Candidates: all of them when they fit, else the `capacity` best by key (the top-8-bit
     * histogram counted on the way is the radix select's first pass). */
    auto collect_first = [&](int, yolo_u64 key) {
        const unsigned slot = ex.atomic_add(&ws.counters[0], 1u);
        if (slot < capacity) ws.keys[slot] = key;
        ex.atomic_add(&ws.hist[(unsigned)(key >> 56)], 1u);
    };
    scan_candidates(ex, p, heads, image, p.conf, collect_first);
    ex.barrier();
    const unsigned total = ws.counters[0];
    const int n = (int)(total < capacity ? total : capacity);
    if (total > capacity) {
        const yolo_u64 threshold = select_threshold(ex, p, heads, image, ws, capacity);
        auto collect_best = [&](int, yolo_u64 key) {
            if (key >= threshold) ws.keys[ex.atomic_add(&ws.counters[1], 1u)] = key;
        };
        scan_candidates(ex, p, heads, image, prefix_score(threshold), collect_best);
        ex.barrier();
    }

    /* 2. Bitonic sort, descending key, over the next power of two (zero keys pad the tail). */
    int padded = 1;
    while (padded < n) padded <<= 1;
    ex.for_each_thread([&](int tid) {
        for (int i = n + tid; i < padded; i += ex.threads()) ws.keys[i] = 0ull;
    });
    ex.barrier();
    for (int k = 2; k <= padded; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            ex.for_each_thread([&](int tid) {
                for (int i = tid; i < padded; i += ex.threads()) {
                    const int l = i ^ j;
                    if (l <= i) continue;
                    const yolo_u64 a = ws.keys[i], b = ws.keys[l];
                    if (((i & k) == 0) ? (a < b) : (a > b)) {
                        ws.keys[i] = b;
                        ws.keys[l] = a;
                    }
                }
            });
            ex.barrier();
        }
    }

    /* 3. Boxes of the selected candidates, in sorted order. */
    ex.for_each_thread([&](int tid) {
        for (int i = tid; i < n; i += ex.threads()) {
            decode_box(p, heads, image, key_flat(ws.keys[i]) / classes_n, ws.boxes + 4 * i);
            ws.alive[i] = 1;
        }
    });
    ex.barrier();

    /* 4. Greedy per-class NMS in key order; the first max_det survivors are the output. */
    int kept = 0;
    for (int i = 0; i < n && kept < p.max_det; ++i) {
        if (!ws.alive[i]) continue; /* written before the last barrier: uniform */
        const int slot = kept++;
        ex.for_each_thread([&](int tid) {
            const unsigned cls = key_flat(ws.keys[i]) % classes_n;
            if (tid == 0) {
                for (int c = 0; c < 4; ++c) boxes[4 * slot + c] = ws.boxes[4 * i + c];
                scores[slot] = key_score(ws.keys[i]);
                classes[slot] = (int)cls;
            }
            for (int j = i + 1 + tid; j < n; j += ex.threads()) {
                if (ws.alive[j] && key_flat(ws.keys[j]) % classes_n == cls &&
                    box_iou(ws.boxes + 4 * i, ws.boxes + 4 * j) > p.iou)
                    ws.alive[j] = 0;
            }
        });
        ex.barrier();
    }

    /* 5. Fixed-size outputs: clear the unused slots. */
    ex.for_each_thread([&](int tid) {
        if (tid == 0) num_dets[0] = kept;
        for (int s = kept + tid; s < p.max_det; s += ex.threads()) {
            boxes[4 * s] = boxes[4 * s + 1] = boxes[4 * s + 2] = boxes[4 * s + 3] = 0.0f;
            scores[s] = 0.0f;
            classes[s] = -1; /* as the end2end graph: no class */
        }
    });
}

#endif
