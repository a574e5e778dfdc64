"""Divergence: non-finite updates are skipped, counted in a row, and after
`Pipeline.max_nonfinite` of them the run stops with an error naming the loss and the
step, keeping its last good checkpoint."""

import numpy as np
import pytest
import tensorflow as tf

from dreamkit.optim import LOSS_SCALE_FLOOR, Optimizer
from dreamkit.precision import set_precision
from dreamkit.runner import train
from test_precision import Net
from test_runner import PREFILL, Recorder, pipeline


def _step(net, optimizer, x):
  def step(loss_factor, nan_loss=False):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(tf.cast(net(x), tf.float32))) * loss_factor
      if nan_loss:  # A non-finite loss whose gradients are finite.
        loss += tf.stop_gradient(tf.constant(np.nan, tf.float32))
    return optimizer(tape, loss, [net])
  return step


def test_float32_counts_nonfinite_updates_in_a_row_loss_included():
  net, x = Net(), tf.ones([4, 2])
  net(x)
  optimizer = Optimizer('net', 1e-2)
  step = _step(net, optimizer, x)
  step(tf.constant(1.0))
  assert int(optimizer.nonfinite) == 0
  before = [v.numpy().copy() for v in net.trainable_variables]
  metrics = step(tf.constant(1.0), nan_loss=True)
  # A NaN loss is skipped even when its gradients are finite.
  assert int(optimizer.nonfinite) == 1 and float(metrics['net_skipped']) == 1
  for old, var in zip(before, net.trainable_variables):
    np.testing.assert_array_equal(old, var.numpy())
  step(tf.constant(np.inf, tf.float32))
  assert int(optimizer.nonfinite) == 2
  step(tf.constant(1.0))
  assert int(optimizer.nonfinite) == 0 and int(optimizer.skipped) == 2
  assert optimizer.loss_name == 'net_loss'
  assert 'nonfinite' not in str(optimizer.state())  # Never checkpointed.


def test_float16_counts_only_once_the_loss_scale_is_at_its_floor():
  set_precision(16, float16_anyway=True)
  net, x = Net(), tf.ones([4, 2])
  net(x)
  optimizer = Optimizer('net', 1e-2)
  step = _step(net, optimizer, x)
  step(tf.constant(1.0))
  scale = float(optimizer.loss_scale())
  halvings = int(np.log2(scale / LOSS_SCALE_FLOOR))
  for _ in range(halvings):  # Overflows while the scale adapts: not divergence.
    step(tf.constant(np.inf, tf.float32))
    assert int(optimizer.nonfinite) == 0
  assert float(optimizer.loss_scale()) == LOSS_SCALE_FLOOR
  for count in (1, 2):  # At the floor every skip counts, and the scale stays.
    step(tf.constant(np.inf, tf.float32))
    assert int(optimizer.nonfinite) == count
    assert float(optimizer.loss_scale()) == LOSS_SCALE_FLOOR
  step(tf.constant(1.0))
  assert int(optimizer.nonfinite) == 0


POISON_AT = PREFILL + 20  # agent steps: the world model's loss is NaN from here on


class Poisoner(Recorder):
  """Records rows and turns the world model's loss NaN once a row reaches POISON_AT."""

  def __init__(self, logdir):
    super().__init__(logdir)
    self.poisoned_at = None

  def write(self, step, metrics):
    super().write(step, metrics)
    if self.poisoned_at is None and step >= POISON_AT:
      self.poisoned_at = step


def test_nan_losses_stop_the_run_after_max_nonfinite_and_keep_the_good_checkpoint(
    tmp_path, capsys):
  logdir = tmp_path / 'run'
  run, recorder = pipeline(logdir, [
      'Pipeline.max_nonfinite = 3', 'Pipeline.steps = 200',
      'Pipeline.checkpoint_every = 10', 'Pipeline.train_every = 5'], recorder=Poisoner)
  make = run.world_model

  def world_model(obs_space, act_space):  # A tiny test component: NaN on request.
    model = make(obs_space, act_space)
    compute_loss = model.compute_loss

    def poisoned(data, state=None):
      loss, *rest = compute_loss(data, state)
      if recorder.poisoned_at is not None:
        loss = loss * float('nan')
      return (loss, *rest)

    model.compute_loss = poisoned
    return model

  run.world_model = world_model
  with pytest.raises(train.Diverged) as diverged:
    run.run()
  message = str(diverged.value)
  assert '\n' not in message and 'model_loss' in message
  assert 'Pipeline.max_nonfinite = 3' in message
  stopped_at = int(message.split(' at step ')[1].split(',')[0].replace(',', ''))
  assert recorder.poisoned_at <= stopped_at < 200
  # Three skipped updates, 5 agent steps apart: the streak is not saved over the
  # last good checkpoint, which the message and the report name.
  path = tf.train.latest_checkpoint(str(logdir / 'checkpoints'))
  step = int(tf.train.load_checkpoint(path).get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE'))
  assert step <= recorder.poisoned_at + 5 and step < stopped_at
  assert path in message
  assert f'Checkpoint: {path} (step {step:,})' in capsys.readouterr().out
  skipped = [row['model_skipped'] for row in recorder.rows if 'model_skipped' in row]
  assert skipped and skipped[0] == 0
