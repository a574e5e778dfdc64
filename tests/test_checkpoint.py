"""Checkpoints restore the whole training state into a freshly built agent."""

from pathlib import Path

import gin
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from dreamkit import config
from dreamkit.agent import Agent
from dreamkit.errors import UserError
from dreamkit.runner import checkpoint as checkpoint_lib

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
  gin.clear_config()
  config.load([PIPELINES / 'dreamerv2_defaults.gin', PIPELINES / 'debug.gin'], [
      "Pipeline.task = 'fake:discrete'", "CNN_KEYS = '$^'", "MLP_KEYS = '.*'",
      f'DETER = {deter}', 'HIDDEN = 16', 'MLP_UNITS = 16', 'ActorCritic.imag_horizon = 3',
      'ActorCritic.slow_target_update = 1'], finalize=False)
  step = tf.Variable(0, dtype=tf.int64)
  return gin.get_configurable(Agent)(SPACES, ACTIONS, step), step


def batch(seed):
  rng = np.random.default_rng(seed)
  return {
      'vector': rng.normal(size=(2, 5, 3)).astype(np.float32),
      'reward': rng.normal(size=(2, 5)).astype(np.float32),
      'action': np.eye(2, dtype=np.float32)[rng.integers(0, 2, (2, 5))],
      'is_first': np.array([[True] + [False] * 4] * 2),
      'is_last': np.zeros((2, 5), bool), 'is_terminal': np.zeros((2, 5), bool)}


def test_restore_brings_back_every_variable_and_optimizer_slot(tmp_path):
  agent, step = tiny_agent()
  for seed in range(3):
    agent.train(batch(seed))
  step.assign(123)
  rng = checkpoint_lib.numpy_rng(0)
  rng.random(5)
  saver = checkpoint_lib.Checkpoint(tmp_path, rng, agent, step=step)
  saver.save()
  expected_draw = rng.random()
  saved = [v.numpy().copy() for v in checkpoint_lib.agent_variables(agent)]
  names = [v.path if hasattr(v, 'path') else v.name for v in checkpoint_lib.agent_variables(agent)]
  # Every Keras-tracked variable is in the list, including the slow critic's and the
  # optimizers' iterations (3 model updates).
  listed = {id(v) for v in checkpoint_lib.agent_variables(agent)}
  assert {id(v) for v in agent.variables} <= listed
  slow = agent.task_behavior.slow_critic.variables
  assert slow and {id(v) for v in slow} <= listed
  # Plain tf.Variables Keras does not track: the slow-critic schedule's update counter
  # and the reward normaliser's running magnitude.
  assert id(agent.task_behavior.updates) in listed
  assert id(agent.task_behavior.reward_norm.mag) in listed
  assert any('iteration' in name for name in names)

  fresh, fresh_step = tiny_agent()
  fresh.train(batch(10))  # Builds every variable, then restore overwrites them.
  fresh_rng = checkpoint_lib.numpy_rng(99)
  loader = checkpoint_lib.Checkpoint(tmp_path, fresh_rng, fresh, step=fresh_step)
  assert loader.restore()
  restored = [v.numpy() for v in checkpoint_lib.agent_variables(fresh)]
  assert len(restored) == len(saved)
  for name, a, b in zip(names, saved, restored):
    np.testing.assert_array_equal(a, b, err_msg=name)
  assert int(fresh_step) == 123
  assert fresh_rng.random() == expected_draw


def test_different_architecture_is_refused(tmp_path):
  agent, step = tiny_agent(deter=16)
  agent.train(batch(0))
  checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), agent, step=step).save()
  other, other_step = tiny_agent(deter=24)
  other.train(batch(0))
  loader = checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), other, step=other_step)
  with pytest.raises(UserError, match='different configuration'):
    loader.restore()


def test_fresh_directory_has_nothing_to_restore(tmp_path):
  agent, step = tiny_agent()
  agent.train(batch(0))
  assert not checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), agent).restore()
