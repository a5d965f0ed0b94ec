// CUDA kernels of upfirdn_2d (REFERENCE.md section 3.2), free of TensorFlow headers.
//
// x [major, in_h, in_w, minor], FIR k [kh, kw] -> y [major, out_h, out_w, minor]:
// (1) insert up-1 zeros after each sample, (2) zero-pad by pad0/pad1 (negative = crop),
// (3) true convolution with k ("valid"), (4) keep every down-th sample starting at 0.
// Output index o reads the padded, upsampled signal at o*down + j (j = 0..kh-1) with tap
// k[kh-1-j]; that signal is non-zero only where (o*down + j - pad0) is a multiple of up.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>

namespace dnnlib_ops {

struct UpFirDn2DParams {
    const void* x;
    const void* k;      // [kh, kw], float (same dtype as x)
    void*       y;
    int up_x, up_y, down_x, down_y;
    int pad_x0, pad_x1, pad_y0, pad_y1;
    int major, in_h, in_w, minor;
    int kernel_h, kernel_w;
    int out_h, out_w;
};

__host__ __device__ inline float ufd_load(const float* p, long long i) { return p[i]; }
__device__ inline float ufd_load(const __half* p, long long i) { return __half2float(p[i]); }
__host__ __device__ inline void ufd_store(float* p, long long i, float v) { p[i] = v; }
__device__ inline void ufd_store(__half* p, long long i, float v) { p[i] = __float2half(v); }

__host__ __device__ inline int ufd_floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

// Generic path, one output element (idx over [major, out_h, out_w, minor]); any factors and sizes.
// __host__ __device__ so that tests/cuda/test_kernels.cu can also check it on the CPU.
template <typename T>
__host__ __device__ inline void upfirdn_2d_generic_element(const UpFirDn2DParams& p, long long idx) {
    const T* x = (const T*)p.x;
    const T* k = (const T*)p.k;
    int mi = (int)(idx % p.minor);
    long long t = idx / p.minor;
    int ox = (int)(t % p.out_w); t /= p.out_w;
    int oy = (int)(t % p.out_h);
    int ma = (int)(t / p.out_h);
    float acc = 0.0f;
    int py = oy * p.down_y - p.pad_y0;   // upsampled row read by tap j = 0
    int px = ox * p.down_x - p.pad_x0;
    for (int j = 0; j < p.kernel_h; j++) {
        int qy = py + j;
        if (qy < 0 || qy % p.up_y != 0) continue;
        int iy = qy / p.up_y;
        if (iy >= p.in_h) break;
        for (int i = 0; i < p.kernel_w; i++) {
            int qx = px + i;
            if (qx < 0 || qx % p.up_x != 0) continue;
            int ix = qx / p.up_x;
            if (ix >= p.in_w) break;
            float kv = ufd_load(k, (long long)(p.kernel_h - 1 - j) * p.kernel_w + (p.kernel_w - 1 - i));
            acc += ufd_load(x, (((long long)ma * p.in_h + iy) * p.in_w + ix) * p.minor + mi) * kv;
        }
    }
    ufd_store((T*)p.y, idx, acc);
}

template <typename T>
__global__ void upfirdn_2d_generic_kernel(UpFirDn2DParams p) {
    const long long total = (long long)p.major * p.out_h * p.out_w * p.minor;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x)
        upfirdn_2d_generic_element<T>(p, idx);
}

// Tiled path for a fixed (UP, DOWN) in both axes and kernels up to KMAX x KMAX: a block stages
// the filter and the input tile its TILE x TILE outputs read in shared memory. The two phases
// are __host__ __device__ functions of the block and thread index, so the CPU test can replay a
// block thread by thread.
constexpr int kUfdTile = 32;
template <int UP, int DOWN, int KMAX>
struct UfdTile {
    static constexpr int in = ((kUfdTile - 1) * DOWN + KMAX - 1) / UP + 2;  // input rows/cols read
    float k[KMAX][KMAX];   // flipped filter, zero beyond its size
    float x[in][in];
};

template <typename T, int UP, int DOWN, int KMAX>
__host__ __device__ inline void upfirdn_2d_tile_load(const UpFirDn2DParams& p, UfdTile<UP, DOWN, KMAX>& s,
                                                     int bx, int by, int bz, int tid, int nthreads) {
    constexpr int TIN = UfdTile<UP, DOWN, KMAX>::in;
    const T* x = (const T*)p.x;
    const T* k = (const T*)p.k;
    const int ma = bz / p.minor, mi = bz % p.minor;
    const int iy0 = ufd_floor_div(by * kUfdTile * DOWN - p.pad_y0, UP);
    const int ix0 = ufd_floor_div(bx * kUfdTile * DOWN - p.pad_x0, UP);
    for (int i = tid; i < KMAX * KMAX; i += nthreads) {
        int ky = i / KMAX, kx = i % KMAX;
        s.k[ky][kx] = (ky < p.kernel_h && kx < p.kernel_w)
            ? ufd_load(k, (long long)(p.kernel_h - 1 - ky) * p.kernel_w + (p.kernel_w - 1 - kx)) : 0.0f;
    }
    for (int i = tid; i < TIN * TIN; i += nthreads) {
        int ty = i / TIN, tx = i % TIN;
        int iy = iy0 + ty, ix = ix0 + tx;
        float v = 0.0f;
        if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w)
            v = ufd_load(x, (((long long)ma * p.in_h + iy) * p.in_w + ix) * p.minor + mi);
        s.x[ty][tx] = v;
    }
}

template <typename T, int UP, int DOWN, int KMAX>
__host__ __device__ inline void upfirdn_2d_tile_compute(const UpFirDn2DParams& p, const UfdTile<UP, DOWN, KMAX>& s,
                                                        int bx, int by, int bz, int tid, int nthreads) {
    const int ma = bz / p.minor, mi = bz % p.minor;
    const int oy0 = by * kUfdTile, ox0 = bx * kUfdTile;
    const int iy0 = ufd_floor_div(oy0 * DOWN - p.pad_y0, UP);
    const int ix0 = ufd_floor_div(ox0 * DOWN - p.pad_x0, UP);
    for (int i = tid; i < kUfdTile * kUfdTile; i += nthreads) {
        int oy = oy0 + i / kUfdTile, ox = ox0 + i % kUfdTile;
        if (oy >= p.out_h || ox >= p.out_w) continue;
        int py = oy * DOWN - p.pad_y0, px = ox * DOWN - p.pad_x0;
        // First tap that lands on an input sample; then every UP-th tap.
        int jy = ((-py) % UP + UP) % UP, jx = ((-px) % UP + UP) % UP;
        float acc = 0.0f;
        for (int j = jy; j < p.kernel_h; j += UP) {
            int ty = (py + j) / UP - iy0;  // exact: py + j is a multiple of UP here
            for (int q = jx; q < p.kernel_w; q += UP)
                acc += s.x[ty][(px + q) / UP - ix0] * s.k[j][q];
        }
        ufd_store((T*)p.y, (((long long)ma * p.out_h + oy) * p.out_w + ox) * p.minor + mi, acc);
    }
}

template <typename T, int UP, int DOWN, int KMAX>
__global__ void upfirdn_2d_tiled_kernel(UpFirDn2DParams p) {
    __shared__ UfdTile<UP, DOWN, KMAX> s;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
    upfirdn_2d_tile_load<T, UP, DOWN, KMAX>(p, s, blockIdx.x, blockIdx.y, blockIdx.z, tid, nthreads);
    __syncthreads();
    upfirdn_2d_tile_compute<T, UP, DOWN, KMAX>(p, s, blockIdx.x, blockIdx.y, blockIdx.z, tid, nthreads);
}

// Which path launch_upfirdn_2d takes for these parameters (0 generic, 1..3 tiled).
inline int upfirdn_2d_path(const UpFirDn2DParams& p) {
    if (p.up_x != p.up_y || p.down_x != p.down_y || p.kernel_h > 8 || p.kernel_w > 8) return 0;
    if (p.up_x == 1 && p.down_x == 1) return 1;
    if (p.up_x == 2 && p.down_x == 1) return 2;
    if (p.up_x == 1 && p.down_x == 2) return 3;
    return 0;
}

template <typename T>
inline cudaError_t launch_upfirdn_2d_typed(const UpFirDn2DParams& p, int force_generic, cudaStream_t stream) {
    const long long total = (long long)p.major * p.out_h * p.out_w * p.minor;
    if (total <= 0) return cudaSuccess;
    int path = force_generic ? 0 : upfirdn_2d_path(p);
    if (path != 0 && (long long)p.major * p.minor > 65535) path = 0;  // grid.z limit
    if (path == 0) {
        long long blocks = (total + 255) / 256;
        if (blocks > 65535LL * 16) blocks = 65535LL * 16;
        upfirdn_2d_generic_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>(p);
    } else {
        dim3 grid((p.out_w + kUfdTile - 1) / kUfdTile, (p.out_h + kUfdTile - 1) / kUfdTile, p.major * p.minor);
        dim3 block(32, 8);
        if (path == 1) upfirdn_2d_tiled_kernel<T, 1, 1, 8><<<grid, block, 0, stream>>>(p);
        else if (path == 2) upfirdn_2d_tiled_kernel<T, 2, 1, 8><<<grid, block, 0, stream>>>(p);
        else upfirdn_2d_tiled_kernel<T, 1, 2, 8><<<grid, block, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

// dtype: 0 = float32, 1 = float16. force_generic: 1 skips the tiled paths (tests use it).
inline cudaError_t launch_upfirdn_2d(const UpFirDn2DParams& p, int dtype, int force_generic, cudaStream_t stream) {
    return dtype == 0 ? launch_upfirdn_2d_typed<float>(p, force_generic, stream)
                      : launch_upfirdn_2d_typed<__half>(p, force_generic, stream);
}

}  // namespace dnnlib_ops
