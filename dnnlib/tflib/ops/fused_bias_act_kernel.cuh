// CUDA kernel of fused_bias_act (REFERENCE.md section 3.1), free of TensorFlow headers so that
// it builds alone (tests/cuda/test_kernels.cu) and behind the thin TF wrapper in fused_bias_act.cu.
//
//   grad 0:  y  = gain * f(x + b)                         (b broadcast along one axis)
//   grad 1:  dx = gain * f'(z) * x                        (x = incoming gradient)
//   grad 2:       gain * f''(z) * x                       (x = incoming gradient times dy)
// For grad >= 1 the activation's point z is recovered from `ref`: ref = y for activations whose
// derivatives are functions of their output (r = ref / gain = f(z)); ref = z = x + b (after the
// bias) for swish, whose derivatives need z itself.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>

namespace dnnlib_ops {

enum FusedAct { kLinear = 1, kRelu = 2, kLrelu = 3, kTanh = 4, kSigmoid = 5,
                kElu = 6, kSelu = 7, kSoftplus = 8, kSwish = 9 };

struct FusedBiasActParams {
    const void* x;      // [size_x]
    const void* b;      // [size_b] or nullptr
    const void* ref;    // [size_x] or nullptr
    void*       y;      // [size_x]
    int   grad;         // 0, 1 or 2
    int   act;          // FusedAct
    float alpha;        // lrelu slope
    float gain;
    long long size_x;
    int   size_b;       // 0 = no bias
    long long step_b;   // product of the dims after the bias axis
};

__host__ __device__ inline float fba_load(const float* p, long long i) { return p[i]; }
__device__ inline float fba_load(const __half* p, long long i) { return __half2float(p[i]); }
__host__ __device__ inline void fba_store(float* p, long long i, float v) { p[i] = v; }
__device__ inline void fba_store(__half* p, long long i, float v) { p[i] = __float2half(v); }

// One element: v is x (+ bias for grad 0), r the recovered reference value.
__host__ __device__ inline float fused_bias_act_value(int act, int grad, float v, float r, float alpha) {
    const float selu_scale = 1.0507009873554805f, selu_alpha = 1.6732632423543772f;
    switch (act * 10 + grad) {
    case 10: return v;
    case 11: return v;
    case 12: return 0.0f;
    case 20: return v > 0.0f ? v : 0.0f;
    case 21: return r > 0.0f ? v : 0.0f;
    case 22: return 0.0f;
    case 30: return v > 0.0f ? v : v * alpha;
    case 31: return r > 0.0f ? v : v * alpha;
    case 32: return 0.0f;
    case 40: return v < -80.0f ? -1.0f : (v > 80.0f ? 1.0f : tanhf(v));
    case 41: return v * (1.0f - r * r);
    case 42: return v * (1.0f - r * r) * (-2.0f * r);
    case 50: return 1.0f / (1.0f + expf(-v));
    case 51: return v * r * (1.0f - r);
    case 52: return v * r * (1.0f - r) * (1.0f - 2.0f * r);
    case 60: return v >= 0.0f ? v : expf(v) - 1.0f;
    case 61: return r >= 0.0f ? v : v * (r + 1.0f);
    case 62: return r >= 0.0f ? 0.0f : v * (r + 1.0f);
    case 70: return v >= 0.0f ? selu_scale * v : selu_scale * selu_alpha * (expf(v) - 1.0f);
    case 71: return r >= 0.0f ? v * selu_scale : v * (r + selu_scale * selu_alpha);
    case 72: return r >= 0.0f ? 0.0f : v * (r + selu_scale * selu_alpha);
    case 80: return v > 80.0f ? v : log1pf(expf(v));
    case 81: return v * (1.0f - expf(-r));
    case 82: { float e = expf(-r); return v * e * (1.0f - e); }
    case 90: return v < -80.0f ? 0.0f : v / (1.0f + expf(-v));
    case 91: {  // swish'(z) = s + z s (1 - s), s = sigmoid(z)
        if (r > 40.0f) return v;
        if (r < -80.0f) return 0.0f;
        float e = expf(r), q = e + 1.0f;
        return v * e * (r + q) / (q * q);
    }
    case 92: {  // swish''(z) = e^z (z (2 - q) + 2 q) / q^3, q = e^z + 1
        if (r > 40.0f || r < -80.0f) return 0.0f;
        float e = expf(r), q = e + 1.0f;
        return v * e * (r * (2.0f - q) + 2.0f * q) / (q * q * q);
    }
    }
    return 0.0f;
}

// One element i of the output; __host__ __device__ so that the CPU test can check it too.
template <typename T>
__host__ __device__ inline void fused_bias_act_element(const FusedBiasActParams& p, long long i) {
    float v = fba_load((const T*)p.x, i);
    float r = 0.0f;
    if (p.grad == 0) {
        if (p.size_b > 0) v += fba_load((const T*)p.b, (i / p.step_b) % p.size_b);
    } else if (p.ref != nullptr) {
        r = fba_load((const T*)p.ref, i);
        if (p.act != kSwish) r = p.gain != 0.0f ? r / p.gain : 0.0f;  // ref = gain * f(z) -> f(z)
    }
    fba_store((T*)p.y, i, fused_bias_act_value(p.act, p.grad, v, r, p.alpha) * p.gain);
}

template <typename T>
__global__ void fused_bias_act_kernel(FusedBiasActParams p) {
    // 128 threads per block, about 4 elements per thread (grid-stride beyond the grid limit).
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.size_x; i += stride)
        fused_bias_act_element<T>(p, i);
}

// dtype: 0 = float32, 1 = float16. Returns the launch error (cudaSuccess when fine).
inline cudaError_t launch_fused_bias_act(const FusedBiasActParams& p, int dtype, cudaStream_t stream) {
    if (p.size_x <= 0) return cudaSuccess;
    const int threads = 128;
    long long blocks = (p.size_x + threads * 4 - 1) / (threads * 4);
    if (blocks > 65535LL * 16) blocks = 65535LL * 16;
    if (dtype == 0) fused_bias_act_kernel<float><<<(unsigned)blocks, threads, 0, stream>>>(p);
    else fused_bias_act_kernel<__half><<<(unsigned)blocks, threads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace dnnlib_ops
