/* GPU entry of the YOLO decode + NMS: one block per image, shared memory only.
 *
 * Compiled at engine-build time (NVRTC, or nvcc) with a generated yolo_decode_nms_constants.h
 * (yolov3_trt/plugin/params.py) that defines:
 *   yolo_params_init()    a constexpr function returning the YoloParams (classes, anchors,
 *                         strides, grids, conf, iou, max_det, pre_nms_top_k), assigned field
 *                         by field by name: TensorRT's AOT path does not serialise plugin
 *                         attributes, so they are compiled in;
 *   YOLO_INPUT_T          float or unsigned short (IEEE half bits);
 *   YOLO_CAPACITY, YOLO_CAPACITY_POW2, YOLO_BLOCK;
 *   YOLO_HEAD_ARGS        the head parameters (const YOLO_INPUT_T* __restrict__ head0, ...);
 *   YOLO_HEAD_LIST        head0, head1, ...
 * Arguments follow the AOT contract: input tensors, then integer scalars (batch), then outputs
 * num_dets [B,1] int32, boxes [B,K,4] float32, scores [B,K] float32, classes [B,K] int32. */
#include "decode_nms.cuh"
#include "executors.cuh"
#include "yolo_decode_nms_constants.h"

__constant__ YoloParams kYoloParams = yolo_params_init();

extern "C" __global__ void __launch_bounds__(YOLO_BLOCK)
yolo_decode_nms(YOLO_HEAD_ARGS, int batch, int* __restrict__ num_dets, float* __restrict__ boxes,
                       float* __restrict__ scores, int* __restrict__ classes) {
    __shared__ yolo_u64 keys[YOLO_CAPACITY_POW2];
    __shared__ float box_buf[YOLO_CAPACITY * 4];
    __shared__ unsigned char alive[YOLO_CAPACITY];
    __shared__ unsigned hist[256];
    __shared__ unsigned counters[2];
    const int image = (int)blockIdx.x;
    if (image >= batch) return; /* uniform per block */
    const YOLO_INPUT_T* heads[YOLO_MAX_HEADS] = {YOLO_HEAD_LIST};
    const YoloWorkspace ws{keys, box_buf, alive, hist, counters};
    const DeviceExec ex;
    const YoloParams& p = kYoloParams;
    const long long k = p.max_det;
    decode_nms_image(ex, p, heads, image, ws, num_dets + image, boxes + image * k * 4, scores + image * k,
                     classes + image * k);
}
