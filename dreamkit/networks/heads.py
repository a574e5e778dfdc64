"""Heads: model feature -> distribution (or a dict of them). Registry `heads`.

Heads are bound in gin as factories; the owner passes the output shape:

    WorldModel.reward_head = @reward/heads.MLPHead    # called as MLPHead(shape=())
    WorldModel.decoder = @heads.DreamerDecoder        # called as DreamerDecoder(shapes)
"""

import numpy as np
import keras
import tensorflow as tf

from dreamkit import validate
from dreamkit.errors import UserError
from dreamkit.networks import distributions as dists
from dreamkit.networks import layers as nets
from dreamkit.networks.base import Head
from dreamkit.networks.encoders import no_keys_error, split_keys
from dreamkit.registry import Registry

registry = Registry('heads', Head)


class DistLayer(keras.layers.Layer):
  """Linear output layer(s) and a distribution: [..., F] -> dist over `shape`.

  See `distributions.make` for `dist`, `min_std` and `init_std`.
  """

  def __init__(self, shape, dist='mse', min_std=0.1, init_std=0.0, name=None):
    super().__init__(name=name)
    self.shape = validate.sizes(shape, f'{self.name} shape')
    self.dist = validate.one_of(dist, f'{self.name} dist', dists.DISTS, 'a distribution')
    self.min_std = validate.non_negative(min_std, f'{self.name} min_std')
    self.init_std = validate.number(init_std, f'{self.name} init_std')
    size = int(np.prod(self.shape))
    self.out = keras.layers.Dense(size, name='out')
    needs_std = dist in ('normal', 'tanh_normal', 'trunc_normal')
    self.std = keras.layers.Dense(size, name='std') if needs_std else None

  def build(self, input_shape):
    self.out.build(input_shape)
    if self.std is not None:
      self.std.build(input_shape)

  def _reshape(self, x, inputs):
    return tf.reshape(x, tf.concat([tf.shape(inputs)[:-1], self.shape], 0))

  def call(self, inputs):
    out = self._reshape(self.out(inputs), inputs)
    std = self._reshape(self.std(inputs), inputs) if self.std is not None else None
    # A one-hot distribution's event is its last axis; other dists span the shape.
    return dists.make(
        self.dist, out, std, len(self.shape), self.min_std, self.init_std)


@registry.register
class MLPHead(Head):
  """An MLP and an output distribution: feat [..., F] -> dist, event shape `shape`.

  Args:
    shape: event shape, e.g. () for reward, (A,) for actions.
    layers: number of hidden layers (pipelines bind MLP_LAYERS; the reference: 4).
    units: hidden width (pipelines bind MLP_UNITS; the reference: 400).
    act: hidden activation.
    norm: 'none' or 'layer' after every hidden layer.
    dist: 'mse' (Normal std 1), 'binary' (Bernoulli), 'normal', 'onehot'
      (straight-through), 'trunc_normal' or 'tanh_normal'.
    min_std: lower bound of a learned std.
    init_std: offset of a learned std's pre-activation.
  """

  def __init__(self, shape, layers, units, act='elu', norm='none', dist='mse',
               min_std=0.1, init_std=0.0):
    super().__init__()
    args = validate.Arguments(self)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    self.shape = args.sizes(shape, 'shape')
    layers = args.non_negative_int(layers, 'layers')
    units = args.positive_int(units, 'units')
    act = nets.get_act(act, args.name('act'))
    norm = nets.check_norm(norm, args.name('norm'))
    dist = args.one_of(dist, 'dist', dists.DISTS, 'a distribution')
    min_std = args.non_negative(min_std, 'min_std')
    init_std = args.number(init_std, 'init_std')
    self.mlp = nets.MLP(layers, units, act, norm, name='mlp')
    self.head = DistLayer(self.shape, dist, min_std, init_std, name='dist')

  @property
  def dist(self):
    """The output distribution's name, one of distributions.DISTS."""
    return self.head.dist

  def build(self, input_shape):
    self.mlp.build(input_shape)
    self.head.build(list(input_shape[:-1]) + [self.mlp.units or input_shape[-1]])

  def call(self, feat):
    return self.head(self.mlp(feat))


@registry.register
class DreamerDecoder(Head):
  """DreamerV2's decoder: images by transposed convs, vector keys by an MLP.

      dists = decoder(feat)   # feat [..., F] -> {key: Independent Normal}

  Images: Dense to 32*cnn_depth, reshape to 1x1, one stride-2 VALID transposed conv
  per kernel (depths 2**(n-i-2) * cnn_depth, the last one the total channel count of
  the image keys), Normal(mean, 1) over HxWxC. The kernels fix the image size:
  (5, 5, 6, 6) gives 64x64, (2, 2, 2, 2) 16x16, (4, 2, 2, 2) 32x32. Vector keys: an
  MLP then one Normal(mean, 1) output layer per key.

  The sizes it shares with the encoder have no default here: pipelines bind them
  through the macros of dreamerv2_defaults.gin.

  Args:
    shapes: {key: shape} of the observation keys (given by the world model).
    cnn_keys, mlp_keys: regexes picking the image and vector keys (as the encoder).
    cnn_depth: channel multiplier.
    mlp_layers, mlp_units: the vector MLP.
    act: hidden activation.
    norm: 'none' or 'layer' after hidden layers.
    cnn_kernels: kernel of each transposed conv.
  """

  def __init__(self, shapes, cnn_keys, mlp_keys, cnn_depth, mlp_layers, mlp_units,
               act='elu', norm='none', cnn_kernels=(5, 5, 6, 6)):
    super().__init__()
    args = validate.Arguments(self)
    args.regex(cnn_keys, 'cnn_keys')
    args.regex(mlp_keys, 'mlp_keys')
    cnn_depth = args.positive_int(cnn_depth, 'cnn_depth')
    mlp_layers = args.non_negative_int(mlp_layers, 'mlp_layers')
    mlp_units = args.positive_int(mlp_units, 'mlp_units')
    act = nets.get_act(act, args.name('act'))
    norm = nets.check_norm(norm, args.name('norm'))
    cnn_kernels = args.sizes(cnn_kernels, 'cnn_kernels', min_len=1)
    shapes = {k: tuple(v) for k, v in shapes.items()}
    self.image_keys, self.vector_keys = split_keys(shapes, cnn_keys, mlp_keys)
    if not self.image_keys and not self.vector_keys:
      raise no_keys_error('DreamerDecoder', shapes, cnn_keys, mlp_keys)
    self.shapes = shapes
    self.act = act
    self.cnn_depth = cnn_depth
    if self.image_keys:
      self._check_images(shapes, tuple(cnn_kernels))
      self.channels = [shapes[k][-1] for k in self.image_keys]
      self.image_in = keras.layers.Dense(32 * cnn_depth, name='convin')
      n = len(cnn_kernels)
      self.convs, self.conv_norms = [], []
      for i, kernel in enumerate(cnn_kernels):
        last = i == n - 1
        depth = sum(self.channels) if last else 2 ** (n - i - 2) * cnn_depth
        self.convs.append(
            keras.layers.Conv2DTranspose(depth, kernel, 2, name=f'conv{i}'))
        self.conv_norms.append(nets.NormLayer('none' if last else norm, f'convnorm{i}'))
    if self.vector_keys:
      self.mlp = nets.MLP(mlp_layers, mlp_units, act, norm, name='mlp')
      self.vector_out = {
          key: DistLayer(shapes[key], 'mse', name=f'out_{key}')
          for key in self.vector_keys}

  def _check_images(self, shapes, kernels):
    sizes = {shapes[k][:2] for k in self.image_keys}
    size = 1
    for kernel in kernels:
      size = (size - 1) * 2 + kernel
    if len(sizes) > 1 or any(len(shapes[k]) != 3 for k in self.image_keys) or \
        next(iter(sizes)) != (size, size):
      raise UserError(
          f'DreamerDecoder: cnn_kernels={kernels} produce {size}x{size} images, but the '
          f'image keys {self.image_keys} have shapes '
          f'{[shapes[k] for k in self.image_keys]}. Each transposed conv maps n to '
          '2*(n-1)+kernel from 1x1; set DreamerDecoder.cnn_kernels to match, e.g. '
          '(5, 5, 6, 6) for 64x64, (4, 2, 2, 2) for 32x32, (2, 2, 2, 2) for 16x16.')

  def build(self, input_shape):
    if self.image_keys:
      self.image_in.build(input_shape)
      shape = [None, 1, 1, 32 * self.cnn_depth]
      for conv, norm in zip(self.convs, self.conv_norms):
        conv.build(shape)
        shape = conv.compute_output_shape(shape)
        norm.build(shape)
    if self.vector_keys:
      self.mlp.build(input_shape)
      hidden = list(input_shape[:-1]) + [self.mlp.units or input_shape[-1]]
      for layer in self.vector_out.values():
        layer.build(hidden)

  def call(self, feat):
    outputs = {}
    if self.image_keys:
      x = self.image_in(feat)
      batch = tf.shape(x)[:-1]
      x = tf.reshape(x, [-1, 1, 1, 32 * self.cnn_depth])
      for i, (conv, norm) in enumerate(zip(self.convs, self.conv_norms)):
        x = norm(conv(x))
        if i < len(self.convs) - 1:
          x = self.act(x)
      x = tf.reshape(x, tf.concat([batch, tf.shape(x)[1:]], 0))
      means = tf.split(x, self.channels, -1)
      for key, mean in zip(self.image_keys, means):
        outputs[key] = dists.make('mse', mean, event_dims=3)
    if self.vector_keys:
      hidden = self.mlp(feat)
      for key, layer in self.vector_out.items():
        outputs[key] = layer(hidden)
    return outputs
