/* Executor policies: how the phases of decode_nms.cuh run.
 *
 * A phase is `ex.for_each_thread(fn)` followed by `ex.barrier()`. `fn(tid)` does the work of
 * logical thread `tid` of `ex.threads()`, striding over its items; it may touch what other
 * threads touch only through `ex.atomic_add`. On the GPU a block is the executor (one call of
 * fn per CUDA thread, __syncthreads as the barrier); on the host a loop over the logical
 * threads is (the barrier is then a no-op). Phase code that is race-free between barriers,
 * which it has to be on the GPU, gives the same result under both, whatever the thread count:
 * the host tests run with 1 and with 64 logical threads and demand identical output. */
#ifndef YOLO_EXECUTORS_CUH
#define YOLO_EXECUTORS_CUH

#include "decode_nms_common.cuh"

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
struct DeviceExec {
    __device__ int threads() const { return (int)blockDim.x; }
    template <class F>
    __device__ void for_each_thread(F&& fn) const { fn((int)threadIdx.x); }
    __device__ void barrier() const { __syncthreads(); }
    __device__ unsigned atomic_add(unsigned* p, unsigned v) const { return atomicAdd(p, v); }
};
#endif

#if !defined(__CUDA_ARCH__)
struct HostExec {
    int logical_threads;
    int threads() const { return logical_threads; }
    template <class F>
    void for_each_thread(F&& fn) const {
        for (int tid = 0; tid < logical_threads; ++tid) fn(tid);
    }
    void barrier() const {}
    unsigned atomic_add(unsigned* p, unsigned v) const {
        unsigned old = *p;
        *p = old + v;
        return old;
    }
};
#endif

#endif
