"""The optimizer every dreamkit learner uses: Adam with the DreamerV2 safeguards."""

import keras
import numpy as np
import tensorflow as tf


# Under float16 the loss scale halves at each overflow; at 1 the loss is not scaled,
# so a step that still overflows is not the scale's doing.
LOSS_SCALE_FLOOR = 1.0


class Optimizer(tf.Module):
  """Adam with global-norm clipping, loss scaling, skipped bad steps and weight decay.

      optimizer = Optimizer('model', lr=1e-4)
      with tf.GradientTape() as tape:
        loss = ...                          # float32 scalar
      metrics = optimizer(tape, loss, [encoder, dynamics, heads])

  The tape must still be usable (not persistent is fine): when the global Keras policy
  is `mixed_float16`, the loss is scaled by re-entering the tape (Keras 3's
  `LossScaleOptimizer.scale_loss` must be recorded by the tape). A step whose gradients
  are not all finite is never applied: no Adam update, no weight decay, the
  `<name>_skipped` count grows by one and (under float16) the loss scale halves, down
  to `LOSS_SCALE_FLOOR`. A step counts as not finite when its loss or any gradient is.

  `nonfinite` counts the skipped steps in a row that mean divergence rather than
  overflow: in float32 every skipped step, under float16 only those skipped once the
  loss scale is at its floor (above it, a skip is the loss scale adapting). A finite
  step resets it. The runner stops a run when it reaches `Pipeline.max_nonfinite`;
  it is not checkpointed (a checkpoint is only written while it is 0).

  Weight decay follows the reference (danijar/dreamerv2 `tfutils.Optimizer`): every
  variable is multiplied by `1 - wd` before the Adam update, independent of `lr`.

  Args:
    name: prefix of the metric names, e.g. 'model' -> 'model_loss'.
    lr: Adam learning rate.
    eps: Adam epsilon.
    clip: clip gradients to this global norm (0 or None: no clipping).
    wd: multiplicative weight decay per applied step (0 or None: none).

  Returns (from `__call__`): `{'<name>_loss', '<name>_grad_norm', '<name>_loss_scale',
  '<name>_skipped'}`, float32 scalars; the grad norm is the unclipped, unscaled norm
  and `_skipped` counts skipped steps since construction.
  """

  def __init__(self, name, lr, eps=1e-5, clip=100.0, wd=1e-6):
    super().__init__(name=f'{name}_optimizer')
    if not 0 <= (wd or 0) < 1:
      raise ValueError(f'Optimizer {name}: wd must be in [0, 1), got {wd}.')
    self._prefix = name
    self.lr = float(lr)
    self.eps = float(eps)
    self.clip = float(clip) if clip else None
    self.wd = float(wd) if wd else None
    self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name='skipped')
    self.nonfinite = tf.Variable(0, dtype=tf.int64, trainable=False, name='nonfinite')
    # Built at the first call, when the precision policy is known.
    self._opt = None
    self._mixed = None

  @property
  def loss_name(self):
    """The metric name of the loss this optimizer minimises, e.g. 'model_loss'."""
    return f'{self._prefix}_loss'

  @property
  def optimizer(self):
    """The underlying Keras optimizer (None before the first call)."""
    return self._opt

  def build(self, modules):
    """Creates the Adam slots for `modules` now (optional; the first call does it).

    Building before the first traced call spares tf.function a second trace.
    """
    if self._opt is None:
      self._build(_variables(modules, self._prefix))

  def _build(self, variables):
    # Variables must be created eagerly even when the first call is traced.
    with tf.init_scope():
      self._mixed = keras.mixed_precision.global_policy().compute_dtype == 'float16'
      opt = keras.optimizers.Adam(self.lr, epsilon=self.eps, name=self._prefix)
      if self._mixed:
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
      opt.build(variables)
      self._opt = opt
      count = sum(int(np.prod(v.shape)) for v in variables)
      print(f'Optimizer {self._prefix}: {count} parameters in {len(variables)} variables.')

  def state(self):
    """The named variables a checkpoint holds: the skipped count and the Keras
    optimizer's own (iterations, moments, loss scale), which exist after `build`."""
    if self._opt is None:
      raise ValueError(f'Optimizer {self._prefix} is not built yet: train once first.')
    keras_variables = list(self._opt.variables)
    inner = getattr(self._opt, 'inner_optimizer', None)
    if inner is not None:
      keras_variables += [v for v in inner.variables
                          if all(v is not other for other in keras_variables)]
    # Named by position and role ('003_momentum'): Keras' own names carry the
    # process-wide layer numbering (mlp_head_2_...), which a rebuilt agent does not share.
    return {'skipped': self.skipped,
            'keras': {f'{index:03d}_{_role(variable)}': variable
                      for index, variable in enumerate(keras_variables)}}

  def loss_scale(self):
    if self._mixed:
      return tf.cast(self._opt.dynamic_scale, tf.float32)
    return tf.constant(1.0, tf.float32)

  def __call__(self, tape, loss, modules):
    """One step on `loss` (float32 scalar) over the trainable variables of `modules`."""
    if loss.dtype != tf.float32 or loss.shape.rank != 0:
      raise ValueError(
          f'Optimizer {self._prefix}: the loss must be a float32 scalar, got '
          f'{loss.dtype.name} {loss.shape}.')
    variables = _variables(modules, self._prefix)
    if self._opt is None:
      self._build(variables)

    if self._mixed:
      with tape:
        scaled = self._opt.scale_loss(loss)
      grads = tape.gradient(scaled, variables)
      scale = tf.cast(self._opt.dynamic_scale, tf.float32)
      grads = [g / scale if g is not None else None for g in grads]
    else:
      grads = tape.gradient(loss, variables)
    grads = [
        tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
        for g, v in zip(grads, variables)]
    norm = tf.linalg.global_norm(grads)
    finite = tf.logical_and(
        tf.math.is_finite(loss),
        tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
    if self.clip:
      # With a non-finite norm the clipped grads are NaN; the step is skipped then.
      grads, _ = tf.clip_by_global_norm(grads, self.clip, use_norm=norm)

    if self.wd:
      # A factor instead of a branch: a skipped step must not decay either.
      decay = tf.where(finite, 1.0 - self.wd, 1.0)
    if self._mixed:
      # The LossScaleOptimizer skips non-finite steps and adapts its scale itself;
      # it expects scaled gradients.
      if self.wd:
        for var in variables:
          var.assign(var * tf.cast(decay, var.dtype))
      self._opt.apply([g * scale for g in grads], variables)
      dynamic = self._opt.dynamic_scale
      dynamic.assign(tf.maximum(dynamic, tf.cast(LOSS_SCALE_FLOOR, dynamic.dtype)))
      diverging = tf.logical_and(tf.logical_not(finite), scale <= LOSS_SCALE_FLOOR)
    else:
      def apply():
        if self.wd:
          for var in variables:
            var.assign(var * tf.cast(decay, var.dtype))
        self._opt.apply(grads, variables)
        return tf.constant(0)
      tf.cond(finite, apply, lambda: tf.constant(0))
      diverging = tf.logical_not(finite)
    self.skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
    # A skip above the float16 floor leaves the count as it is: the scale adapts.
    self.nonfinite.assign(tf.where(
        finite, tf.constant(0, tf.int64),
        self.nonfinite + tf.cast(diverging, tf.int64)))
    return {
        f'{self._prefix}_loss': loss,
        f'{self._prefix}_grad_norm': norm,
        f'{self._prefix}_loss_scale': self.loss_scale(),
        f'{self._prefix}_skipped': tf.cast(self.skipped, tf.float32),
    }


def _variables(modules, prefix):
  modules = modules if isinstance(modules, (list, tuple)) else [modules]
  variables = _unique([v for m in modules for v in m.trainable_variables])
  if not variables:
    raise ValueError(
        f'Optimizer {prefix}: the modules hold no trainable variables (are the Keras '
        'layers held by a keras Layer and already built?).')
  return variables


def _unique(variables):
  seen, result = set(), []
  for var in variables:
    if id(var) not in seen:
      seen.add(id(var))
      result.append(var)
  return result


def _role(variable):
  """The last word of a Keras optimizer variable's name: momentum, velocity, iteration..."""
  name = getattr(variable, 'name', 'variable').split('/')[-1].split(':')[0]
  return name.rsplit('_', 1)[-1] or 'variable'
