"""tflib.Network: a build function plus static kwargs, wrapped so that it can be evaluated on
new inputs, cloned, averaged, run on numpy arrays over several devices, and pickled in the
official StyleGAN2 state format (REFERENCE.md §4).

Pickles carry the full source of the module holding the build function. Official pickles
carry TF-1 source (`import tensorflow as tf`, contrib modules, ...); an import handler
rewrites it with `patch_tf1_source` (tf1_compat.py) to run on TF 2.x (REFERENCE.md §10.1),
so loading them needs no manual edit.

Build-function contract: `func(*inputs, is_template_graph=<bool>, components=<EasyDict>,
**kwargs)`; inputs are the positional parameters without defaults (float32 placeholders in
the template, whose shapes the function sets); returns a tensor or a tuple/list of tensors.
Sub-networks go in `components` (created when missing) and are evaluated with
`components.x.get_output_for(...)`."""

import inspect
import re
import sys
import types
import uuid
import warnings
from collections import OrderedDict
from typing import Any, List, Tuple, Union

import numpy as np
import tensorflow.compat.v1 as tf

from . import tfutil
from .tf1_compat import patch_tf1_source, tf1_compat  # noqa: F401 (tf1_compat: re-saved pickles import it here)
from .. import util

_import_handlers = []        # Functions state -> state, applied to every unpickled Network.
_import_module_src = dict()  # Module name -> source, for modules created from pickles.

# Inputs that are not float32 (GANsformer feeds uint8 images to some nets).
_INPUT_DTYPES = {"uimages_in": tf.uint8}

# Old kwarg names of official pickles <-> current names (REFERENCE.md §4).
KWARG_ALIASES = dict(latent_size="z_dim", dlatent_size="w_dim", label_size="c_dim",
                     fmap_base="channel_base", mapping_layersnum="mapping_num_layers",
                     dlatent_avg_beta="w_avg_beta", mbstd_num_features="mbstd_num_channels")


def import_handler(handler_func):
    """Decorator: register `handler_func(state) -> state`, run on each unpickled state."""
    _import_handlers.append(handler_func)
    return handler_func


# ------------------------------------------------------------------------------------------
# TF-1 source stored in official pickles runs through dnnlib/tflib/tf1_compat.py.

@import_handler
def _handle_tf1_source(state: dict) -> dict:
    if isinstance(state.get("build_module_src"), str):
        state = dict(state, build_module_src=patch_tf1_source(state["build_module_src"]))
    return state


# ------------------------------------------------------------------------------------------
# Build-function helpers.

def _function_params(func):
    try:
        return inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}


def _rename_aliased_kwargs(func, kwargs: dict) -> dict:
    """Rename old/new kwarg names (KWARG_ALIASES) that `func` names only the other way."""
    params = _function_params(func)
    kwargs = dict(kwargs)
    for old, new in KWARG_ALIASES.items():
        for given, wanted in ((old, new), (new, old)):
            if given in kwargs and given not in params and wanted in params and wanted not in kwargs:
                kwargs[wanted] = kwargs.pop(given)
    return kwargs


def _resolve_build_func(func_name):
    """(module, local name, function) for a dotted name or a top-level function."""
    if callable(func_name):
        func_name = util.get_top_level_function_name(func_name)
    if not isinstance(func_name, str):
        raise ValueError(f"func_name must be a dotted name or a top-level function, got {func_name!r}")
    module, local_name = util.get_module_from_obj_name(func_name)
    func = util.get_obj_from_module(module, local_name)
    if not callable(func):
        raise ValueError(f"func_name: '{func_name}' is not callable")
    return module, local_name, func


def _module_source(module) -> str:
    src = _import_module_src.get(module.__name__)
    return src if src is not None else inspect.getsource(module)


def _exec_module_source(source: str, network_name: str):
    """Execute pickled source in a new module `_tflib_network_import_<uuid>`."""
    module_name = "_tflib_network_import_" + uuid.uuid4().hex
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    _import_module_src[module_name] = source
    try:
        exec(compile(source, f"<pickled source of network '{network_name}'>", "exec"), module.__dict__)
    except Exception as error:  # Any failure here means the stored source cannot run here.
        raise RuntimeError(f"The source code stored for network '{network_name}' does not run: "
                           f"{type(error).__name__}: {error}") from error
    return module


def _assert_session_for_graph():
    # Networks initialize their variables at once, so they need a session on this graph.
    session = tf.get_default_session()
    if session is None or session.graph is not tf.get_default_graph():
        raise RuntimeError("No default TensorFlow session for the current graph: call "
                           "dnnlib.tflib.init_tf() (or enter a session) before building or loading networks")


def _resolve_transform_func(transform):
    func = transform["func"]
    return util.get_obj_by_name(func) if isinstance(func, str) else func


def _apply_transform(transform, exprs):
    if transform is None:
        return list(exprs)
    kwargs = dict(transform)
    out = _resolve_transform_func(kwargs)(*exprs, **{k: v for k, v in kwargs.items() if k != "func"})
    return [out] if tfutil.is_tf_expression(out) else list(out)


def _legacy_output_transform(*exprs, out_mul=1.0, out_add=0.0, out_shrink=1, out_dtype=None):
    """Output transform behind the deprecated run(out_mul, out_add, out_shrink, out_dtype)."""
    exprs = list(exprs)
    if out_mul != 1.0:
        exprs = [x * out_mul for x in exprs]
    if out_add != 0.0:
        exprs = [x + out_add for x in exprs]
    if out_shrink > 1:  # Block mean via reshape: NCHW avg_pool has no CPU kernel.
        def shrink(x):
            s = tfutil.shape_to_list(x.shape)
            x = tf.reshape(x, [-1, s[1], s[2] // out_shrink, out_shrink, s[3] // out_shrink, out_shrink])
            return tf.reduce_mean(x, axis=[3, 5])
        exprs = [shrink(x) for x in exprs]
    if out_dtype is not None:
        if tf.as_dtype(out_dtype).is_integer:
            exprs = [tf.round(x) for x in exprs]
        exprs = [tf.saturate_cast(x, out_dtype) for x in exprs]
    return exprs


_LEGACY_RUN_KWARGS = ("out_mul", "out_add", "out_shrink", "out_dtype")


def _handle_legacy_output_kwargs(output_transform, dynamic_kwargs):
    legacy = {k: dynamic_kwargs[k] for k in _LEGACY_RUN_KWARGS if k in dynamic_kwargs}
    if not legacy:
        return output_transform, dynamic_kwargs
    if output_transform is not None:
        raise ValueError("output_transform cannot be combined with out_mul/out_add/out_shrink/out_dtype")
    warnings.warn("Network.run(out_mul, out_add, out_shrink, out_dtype) is deprecated; use "
                  "output_transform=dict(func=tflib.convert_images_to_uint8)", DeprecationWarning, stacklevel=3)
    rest = {k: v for k, v in dynamic_kwargs.items() if k not in legacy}
    return dict(func=_legacy_output_transform, **legacy), rest


def _key_of(obj):
    # A hashable description of run() arguments; functions by their dotted name.
    if isinstance(obj, dict):
        return tuple((k, _key_of(v)) for k, v in sorted(obj.items()))
    if isinstance(obj, (list, tuple)):
        return tuple(_key_of(v) for v in obj)
    if callable(obj):
        return util.get_top_level_function_name(obj)
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.shape, obj.tobytes())
    return repr(obj)


# ------------------------------------------------------------------------------------------

class Network:
    """A network defined by a build function and static kwargs (see the module docstring).

    Attributes: name, scope (unique variable scope), static_kwargs, components (sub-networks),
    input_names/input_shapes/input_shape/input_templates, output_names/output_shapes/
    output_shape/output_templates, own_vars (this scope only), vars (+ components as
    '<component name>/<local>'), trainables, var_global_to_local: OrderedDicts by local name."""

    def __init__(self, name: str = None, func_name: Any = None, **static_kwargs):
        _assert_session_for_graph()
        if func_name is None:
            raise ValueError("func_name must name the build function")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, got {name!r}")
        self._init_fields()
        module, self._build_func_name, self._build_func = _resolve_build_func(func_name)
        self._build_module_src = _module_source(module)
        self.name = name if name is not None else self._build_func_name
        self.static_kwargs = util.EasyDict(static_kwargs)
        self._init_graph()
        self.reset_own_vars()

    def _init_fields(self):
        self.name = None
        self.scope = None
        self.static_kwargs = util.EasyDict()
        self.components = util.EasyDict()
        self.input_names, self.input_shapes, self.input_templates = [], [[]], []
        self.output_names, self.output_shapes, self.output_templates = [], [[]], []
        self.input_shape, self.output_shape = [], []
        self.own_vars, self.vars, self.trainables = OrderedDict(), OrderedDict(), OrderedDict()
        self.var_global_to_local = OrderedDict()
        self._build_func = None
        self._build_func_name = None
        self._build_module_src = None
        self._op_scope = None       # Name scope of the template ops (differs from scope for clone2).
        self._template_ops = []
        self._run_cache = dict()

    @property
    def num_inputs(self) -> int:
        return len(self.input_names)

    @property
    def num_outputs(self) -> int:
        return len(self.output_templates)

    def accepts_kwarg(self, name: str) -> bool:
        """Whether the build function takes keyword `name` (e.g. noise_mode vs StyleGAN2's
        randomize_noise): lets callers drive ours and official networks alike."""
        return name in _function_params(self._build_func)

    def _call_build_func(self, inputs, is_template_graph, kwargs):
        kwargs = _rename_aliased_kwargs(self._build_func, kwargs)
        kwargs["is_template_graph"] = is_template_graph
        kwargs["components"] = self.components
        return self._build_func(*inputs, **kwargs)

    def _init_graph(self, share_scope: str = None):
        """Build the template graph under a new unique scope (or over `share_scope`'s
        existing variables, for clone2) and collect inputs, outputs and variables."""
        params = _function_params(self._build_func).values()
        self.input_names = [p.name for p in params
                            if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
        if not self.input_names:
            raise ValueError(f"Network '{self.name}': the build function has no input parameters")
        if not re.match(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$", self.name):
            raise ValueError(f"name: '{self.name}' is not a valid scope name (letters, digits, _ . -)")

        graph = tf.get_default_graph()
        num_ops_before = len(graph.get_operations())
        with tf.name_scope(None):
            self._op_scope = graph.unique_name(self.name, mark_as_used=True)
        self.scope = share_scope or self._op_scope
        with tfutil.absolute_variable_scope(self.scope, reuse=share_scope is not None), \
                tfutil.absolute_name_scope(self._op_scope), tf.control_dependencies(None):
            self.input_templates = [tf.placeholder(_INPUT_DTYPES.get(name, tf.float32), name=name)
                                    for name in self.input_names]
            out_expr = self._call_build_func(self.input_templates, True, dict(self.static_kwargs))

        self.output_templates = self._outputs_as_list(out_expr)
        self._template_ops = [op for op in graph.get_operations()[num_ops_before:]
                              if op.name.startswith(self._op_scope + "/")]
        for kind, tensors, names in (("input", self.input_templates, self.input_names),
                                     ("output", self.output_templates, None)):
            for i, t in enumerate(tensors):
                if t.shape.ndims is None:
                    which = names[i] if names else t.name
                    raise ValueError(f"Network '{self.name}': shape of {kind} '{which}' is unknown; "
                                     "the build function must call set_shape() on it")
        for key, comp in self.components.items():
            if not isinstance(comp, Network):
                raise ValueError(f"Network '{self.name}': component '{key}' is not a Network")
        comp_names = [c.name for c in self.components.values()]
        if len(set(comp_names)) != len(comp_names):
            raise ValueError(f"Network '{self.name}': components must have unique names, got {comp_names}")

        self.input_shapes = [tfutil.shape_to_list(t.shape) for t in self.input_templates]
        self.output_shapes = [tfutil.shape_to_list(t.shape) for t in self.output_templates]
        self.input_shape, self.output_shape = self.input_shapes[0], self.output_shapes[0]
        self.output_names = [t.name.split("/")[-1].split(":")[0] for t in self.output_templates]
        self._collect_vars()

    def _collect_vars(self):
        prefix = self.scope + "/"
        graph = tf.get_default_graph()
        trainable = set(v.name for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES))
        self.own_vars = OrderedDict((v.name[len(prefix):].split(":")[0], v)
                                    for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
                                    if v.name.startswith(prefix))
        self.vars = OrderedDict(self.own_vars)
        for comp in self.components.values():
            self.vars.update((comp.name + "/" + name, var) for name, var in comp.vars.items())
        self.trainables = OrderedDict((n, v) for n, v in self.vars.items() if v.name in trainable)
        self.var_global_to_local = OrderedDict((v.name.split(":")[0], n) for n, v in self.vars.items())

    def _outputs_as_list(self, out_expr):
        outs = [out_expr] if tfutil.is_tf_expression(out_expr) else out_expr
        if not isinstance(outs, (tuple, list)) or not outs or not all(tfutil.is_tf_expression(t) for t in outs):
            raise ValueError(f"Network '{self.name}': the build function must return a tensor or a "
                             f"tuple/list of tensors, got {type(out_expr).__name__}")
        return list(outs)

    def _match_inputs(self, inputs):
        # Like GANsformer: missing trailing inputs become None, extra ones are dropped.
        inputs = tuple(inputs)[:self.num_inputs]
        inputs = inputs + (None,) * (self.num_inputs - len(inputs))
        if all(x is None for x in inputs):
            raise ValueError(f"Network '{self.name}': at least one input must be given (not None)")
        return inputs

    # -- Evaluation -------------------------------------------------------------------------

    def get_output_for(self, *in_expr, return_as_list: bool = False, **dynamic_kwargs):
        """Output tensor(s) for the given input tensors (None -> zeros with the batch size of
        the first given input), sharing this network's variables. Dynamic kwargs override
        static ones."""
        in_expr = self._match_inputs(in_expr)
        kwargs = dict(self.static_kwargs)
        kwargs.update(dynamic_kwargs)
        with tfutil.absolute_variable_scope(self.scope, reuse=True), tf.name_scope(self.name):
            batch = tf.shape(next(x for x in in_expr if x is not None))[0]
            final = []
            for expr, name, shape, template in zip(in_expr, self.input_names, self.input_shapes, self.input_templates):
                if expr is not None:
                    final.append(tf.identity(expr, name=name))
                else:
                    final.append(tf.zeros([batch] + shape[1:], template.dtype, name=name))
            out_expr = self._call_build_func(final, False, kwargs)
        for expr, fin in zip(in_expr, final):
            if isinstance(expr, tf.Tensor):
                expr.set_shape(fin.shape)  # Shapes the build function set flow back to the caller.
        outs = self._outputs_as_list(out_expr)
        if return_as_list:
            return outs
        return outs[0] if tfutil.is_tf_expression(out_expr) else out_expr

    def run(self, *in_arrays, input_transform: dict = None, output_transform: dict = None,
            return_as_list: bool = False, print_progress: bool = False, minibatch_size: int = None,
            num_gpus: int = 1, assume_frozen: bool = False, devices: List[str] = None,
            **dynamic_kwargs) -> Union[np.ndarray, Tuple[np.ndarray, ...], List[np.ndarray]]:
        """Evaluate on numpy arrays in minibatches, each split over devices.

        input_transform / output_transform: dict(func=<top-level function or dotted name>,
        **kwargs), applied per device to the input / output tensors. devices: device strings
        (default: '/gpu:i' for i < num_gpus when GPUs are visible, else '/cpu:0' num_gpus
        times). assume_frozen: evaluate per-device clones whose variables are copied once,
        when the graph is built. `batch_size` is an alias of minibatch_size and `verbose` of
        print_progress (GANsformer spelling); out_mul/out_add/out_shrink/out_dtype are the
        deprecated output transform. Returns one array, a tuple, or a list (return_as_list)."""
        if "batch_size" in dynamic_kwargs:
            if minibatch_size is not None:
                raise ValueError("give minibatch_size or batch_size, not both")
            minibatch_size = dynamic_kwargs.pop("batch_size")
        print_progress = dynamic_kwargs.pop("verbose", False) or print_progress
        output_transform, dynamic_kwargs = _handle_legacy_output_kwargs(output_transform, dynamic_kwargs)
        in_arrays = self._match_inputs(in_arrays)
        if minibatch_size is not None and minibatch_size < 1:
            raise ValueError(f"minibatch_size must be >= 1, got {minibatch_size}")
        if devices is None:
            devices = tfutil.tower_devices(num_gpus)
        devices = list(devices)
        if not devices:
            raise ValueError("devices must name at least one device")

        key = _key_of(dict(input_transform=input_transform, output_transform=output_transform,
                           devices=devices, assume_frozen=assume_frozen, dynamic_kwargs=dynamic_kwargs))
        if key not in self._run_cache:
            self._run_cache[key] = self._build_run_graph(input_transform, output_transform, devices,
                                                         assume_frozen, dynamic_kwargs)
        in_expr, out_expr = self._run_cache[key]

        num_items = next(len(x) for x in in_arrays if x is not None)
        minibatch_size = minibatch_size or max(num_items, 1)
        chunks = [[] for _ in out_expr]
        for begin in range(0, num_items, minibatch_size):
            if print_progress:
                print("\r%d / %d" % (begin, num_items), end="", flush=True)
            end = min(begin + minibatch_size, num_items)
            feed = {}
            for placeholder, src, shape in zip(in_expr, in_arrays, self.input_shapes):
                feed[placeholder] = (src[begin:end] if src is not None else
                                     np.zeros([end - begin] + shape[1:], placeholder.dtype.as_numpy_dtype))
            for chunk, value in zip(chunks, tf.get_default_session().run(out_expr, feed)):
                chunk.append(value)
        if print_progress:
            print("\r%d / %d" % (num_items, num_items))
        outs = [np.concatenate(c, axis=0) if c else np.zeros([0] + tfutil.shape_to_list(e.shape)[1:],
                                                             e.dtype.as_numpy_dtype)
                for c, e in zip(chunks, out_expr)]
        if return_as_list:
            return outs
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _build_run_graph(self, input_transform, output_transform, devices, assume_frozen, dynamic_kwargs):
        n = len(devices)
        with tfutil.absolute_name_scope(self._op_scope + "/_Run"), tf.control_dependencies(None):
            with tf.device("/cpu:0"):
                in_expr = [tf.placeholder(t.dtype, name=name) for t, name in zip(self.input_templates, self.input_names)]
                if n == 1:
                    in_split = [in_expr]
                else:
                    # Uneven batches are fine: device i takes ceil/floor shares in order.
                    b = tf.shape(in_expr[0])[0]
                    sizes = tf.stack([(b + n - 1 - i) // n for i in range(n)])
                    in_split = list(zip(*[tf.split(x, sizes, num=n) for x in in_expr]))
            out_split = []
            for device, in_dev in zip(devices, in_split):
                with tf.device(device):
                    net = self.clone() if assume_frozen else self
                    in_dev = _apply_transform(input_transform, in_dev)
                    out_dev = net.get_output_for(*in_dev, return_as_list=True, **dynamic_kwargs)
                    out_split.append(_apply_transform(output_transform, out_dev))
            with tf.device("/cpu:0"):
                out_expr = [tf.concat(list(outs), axis=0) if n > 1 else outs[0] for outs in zip(*out_split)]
        return in_expr, out_expr

    # -- Copies and variants ----------------------------------------------------------------

    def clone(self, name: str = None, **new_static_kwargs) -> "Network":
        """A new Network (new scope and variables, components rebuilt) with the same build
        function and source, static kwargs updated, variable values copied by name."""
        net = self._new_like(name, new_static_kwargs)
        net._init_graph()
        net.copy_vars_from(self)
        return net

    def clone2(self, name: str = None, **new_static_kwargs) -> "Network":
        """A second Network object over the SAME variables and components: nothing is created
        or copied (unlike clone(), and unlike StyleGAN2-ADA's clone, which defers copying
        until the clone is built); training one trains the other. new_static_kwargs may
        change behaviour (e.g. is_training, truncation) but not variable shapes."""
        net = self._new_like(name, new_static_kwargs)
        net.components = self.components
        net._init_graph(share_scope=self.scope)
        return net

    def _new_like(self, name, new_static_kwargs):
        net = object.__new__(Network)
        net._init_fields()
        net.name = name if name is not None else self.name
        net.static_kwargs = util.EasyDict(self.static_kwargs)
        net.static_kwargs.update(new_static_kwargs)
        net._build_func = self._build_func
        net._build_func_name = self._build_func_name
        net._build_module_src = self._build_module_src
        return net

    def convert(self, new_func_name: Any, new_name: str = None, **new_static_kwargs) -> "Network":
        """A new Network built by another function (e.g. our training.networks from an
        official pickle) with this one's static kwargs (old names renamed, see KWARG_ALIASES;
        kwargs the new function cannot take are dropped with a warning) and copied values."""
        _module, _local, func = _resolve_build_func(new_func_name)
        kwargs = dict(self.static_kwargs)
        kwargs.update(new_static_kwargs)
        kwargs = _rename_aliased_kwargs(func, kwargs)
        params = _function_params(func)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            dropped = sorted(k for k in kwargs if k not in params)
            if dropped:
                warnings.warn(f"convert: {new_func_name} takes no {dropped}; dropped", stacklevel=2)
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        net = Network(name=new_name if new_name is not None else self.name, func_name=new_func_name, **kwargs)
        net.copy_vars_from(self)
        return net

    def _copy_by_name(self, dst_vars: dict, src_vars: dict, what: str) -> None:
        pairs, mismatched = {}, []
        for name, var in dst_vars.items():
            src = src_vars.get(name)
            if src is None:
                continue
            if tfutil.shape_to_list(src.shape) != tfutil.shape_to_list(var.shape):
                mismatched.append("%s %s<-%s" % (name, tfutil.shape_to_list(var.shape), tfutil.shape_to_list(src.shape)))
                continue
            pairs[var] = src
        if mismatched:
            warnings.warn(f"{what}: skipped {len(mismatched)} variables of '{self.name}' with another "
                          f"shape in the source: " + ", ".join(mismatched), stacklevel=3)
        if pairs:
            tfutil.set_vars(tfutil.run(pairs))

    def copy_own_vars_from(self, src_net: "Network") -> None:
        """Copy values of own variables (not components) that src_net has under the same name."""
        self._copy_by_name(self.own_vars, src_net.own_vars, "copy_own_vars_from")

    def copy_vars_from(self, src_net: "Network") -> None:
        """Copy values of all variables (components included) by local name; shape mismatches
        are reported and skipped."""
        self._copy_by_name(self.vars, src_net.vars, "copy_vars_from")

    def copy_trainables_from(self, src_net: "Network") -> None:
        """Copy values of trainable variables (components included) by local name."""
        self._copy_by_name(self.trainables, src_net.trainables, "copy_trainables_from")

    def setup_as_moving_average_of(self, src_net: "Network", beta=0.99, beta_nontrainable=0.0) -> tf.Operation:
        """Op updating each variable v that src_net also has: v <- src + (v - src) * beta
        (beta_nontrainable for non-trainable variables)."""
        with tfutil.absolute_name_scope(self._op_scope + "/_MovingAvg"):
            ops = []
            for name, var in self.vars.items():
                if name in src_net.vars:
                    cur_beta = beta if name in self.trainables else beta_nontrainable
                    ops.append(var.assign(tfutil.lerp(src_net.vars[name], var, cur_beta)))
            return tf.group(*ops)

    # -- Variables --------------------------------------------------------------------------

    def reset_own_vars(self) -> None:
        """Re-initialize own variables (not components)."""
        tfutil.run([var.initializer for var in self.own_vars.values()])

    def reset_vars(self) -> None:
        """Re-initialize all variables, components included."""
        tfutil.run([var.initializer for var in self.vars.values()])

    def reset_trainables(self) -> None:
        """Re-initialize all trainable variables, components included."""
        tfutil.run([var.initializer for var in self.trainables.values()])

    def find_var(self, var_or_local_name):
        """The variable with this local name (a variable is returned as is)."""
        if tfutil.is_tf_expression(var_or_local_name):
            return var_or_local_name
        if var_or_local_name not in self.vars:
            raise KeyError(f"Network '{self.name}' has no variable '{var_or_local_name}'")
        return self.vars[var_or_local_name]

    def get_var_local_name(self, var_or_global_name) -> str:
        name = var_or_global_name if isinstance(var_or_global_name, str) else var_or_global_name.name
        return self.var_global_to_local[name.split(":")[0]]

    def get_var(self, var_or_local_name) -> np.ndarray:
        """Value of one variable (prefer tflib.run on a list for many)."""
        return tfutil.run(self.find_var(var_or_local_name))

    def set_var(self, var_or_local_name, new_value) -> None:
        """Assign a value to one variable (prefer tflib.set_vars for many)."""
        tfutil.set_vars({self.find_var(var_or_local_name): new_value})

    # -- Pickling ---------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        """Official state format, version 4; variables are the own ones (components pickle
        themselves)."""
        names = list(self.own_vars.keys())
        values = tfutil.run(list(self.own_vars.values())) if names else []
        return dict(version=4, name=self.name, static_kwargs=dict(self.static_kwargs),
                    components=dict(self.components), build_module_src=self._build_module_src,
                    build_func_name=self._build_func_name, variables=list(zip(names, values)))

    def __setstate__(self, state: dict) -> None:
        _assert_session_for_graph()
        self._init_fields()
        for handler in _import_handlers:
            state = handler(state)
        version = state.get("version") if isinstance(state, dict) else None
        if version not in (2, 3, 4):
            raise ValueError(f"Network pickle state version {version!r} is not supported (2, 3 or 4)")
        self.name = state["name"]
        self.static_kwargs = util.EasyDict(state["static_kwargs"])
        self.components = util.EasyDict(state.get("components", {}))
        self._build_module_src = state["build_module_src"]
        self._build_func_name = state["build_func_name"]
        module = _exec_module_source(self._build_module_src, self.name)
        try:
            self._build_func = util.get_obj_from_module(module, self._build_func_name)
        except AttributeError:
            raise ValueError(f"Network '{self.name}': the stored source defines no '{self._build_func_name}'") from None
        self._init_graph()
        self.reset_own_vars()
        values = {}
        for name, value in state["variables"]:
            if name not in self.own_vars:
                raise ValueError(f"Network '{self.name}': stored variable '{name}' is not built by its source")
            values[self.own_vars[name]] = value
        tfutil.set_vars(values)

    # -- Inspection -------------------------------------------------------------------------

    def list_ops(self) -> List[tf.Operation]:
        """Ops of this network's template graph (not those of run(), moving averages or
        variable setters added later)."""
        return list(self._template_ops)

    def list_layers(self) -> List[Tuple[str, tf.Tensor, List[tf.Variable]]]:
        """(layer name, output tensor, trainable variables) per layer, found by walking the
        template's name scopes; components and scopes holding `AttLayer*` are opened."""
        ops = self.list_ops()
        var_ops = {op.name for op in ops if op.type.startswith("Variable")}

        def owned_by_var(name):  # The variable op itself or its /read, /Assign, ...
            parts = name.split("/")
            return any("/".join(parts[:i]) in var_ops for i in range(1, len(parts) + 1))

        ops = [op for op in ops if not owned_by_var(op.name)]
        comp_names = {c.name for c in self.components.values()}
        trainable_ids = {id(v) for v in self.trainables.values()}
        skip = ("/Shape", "/strided_slice", "/Cast", "/concat", "/Assign")
        layers = []

        def walk(scope, ops, variables, level):
            if any(p in scope for p in skip):
                return
            prefix = scope + "/"
            local_prefix = prefix[len(self._op_scope) + 1:]
            ops = [op for op in ops if op.name.startswith(prefix) or op.name == scope]
            variables = [(n, v) for n, v in variables if n.startswith(local_prefix) or n == local_prefix[:-1]]
            if not ops and not variables:
                return
            rel = [op.name[len(prefix):] for op in ops if op.name != scope]
            direct_ops = any("/" not in r and op.type not in ("Identity", "Cast", "Transpose")
                             for r, op in zip(rel, ops))
            name = scope[len(self._op_scope) + 1:]
            # Like GANsformer: open components and scopes that hold attention layers.
            descend = name in comp_names or any(r.startswith("AttLayer") for r in rel)
            if (level == 0 or not direct_ops or descend) and len(ops) + len(variables) > 1:
                seen = []
                for r in rel + [n[len(local_prefix):] for n, _ in variables]:
                    token = r.split("/")[0]
                    if token and token not in seen:
                        seen.append(token)
                        walk(prefix + token, ops, variables, level + 1)
                return
            outputs = [op.outputs[0] for op in ops if op.outputs]
            output = outputs[-1] if outputs else variables[-1][1]
            layers.append((name, output, [v for _, v in variables if id(v) in trainable_ids]))

        walk(self._op_scope, ops, list(self.vars.items()), 0)
        return layers

    def print_layers(self, title: str = None, hide_layers_with_no_params: bool = False) -> None:
        """Print a table of layers: name, parameter count, output shape, weight shape."""
        rows = [[title if title is not None else self.name, "Params", "OutputShape", "WeightShape"], ["---"] * 4]
        total = 0
        for name, output, trainables in self.list_layers():
            count = sum(int(np.prod(tfutil.shape_to_list(v.shape))) for v in trainables)
            total += count
            weights = sorted([v for v in trainables if v.name.endswith("/weight:0")], key=lambda v: len(v.name))
            if not weights and len(trainables) == 1:
                weights = trainables
            if hide_layers_with_no_params and count == 0:
                continue
            rows.append([name, str(count) if count else "-", str(output.shape),
                         str(weights[0].shape) if weights else "-"])
        rows += [["---"] * 4, ["Total", str(total), "", ""]]
        widths = [max(len(cell) for cell in col) for col in zip(*rows)]
        print()
        for row in rows:
            print("  ".join(cell + " " * (w - len(cell)) for cell, w in zip(row, widths)).rstrip())
        print()

    def setup_weight_histograms(self, title: str = None) -> None:
        """TensorBoard histogram summaries of all trainable variables."""
        title = title if title is not None else self.name
        with tf.name_scope(None), tf.device(None), tf.control_dependencies(None):
            for local_name, var in self.trainables.items():
                parts = local_name.split("/")
                name = (title + "_" + parts[-1] + "/" + "_".join(parts[:-1]) if len(parts) > 1
                        else title + "_toplevel/" + local_name)
                tf.summary.histogram(name, var)
