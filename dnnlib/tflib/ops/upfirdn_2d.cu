// TensorFlow op UpFirDn2D (see upfirdn_2d.py and REFERENCE.md section 3.2).
//
// custom_ops.get_plugin compiles this file twice and links the two objects:
//  * with nvcc (__CUDACC__ defined): the kernel launcher only, no TensorFlow header;
//  * as host C++ with tf.sysconfig's flags: the thin op wrapper.

struct DnnlibUpFirDn2DArgs {
    const void* x; const void* k; void* y;
    int up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1;
    int major, in_h, in_w, minor, kernel_h, kernel_w, out_h, out_w;
};
// Returns nullptr on success, else the CUDA error string.
extern "C" const char* dnnlib_upfirdn_2d_launch(const DnnlibUpFirDn2DArgs* a, int dtype, void* stream);

#ifdef __CUDACC__
#include "upfirdn_2d_kernel.cuh"

extern "C" const char* dnnlib_upfirdn_2d_launch(const DnnlibUpFirDn2DArgs* a, int dtype, void* stream) {
    dnnlib_ops::UpFirDn2DParams p;
    p.x = a->x; p.k = a->k; p.y = a->y;
    p.up_x = a->up_x; p.up_y = a->up_y; p.down_x = a->down_x; p.down_y = a->down_y;
    p.pad_x0 = a->pad_x0; p.pad_x1 = a->pad_x1; p.pad_y0 = a->pad_y0; p.pad_y1 = a->pad_y1;
    p.major = a->major; p.in_h = a->in_h; p.in_w = a->in_w; p.minor = a->minor;
    p.kernel_h = a->kernel_h; p.kernel_w = a->kernel_w; p.out_h = a->out_h; p.out_w = a->out_w;
    cudaError_t err = dnnlib_ops::launch_upfirdn_2d(p, dtype, 0, (cudaStream_t)stream);
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

#else  // host C++: the TensorFlow op wrapper
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "xla/stream_executor/stream.h"

using namespace tensorflow;

static int dnnlib_ufd_out_size(long long in, int up, int pad0, int pad1, long long k, int down) {
    long long n = in * up + pad0 + pad1 - k;
    return n < 0 ? 0 : (int)(n / down + 1);
}

REGISTER_OP("UpFirDn2D")
    .Input("x: T")
    .Input("k: T")
    .Output("y: T")
    .Attr("T: {float, half}")
    .Attr("upx: int = 1")
    .Attr("upy: int = 1")
    .Attr("downx: int = 1")
    .Attr("downy: int = 1")
    .Attr("padx0: int = 0")
    .Attr("padx1: int = 0")
    .Attr("pady0: int = 0")
    .Attr("pady1: int = 0")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
        shape_inference::ShapeHandle x, k;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
        TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &k));
        int upx, upy, downx, downy, padx0, padx1, pady0, pady1;
        TF_RETURN_IF_ERROR(c->GetAttr("upx", &upx));
        TF_RETURN_IF_ERROR(c->GetAttr("upy", &upy));
        TF_RETURN_IF_ERROR(c->GetAttr("downx", &downx));
        TF_RETURN_IF_ERROR(c->GetAttr("downy", &downy));
        TF_RETURN_IF_ERROR(c->GetAttr("padx0", &padx0));
        TF_RETURN_IF_ERROR(c->GetAttr("padx1", &padx1));
        TF_RETURN_IF_ERROR(c->GetAttr("pady0", &pady0));
        TF_RETURN_IF_ERROR(c->GetAttr("pady1", &pady1));
        auto dim = [&](int xi, int ki, int up, int p0, int p1, int down) -> shape_inference::DimensionHandle {
            if (!c->ValueKnown(c->Dim(x, xi)) || !c->ValueKnown(c->Dim(k, ki))) return c->UnknownDim();
            return c->MakeDim(dnnlib_ufd_out_size(c->Value(c->Dim(x, xi)), up, p0, p1, c->Value(c->Dim(k, ki)), down));
        };
        c->set_output(0, c->MakeShape({c->Dim(x, 0), dim(1, 0, upy, pady0, pady1, downy),
                                       dim(2, 1, upx, padx0, padx1, downx), c->Dim(x, 3)}));
        return OkStatus();
    });

template <typename T>
class UpFirDn2DOp : public OpKernel {
public:
    explicit UpFirDn2DOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
        OP_REQUIRES_OK(ctx, ctx->GetAttr("upx", &a_.up_x));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("upy", &a_.up_y));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("downx", &a_.down_x));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("downy", &a_.down_y));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("padx0", &a_.pad_x0));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("padx1", &a_.pad_x1));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("pady0", &a_.pad_y0));
        OP_REQUIRES_OK(ctx, ctx->GetAttr("pady1", &a_.pad_y1));
        OP_REQUIRES(ctx, a_.up_x >= 1 && a_.up_y >= 1, errors::InvalidArgument("UpFirDn2D: up must be >= 1"));
        OP_REQUIRES(ctx, a_.down_x >= 1 && a_.down_y >= 1, errors::InvalidArgument("UpFirDn2D: down must be >= 1"));
    }

    void Compute(OpKernelContext* ctx) override {
        const Tensor& x = ctx->input(0);
        const Tensor& k = ctx->input(1);
        OP_REQUIRES(ctx, x.dims() == 4, errors::InvalidArgument("UpFirDn2D: x must be rank 4"));
        OP_REQUIRES(ctx, k.dims() == 2, errors::InvalidArgument("UpFirDn2D: k must be rank 2"));
        OP_REQUIRES(ctx, x.NumElements() <= kint32max && k.NumElements() <= 1024,
                    errors::InvalidArgument("UpFirDn2D: x or k too large"));
        DnnlibUpFirDn2DArgs a = a_;
        a.major = (int)x.dim_size(0); a.in_h = (int)x.dim_size(1); a.in_w = (int)x.dim_size(2); a.minor = (int)x.dim_size(3);
        a.kernel_h = (int)k.dim_size(0); a.kernel_w = (int)k.dim_size(1);
        a.out_h = dnnlib_ufd_out_size(a.in_h, a.up_y, a.pad_y0, a.pad_y1, a.kernel_h, a.down_y);
        a.out_w = dnnlib_ufd_out_size(a.in_w, a.up_x, a.pad_x0, a.pad_x1, a.kernel_w, a.down_x);
        OP_REQUIRES(ctx, a.out_h >= 1 && a.out_w >= 1, errors::InvalidArgument("UpFirDn2D: output would be empty"));
        Tensor* y = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({a.major, a.out_h, a.out_w, a.minor}), &y));
        a.x = x.tensor_data().data();
        a.k = k.tensor_data().data();
        a.y = const_cast<char*>(y->tensor_data().data());
        void* stream = ctx->op_device_context()->stream()->platform_specific_handle().stream;
        const char* err = dnnlib_upfirdn_2d_launch(&a, std::is_same<T, float>::value ? 0 : 1, stream);
        OP_REQUIRES(ctx, err == nullptr, errors::Internal("UpFirDn2D CUDA launch failed: ", err ? err : ""));
    }

private:
    DnnlibUpFirDn2DArgs a_ = {};
};

REGISTER_KERNEL_BUILDER(Name("UpFirDn2D").Device(DEVICE_GPU).TypeConstraint<float>("T"), UpFirDn2DOp<float>);
REGISTER_KERNEL_BUILDER(Name("UpFirDn2D").Device(DEVICE_GPU).TypeConstraint<Eigen::half>("T"), UpFirDn2DOp<Eigen::half>);
#endif
