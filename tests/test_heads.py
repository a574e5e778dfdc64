"""Heads: MLPHead distributions and DreamerDecoder shapes, float32 under mixed precision."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError, UserError
from dreamkit.networks import heads
from dreamkit.optim import Optimizer

F = 20
# The keys and sizes the decoder shares with the encoder have no constructor default
# (pipelines bind them through macros), so every construction names them.
SIZES = dict(cnn_keys='image', mlp_keys='.*', cnn_depth=4, mlp_layers=2, mlp_units=8)
TINY = {
    'MLPHead': dict(shape=(), layers=2, units=8),
    'DreamerDecoder': dict(
        SIZES, shapes={'image': (16, 16, 3), 'vector': (5,)},
        cnn_kernels=(2, 2, 2, 2)),
}


def feat(lead=(2, 4)):
  return tf.random.stateless_normal(lead + (F,), seed=(1, 2))


def test_every_registered_head_has_tiny_settings():
  assert heads.registry.names(builtin_only=True) == sorted(TINY)


@pytest.mark.parametrize('name,required,defaults', [
    ('MLPHead', ['shape', 'layers', 'units'],
     dict(act='elu', norm='none', dist='mse', min_std=0.1, init_std=0.0)),
    ('DreamerDecoder', ['shapes', *SIZES],
     dict(act='elu', norm='none', cnn_kernels=(5, 5, 6, 6))),
])
def test_only_the_owner_given_and_shared_sizes_lack_a_default(name, required, defaults):
  """The owner passes the shape(s), the pipelines' macros bind the shared sizes;
  every other default is the reference's."""
  (entry,) = [e for e in heads.registry.entries() if e.name == name]
  empty = inspect.Parameter.empty
  assert [n for n, default in entry.parameters if default is empty] == required
  assert {n: d for n, d in entry.parameters if d is not empty} == defaults


@pytest.mark.parametrize('policy', ['float32', 'mixed_bfloat16'])
@pytest.mark.parametrize('dist,shape', [
    ('mse', ()), ('binary', ()), ('normal', (3,)), ('onehot', (3,)),
    ('trunc_normal', (3,)), ('tanh_normal', (3,)), ('mse', (2, 3))])
def test_mlp_head_distributions(policy, dist, shape):
  keras.mixed_precision.set_global_policy(policy)
  head = heads.MLPHead(shape, layers=2, units=8, dist=dist)
  out = head(feat())
  sample = out.sample()
  assert sample.shape == (2, 4) + shape
  assert sample.dtype == tf.float32
  assert out.log_prob(sample).shape == (2, 4)
  assert out.log_prob(sample).dtype == tf.float32
  assert out.mode().shape == (2, 4) + shape
  if dist == 'onehot':
    np.testing.assert_array_equal(tf.reduce_sum(sample, -1), 1.0)
  if dist == 'trunc_normal':
    assert np.all(np.abs(sample.numpy()) < 1)
  if dist == 'tanh_normal':
    # tanh rounds to exactly +-1 in float32 for |x| > 9; the log-prob must stay finite.
    assert np.all(np.abs(sample.numpy()) <= 1)
    assert np.all(np.isfinite(out.log_prob(sample).numpy()))


def test_tanh_normal_log_prob_is_finite_at_the_bounds():
  from dreamkit.networks import distributions
  dist = distributions.make(
      'tanh_normal', tf.zeros([2, 3]), tf.zeros([2, 3]), event_dims=1)
  edges = tf.constant([[-1.0, 1.0, 0.0], [1.0, 1.0, -1.0]])
  like = dist.log_prob(edges).numpy()
  assert like.shape == (2,)
  assert np.all(np.isfinite(like))


def test_binary_head_takes_soft_discount_targets():
  head = heads.MLPHead((), layers=1, units=4, dist='binary')
  out = head(feat())
  like = out.log_prob(tf.fill([2, 4], 0.99))
  assert np.all(np.isfinite(like.numpy()))


@pytest.mark.parametrize('shapes', [
    {'image': (16, 16, 3)}, {'image': (16, 16, 1)}, {'vector': (5,)},
    {'image': (16, 16, 3), 'vector': (5,), 'other': (2,)}])
def test_decoder_shapes(shapes):
  decoder = heads.DreamerDecoder(shapes, **SIZES, cnn_kernels=(2, 2, 2, 2))
  for lead in [(2, 4), (3,)]:
    out = decoder(feat(lead))
    assert sorted(out) == sorted(shapes)
    for key, shape in shapes.items():
      assert out[key].event_shape == shape
      assert out[key].batch_shape == lead
      assert out[key].mode().dtype == tf.float32
      target = tf.zeros(lead + shape)
      # Normal(mean, 1) summed over the event: -log p >= 0.919 per dimension.
      assert np.all(-out[key].log_prob(target).numpy() >= 0.918 * np.prod(shape))


def test_decoder_reference_kernels_give_64x64():
  decoder = heads.DreamerDecoder(
      {'image': (64, 64, 1)}, cnn_keys='image', mlp_keys='$^', cnn_depth=2,
      mlp_layers=1, mlp_units=4)
  out = decoder(feat((2,)))
  assert out['image'].mean().shape == (2, 64, 64, 1)
  assert [c.kernel_size[0] for c in decoder.convs] == [5, 5, 6, 6]


def test_decoder_size_errors():
  with pytest.raises(UserError, match='cnn_kernels'):
    # The default kernels (5, 5, 6, 6) give 64x64 images.
    heads.DreamerDecoder({'image': (16, 16, 1)}, **SIZES)
  with pytest.raises(UserError, match='cnn_kernels'):
    heads.DreamerDecoder({'image': (64, 32, 1)}, **SIZES)
  with pytest.raises(ConfigError, match='no observation key'):
    heads.DreamerDecoder(
        {'image': (64, 64, 1)}, **{**SIZES, 'cnn_keys': '$^', 'mlp_keys': '$^'})
  with pytest.raises(ConfigError, match='distribution'):
    heads.MLPHead((), layers=2, units=8, dist='gaussian')


@pytest.mark.parametrize('name', heads.registry.names())
def test_registered_head_trains_one_step(name):
  head = heads.registry.get(name)(**TINY[name])
  x = feat()
  head(x)
  before = [v.numpy().copy() for v in head.trainable_variables]
  optimizer = Optimizer('head', 1e-3)
  with tf.GradientTape() as tape:
    out = head(x)
    dists = out if isinstance(out, dict) else {'out': out}
    loss = -tf.add_n([tf.reduce_mean(d.log_prob(tf.ones_like(d.mean())))
                      for d in dists.values()])
  assert float(optimizer(tape, loss, [head])['head_skipped']) == 0
  after = head.trainable_variables
  assert before and all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after))
