"""Explorers: Greedy, Random, Plan2Explore; the RandomPolicy; every registry entry trains."""

import functools
import re

import gin
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.behavior import exploration
from dreamkit.behavior import objectives
from dreamkit.behavior.actor_critic import ActorCritic
from dreamkit.errors import ConfigError, UserError
from dreamkit.networks import heads
from dreamkit.world_model import WorldModel

from test_agent import TINY, make_agent, obs_space, random_steps

B, T = 2, 4
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
DISCRETE = gymnasium.spaces.Discrete(3)
P2E = """
explorers.Plan2Explore.disag_models = 3
expl_head/heads.MLPHead.units = 8
"""


@pytest.fixture(scope='module')
def trained():
  """A tiny world model after one step: (world model, task ActorCritic, batch, train outputs)."""
  gin.parse_config(TINY + P2E)
  step = tf.Variable(0, dtype=tf.int64)
  try:
    wm = gin.get_configurable(WorldModel)(obs_space(False), BOX)
    task = gin.get_configurable(ActorCritic)(BOX, step)
  finally:
    gin.clear_config()
  batch = random_steps(obs_space(False), BOX, (B, T))
  _, outputs, _ = wm.train(batch)
  return wm, task, step, batch, outputs


def build(trained, factory):
  """The explorer `factory` builds for the trained world model and task actor-critic,
  as the training loop builds `Pipeline.explorer`."""
  wm, task, step, _, _ = trained
  gin.parse_config(TINY + P2E)
  try:
    return exploration.registry.build(factory, 'Pipeline.explorer', wm, task, step)
  finally:
    gin.clear_config()


PLAN2EXPLORE = exploration.registry.configured('Plan2Explore')


def run(trained, behavior):
  wm, _, _, batch, outputs = trained
  return behavior.train(outputs['post'], outputs, wm.preprocess(batch))


def test_plan2explore_trains_its_ensemble_and_actor(trained):
  behavior = build(trained, PLAN2EXPLORE)
  assert len(behavior.ensemble) == 3
  assert behavior.ensemble[0].mlp.units == 8
  # Its own actor-critic, configured as the task's (Plan2Explore.behavior = @ActorCritic).
  task = trained[1]
  assert isinstance(behavior.ac, ActorCritic) and behavior.ac is not task
  assert behavior.ac.imag_horizon == task.imag_horizon == 3
  # stoch 4 x 4 flattened.
  assert behavior.ensemble[0].shape == (16,)
  ensemble = [v.numpy().copy() for m in behavior.ensemble for v in m.trainable_variables]
  metrics = run(trained, behavior)
  for key in ('ensemble_loss', 'ensemble_grad_norm', 'actor_loss', 'critic_loss',
              'reward_mean'):
    assert np.isfinite(float(metrics[key])), key
  after = [v.numpy() for m in behavior.ensemble for v in m.trainable_variables]
  assert all(not np.allclose(a, b) for a, b in zip(ensemble, after))
  # The world model is not tracked twice.
  wm = trained[0]
  ids = {id(v) for v in wm.trainable_variables}
  assert not any(id(v) in ids for v in behavior.trainable_variables)


def test_plan2explore_trains_inside_tf_function(trained):
  behavior = build(trained, PLAN2EXPLORE)
  wm, _, _, batch, outputs = trained
  train = tf.function(behavior.train)
  for _ in range(2):
    metrics = train(outputs['post'], outputs, wm.preprocess(batch))
  assert np.isfinite(float(metrics['actor_loss']))
  assert int(behavior.ac.updates) == 2


def test_intrinsic_reward_is_the_ensemble_std(trained):
  behavior = build(trained, PLAN2EXPLORE)
  wm, _, _, _, outputs = trained
  run(trained, behavior)
  traj = {'feat': tf.reshape(outputs['feat'], [T, B, -1]),
          'action': tf.zeros([T, B, 2])}
  inputs = tf.concat([traj['feat'], traj['action']], -1)
  preds = np.stack([m(inputs).mode().numpy() for m in behavior.ensemble])
  expected = preds.std(0).mean(-1)
  np.testing.assert_allclose(behavior.reward(traj).numpy(), expected, rtol=1e-4)
  assert np.all(expected > 0)
  del wm


@pytest.mark.parametrize('target, size', [('deter', 16), ('feat', 32), ('embed', None)])
def test_disag_targets(trained, target, size):
  factory = functools.partial(PLAN2EXPLORE, disag_models=2, disag_target=target)
  behavior = build(trained, factory)
  assert len(behavior.ensemble) == 2
  expected = size or int(trained[4]['embed'].shape[-1])
  assert behavior.ensemble[0].shape == (expected,)
  assert np.isfinite(float(run(trained, behavior)['ensemble_loss']))


def test_bad_disag_target(trained):
  with pytest.raises(UserError, match='disag_target'):
    build(trained, functools.partial(PLAN2EXPLORE, disag_target='z'))


def test_greedy_acts_with_the_task_actor(trained):
  behavior = build(trained, exploration.Greedy)
  feat = tf.zeros([5, 32])
  assert behavior.actor(feat).mean().shape == (5, 2)
  np.testing.assert_array_equal(
      behavior.actor(feat).mean().numpy(), trained[1].actor(feat).mean().numpy())
  assert run(trained, behavior) == {}
  assert not behavior.trains and behavior.state() == {}  # The agent owns the task actor.


@pytest.mark.parametrize('space', [DISCRETE, BOX])
def test_random_policy_in_numpy_and_the_random_explorer_in_tf(space):
  policy = exploration.RandomPolicy(space, seed=0)
  outputs, state = policy({'is_first': np.zeros(1000, bool)})
  action = outputs['action']
  assert state is None
  assert isinstance(action, np.ndarray) and action.dtype == np.float32
  if space is DISCRETE:
    assert action.shape == (1000, 3)
    np.testing.assert_array_equal(action.sum(-1), 1)
    counts = action.sum(0)
    assert counts.min() > 250   # All actions drawn, roughly uniformly.
  else:
    assert action.shape == (1000, 2)
    assert np.all(np.abs(action) <= 1) and action.min() < -0.9 and action.max() > 0.9
  # The `explorers` entry Random draws the same actions in TF, for 'explore' mode.
  head = functools.partial(heads.MLPHead, layers=1, units=4)
  task = ActorCritic(space, tf.Variable(0, dtype=tf.int64), actor=head, critic=head,
                     objective=objectives.Auto, discount=0.99)
  explorer = exploration.registry.build(
      exploration.Random, 'Pipeline.explorer', None, task, task.step)
  sample = explorer.actor(tf.zeros([4, 7])).sample()
  assert sample.shape == (4, action.shape[-1])
  assert np.all(np.abs(sample.numpy()) <= 1)
  assert not explorer.trains


@pytest.mark.parametrize('kind, name', [
    *[('objectives', name) for name in objectives.registry.names()],
    *[('explorers', name) for name in exploration.registry.names()]])
def test_every_registry_entry_builds_and_trains(trained, kind, name):
  """Objectives drive a task ActorCritic; explorers train beside it."""
  wm, _, step, batch, outputs = trained
  if kind == 'objectives':
    gin.parse_config(TINY)
    try:
      ac = gin.get_configurable(ActorCritic)(
          BOX, step, objective=objectives.registry.configured(name))
    finally:
      gin.clear_config()
    assert type(ac.objective) is objectives.registry.get(name)
    reward_fn = lambda traj: wm.heads['reward'](traj['feat']).mean()
    metrics = ac.train(wm, outputs['post'], batch['is_terminal'], reward_fn)
    assert metrics
  else:
    behavior = build(trained, exploration.registry.configured(name))
    assert type(behavior) is exploration.registry.get(name)
    metrics = run(trained, behavior)
    assert bool(metrics) == behavior.trains
    assert behavior.actor(tf.zeros([3, 32])).sample().shape == (3, 2)
  for key, value in metrics.items():
    assert np.all(np.isfinite(np.asarray(value))), key


def test_explorers_have_their_own_registry(trained):
  for name in ('Greedy', 'Random', 'Plan2Explore'):
    assert name in exploration.registry, name
    assert name not in objectives.registry, name
  # The prefill policy is plain NumPy, not a component.
  assert 'RandomPolicy' not in exploration.registry
  # Explorers are bound as factories: an instance (or None) is refused.
  wm, task, step, _, _ = trained
  for wrong in (exploration.Greedy(wm, task, step), None):
    with pytest.raises(ConfigError, match='without parentheses') as error:
      exploration.registry.build(wrong, 'Pipeline.explorer', wm, task, step)
    assert 'Pipeline.explorer = @explorers.<Name>' in str(error.value)


def test_plan2explore_inside_an_agent():
  agent = make_agent(DISCRETE, image=False, compile=False,
                     bindings=P2E + 'Pipeline.explorer = @explorers.Plan2Explore\n')
  assert isinstance(agent.explorer, exploration.Plan2Explore)
  assert agent.explorer.ac is not agent.actor_critic
  _, metrics = agent.train(random_steps(obs_space(False), DISCRETE, (B, T)))
  for key in ('expl_ensemble_loss', 'expl_actor_loss', 'actor_loss', 'model_loss'):
    assert np.isfinite(float(metrics[key])), key
  obs = random_steps(obs_space(False), DISCRETE, (3,))
  obs['is_first'][:] = True
  outputs, _ = agent.policy(obs, None, 'explore')
  np.testing.assert_array_equal(outputs['action'].numpy().sum(-1), 1)


def test_plan2explore_checkpoint_holds_every_member(trained, tmp_path):
  import keras
  from dreamkit.runner import checkpoint as checkpoint_lib
  # Keras's process-wide layer numbering is in the optimizer slots' names: restart it
  # for each, as a resumed run in a new process does (see test_actor_critic.py).
  keras.utils.clear_session(free_memory=False)
  behavior = build(trained, PLAN2EXPLORE)
  run(trained, behavior)
  named = checkpoint_lib.named_variables(behavior)
  saved = list(named.values())
  members = [v for member in behavior.ensemble for v in member.variables]
  assert len(members) == 3 * len(behavior.ensemble[0].variables) > 0
  assert {id(v) for v in members} <= {id(v) for v in saved}
  for index in range(3):
    assert any(name.startswith(f'agent/ensemble/{index}/') for name in named), index
  # Its own actor-critic is its state; the world model belongs to the agent.
  assert any(name.startswith('agent/actor_critic/actor/') for name in named)
  assert not any('world_model' in name for name in named)
  checkpoint_lib.Checkpoint(tmp_path, behavior, checkpoint_lib.numpy_rng(0)).save()
  keras.utils.clear_session(free_memory=False)
  other = build(trained, PLAN2EXPLORE)
  run(trained, other)
  assert checkpoint_lib.Checkpoint(tmp_path, other, checkpoint_lib.numpy_rng(0)).restore()
  for mine, theirs in zip(behavior.ensemble, other.ensemble):
    for a, b in zip(mine.variables, theirs.variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_every_registry_entry_is_documented():
  import pathlib
  text = (pathlib.Path(__file__).parents[1] / 'docs' / 'behavior.md').read_text()
  for name in exploration.registry.names(builtin_only=True):
    assert re.search(rf'`{name}\b', text), name
