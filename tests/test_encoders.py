"""DreamerEncoder: shapes for image, vector and mixed inputs; key picking; errors."""

import inspect

import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError, UserError
from dreamkit.networks import encoders
from dreamkit.optim import Optimizer

# The keys and sizes the encoder shares with the decoder have no constructor default
# (pipelines bind them through macros), so every construction names them.
SIZES = dict(cnn_keys='image', mlp_keys='.*', cnn_depth=4, mlp_layers=2, mlp_units=8)
TINY = {
    'DreamerEncoder': dict(SIZES, cnn_kernels=(2, 2, 2, 2)),
}


def tiny(**overrides):
  """A tiny DreamerEncoder (16x16 images), `overrides` replacing its settings."""
  return encoders.DreamerEncoder(**{**TINY['DreamerEncoder'], **overrides})


def obs(lead=(2, 4), image=(16, 16, 3), vector=5, extra=True):
  rng = np.random.default_rng(0)
  data = {}
  if image:
    data['image'] = tf.constant(rng.uniform(-0.5, 0.5, lead + image), tf.float32)
  if vector:
    data['vector'] = tf.constant(rng.normal(size=lead + (vector,)), tf.float32)
  if extra:
    # Never inputs, whatever the regexes say.
    data['action'] = tf.zeros(lead + (3,))
    data['reward'] = tf.zeros(lead)
    data['discount'] = tf.ones(lead)
    data['is_first'] = tf.zeros(lead, tf.bool)
    data['log_score'] = tf.zeros(lead)
  return data


def test_every_registered_encoder_has_tiny_settings():
  assert encoders.registry.names(builtin_only=True) == sorted(TINY)


def test_only_the_sizes_shared_with_the_decoder_lack_a_default():
  """The pipelines' macros bind them; every other default is the reference's."""
  (entry,) = [e for e in encoders.registry.entries() if e.name == 'DreamerEncoder']
  required = [name for name, default in entry.parameters
              if default is inspect.Parameter.empty]
  assert required == list(SIZES)
  defaults = {name: default for name, default in entry.parameters
              if default is not inspect.Parameter.empty}
  assert defaults == dict(act='elu', norm='none', cnn_kernels=(4, 4, 4, 4))


@pytest.mark.parametrize('lead', [(2, 4), (2,)])
@pytest.mark.parametrize('image,vector,size', [
    ((16, 16, 3), 0, 2 * 2 * 32),        # 16 -> 8 -> 4 -> 2 -> 1 with kernel 2
    ((16, 16, 1), 0, 32),
    (None, 5, 8),
    ((16, 16, 3), 5, 32 + 8),
])
def test_shapes(lead, image, vector, size):
  encoder = tiny()
  embed = encoder(obs(lead, image, vector))
  want = 32 if image else 0
  want += 8 if vector else 0
  assert embed.shape == lead + (want,)
  assert encoder.vector_keys == (['vector'] if vector else [])


def test_reference_sizes_on_64x64():
  encoder = encoders.DreamerEncoder(
      cnn_keys='image', mlp_keys='$^', cnn_depth=2, mlp_layers=1, mlp_units=4)
  embed = encoder(obs((2,), (64, 64, 1), 0))
  assert embed.shape == (2, 2 * 2 * 8 * 2)   # 2x2x(8 * cnn_depth), as 1536 at depth 48
  assert [c.kernel.shape[:2] for c in encoder.convs] == [(4, 4)] * 4


def test_several_image_keys_are_stacked_along_channels():
  encoder = tiny(mlp_keys='$^')
  data = obs((2,), (16, 16, 3), 0)
  data['image_depth'] = tf.zeros([2, 16, 16, 1])
  embed = encoder(data)
  assert encoder.image_keys == ['image', 'image_depth']
  assert encoder.convs[0].kernel.shape[2] == 4
  assert embed.shape == (2, 32)


def test_vector_keys_by_regex_and_reserved_keys_never_inputs():
  encoder = tiny(mlp_keys='vec')
  encoder(obs((2,), (16, 16, 3), 5))
  assert encoder.image_keys == ['image'] and encoder.vector_keys == ['vector']
  encoder = tiny(mlp_keys='.*')
  encoder(obs((2,), None, 5))
  assert encoder.vector_keys == ['vector']


def test_errors():
  with pytest.raises(ConfigError, match='mlp_keys'):
    tiny(mlp_keys='$^')(obs((2,), None, 5))
  with pytest.raises(UserError, match='too small'):
    # The default kernels (4, 4, 4, 4) need 64x64 images.
    encoders.DreamerEncoder(**SIZES)(obs((2,), (16, 16, 1), 0))
  data = obs((2,), (16, 16, 1), 0)
  data['image2'] = tf.zeros([2, 8, 8, 1])
  with pytest.raises(UserError, match='HxW'):
    tiny()(data)
  with pytest.raises(UserError, match='1-D per step'):
    # With no image regex the image would be fed to the MLP.
    tiny(cnn_keys='$^')(obs((2,), (16, 16, 3), 5))
  with pytest.raises(ConfigError, match='activation'):
    tiny(act='relux')
  with pytest.raises(ConfigError, match='regex'):
    tiny(cnn_keys='image[')


@pytest.mark.parametrize('name', encoders.registry.names())
def test_registered_encoder_trains_one_step(name):
  encoder = encoders.registry.get(name)(**TINY[name])
  data = obs((2, 4), (16, 16, 3), 5)
  encoder(data)
  before = [v.numpy().copy() for v in encoder.trainable_variables]
  optimizer = Optimizer('enc', 1e-3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(tf.cast(encoder(data), tf.float32) - 1.0))
  assert float(optimizer(tape, loss, [encoder])['enc_skipped']) == 0
  after = encoder.trainable_variables
  assert before and all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after))
