// Standalone check of the custom-op CUDA kernels against CPU references written here.
// Includes only the kernel headers (no TensorFlow). Build and run from the repository root:
//   nvcc -I dnnlib/tflib/ops -o /tmp/test_kernels tests/cuda/test_kernels.cu && /tmp/test_kernels
// With a GPU the kernels run on it. Without one, the kernel bodies (which are __host__ __device__
// functions of the element / block and thread index) are replayed on the CPU, thread by thread,
// which checks their arithmetic and indexing but not the launch itself.
// Prints one PASS/FAIL line per case; exit 0 all passed on the GPU, 1 a case failed,
// 2 all passed in the CPU replay but no GPU ran the kernels.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fused_bias_act_kernel.cuh"
#include "upfirdn_2d_kernel.cuh"

using namespace dnnlib_ops;

static int g_failures = 0;
static bool g_gpu = false;  // run on the GPU, else replay the kernel bodies on the CPU

#define CUDA_CHECK(expr) do { cudaError_t e_ = (expr); if (e_ != cudaSuccess) { \
    std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); std::exit(2); } } while (0)

static float frand(unsigned& s) { s = s * 1664525u + 1013904223u; return ((s >> 8) / 16777216.0f) * 2.0f - 1.0f; }

static void report(const char* name, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); i++) {
        double err = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
        if (!(err <= worst)) worst = err;  // NaN counts as the worst
    }
    bool ok = worst <= tol;
    if (!ok) g_failures++;
    std::printf("%s %-44s max rel err %.3g (%s)\n", ok ? "PASS" : "FAIL", name, worst, g_gpu ? "gpu" : "cpu replay");
}

template <typename T> static T* to_device(const std::vector<float>& v) {
    T* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, v.size() * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
    return p;
}

//------------------------------------------------------------------------------------------------
// fused_bias_act: CPU reference of f, f', f'' in double, from the activations' definitions.

static double act_f(int act, double z, double a, int order) {
    const double s = 1.0507009873554805, sa = 1.6732632423543772;
    double sg = 1.0 / (1.0 + std::exp(-z));
    switch (act) {
    case 1: return order == 0 ? z : (order == 1 ? 1.0 : 0.0);
    case 2: return order == 0 ? (z > 0 ? z : 0.0) : (order == 1 ? (z > 0 ? 1.0 : 0.0) : 0.0);
    case 3: return order == 0 ? (z > 0 ? z : a * z) : (order == 1 ? (z > 0 ? 1.0 : a) : 0.0);
    case 4: { double t = std::tanh(z); return order == 0 ? t : (order == 1 ? 1 - t * t : -2 * t * (1 - t * t)); }
    case 5: return order == 0 ? sg : (order == 1 ? sg * (1 - sg) : sg * (1 - sg) * (1 - 2 * sg));
    case 6: return z >= 0 ? (order == 0 ? z : (order == 1 ? 1.0 : 0.0)) : (order == 0 ? std::exp(z) - 1 : std::exp(z));
    case 7: return z >= 0 ? (order == 0 ? s * z : (order == 1 ? s : 0.0))
                          : (order == 0 ? s * sa * (std::exp(z) - 1) : s * sa * std::exp(z));
    case 8: return order == 0 ? std::log1p(std::exp(z)) : (order == 1 ? sg : sg * (1 - sg));
    case 9: return order == 0 ? z * sg : (order == 1 ? sg + z * sg * (1 - sg)
                                                     : sg * (1 - sg) * (2 + z * (1 - 2 * sg)));
    }
    return 0.0;
}

static void test_fused_bias_act(int act, int grad, const char* act_name) {
    const int n0 = 3, c = 7, hw = 45;  // x [3, 7, 45], bias along axis 1
    const int size = n0 * c * hw;
    const float alpha = 0.25f, gain = 1.3f;
    unsigned seed = 17u + act * 3 + grad;
    std::vector<float> x(size), b(c), dy(size);
    for (auto& v : x) v = 3.0f * frand(seed);
    for (auto& v : b) v = frand(seed);
    for (auto& v : dy) v = frand(seed);
    std::vector<float> ref(size), in(size);
    std::vector<double> want(size);
    for (int i = 0; i < size; i++) {
        double z = (double)x[i] + b[(i / hw) % c];
        double y = gain * act_f(act, z, alpha, 0);
        ref[i] = act == 9 ? (float)z : (float)y;           // swish's ref is z (after the bias)
        in[i] = grad == 0 ? x[i] : dy[i];
        want[i] = grad == 0 ? y : gain * act_f(act, z, alpha, grad) * dy[i];
    }
    FusedBiasActParams p = {};
    p.grad = grad; p.act = act; p.alpha = alpha; p.gain = gain;
    p.size_x = size; p.size_b = grad == 0 ? c : 0; p.step_b = hw;
    std::vector<float> got(size);
    if (g_gpu) {
        float *dx = to_device<float>(in), *db = to_device<float>(b), *dref = to_device<float>(ref), *dout = nullptr;
        CUDA_CHECK(cudaMalloc(&dout, size * sizeof(float)));
        p.x = dx; p.b = grad == 0 ? db : nullptr; p.ref = grad == 0 ? nullptr : dref; p.y = dout;
        CUDA_CHECK(launch_fused_bias_act(p, 0, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(got.data(), dout, size * sizeof(float), cudaMemcpyDeviceToHost));
        cudaFree(dx); cudaFree(db); cudaFree(dref); cudaFree(dout);
    } else {
        p.x = in.data(); p.b = grad == 0 ? b.data() : nullptr; p.ref = grad == 0 ? nullptr : ref.data(); p.y = got.data();
        for (long long i = 0; i < size; i++) fused_bias_act_element<float>(p, i);
    }
    // relu/lrelu/elu/selu derivatives read the sign of r = ref/gain: points right at a kink may
    // round either way, so skip |z| < 1e-4 there.
    for (int i = 0; i < size; i++)
        if (grad > 0 && std::fabs((double)x[i] + b[(i / hw) % c]) < 1e-4) got[i] = (float)want[i];
    char name[64];
    std::snprintf(name, sizeof(name), "fused_bias_act %s grad=%d", act_name, grad);
    report(name, got, want, 2e-4 * (grad + 1));
}

//------------------------------------------------------------------------------------------------
// upfirdn_2d: CPU reference by explicit zero insertion, padding, true convolution, stride.

static std::vector<double> cpu_upfirdn(const std::vector<float>& x, const std::vector<float>& k,
                                       const UpFirDn2DParams& p) {
    int uh = p.in_h * p.up_y + p.pad_y0 + p.pad_y1, uw = p.in_w * p.up_x + p.pad_x0 + p.pad_x1;
    std::vector<double> out((size_t)p.major * p.out_h * p.out_w * p.minor, 0.0);
    std::vector<double> u((size_t)uh * uw);
    for (int ma = 0; ma < p.major; ma++)
        for (int mi = 0; mi < p.minor; mi++) {
            for (int r = 0; r < uh; r++)
                for (int q = 0; q < uw; q++) {  // padded, upsampled signal
                    int sr = r - p.pad_y0, sq = q - p.pad_x0;
                    double v = 0.0;
                    if (sr >= 0 && sq >= 0 && sr % p.up_y == 0 && sq % p.up_x == 0 &&
                        sr / p.up_y < p.in_h && sq / p.up_x < p.in_w)
                        v = x[(((size_t)ma * p.in_h + sr / p.up_y) * p.in_w + sq / p.up_x) * p.minor + mi];
                    u[(size_t)r * uw + q] = v;
                }
            for (int oy = 0; oy < p.out_h; oy++)
                for (int ox = 0; ox < p.out_w; ox++) {
                    double acc = 0.0;  // valid true convolution at (oy*down, ox*down)
                    for (int j = 0; j < p.kernel_h; j++)
                        for (int i = 0; i < p.kernel_w; i++)
                            acc += u[(size_t)(oy * p.down_y + j) * uw + ox * p.down_x + i] *
                                   k[(p.kernel_h - 1 - j) * p.kernel_w + (p.kernel_w - 1 - i)];
                    out[(((size_t)ma * p.out_h + oy) * p.out_w + ox) * p.minor + mi] = acc;
                }
        }
    return out;
}

// One block after another, its 256 threads one after another: all loads, then all computes,
// as __syncthreads() orders them on the GPU.
template <int UP, int DOWN> static void replay_tiled(const UpFirDn2DParams& p) {
    static UfdTile<UP, DOWN, 8> tile;
    const int nthreads = 256;
    for (int bz = 0; bz < p.major * p.minor; bz++)
        for (int by = 0; by < (p.out_h + kUfdTile - 1) / kUfdTile; by++)
            for (int bx = 0; bx < (p.out_w + kUfdTile - 1) / kUfdTile; bx++) {
                for (int t = 0; t < nthreads; t++) upfirdn_2d_tile_load<float, UP, DOWN, 8>(p, tile, bx, by, bz, t, nthreads);
                for (int t = 0; t < nthreads; t++) upfirdn_2d_tile_compute<float, UP, DOWN, 8>(p, tile, bx, by, bz, t, nthreads);
            }
}

static void test_upfirdn(const char* name, int up, int down, int kh, int kw, int pad0, int pad1,
                         int in_h, int in_w, int minor, int force_generic, int expect_path) {
    UpFirDn2DParams p = {};
    p.up_x = p.up_y = up; p.down_x = p.down_y = down;
    p.pad_x0 = pad0; p.pad_x1 = pad1; p.pad_y0 = pad0; p.pad_y1 = pad1 + 1;  // unequal axes on purpose
    p.major = 3; p.in_h = in_h; p.in_w = in_w; p.minor = minor; p.kernel_h = kh; p.kernel_w = kw;
    p.out_h = (in_h * up + p.pad_y0 + p.pad_y1 - kh) / down + 1;
    p.out_w = (in_w * up + p.pad_x0 + p.pad_x1 - kw) / down + 1;
    unsigned seed = 99u + up * 7 + down * 13 + kh;
    std::vector<float> x((size_t)p.major * in_h * in_w * minor), k((size_t)kh * kw);
    for (auto& v : x) v = frand(seed);
    for (auto& v : k) v = frand(seed);
    int path = force_generic ? 0 : upfirdn_2d_path(p);
    if (path != expect_path) {
        g_failures++;
        std::printf("FAIL %-44s took path %d, expected %d\n", name, path, expect_path);
        return;
    }
    size_t out_size = (size_t)p.major * p.out_h * p.out_w * minor;
    std::vector<float> got(out_size);
    if (g_gpu) {
        float *dx = to_device<float>(x), *dk = to_device<float>(k), *dy = nullptr;
        CUDA_CHECK(cudaMalloc(&dy, out_size * sizeof(float)));
        p.x = dx; p.k = dk; p.y = dy;
        CUDA_CHECK(launch_upfirdn_2d(p, 0, force_generic, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(got.data(), dy, out_size * sizeof(float), cudaMemcpyDeviceToHost));
        cudaFree(dx); cudaFree(dk); cudaFree(dy);
    } else {
        p.x = x.data(); p.k = k.data(); p.y = got.data();
        if (path == 0) for (size_t i = 0; i < out_size; i++) upfirdn_2d_generic_element<float>(p, (long long)i);
        else if (path == 1) replay_tiled<1, 1>(p);
        else if (path == 2) replay_tiled<2, 1>(p);
        else replay_tiled<1, 2>(p);
    }
    report(name, got, cpu_upfirdn(x, k, p), 1e-5);
}

int main() {
    int devices = 0;
    g_gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
    if (!g_gpu) std::printf("NOTE no CUDA device: replaying the kernel bodies on the CPU\n");
    const char* names[] = {"", "linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"};
    for (int act = 1; act <= 9; act++)
        for (int grad = 0; grad <= 2; grad++) test_fused_bias_act(act, grad, names[act]);
    //           name                              up down kh kw pad0 pad1  h   w minor generic path
    test_upfirdn("upfirdn generic up3 down2 k5x3",   3, 2, 5, 3, 2, -1, 13, 11, 2, 0, 0);
    test_upfirdn("upfirdn generic forced up2 k4",    2, 1, 4, 4, 2, 1, 37, 35, 1, 1, 0);
    test_upfirdn("upfirdn generic k9 (too big)",     1, 1, 9, 9, 4, 4, 20, 21, 1, 0, 0);
    test_upfirdn("upfirdn tiled up1 down1 k3",       1, 1, 3, 3, 1, 1, 40, 70, 1, 0, 1);
    test_upfirdn("upfirdn tiled up1 down1 k7 crop",  1, 1, 7, 5, -2, 3, 33, 45, 2, 0, 1);
    test_upfirdn("upfirdn tiled up2 down1 k4",       2, 1, 4, 4, 2, 1, 37, 35, 1, 0, 2);
    test_upfirdn("upfirdn tiled up2 down1 k8",       2, 1, 8, 8, 4, 3, 17, 50, 3, 0, 2);
    test_upfirdn("upfirdn tiled up1 down2 k4",       1, 2, 4, 4, 1, 1, 64, 66, 1, 0, 3);
    test_upfirdn("upfirdn tiled up1 down2 k6 pads",  1, 2, 6, 6, 3, -1, 31, 29, 2, 0, 3);
    if (g_failures) {
        std::printf("FAILED: %d case(s)\n", g_failures);
        return 1;
    }
    std::printf(g_gpu ? "ALL PASSED on the GPU\n" : "ALL PASSED in the CPU replay (kernels not launched: no GPU)\n");
    return g_gpu ? 0 : 2;
}
