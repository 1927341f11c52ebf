/* C API of the host build of the YOLO decode + NMS (a plain shared library for ctypes). */
#ifndef YOLO_DECODE_NMS_HOST_H
#define YOLO_DECODE_NMS_HOST_H

#include "yolo_params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YOLO_ABI_VERSION 1

enum YoloStatus {
    YOLO_OK = 0,
    YOLO_BAD_PARAMS = 1,   /* a field of YoloParams is out of range */
    YOLO_BAD_ARGUMENT = 2, /* null pointer, batch < 0, threads < 1 or an unknown dtype */
    YOLO_NO_MEMORY = 3
};

/* ABI version of this library (YOLO_ABI_VERSION when built from this header). */
int yolo_decode_nms_abi_version(void);

/* sizeof(YoloParams) as compiled: the ctypes mirror checks its layout against it. */
int yolo_decode_nms_params_size(void);

/* Decode + per-class NMS of a batch, on this thread.
 *   heads[h]: head h, (batch, A_h * (5 + C), grid_h[h], grid_w[h]) contiguous, float32
 *             (fp16 = 0) or IEEE half bits (fp16 = 1);
 *   threads:  logical threads of the host executor (1 is fastest; any count gives the same
 *             output, which is what the tests check);
 *   outputs:  num_dets (batch), boxes (batch, max_det, 4), scores (batch, max_det),
 *             classes (batch, max_det); slots past num_dets: zero boxes and scores, class -1.
 * Returns a YoloStatus. */
int yolo_decode_nms_run(const YoloParams* params, const void* const* heads, int fp16, int batch, int threads,
                        int* num_dets, float* boxes, float* scores, int* classes);

#ifdef __cplusplus
}
#endif

#endif
