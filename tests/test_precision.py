"""Precision policies: the setting, the CPU fallback, loss scaling and skipped steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError
from dreamkit.optim import Optimizer
from dreamkit import precision
from dreamkit.precision import set_precision
from test_world_model import make_batch, make_spaces, tiny_model

HAS_GPU = bool(tf.config.list_physical_devices('GPU'))


@pytest.mark.skipif(HAS_GPU, reason='the CPU fallback')
@pytest.mark.parametrize('has_bf16,want', [(True, 'mixed_bfloat16'), (False, 'float32')])
def test_precision_16_on_a_cpu_follows_its_bfloat16_units(monkeypatch, has_bf16, want):
  monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: has_bf16)
  assert set_precision(16) == want


def test_set_precision(capsys):
  assert set_precision(32) == 'float32'
  assert keras.mixed_precision.global_policy().name == 'float32'
  assert set_precision('bf16') == 'mixed_bfloat16'
  assert set_precision(16, float16_anyway=True) == 'mixed_float16'
  capsys.readouterr()
  name = set_precision(16)
  notice = capsys.readouterr().out
  if HAS_GPU:
    assert name == 'mixed_float16' and not notice
  else:
    assert name == ('mixed_bfloat16' if precision.cpu_has_bf16() else 'float32')
    assert len(notice.strip().splitlines()) == 1 and name in notice
  assert keras.mixed_precision.global_policy().name == name
  for bad in (8, 64, 'fp16', None):
    with pytest.raises(ConfigError, match='precision'):
      set_precision(bad)


class Net(keras.layers.Layer):

  def __init__(self):
    super().__init__()
    self.dense = keras.layers.Dense(3)

  def call(self, x):
    return self.dense(x)


def test_float16_step_with_infinite_gradient_is_skipped():
  set_precision(16, float16_anyway=True)
  net = Net()
  x = tf.ones([4, 2])
  net(x)
  optimizer = Optimizer('net', 1e-2)

  @tf.function
  def step(factor):
    with tf.GradientTape() as tape:
      y = tf.cast(net(x), tf.float32)
      assert net.dense.compute_dtype == 'float16'
      loss = tf.reduce_mean(tf.square(y)) * factor
    return optimizer(tape, loss, [net])

  metrics = step(tf.constant(1.0))
  assert float(metrics['net_skipped']) == 0
  scale = float(metrics['net_loss_scale'])
  before = [v.numpy().copy() for v in net.trainable_variables]
  metrics = step(tf.constant(np.inf, tf.float32))
  assert float(metrics['net_skipped']) == 1
  assert float(metrics['net_loss_scale']) == scale / 2
  for old, var in zip(before, net.trainable_variables):
    np.testing.assert_array_equal(old, var.numpy())
  metrics = step(tf.constant(1.0))
  assert float(metrics['net_skipped']) == 1
  assert any(not np.array_equal(old, var.numpy())
             for old, var in zip(before, net.trainable_variables))


def test_float32_step_with_nan_gradient_is_skipped_and_decay_not_applied():
  net = Net()
  x = tf.ones([4, 2])
  net(x)
  optimizer = Optimizer('net', 1e-2, wd=0.5)

  def step(factor):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(net(x))) * factor
    return optimizer(tape, loss, [net])

  step(tf.constant(1.0))
  before = [v.numpy().copy() for v in net.trainable_variables]
  metrics = step(tf.constant(np.nan))
  assert float(metrics['net_skipped']) == 1 and float(metrics['net_loss_scale']) == 1
  for old, var in zip(before, net.trainable_variables):
    np.testing.assert_array_equal(old, var.numpy())


def test_weight_decay_is_multiplicative_as_in_the_reference():
  net = Net()
  net(tf.ones([1, 2]))
  before = [v.numpy().copy() for v in net.trainable_variables]
  optimizer = Optimizer('net', 1e-3, wd=0.1)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(net(tf.ones([1, 2]))) * 0.0
  optimizer(tape, loss, [net])
  # Zero gradients leave Adam's update at zero: only the decay acts.
  for old, var in zip(before, net.trainable_variables):
    np.testing.assert_allclose(var.numpy(), old * 0.9, rtol=1e-6)


def test_gradient_clipping():
  net = Net()
  net(tf.ones([1, 2]))
  optimizer = Optimizer('net', 1e-3, clip=1.0)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(net(tf.ones([1, 2]) * 1000.0))
  metrics = optimizer(tape, loss, [net])
  # The reported norm is the raw one; the update itself used the clipped gradient.
  assert float(metrics['net_grad_norm']) > 1000


@pytest.mark.parametrize('policy', ['float32', 'mixed_float16', 'mixed_bfloat16'])
def test_world_model_trains_under(policy):
  keras.mixed_precision.set_global_policy(policy)
  spaces = make_spaces(image=False)
  wm = tiny_model(spaces)
  assert wm.encoder.compute_dtype == policy.replace('mixed_', '')
  batch = make_batch(spaces)
  for _ in range(2):
    state, outputs, metrics = wm.train(batch)
  assert all(np.isfinite(float(v)) for k, v in metrics.items() if k != 'model_grad_norm')
  assert all(v.dtype == tf.float32 for v in state.values())
  assert outputs['likes']['reward'].dtype == tf.float32
  skipped = float(metrics['model_skipped'])
  scale = float(metrics['model_loss_scale'])
  if policy == 'mixed_float16':
    assert isinstance(wm.optimizer.optimizer, keras.mixed_precision.LossScaleOptimizer)
    # Each skipped (overflowing) step halves the initial scale of 2**15.
    assert scale == 2.0 ** 15 / 2 ** skipped and skipped < 2
  else:
    assert not isinstance(wm.optimizer.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert scale == 1 and skipped == 0
