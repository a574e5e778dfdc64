"""Encoders: observation dict -> embedding. Registry `encoders`."""

import re

import keras
import tensorflow as tf

from dreamkit import validate
from dreamkit.errors import ConfigError, UserError
from dreamkit.networks import layers as nets
from dreamkit.networks.base import Encoder, input_keys
from dreamkit.registry import Registry

registry = Registry('encoders', Encoder)


def compile_regex(pattern, where):
  """The compiled regex `pattern`; a ConfigError naming `where` if it is not one."""
  return re.compile(validate.regex(pattern, where))


def split_keys(keys, cnn_keys, mlp_keys, where='DreamerEncoder'):
  """(image keys, vector keys): a key matching `cnn_keys` is an image, else a vector
  if it matches `mlp_keys`; reserved keys (action, reward, is_*, ...) never match.
  `where` names the component whose regexes they are, for the message of a bad one."""
  cnn_re = compile_regex(cnn_keys, f'{where}.cnn_keys')
  mlp_re = compile_regex(mlp_keys, f'{where}.mlp_keys')
  keys = input_keys(keys)
  images = [k for k in keys if cnn_re.match(k)]
  vectors = [k for k in keys if k not in images and mlp_re.match(k)]
  return images, vectors


def no_keys_error(where, shapes, cnn_keys, mlp_keys):
  """The ConfigError of a `where` whose cnn_keys / mlp_keys pick no key of `shapes`
  ({key: per-step shape}), naming the shipped pipeline that suits these observations
  (README's table): most often a vector env run with an image pipeline."""
  keys = input_keys(shapes)
  images = [key for key in keys if len(shapes[key]) == 3]
  if images:
    suits = (f"image observations ({', '.join(images)}): start from "
             'pipelines/atari_dreamerv2.gin (discrete actions) or '
             "pipelines/dmc_vision_dreamerv2.gin (continuous), which set CNN_KEYS = 'image'")
  else:
    suits = ('vector observations only: start from pipelines/cartpole_dreamerv2.gin '
             '(discrete actions) or pipelines/pendulum_dreamerv2.gin (continuous), which '
             "set CNN_KEYS = '$^' and MLP_KEYS = '.*'")
  return ConfigError(
      f'{where}: no observation key matches cnn_keys={cnn_keys!r} or '
      f'mlp_keys={mlp_keys!r} (keys: {keys}). This env has {suits}; or set the '
      'CNN_KEYS / MLP_KEYS macros (regexes of the image / vector keys).')


@registry.register
class DreamerEncoder(Encoder):
  """DreamerV2's encoder: a CNN over image keys and an MLP over vector keys, concatenated.

      embed = encoder(obs)   # images [..., H, W, C], vectors [..., D] -> [..., E]

  The CNN has one stride-2 VALID conv per entry of `cnn_kernels` with depths
  `2**i * cnn_depth`; 64x64 images and the defaults give 2x2x384 = 1536 features.
  Image keys with the same HxW are stacked along channels. Keys are picked by regex
  (`re.match`) at the first call: `cnn_keys` first, then `mlp_keys` among the rest.

  The sizes the decoder shares have no default here: pipelines bind them through the
  macros of dreamerv2_defaults.gin (CNN_KEYS, MLP_KEYS, CNN_DEPTH, MLP_LAYERS,
  MLP_UNITS; the reference's 'image', '$^', 48, 4, 400).

  Args:
    cnn_keys: regex of the image keys.
    mlp_keys: regex of the vector keys.
    cnn_depth: channel multiplier of the convs.
    mlp_layers: number of dense layers over the vector keys.
    mlp_units: width of those layers.
    act: activation after every conv and dense layer.
    norm: 'none' or 'layer' after every conv and dense layer.
    cnn_kernels: kernel size of each conv (their count is the number of convs).
  """

  def __init__(
      self, cnn_keys, mlp_keys, cnn_depth, mlp_layers, mlp_units, act='elu',
      norm='none', cnn_kernels=(4, 4, 4, 4)):
    super().__init__()
    args = validate.Arguments(self)
    self.cnn_keys = args.regex(cnn_keys, 'cnn_keys')
    self.mlp_keys = args.regex(mlp_keys, 'mlp_keys')
    cnn_depth = args.positive_int(cnn_depth, 'cnn_depth')
    mlp_layers = args.non_negative_int(mlp_layers, 'mlp_layers')
    mlp_units = args.positive_int(mlp_units, 'mlp_units')
    self.act = nets.get_act(act, args.name('act'))
    norm = nets.check_norm(norm, args.name('norm'))
    self.cnn_kernels = args.sizes(cnn_kernels, 'cnn_kernels', min_len=1)
    self.convs = [
        keras.layers.Conv2D(2 ** i * cnn_depth, kernel, 2, name=f'conv{i}')
        for i, kernel in enumerate(self.cnn_kernels)]
    self.conv_norms = [
        nets.NormLayer(norm, name=f'convnorm{i}') for i in range(len(self.convs))]
    self.mlp = nets.MLP(mlp_layers, mlp_units, act, norm, name='mlp')
    self.image_keys = None
    self.vector_keys = None

  def build(self, input_shape):
    """Picks the keys and creates the variables; `input_shape` is {key: shape}."""
    shapes = {k: tuple(v) for k, v in input_shape.items()}
    images, vectors = split_keys(shapes, self.cnn_keys, self.mlp_keys)
    if not images and not vectors:
      # input_shape leads with the batch dims, as many as a step's reward [] has.
      leading = len(shapes['reward']) if 'reward' in shapes else 2
      raise no_keys_error('DreamerEncoder', {k: v[leading:] for k, v in shapes.items()},
                          self.cnn_keys, self.mlp_keys)
    if images:
      sizes = {shapes[k][-3:-1] for k in images}
      if len(sizes) > 1:
        raise UserError(
            f'DreamerEncoder: image keys {images} have different sizes '
            f'{sorted(sizes)}; they are stacked along channels and must share HxW. '
            'Restrict DreamerEncoder.cnn_keys to keys of one size.')
      shape = [None, *shapes[images[0]][-3:-1], sum(shapes[k][-1] for k in images)]
      for conv, norm in zip(self.convs, self.conv_norms):
        if min(shape[1:3]) < conv.kernel_size[0]:
          raise UserError(
              f'DreamerEncoder: images of size {shapes[images[0]][-3:-1]} are too '
              f'small for cnn_kernels={self.cnn_kernels} (stride 2, VALID). Use '
              'smaller kernels, e.g. (2, 2, 2, 2) for 16x16 images.')
        conv.build(shape)
        shape = list(conv.compute_output_shape(shape))
        norm.build(shape)
    if vectors:
      ranks = {len(shapes[k]) for k in vectors}
      if len(ranks) > 1 or (images and ranks != {len(shapes[images[0]]) - 2}):
        raise UserError(
            f'DreamerEncoder: the vector keys {vectors} must be 1-D per step, got '
            f'shapes {[shapes[k] for k in vectors]}. Match image keys with '
            'DreamerEncoder.cnn_keys and vector keys with DreamerEncoder.mlp_keys.')
      self.mlp.build([None, sum(shapes[k][-1] for k in vectors)])
    print(f'DreamerEncoder inputs: CNN {images}, MLP {vectors}')
    self.image_keys, self.vector_keys = images, vectors

  def call(self, obs):
    outputs = []
    if self.image_keys:
      x = tf.concat([tf.cast(obs[k], self.compute_dtype) for k in self.image_keys], -1)
      batch = tf.shape(x)[:-3]
      x = tf.reshape(x, tf.concat([[-1], tf.shape(x)[-3:]], 0))
      x.set_shape([None] + obs[self.image_keys[0]].shape[-3:-1].as_list() +
                  [x.shape[-1]])
      for conv, norm in zip(self.convs, self.conv_norms):
        x = self.act(norm(conv(x)))
      size = x.shape[1] * x.shape[2] * x.shape[3]
      outputs.append(tf.reshape(x, tf.concat([batch, [size]], 0)))
    if self.vector_keys:
      x = tf.concat([tf.cast(obs[k], self.compute_dtype) for k in self.vector_keys], -1)
      outputs.append(self.mlp(x))
    embed = tf.concat(outputs, -1) if len(outputs) > 1 else outputs[0]
    return embed
