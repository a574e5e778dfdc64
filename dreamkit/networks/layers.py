"""Building blocks shared by encoders, dynamics and heads: MLP, GRU cell, helpers."""

import keras
import tensorflow as tf

from dreamkit import validate

ACTIVATIONS = {
    'none': tf.identity,
    'elu': tf.nn.elu,
    'relu': tf.nn.relu,
    'swish': tf.nn.silu,
    'silu': tf.nn.silu,
    'gelu': tf.nn.gelu,
    'tanh': tf.tanh,
    'leaky_relu': tf.nn.leaky_relu,
    'mish': lambda x: x * tf.tanh(tf.nn.softplus(x)),
}
NORMS = ('none', 'layer')


def get_act(name, where='act'):
  """The activation function called `name` (see ACTIVATIONS); `where` is the binding
  that chose it, for the message that lists the names."""
  if callable(name):
    return name
  return ACTIVATIONS[validate.one_of(name, where, sorted(ACTIVATIONS), 'an activation')]


def check_norm(name, where='norm'):
  """`name` if it is one of NORMS ('none', 'layer'); `where` names the binding."""
  return validate.one_of(name, where, NORMS, 'a norm')


def compute_dtype():
  """The compute dtype of the global Keras policy ('float32', 'float16', 'bfloat16')."""
  return keras.mixed_precision.global_policy().compute_dtype


def swap(x):
  """Swaps the first two axes: [B, T, ...] <-> [T, B, ...] (tf.scan is time-major)."""
  return tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))


class NormLayer(keras.layers.Layer):
  """Identity ('none') or LayerNormalization ('layer') over the last axis."""

  def __init__(self, norm='none', name=None):
    super().__init__(name=name)
    self.norm = check_norm(norm, 'NormLayer norm')
    self.layer = keras.layers.LayerNormalization(epsilon=1e-3) if norm == 'layer' else None

  def call(self, x):
    return self.layer(x) if self.layer is not None else x


class MLP(keras.layers.Layer):
  """`layers` x (Dense(units) -> norm -> act) over the last axis: [..., D] -> [..., units].

  With `layers=0` the input passes through unchanged.
  """

  def __init__(self, layers=4, units=400, act='elu', norm='none', name=None):
    super().__init__(name=name)
    layers = validate.non_negative_int(layers, 'MLP layers')
    units = validate.positive_int(units, 'MLP units')
    self.act = get_act(act, 'MLP act')
    self.dense = [keras.layers.Dense(units, name=f'dense{i}') for i in range(layers)]
    self.norms = [NormLayer(norm, name=f'norm{i}') for i in range(layers)]
    self.units = units if layers else None

  def build(self, input_shape):
    shape = list(input_shape)
    for dense, norm in zip(self.dense, self.norms):
      dense.build(shape)
      shape = shape[:-1] + [dense.units]
      norm.build(shape)

  def call(self, x):
    for dense, norm in zip(self.dense, self.norms):
      x = self.act(norm(dense(x)))
    return x


class GRUCell(keras.layers.Layer):
  """DreamerV2's layer-normalised GRU: `h = cell(x [B, X], h_prev [B, D]) -> [B, D]`.

  One Dense over concat(x, h_prev) to 3*D, LayerNorm (float32), split into reset,
  candidate and update; reset = sigmoid, cand = tanh(reset * cand),
  update = sigmoid(update + update_bias); h = update * cand + (1 - update) * h_prev.
  The output has the layer's compute dtype.
  """

  def __init__(self, size, norm=True, act='tanh', update_bias=-1.0, name=None):
    super().__init__(name=name)
    self.size = validate.positive_int(size, 'GRUCell size')
    self.act = get_act(act, 'GRUCell act')
    self.update_bias = update_bias
    # The reference keeps the Dense bias even with LayerNorm after it.
    self.dense = keras.layers.Dense(3 * size, name='dense')
    self.norm = keras.layers.LayerNormalization(
        epsilon=1e-3, dtype='float32', name='norm') if norm else None

  def build(self, input_shape):
    self.dense.build([None, input_shape[-1] + self.size])
    if self.norm is not None:
      self.norm.build([None, 3 * self.size])

  def call(self, x, h):
    dtype = self.compute_dtype
    x, h = tf.cast(x, dtype), tf.cast(h, dtype)
    parts = self.dense(tf.concat([x, h], -1))
    if self.norm is not None:
      parts = tf.cast(self.norm(tf.cast(parts, tf.float32)), dtype)
    reset, cand, update = tf.split(parts, 3, -1)
    reset = tf.sigmoid(reset)
    cand = self.act(reset * cand)
    update = tf.sigmoid(update + self.update_bias)
    return update * cand + (1 - update) * h
