"""Actor objectives on a hand-made imagined trajectory, checked against NumPy."""

import re

import gymnasium
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit.behavior import objectives
from dreamkit.errors import ConfigError, UserError

tfd = tfp.distributions
H, N, A = 4, 3, 3   # 4 imagined steps, 5 states, 3 trajectories, 3 actions.
SPACE = gymnasium.spaces.Discrete(A)   # The owner passes its action space.
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)


def log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture(scope='module')
def sequence():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(H - 1, N, A)).astype(np.float32)
  action = np.eye(A, dtype=np.float32)[rng.integers(0, A, size=(H + 1, N))]
  action[0] = 0
  weight = np.cumprod(
      np.concatenate([np.ones((1, N)), rng.uniform(0.5, 1, (H, N))]), 0).astype(np.float32)
  target = rng.normal(size=(H, N)).astype(np.float32)
  baseline = rng.normal(size=(H - 1, N)).astype(np.float32)
  return logits, action, weight, target, baseline


def run(objective, sequence, ent_scale=0.1, step=0):
  logits, action, weight, target, baseline = sequence
  policy = tfd.OneHotCategorical(logits=tf.constant(logits), dtype=tf.float32)
  traj = {'action': tf.constant(action), 'weight': tf.constant(weight),
          'feat': tf.zeros((H + 1, N, 2))}
  step = tf.Variable(step, dtype=tf.int64)
  loss, metrics = objective(
      policy, traj, tf.constant(target), tf.constant(baseline),
      tf.constant(ent_scale), step)
  return float(loss), metrics


def numpy_parts(sequence):
  logits, action, weight, target, baseline = sequence
  logp = log_softmax(logits)
  log_prob = (logp * action[1:-1]).sum(-1)
  entropy = -(np.exp(logp) * logp).sum(-1)
  reinforce = log_prob * (target[1:] - baseline)
  dynamics = target[1:]
  return reinforce, dynamics, entropy, weight[:-2]


def test_reinforce_matches_numpy(sequence):
  reinforce, _, entropy, weight = numpy_parts(sequence)
  loss, metrics = run(objectives.Reinforce(SPACE), sequence)
  expected = -(weight * (reinforce + 0.1 * entropy)).mean()
  assert loss == pytest.approx(expected, rel=1e-5)
  assert float(metrics['actor_ent']) == pytest.approx(entropy.mean(), rel=1e-5)
  assert float(metrics['actor_ent_scale']) == pytest.approx(0.1)


def test_dynamics_matches_numpy(sequence):
  _, dynamics, entropy, weight = numpy_parts(sequence)
  loss, _ = run(objectives.Dynamics(SPACE), sequence)
  expected = -(weight * (dynamics + 0.1 * entropy)).mean()
  assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('mix, step, value', [
    (0.3, 0, 0.3), ('linear(0.1,0,100)', 50, 0.05), ('linear(0.1,0,100)', 500, 0.0)])
def test_both_matches_numpy(sequence, mix, step, value):
  reinforce, dynamics, entropy, weight = numpy_parts(sequence)
  loss, metrics = run(objectives.Both(SPACE, mix=mix), sequence, step=step)
  mixed = value * dynamics + (1 - value) * reinforce
  expected = -(weight * (mixed + 0.1 * entropy)).mean()
  assert loss == pytest.approx(expected, rel=1e-5, abs=1e-6)
  assert float(metrics['actor_grad_mix']) == pytest.approx(value, abs=1e-7)


def test_reinforce_gradient_skips_the_target_and_the_sample():
  logits = tf.Variable(tf.zeros((H - 1, N, A)))
  target = tf.Variable(tf.ones((H, N)))
  action = tf.Variable(tf.one_hot(tf.zeros((H + 1, N), tf.int32), A))
  with tf.GradientTape(persistent=True) as tape:
    policy = tfd.OneHotCategorical(logits=logits, dtype=tf.float32)
    traj = {'action': action, 'weight': tf.ones((H + 1, N))}
    loss, _ = objectives.Reinforce(SPACE)(
        policy, traj, target, tf.zeros((H - 1, N)), tf.constant(0.0), 0)
  assert tape.gradient(loss, target) is None
  assert tape.gradient(loss, action) is None
  assert np.abs(tape.gradient(loss, logits).numpy()).sum() > 0


def test_bad_mix_is_a_user_error():
  with pytest.raises(UserError, match='objectives.Both.mix'):
    objectives.Both(SPACE, mix='linear(0.1)')


def test_auto_choice(sequence):
  discrete, continuous = objectives.Auto(SPACE), objectives.Auto(BOX)
  assert isinstance(discrete.chosen, objectives.Reinforce)
  assert isinstance(continuous.chosen, objectives.Dynamics)
  assert discrete.act_space is SPACE and continuous.act_space is BOX
  # Auto is its choice, term for term.
  loss, metrics = run(discrete, sequence)
  expected, expected_metrics = run(objectives.Reinforce(SPACE), sequence)
  assert loss == pytest.approx(expected, rel=1e-6)
  assert set(metrics) == set(expected_metrics)


def test_registry_holds_the_objectives_and_no_explorer():
  for name in ('Auto', 'Reinforce', 'Dynamics', 'Both'):
    assert name in objectives.registry
  # Exploration has a registry of its own (`explorers`).
  for name in ('Greedy', 'Random', 'Plan2Explore', 'RandomPolicy'):
    assert name not in objectives.registry, name


def test_objectives_are_factories_called_with_the_action_space():
  """The one binding rule: `ActorCritic.objective = @objectives.Both`, no parentheses."""
  built = objectives.registry.build(
      objectives.registry.configured('Both'), 'ActorCritic.objective', SPACE)
  assert isinstance(built, objectives.Both) and built.act_space is SPACE
  for wrong in (objectives.Both(SPACE), None):
    with pytest.raises(ConfigError, match='without parentheses') as error:
      objectives.registry.build(wrong, 'ActorCritic.objective', SPACE)
    assert 'ActorCritic.objective = @objectives.<Name>' in str(error.value)
  # A factory of something else names the registry to bind from.
  with pytest.raises(ConfigError, match='`objectives` registry'):
    objectives.registry.build(lambda space: 'reinforce', 'ActorCritic.objective', SPACE)


def test_every_registry_entry_is_documented():
  import pathlib
  text = (pathlib.Path(__file__).parents[1] / 'docs' / 'behavior.md').read_text()
  for name in objectives.registry.names(builtin_only=True):
    assert re.search(rf'`{name}\b', text), name
