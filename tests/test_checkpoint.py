"""Checkpoints restore the whole training state into a freshly built agent."""

from pathlib import Path

import gin
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import config
from dreamkit.errors import UserError
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner.pipeline import Pipeline
from dreamkit.runner.rows import Counters

PIPELINES = Path(__file__).resolve().parents[1] / 'pipelines'
SPACES = {
    'vector': gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
    'reward': gym.spaces.Box(-np.inf, np.inf, (), np.float32),
    'is_first': gym.spaces.Box(0, 1, (), bool),
    'is_last': gym.spaces.Box(0, 1, (), bool),
    'is_terminal': gym.spaces.Box(0, 1, (), bool),
}
ACTIONS = gym.spaces.Discrete(2)


@pytest.fixture(autouse=True)
def eager():
  """Checkpointing does not depend on graph mode; eager skips seconds of tracing."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def tiny_agent(deter=16):
  """An agent built as the training loop builds it: from the Pipeline's slots."""
  gin.clear_config()
  config.load([PIPELINES / 'dreamerv2_defaults.gin', PIPELINES / 'debug.gin'], [
      "Pipeline.task = 'fake:discrete'", "CNN_KEYS = '$^'", "MLP_KEYS = '.*'",
      f'DETER = {deter}', 'HIDDEN = 16', 'MLP_UNITS = 16', 'ActorCritic.imag_horizon = 3',
      'ActorCritic.slow_target_update = 1'], finalize=False)
  settings = gin.get_configurable(Pipeline)()
  counters = Counters.create()
  agent = agent_lib.build(
      SPACES, ACTIONS, counters.step, settings.world_model, settings.actor_critic,
      settings.explorer, settings.agent)
  return agent, counters


def batch(seed):
  rng = np.random.default_rng(seed)
  return {
      'vector': rng.normal(size=(2, 5, 3)).astype(np.float32),
      'reward': rng.normal(size=(2, 5)).astype(np.float32),
      'action': np.eye(2, dtype=np.float32)[rng.integers(0, 2, (2, 5))],
      'is_first': np.array([[True] + [False] * 4] * 2),
      'is_last': np.zeros((2, 5), bool), 'is_terminal': np.zeros((2, 5), bool)}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A tiny agent trained 3 times, and a checkpoint of it at step 123 (shared: the
  tests below only read it)."""
  directory = tmp_path_factory.mktemp('checkpoint')
  tf.config.run_functions_eagerly(True)  # Module scope: set up before `eager`.
  agent, counters = tiny_agent()
  for seed in range(3):
    agent.train(batch(seed))
  counters.step.assign(123)
  counters.updates.assign(3)
  counters.episodes.assign(2)
  counters.wall_time.assign(42.5)
  rng = checkpoint_lib.numpy_rng(0)
  rng.random(5)
  saver = checkpoint_lib.Checkpoint(directory, agent, rng, **counters.as_dict())
  path = saver.save()
  expected_draw = rng.random()
  named = checkpoint_lib.named_variables(agent)
  values = {name: v.numpy().copy() for name, v in named.items()}
  gin.clear_config()
  tf.config.run_functions_eagerly(False)
  return {'directory': directory, 'path': path, 'agent': agent, 'counters': counters,
          'named': named, 'values': values, 'draw': expected_draw}


def test_restore_brings_back_every_variable_and_optimizer_slot(trained):
  agent, named = trained['agent'], trained['named']
  # Every Keras-tracked variable is in the list, including the slow critic's and the
  # optimizers' iterations (3 model updates).
  listed = {id(v) for v in named.values()}
  assert {id(v) for v in agent.variables} <= listed
  slow = agent.actor_critic.slow_critic.variables
  assert slow and {id(v) for v in slow} <= listed
  # Plain tf.Variables Keras does not track: the slow-critic schedule's update counter
  # and the reward normaliser's running magnitude.
  assert id(agent.actor_critic.updates) in listed
  assert id(agent.actor_critic.reward_norm.mag) in listed
  assert any('iteration' in name for name in named)

  fresh, fresh_counters = tiny_agent()
  fresh.train(batch(10))  # Builds every variable, then restore overwrites them.
  fresh_rng = checkpoint_lib.numpy_rng(99)
  loader = checkpoint_lib.Checkpoint(
      trained['directory'], fresh, fresh_rng, **fresh_counters.as_dict())
  assert loader.restore()
  restored = {name: v.numpy() for name, v in checkpoint_lib.named_variables(fresh).items()}
  assert len(restored) == len(trained['values'])
  for (name, a), b in zip(trained['values'].items(), restored.values()):
    np.testing.assert_array_equal(a, b, err_msg=name)
  assert int(fresh_counters.step) == 123
  assert int(fresh_counters.updates) == 3 and int(fresh_counters.episodes) == 2
  assert float(fresh_counters.wall_time) == 42.5 and loader.missing_counters == []
  assert fresh_rng.random() == trained['draw']


def test_checkpoint_names_are_readable(trained):
  path = trained['path']
  keys = {key for key, _ in tf.train.list_variables(path)}
  names = checkpoint_lib.saved_names(path)
  # The agent's state under the path of keys that leads to each part, with shapes.
  assert set(names) == set(trained['named'])
  assert names == {name: tuple(v.shape) for name, v in trained['named'].items()}
  assert 'agent/world_model/encoder/000_kernel' in names
  assert names['agent/world_model/encoder/000_kernel'] == (3, 16)  # 3 vector inputs
  assert {'agent/actor_critic/critic/000_kernel', 'agent/actor_critic/actor/000_kernel',
          'agent/actor_critic/slow_critic/000_kernel', 'agent/actor_critic/updates',
          'agent/actor_critic/reward_norm/mag', 'agent/world_model/heads/reward/000_kernel',
          'agent/world_model/heads/discount/000_kernel'} <= set(names)
  assert any(name.startswith('agent/world_model/dynamics/') for name in names)
  assert any(name.startswith('agent/world_model/heads/decoder/') for name in names)
  # Optimizer state: the skipped count, the iterations and Adam's moments.
  for optimizer in ('world_model/optimizer', 'actor_critic/actor_optimizer',
                    'actor_critic/critic_optimizer'):
    assert f'agent/{optimizer}/skipped' in names
    assert f'agent/{optimizer}/keras/000_iteration' in names
    assert any(name.startswith(f'agent/{optimizer}/keras/') and name.endswith('_momentum')
               for name in names)
  reader = tf.train.load_checkpoint(path)
  suffix = '/.ATTRIBUTES/VARIABLE_VALUE'
  assert reader.get_tensor(f'agent/world_model/optimizer/keras/000_iteration{suffix}') == 3
  # Beside the agent: the run's counters and the random state.
  for counter, value in (('step', 123), ('updates', 3), ('episodes', 2),
                         ('wall_time', 42.5)):
    assert f'{counter}{suffix}' in keys, sorted(k for k in keys if not k.startswith('agent/'))
    assert reader.get_tensor(f'{counter}{suffix}') == value
  assert f'rng_state{suffix}' in keys
  # The step the agent's schedules read is saved once, as the counter, not twice.
  assert not any(name.endswith('/step') for name in names)


def test_a_checkpoint_from_before_wall_time_still_restores(trained, tmp_path):
  agent, counters = trained['agent'], trained['counters']
  older = {'step': counters.step, 'updates': counters.updates,
           'episodes': counters.episodes}  # What dreamkit saved before wall_time.
  path = checkpoint_lib.Checkpoint(tmp_path, agent, checkpoint_lib.numpy_rng(0),
                                   **older).save()
  assert not any(key.startswith('wall_time') for key, _ in tf.train.list_variables(path))
  wall_time = tf.Variable(0.0, dtype=tf.float64)
  loader = checkpoint_lib.Checkpoint(
      tmp_path, agent, checkpoint_lib.numpy_rng(1), **older, wall_time=wall_time)
  assert loader.restore()
  assert loader.missing_counters == ['wall_time'] and float(wall_time) == 0.0
  assert int(counters.step) == 123
  # Only the counters added since are optional: one the loop always saved is not.
  strange = checkpoint_lib.Checkpoint(
      tmp_path, agent, checkpoint_lib.numpy_rng(1), **older,
      resets=tf.Variable(0, dtype=tf.int64))
  with pytest.raises(UserError, match="has no counter 'resets'"):
    strange.restore()


def test_different_architecture_is_refused(trained):
  other, other_counters = tiny_agent(deter=24)
  other.train(batch(0))
  loader = checkpoint_lib.Checkpoint(
      trained['directory'], other, checkpoint_lib.numpy_rng(0), **other_counters.as_dict())
  with pytest.raises(UserError, match='different configuration') as refused:
    loader.restore()
  # The message names a part whose shapes differ, and how (features 16 + 16 vs 16 + 24).
  assert 'agent/actor_critic/actor: 000_kernel (32, 16) saved vs (40, 16) built' in \
      str(refused.value)


def test_fresh_directory_has_nothing_to_restore(tmp_path):
  agent, counters = tiny_agent()
  agent.train(batch(0))
  assert not checkpoint_lib.Checkpoint(
      tmp_path, agent, checkpoint_lib.numpy_rng(0), **counters.as_dict()).restore()
