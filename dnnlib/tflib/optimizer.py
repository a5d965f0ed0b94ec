"""Multi-device optimizer wrapper (REFERENCE §5.2): one tower per device, gradients averaged
across devices (NCCL all-reduce when every device is a GPU), gradient accumulation over a
minibatch multiplier, the lazy-regularization adjustment of lr and betas, skipping of
non-finite steps and optional dynamic loss scaling.

Usage (one tower per device, the same variable names on every device):

    opt = tflib.Optimizer(name="TrainG", learning_rate=0.002, beta1=0.0, beta2=0.99, epsilon=1e-8)
    for i, net in enumerate(per_device_nets):        # net i built under tf.device(devices[i])
        with tf.device(devices[i]):
            opt.register_gradients(loss_i, net.trainables)
    train_op = opt.apply_updates()                   # then tflib.init_uninitialized_vars()

Loss convention: `register_gradients` reduces the loss it gets with a *mean* (a per-sample
vector or an already averaged scalar both work), and `apply_updates` averages the
gradients over devices, calls per device and accumulation rounds. With equal tower batch
sizes the step therefore equals one step on the mean loss of the whole global batch."""

import inspect
import os
import platform
from collections import OrderedDict
from typing import Any, Dict, List, Union

import numpy as np
import tensorflow.compat.v1 as tf

from .. import util
from . import tfutil

try:  # NCCL all-reduce; missing on CPU-only or unusual builds, where we fall back.
    from tensorflow.python.ops import nccl_ops
except ImportError:
    nccl_ops = None
try:  # Collective all-reduce: the fallback between GPUs when NCCL is unavailable.
    from tensorflow.python.ops import collective_ops
except ImportError:
    collective_ops = None

_collective_keys = [1000]  # Next group/instance key of a collective all-reduce (unique per process).


def _resolve_optimizer_class(spec: Any) -> type:
    """A TF optimizer class from a class or a dotted name; 'tf.' means tensorflow.compat.v1,
    so the TF 1 default 'tf.train.AdamOptimizer' resolves on TF 2.x too."""
    if isinstance(spec, type):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError("tf_optimizer must be an optimizer class or a dotted name such as "
                         "'tf.train.AdamOptimizer', got %r" % (spec,))
    if spec.startswith("tf."):
        obj = tf
        for part in spec.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                raise ValueError("tf_optimizer %r: no such name in tensorflow.compat.v1" % spec)
        return obj
    get_obj_by_name = getattr(util, "get_obj_by_name", None)
    if get_obj_by_name is None:
        raise ValueError("tf_optimizer %r: only 'tf.*' names or classes are supported here" % spec)
    return get_obj_by_name(spec)


def _canonical_device(name: str) -> str:
    # '/cpu:1', '/device:CPU:1' and '/job:localhost/replica:0/task:0/device:CPU:1' name one tower.
    spec = tf.DeviceSpec.from_string(name or "")
    if spec.job == "localhost" and spec.replica in (None, 0) and spec.task in (None, 0):
        spec = spec.replace(job=None, replica=None, task=None)
    return spec.to_string()


def _device_type(name: str) -> str:
    return (tf.DeviceSpec.from_string(name or "").device_type or "").upper()


def all_reduce_sum(tensors: List[tf.Tensor], devices: List[str], method: str) -> List[tf.Tensor]:
    """Sum one tensor per device; returns one result per device (placed there).

    method: 'nccl' (GPUs only), 'collective' (collective ops, any device type) or 'sum'
    (add_n on devices[0], the result shared by all). Zero-sized tensors are passed through."""
    assert len(tensors) == len(devices) >= 1
    if len(tensors) == 1:
        return list(tensors)
    if tensors[0].shape.num_elements() == 0:  # NCCL rejects empty buffers; nothing to sum anyway.
        return list(tensors)
    if method == "nccl":
        return nccl_ops.all_sum(tensors)
    if method == "collective":
        key = _collective_keys[0]
        _collective_keys[0] += 1
        out = []
        for tensor, device in zip(tensors, devices):
            with tf.device(device):
                out.append(collective_ops.all_reduce(tensor, len(devices), key, key, "Add", "Id"))
        return out
    assert method == "sum"
    with tf.device(devices[0]):
        total = tf.add_n(tensors)
    return [total] * len(devices)


def _all_reduce_method(devices: List[str], shadow: bool) -> str:
    """'nccl' between GPUs holding their own variable copies; 'collective' instead where
    NCCL is missing or unreliable (Windows; TF 1.15, TF issue 41539, as StyleGAN2 does);
    'sum' in one place for one device, a CPU in the mix, or shared variables. The
    environment variable TFLIB_ALL_REDUCE=nccl|collective|sum overrides the choice for GPUs."""
    if len(devices) < 2 or not shadow or not all(_device_type(d) == "GPU" for d in devices):
        return "sum"
    forced = os.environ.get("TFLIB_ALL_REDUCE", "").strip().lower()
    if forced:
        if forced not in ("nccl", "collective", "sum"):
            raise util.UserError("TFLIB_ALL_REDUCE=%r is not one of nccl, collective, sum; fix or unset it" % forced)
        if forced == "nccl" and nccl_ops is None:
            raise util.UserError("TFLIB_ALL_REDUCE=nccl but this TensorFlow has no NCCL ops; unset it")
        return forced
    if nccl_ops is None or platform.system() == "Windows" or tf.version.VERSION.startswith("1.15."):
        return "collective" if collective_ops is not None else "sum"
    return "nccl"


class Optimizer:
    """Wrapper of a TF optimizer that trains one set of variables from towers on several
    devices; see the module docstring.

    Args (each hyperparameter, and what None/0 does):
        name                 Name scope of the optimizer's ops and variables.
        tf_optimizer         TF optimizer class or dotted name ('tf.' = tensorflow.compat.v1).
        learning_rate        Python float or scalar tensor (a placeholder works).
        minibatch_multiplier Accumulation rounds per update (int or int tensor); None = 1.
        share                Another Optimizer whose TF optimizers this one uses (Adam slots
                             and beta powers, and the owner's lr and betas; this one's are
                             then ignored): the lazy-regularization step.
        use_loss_scaling     Dynamic loss scaling: loss * 2^s, s a per-device variable.
        loss_scaling_init    Initial s (log2 of the scale).
        loss_scaling_inc     s += inc after each finite update.
        loss_scaling_dec     s -= dec after each non-finite (skipped) update.
        reg_interval         Lazy regularization every I minibatches: lr*rho, beta1^rho,
                             beta2^rho with rho = I/(I+1); None = no adjustment.
        report_mem_usage     Keep the peak GPU memory (GB) in `peak_mem_gb` at each step.
        clip_grad_norm       Scale each step's gradients (averaged over devices and rounds)
                             down to this global norm over all variables; None or 0 = off.
        **kwargs             Passed to the TF optimizer (beta1, beta2, epsilon for Adam).
    """

    def __init__(self, name: str = "Train", tf_optimizer: Any = "tf.train.AdamOptimizer",
                 learning_rate: Union[float, tf.Tensor] = 0.001, minibatch_multiplier: Any = None,
                 share: "Optimizer" = None, use_loss_scaling: bool = False,
                 loss_scaling_init: float = 64.0, loss_scaling_inc: float = 0.0005,
                 loss_scaling_dec: float = 1.0, reg_interval: int = None,
                 report_mem_usage: bool = False, clip_grad_norm: float = None, **kwargs):
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string, got %r" % (name,))
        if not tfutil.is_tf_expression(learning_rate):
            if not isinstance(learning_rate, (int, float, np.floating)) or not learning_rate >= 0:
                raise ValueError("learning_rate must be a float >= 0 or a scalar tensor, got %r" % (learning_rate,))
        if minibatch_multiplier is not None and not tfutil.is_tf_expression(minibatch_multiplier):
            if int(minibatch_multiplier) != minibatch_multiplier or minibatch_multiplier < 1:
                raise ValueError("minibatch_multiplier must be None, an int >= 1 or a tensor, got %r"
                                 % (minibatch_multiplier,))
            minibatch_multiplier = int(minibatch_multiplier)
        if reg_interval is not None and not reg_interval > 0:
            raise ValueError("reg_interval must be None or > 0, got %r" % (reg_interval,))
        if clip_grad_norm is not None and not clip_grad_norm >= 0:
            raise ValueError("clip_grad_norm must be None or >= 0, got %r" % (clip_grad_norm,))
        if share is not None and not isinstance(share, Optimizer):
            raise ValueError("share must be None or a tflib.Optimizer, got %r" % (share,))

        self.name = name
        self._graph = tf.get_default_graph()
        self.scope = self._graph.unique_name(name)
        self.id = self.scope.replace("/", ".")
        self.optimizer_class = _resolve_optimizer_class(tf_optimizer)
        self.minibatch_multiplier = minibatch_multiplier
        self.use_loss_scaling = bool(use_loss_scaling)
        self.loss_scaling_init = float(loss_scaling_init)
        self.loss_scaling_inc = float(loss_scaling_inc)
        self.loss_scaling_dec = float(loss_scaling_dec)
        self.report_mem_usage = bool(report_mem_usage)
        self.clip_grad_norm = float(clip_grad_norm) if clip_grad_norm else None

        # Lazy regularization (REFERENCE §5.2): the main and the regularizer step both run
        # with rho = I/(I+1), so that I+1 Adam steps per I minibatches keep the same pace.
        self.reg_interval = reg_interval
        self.reg_ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1.0)
        self.learning_rate = learning_rate * self.reg_ratio if self.reg_ratio != 1.0 else learning_rate
        defaults = {k: p.default for k, p in inspect.signature(self.optimizer_class.__init__).parameters.items()}
        self.optimizer_kwargs = dict(kwargs)
        for beta in ("beta1", "beta2"):
            if self.reg_ratio != 1.0 and beta in defaults:
                self.optimizer_kwargs[beta] = kwargs.get(beta, defaults[beta]) ** self.reg_ratio

        # Device name -> TF optimizer instance; the same dict object when shared. A shared TF
        # optimizer is always made with the owner's class and hyperparameters, whichever of
        # the sharing Optimizers happens to create it first.
        self._shared_optimizers = share._shared_optimizers if share is not None else OrderedDict()
        self._tf_opt_args = share._tf_opt_args if share is not None else (
            self.optimizer_class, self.scope.replace("/", "_"), self.learning_rate, self.optimizer_kwargs)
        self._towers = OrderedDict()        # device -> EasyDict(device, vars, grads: [OrderedDict])
        self._loss_scaling_vars = OrderedDict()  # device -> log2 of the loss scale
        self._var_shapes = None             # OrderedDict name -> shape, from the first call
        self._updates_applied = False
        self.overflow_count = None          # Variables created by apply_updates:
        self.update_count = None            # skipped and applied updates, and
        self.peak_mem_gb = None             # peak GPU memory (report_mem_usage).
        self._acc_vars = []                 # accumulators and counters (for reset/state)
        self._stat_vars = []

    # ----------------------------------------------------------------------------------
    # Towers and gradients.

    def _get_tower(self, device: str) -> util.EasyDict:
        if device in self._towers:
            return self._towers[device]
        tower = util.EasyDict(device=device, vars=None, grads=[])
        self._towers[device] = tower
        return tower

    def _get_tf_optimizer(self, device: str):
        if device not in self._shared_optimizers:
            opt_class, opt_name, learning_rate, opt_kwargs = self._tf_opt_args
            with tf.device(device), tf.control_dependencies(None):
                self._shared_optimizers[device] = opt_class(
                    name=opt_name + "_opt%d" % len(self._shared_optimizers), learning_rate=learning_rate, **opt_kwargs)
        return self._shared_optimizers[device]

    @staticmethod
    def _named_vars(trainable_vars: Any) -> "OrderedDict[str, tf.Variable]":
        if isinstance(trainable_vars, dict):
            named = OrderedDict(trainable_vars)
        elif isinstance(trainable_vars, (list, tuple)):
            named = OrderedDict((var.op.name, var) for var in trainable_vars if isinstance(var, tf.Variable))
            if len(named) != len(trainable_vars):
                raise ValueError("trainable_vars: every entry must be a distinct tf.Variable")
        else:
            raise ValueError("trainable_vars must be an OrderedDict name -> tf.Variable or a list of variables, got %s"
                             % type(trainable_vars).__name__)
        if not named:
            raise ValueError("trainable_vars is empty")
        for key, var in named.items():
            if not isinstance(var, tf.Variable):
                raise ValueError("trainable_vars[%r] is not a tf.Variable" % (key,))
        return named

    def register_gradients(self, loss: tf.Tensor, trainable_vars: Any) -> None:
        """Compute the gradients of mean(loss) w.r.t. trainable_vars on loss.device (one
        call per tower; several calls on one device are averaged like towers).

        trainable_vars: OrderedDict name -> tf.Variable (Network.trainables) or a list
        (named by variable name). Every tower must pass the same names and shapes: either
        the same variables (read from every device) or per-device shadow copies."""
        if self._updates_applied:
            raise RuntimeError("%s: register_gradients after apply_updates" % self.name)
        if not tfutil.is_tf_expression(loss):
            raise ValueError("loss must be a TF tensor, got %r" % (loss,))
        named = self._named_vars(trainable_vars)
        shapes = OrderedDict((key, tfutil.shape_to_list(var.shape)) for key, var in named.items())
        if self._var_shapes is None:
            self._var_shapes = shapes
        elif dict(shapes) != dict(self._var_shapes):
            raise ValueError("trainable_vars: names/shapes differ from the first register_gradients call of %s "
                             "(first %s, now %s)" % (self.name, list(self._var_shapes.items()), list(shapes.items())))

        device = _canonical_device(loss.device)
        tower = self._get_tower(device)
        if tower.vars is None:
            tower.vars = named
        elif any(tower.vars[key] is not var for key, var in named.items()):
            raise ValueError("trainable_vars: a second call on device %r must pass the same variables" % device)

        with tf.name_scope(self.id + "_grad"), tf.device(device):
            loss = tf.reduce_mean(tf.cast(loss, tf.float32))
            loss = self.apply_loss_scaling(loss)
            var_list = list(named.values())
            grads = tf.gradients(loss, var_list)
            grads = [tf.zeros_like(var) if grad is None else tf.convert_to_tensor(grad)  # unused variable
                     for grad, var in zip(grads, var_list)]
            tower.grads.append(OrderedDict(zip(named.keys(), [tf.cast(g, tf.float32) for g in grads])))

    # ----------------------------------------------------------------------------------
    # Updates.

    def apply_updates(self, allow_no_op: bool = False) -> tf.Operation:
        """The op that reduces the registered gradients across devices, accumulates them and
        (on the last round, when all are finite) applies them; call once."""
        if self._updates_applied:
            raise RuntimeError("%s: apply_updates called twice" % self.name)
        self._updates_applied = True
        if not self._towers:
            if allow_no_op:
                with tfutil.absolute_name_scope(self.scope):
                    return tf.no_op(name="TrainingOp")
            raise ValueError("%s: apply_updates without any register_gradients call" % self.name)

        devices = list(self._towers.keys())
        towers = [self._towers[d] for d in devices]
        num_calls = len(towers[0].grads)
        if any(len(t.grads) != num_calls for t in towers):
            raise ValueError("%s: every device needs the same number of register_gradients calls, got %s"
                             % (self.name, {t.device: len(t.grads) for t in towers}))

        # Each variable object is updated once, by the first device that registered it:
        # shadow copies are updated on their own device, shared variables once.
        owned, seen = OrderedDict(), set()
        for tower in towers:
            owned[tower.device] = OrderedDict((k, v) for k, v in tower.vars.items() if v not in seen)
            seen.update(tower.vars.values())
        method = _all_reduce_method(devices, shadow=all(len(owned[d]) > 0 for d in devices))

        all_ops = []
        with tfutil.absolute_name_scope(self.scope + "/Reduce"):
            # Per device: sum over calls; then across devices.
            local = [OrderedDict((k, tf.add_n([g[k] for g in t.grads]) if num_calls > 1 else t.grads[0][k])
                                 for k in self._var_shapes) for t in towers]
            reduced = [OrderedDict() for _ in towers]
            for key in self._var_shapes:
                outs = all_reduce_sum([loc[key] for loc in local], devices, method)
                for i, out in enumerate(outs):
                    reduced[i][key] = out

        multiplier = 1 if self.minibatch_multiplier is None else self.minibatch_multiplier
        count = tf.cast(len(devices) * num_calls * multiplier, tf.float32) if tfutil.is_tf_expression(multiplier) \
            else np.float32(len(devices) * num_calls * multiplier)

        # Round counter (first device): the update happens when it reaches the multiplier.
        with tfutil.absolute_name_scope(self.scope + "/Counters"), tf.device(devices[0]):
            with tf.control_dependencies(None):
                self.update_count = tf.Variable(np.int64(0), trainable=False, name="update_count")
                self.overflow_count = tf.Variable(np.int64(0), trainable=False, name="overflow_count")
                self._stat_vars = [self.update_count, self.overflow_count]
                if self.minibatch_multiplier is not None:
                    round_var = tf.Variable(np.int32(0), trainable=False, name="acc_round")
                    self._acc_vars.append(round_var)
            if self.minibatch_multiplier is None:
                acc_ok = tf.constant(True, name="acc_ok")
            else:
                round_cur = round_var + 1
                acc_ok = tf.greater_equal(round_cur, tf.cast(multiplier, tf.int32), name="acc_ok")
                all_ops.append(tf.assign(round_var, tf.where(acc_ok, 0, round_cur)))

        # Devices that own variables (all of them with shadow copies, the first one with
        # shared variables) accumulate, check and apply; the others only follow the first
        # device's verdict for their loss scaling.
        finite_first = all_ok_first = None
        for i, tower in enumerate(towers):
            device = tower.device
            with tfutil.absolute_name_scope(self.scope + "/Apply%d" % i), tf.device(device):
                if owned[device]:
                    # Average and undo loss scaling.
                    scale = tf.constant(np.float32(1.0), name="one") / count
                    scale = self.undo_loss_scaling(scale) if self.use_loss_scaling else scale
                    clean = OrderedDict((k, g * scale) for k, g in reduced[i].items())

                    # Accumulate over rounds; the accumulators are reset when the update happens.
                    if self.minibatch_multiplier is None:
                        grads = clean
                    else:
                        grads = OrderedDict()
                        for key, grad in clean.items():
                            with tf.control_dependencies(None):
                                acc_var = tf.Variable(tf.zeros(self._var_shapes[key], tf.float32), trainable=False,
                                                      name="grad_acc")
                            self._acc_vars.append(acc_var)
                            grads[key] = acc_var + grad
                            all_ops.append(tf.assign(acc_var, tf.where(acc_ok, tf.zeros_like(grad), grads[key])))

                    # Skip the whole step on any non-finite gradient.
                    finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads.values()]))
                    all_ok = tf.logical_and(acc_ok, finite)
                    if finite_first is None:
                        finite_first, all_ok_first = finite, all_ok
                    if self.clip_grad_norm is not None:   # Global norm over every variable (all devices agree).
                        clipped, _norm = tf.clip_by_global_norm(list(grads.values()), self.clip_grad_norm)
                        grads = OrderedDict(zip(grads.keys(), clipped))
                    tf_opt = self._get_tf_optimizer(device)
                    pairs = [(tf.cast(grads[k], var.dtype), var) for k, var in owned[device].items()]
                    all_ops.append(tf.cond(all_ok, lambda: tf_opt.apply_gradients(pairs), tf.no_op))
                else:
                    finite = finite_first

                if self.use_loss_scaling:
                    ls_var = self.get_loss_scaling_var(device)
                    new_ls = tf.where(finite, ls_var + self.loss_scaling_inc, ls_var - self.loss_scaling_dec)
                    all_ops.append(tf.assign(ls_var, tf.where(acc_ok, new_ls, ls_var)))

        with tfutil.absolute_name_scope(self.scope + "/Counters"), tf.device(devices[0]):
            overflow = tf.logical_and(acc_ok, tf.logical_not(all_ok_first))
            all_ops.append(tf.assign_add(self.update_count, tf.cast(all_ok_first, tf.int64)))
            all_ops.append(tf.assign_add(self.overflow_count, tf.cast(overflow, tf.int64)))
            if self.report_mem_usage:
                with tf.control_dependencies(None):
                    self.peak_mem_gb = tf.Variable(np.float32(0), trainable=False, name="peak_mem_gb")
                    self._stat_vars.append(self.peak_mem_gb)
                with tf.control_dependencies(all_ops):
                    mem = tf.numpy_function(lambda: np.float32(tfutil.get_device_memory_bytes() / 2**30), [],
                                            tf.float32)
                    all_ops.append(tf.assign(self.peak_mem_gb, tf.reshape(mem, [])))

        with tfutil.absolute_name_scope(self.scope):
            return tf.group(*all_ops, name="TrainingOp")

    # ----------------------------------------------------------------------------------
    # Loss scaling.

    def get_loss_scaling_var(self, device: str) -> Union[tf.Variable, None]:
        """The log2 loss-scaling variable of a device (None when loss scaling is off)."""
        if not self.use_loss_scaling:
            return None
        device = _canonical_device(device)
        if device not in self._loss_scaling_vars:
            if self._updates_applied:  # a new variable now would never be used or updated
                raise ValueError("%s: no loss scaling variable for device %r; known: %s"
                                 % (self.name, device, list(self._loss_scaling_vars)))
            with tfutil.absolute_name_scope(self.scope + "/LossScaling"), tf.device(device), \
                    tf.control_dependencies(None):
                self._loss_scaling_vars[device] = tf.Variable(np.float32(self.loss_scaling_init), trainable=False,
                                                              name="loss_scaling_var")
        return self._loss_scaling_vars[device]

    def apply_loss_scaling(self, value: tf.Tensor) -> tf.Tensor:
        """value * 2^s on value's device (identity when loss scaling is off)."""
        assert tfutil.is_tf_expression(value)
        if not self.use_loss_scaling:
            return value
        return value * tfutil.exp2(self.get_loss_scaling_var(value.device))

    def undo_loss_scaling(self, value: tf.Tensor) -> tf.Tensor:
        """value * 2^-s on value's device (identity when loss scaling is off)."""
        assert tfutil.is_tf_expression(value)
        if not self.use_loss_scaling:
            return value
        return value * tfutil.exp2(-self.get_loss_scaling_var(value.device))

    # ----------------------------------------------------------------------------------
    # State.

    def _tf_optimizer_variables(self) -> List[tf.Variable]:
        out = []
        with self._graph.as_default():  # TF optimizers list only the default graph's variables
            for device in self._towers:
                opt = self._shared_optimizers.get(device)
                if opt is not None:
                    out += [v for v in opt.variables() if v not in out]
        return out

    def variables(self) -> List[tf.Variable]:
        """Every state variable: the TF optimizer's (Adam slots and beta powers, also when
        shared), gradient accumulators, the round counter, loss scaling and the
        update/overflow counters. Complete once apply_updates has been called."""
        out = self._tf_optimizer_variables() + list(self._acc_vars) + list(self._stat_vars)
        out += list(self._loss_scaling_vars.values())
        return out

    def reset_optimizer_state(self) -> None:
        """Re-initialize the TF optimizer's state (Adam moments, beta powers; shared ones
        too) and the gradient accumulators. Loss scaling and counters are kept."""
        tfutil.run([var.initializer for var in self._tf_optimizer_variables() + self._acc_vars])

    def get_state(self) -> Dict[str, np.ndarray]:
        """{variable name: value} of variables(), for saving with a snapshot."""
        state_vars = self.variables()
        return OrderedDict(zip([v.name for v in state_vars], tfutil.run(state_vars)))

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        """Restore get_state() output into a graph built the same way."""
        by_name = {v.name: v for v in self.variables()}
        missing = sorted(set(by_name) - set(state))
        unknown = sorted(set(state) - set(by_name))
        if missing or unknown:
            raise ValueError("state of %s does not match this graph: missing %s, unknown %s"
                             % (self.name, missing[:5], unknown[:5]))
        for name, value in state.items():
            if list(np.shape(value)) != tfutil.shape_to_list(by_name[name].shape):
                raise ValueError("state of %s: %s has shape %s, expected %s"
                                 % (self.name, name, np.shape(value), by_name[name].shape))
        tfutil.set_vars({by_name[name]: value for name, value in state.items()})
