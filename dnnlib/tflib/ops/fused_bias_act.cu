// TensorFlow op FusedBiasAct (see fused_bias_act.py and REFERENCE.md section 3.1).
//
// custom_ops.get_plugin compiles this file twice and links the two objects:
//  * with nvcc (__CUDACC__ defined): the kernel launcher only; it includes the kernel header and
//    no TensorFlow header, so CUDA and TF's C++ headers never meet in one compiler;
//  * as host C++ with tf.sysconfig's flags: the thin op wrapper, which hands the CUDA stream to
//    the launcher as an opaque pointer.

struct DnnlibFusedBiasActArgs {
    const void* x; const void* b; const void* ref; void* y;
    int grad, act; float alpha, gain;
    long long size_x; int size_b; long long step_b;
};
// Returns nullptr on success, else the CUDA error string.
extern "C" const char* dnnlib_fused_bias_act_launch(const DnnlibFusedBiasActArgs* a, int dtype, void* stream);

#ifdef __CUDACC__
#include "fused_bias_act_kernel.cuh"

extern "C" const char* dnnlib_fused_bias_act_launch(const DnnlibFusedBiasActArgs* a, int dtype, void* stream) {
    dnnlib_ops::FusedBiasActParams p;
    p.x = a->x; p.b = a->b; p.ref = a->ref; p.y = a->y;
    p.grad = a->grad; p.act = a->act; p.alpha = a->alpha; p.gain = a->gain;
    p.size_x = a->size_x; p.size_b = a->size_b; p.step_b = a->step_b;
    cudaError_t err = dnnlib_ops::launch_fused_bias_act(p, dtype, (cudaStream_t)stream);
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

#else  // host C++: the TensorFlow op wrapper
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "xla/stream_executor/stream.h"

using namespace tensorflow;

REGISTER_OP("FusedBiasAct")
    .Input("x: T")
    .Input("b: T")
    .Input("ref: T")
    .Output("y: T")
    .Attr("T: {float, half}")
    .Attr("grad: int = 0")
    .Attr("axis: int = 1")
    .Attr("act: int = 0")
    .Attr("alpha: float = 0.0")
    .Attr("gain: float = 1.0")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
        c->set_output(0, c->input(0));
        return OkStatus();
    });

template <typename T>
class FusedBiasActOp : public OpKernel {
public:
    explicit FusedBiasActOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
        OP_REQUIRES_OK(ctx, ctx->GetAttr("grad", &grad_));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("axis", &axis_));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("act", &act_));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("alpha", &alpha_));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("gain", &gain_));
        OP_REQUIRES(ctx, grad_ >= 0 && grad_ <= 2, errors::InvalidArgument("FusedBiasAct: grad must be 0, 1 or 2"));
        OP_REQUIRES(ctx, act_ >= 1 && act_ <= 9, errors::InvalidArgument("FusedBiasAct: act must be in 1..9"));
        OP_REQUIRES(ctx, axis_ >= 0, errors::InvalidArgument("FusedBiasAct: axis must be >= 0"));
    }

    void Compute(OpKernelContext* ctx) override {
        const Tensor& x = ctx->input(0);
        const Tensor& b = ctx->input(1);
        const Tensor& ref = ctx->input(2);
        OP_REQUIRES(ctx, x.NumElements() <= kint32max * 64LL, errors::InvalidArgument("FusedBiasAct: x too large"));
        OP_REQUIRES(ctx, b.dims() == 1, errors::InvalidArgument("FusedBiasAct: b must be 1-D"));
        OP_REQUIRES(ctx, b.NumElements() == 0 || axis_ < x.dims(),
                    errors::InvalidArgument("FusedBiasAct: axis out of range"));
        OP_REQUIRES(ctx, b.NumElements() == 0 || b.NumElements() == x.dim_size(axis_),
                    errors::InvalidArgument("FusedBiasAct: b must have x.shape[axis] elements"));
        OP_REQUIRES(ctx, ref.NumElements() == 0 || ref.NumElements() == x.NumElements(),
                    errors::InvalidArgument("FusedBiasAct: ref must be empty or match x"));
        long long step_b = 1;
        for (int i = axis_ + 1; i < x.dims(); i++) step_b *= x.dim_size(i);

        Tensor* y = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
        DnnlibFusedBiasActArgs a;
        a.x = x.tensor_data().data();
        a.b = b.NumElements() ? b.tensor_data().data() : nullptr;
        a.ref = ref.NumElements() ? ref.tensor_data().data() : nullptr;
        a.y = const_cast<char*>(y->tensor_data().data());
        a.grad = grad_; a.act = act_; a.alpha = alpha_; a.gain = gain_;
        a.size_x = x.NumElements(); a.size_b = (int)b.NumElements(); a.step_b = step_b;
        void* stream = ctx->op_device_context()->stream()->platform_specific_handle().stream;
        const char* err = dnnlib_fused_bias_act_launch(&a, std::is_same<T, float>::value ? 0 : 1, stream);
        OP_REQUIRES(ctx, err == nullptr, errors::Internal("FusedBiasAct CUDA launch failed: ", err ? err : ""));
    }

private:
    int grad_, axis_, act_;
    float alpha_, gain_;
};

REGISTER_KERNEL_BUILDER(Name("FusedBiasAct").Device(DEVICE_GPU).TypeConstraint<float>("T"), FusedBiasActOp<float>);
REGISTER_KERNEL_BUILDER(Name("FusedBiasAct").Device(DEVICE_GPU).TypeConstraint<Eigen::half>("T"), FusedBiasActOp<Eigen::half>);
#endif
