/* Parameters of the fused YOLO decode + NMS: one plain C struct, shared by the GPU kernel
 * (compiled in as a __constant__ initialiser), the host C API (passed by pointer) and Python
 * (a ctypes.Structure with the same fields, yolov3_trt/plugin/params.py). Plain C, no headers,
 * so NVRTC, nvcc, gcc and ctypes all read the same layout. */
#ifndef YOLO_PARAMS_H
#define YOLO_PARAMS_H

#define YOLO_MAX_HEADS 4
#define YOLO_MAX_ANCHORS 9 /* per head */

typedef struct YoloParams {
    int num_classes;                                /* C, shared by every head */
    int num_heads;                                  /* 1 .. YOLO_MAX_HEADS */
    int input_w, input_h;                           /* network input, pixels */
    int stride_x[YOLO_MAX_HEADS];                   /* grid_w = input_w / stride_x */
    int stride_y[YOLO_MAX_HEADS];
    int grid_w[YOLO_MAX_HEADS], grid_h[YOLO_MAX_HEADS];
    int num_anchors[YOLO_MAX_HEADS];                /* A of each head */
    double anchors[YOLO_MAX_HEADS][YOLO_MAX_ANCHORS][2]; /* (pw, ph) in network pixels */
    float conf;                                     /* keep score > conf (float32 compare) */
    double iou;                                     /* suppress IoU > iou (float64 IoU) */
    int max_det;                                    /* K: detections per image (output width) */
    int pre_nms_top_k;                              /* best candidates kept for NMS */
} YoloParams;

#endif
