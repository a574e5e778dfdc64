"""Exploration behaviours: Greedy, Plan2Explore, RandomPolicy; every registry entry trains."""

import gin
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.behavior import exploration
from dreamkit.behavior import objectives
from dreamkit.behavior.actor_critic import ActorCritic
from dreamkit.errors import UserError
from dreamkit.world_model import WorldModel

from test_agent import TINY, obs_space, random_steps

B, T = 2, 4
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
DISCRETE = gymnasium.spaces.Discrete(3)
P2E = """
objectives.Plan2Explore.disag_models = 3
expl_head/heads.MLPHead.units = 8
"""


@pytest.fixture(scope='module')
def trained():
  """A tiny world model after one step: (world model, task ActorCritic, batch, train outputs)."""
  gin.parse_config(TINY + P2E)
  step = tf.Variable(0, dtype=tf.int64)
  wm = gin.get_configurable(WorldModel)(obs_space(False), BOX)
  task = gin.get_configurable(ActorCritic)(BOX, step)
  batch = random_steps(obs_space(False), BOX, (B, T))
  _, outputs, _ = wm.train(batch)
  return wm, task, step, batch, outputs


def build(trained, factory):
  wm, task, step, _, _ = trained
  gin.parse_config(TINY + P2E)
  try:
    behavior = factory(wm, BOX, step)
  finally:
    gin.clear_config()
  behavior.bind(task)
  return behavior


def run(trained, behavior):
  wm, _, _, batch, outputs = trained
  return behavior.train(outputs['post'], outputs, wm.preprocess(batch))


def test_plan2explore_trains_its_ensemble_and_actor(trained):
  behavior = build(trained, gin.get_configurable(exploration.Plan2Explore))
  assert len(behavior.ensemble) == 3
  assert behavior.ensemble[0].mlp.units == 8
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
  behavior = build(trained, gin.get_configurable(exploration.Plan2Explore))
  wm, _, _, batch, outputs = trained
  train = tf.function(behavior.train)
  for _ in range(2):
    metrics = train(outputs['post'], outputs, wm.preprocess(batch))
  assert np.isfinite(float(metrics['actor_loss']))
  assert int(behavior.ac.updates) == 2


def test_intrinsic_reward_is_the_ensemble_std(trained):
  behavior = build(trained, gin.get_configurable(exploration.Plan2Explore))
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
  factory = lambda *args: exploration.Plan2Explore(
      *args, disag_models=2, disag_target=target)
  behavior = build(trained, factory)
  expected = size or int(trained[4]['embed'].shape[-1])
  assert behavior.ensemble[0].shape == (expected,)
  assert np.isfinite(float(run(trained, behavior)['ensemble_loss']))


def test_bad_disag_target(trained):
  with pytest.raises(UserError, match='disag_target'):
    build(trained, lambda *args: exploration.Plan2Explore(*args, disag_target='z'))


def test_greedy_acts_with_the_task_actor(trained):
  behavior = build(trained, exploration.Greedy)
  feat = tf.zeros([5, 32])
  assert behavior.actor(feat).mean().shape == (5, 2)
  assert run(trained, behavior) == {}


@pytest.mark.parametrize('space', [DISCRETE, BOX])
def test_random_policy_in_numpy_and_tf(space):
  policy = exploration.RandomPolicy(act_space=space, seed=0)
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
  sample = policy.actor(tf.zeros([4, 7])).sample()
  assert sample.shape == (4, action.shape[-1])
  assert np.all(np.abs(sample.numpy()) <= 1)


@pytest.mark.parametrize('name', objectives.registry.names())
def test_every_registry_entry_builds_and_trains(trained, name):
  """Objectives drive a task ActorCritic; behaviours train beside it."""
  wm, _, step, batch, outputs = trained
  cls = objectives.registry.get(name)
  if issubclass(cls, objectives.Objective):
    gin.parse_config(TINY)
    ac = gin.get_configurable(ActorCritic)(BOX, step, objective=cls())
    gin.clear_config()
    reward_fn = lambda traj: wm.heads['reward'](traj['feat']).mean()
    metrics = ac.train(wm, outputs['post'], batch['is_terminal'], reward_fn)
  else:
    behavior = build(trained, objectives.registry.configured(name))
    metrics = run(trained, behavior)
    assert behavior.actor(tf.zeros([3, 32])).sample().shape == (3, 2)
  for key, value in metrics.items():
    assert np.all(np.isfinite(np.asarray(value))), key


def test_plan2explore_inside_an_agent():
  from dreamkit.agent import Agent
  gin.parse_config(
      TINY + P2E + 'Agent.expl_behavior = @objectives.Plan2Explore\nAgent.compile = False\n')
  agent = gin.get_configurable(Agent)(obs_space(False), DISCRETE, tf.Variable(0, dtype=tf.int64))
  gin.clear_config()
  assert isinstance(agent.expl_behavior, exploration.Plan2Explore)
  _, metrics = agent.train(random_steps(obs_space(False), DISCRETE, (B, T)))
  for key in ('expl_ensemble_loss', 'expl_actor_loss', 'actor_loss', 'model_loss'):
    assert np.isfinite(float(metrics[key])), key
  obs = random_steps(obs_space(False), DISCRETE, (3,))
  obs['is_first'][:] = True
  outputs, _ = agent.policy(obs, None, 'explore')
  np.testing.assert_array_equal(outputs['action'].numpy().sum(-1), 1)


def test_plan2explore_checkpoint_holds_every_member(trained, tmp_path):
  from dreamkit.runner import checkpoint as checkpoint_lib
  behavior = build(trained, gin.get_configurable(exploration.Plan2Explore))
  run(trained, behavior)
  saved = checkpoint_lib.agent_variables(behavior)
  members = [v for member in behavior.ensemble for v in member.variables]
  assert len(members) == 3 * len(behavior.ensemble[0].variables) > 0
  assert {id(v) for v in members} <= {id(v) for v in saved}
  checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), behavior).save()
  other = build(trained, gin.get_configurable(exploration.Plan2Explore))
  run(trained, other)
  assert checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), other).restore()
  for mine, theirs in zip(behavior.ensemble, other.ensemble):
    for a, b in zip(mine.variables, theirs.variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
