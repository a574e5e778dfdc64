"""Every shipped pipeline builds, and every binding in it is read by what it builds."""

from pathlib import Path

import gin
import pytest
import tensorflow as tf

from dreamkit import config
from dreamkit import envs
from dreamkit import plugins
from dreamkit.agent import Agent
from dreamkit.runner.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted(
    path.name for path in (REPO / 'pipelines').glob('*.gin')
    if path.name not in ('debug.gin', 'dreamerv2_defaults.gin'))


@pytest.fixture(autouse=True)
def eager():
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def build_everything(files, tmp_path):
  """What `Pipeline.run` builds before training, without training."""
  config.load(files, ['Pipeline.precision = 32'])
  pipeline = gin.get_configurable(Pipeline)(logdir=tmp_path)
  env = envs.make(pipeline.task)
  try:
    agent = gin.get_configurable(Agent)(
        env.obs_space, env.act_space, tf.Variable(0, tf.int64))
    for make in pipeline.make_outputs:
      make(tmp_path).close()
    pipeline.make_replay(tmp_path / 'replay')
  finally:
    env.close()
  return agent


@pytest.mark.parametrize('name', PIPELINES)
def test_pipeline_has_no_dead_bindings(name, tmp_path):
  agent = build_everything(
      [REPO / 'pipelines' / name, REPO / 'pipelines' / 'debug.gin'], tmp_path)
  assert config.unused_bindings() == []
  # The reference's output distributions, whatever the heads' gin defaults say.
  heads = agent.wm.heads
  assert heads['reward'].dist == 'mse'
  if 'discount' in heads:
    assert heads['discount'].dist == 'binary'
  behavior = agent.task_behavior
  assert behavior.critic.dist == 'mse'
  discrete = envs.is_discrete(agent.act_space)
  assert behavior.actor.dist == ('onehot' if discrete else 'trunc_normal')


def test_plugin_pipeline_has_no_dead_bindings(tmp_path):
  plugins.load([REPO / 'plugins' / 'impala_encoder.py'])
  build_everything([REPO / 'plugins' / 'impala_encoder.gin', REPO / 'pipelines' / 'debug.gin'],
                   tmp_path)
  assert config.unused_bindings() == []


def test_swapped_alternative_is_quiet(tmp_path):
  build_everything([
      REPO / 'pipelines' / 'atari_dreamerv2_gaussian.gin', REPO / 'pipelines' / 'debug.gin'],
      tmp_path)
  # The ablation's inherited categorical bindings are inactive alternatives.
  assert 'dynamics.CategoricalRSSM.deter' in config.inactive_alternatives()
  gin.clear_config()
  build_everything([
      REPO / 'pipelines' / 'atari_dreamerv2.gin', REPO / 'pipelines' / 'debug.gin'],
      tmp_path)
  inactive = config.inactive_alternatives()
  assert 'dynamics.GaussianRSSM.deter' in inactive
  assert not any(name.startswith('dynamics.CategoricalRSSM') for name in inactive)


@pytest.mark.parametrize('files,bindings', [
    (['atari_dreamerv2_gaussian.gin'], []),
    (['atari_dreamerv2.gin'], ['WorldModel.dynamics = @dynamics.GaussianRSSM()']),
])
def test_gaussian_swap_is_one_line_with_the_suite_sizes(files, bindings):
  # Both ways of the ablation build the Atari sizes (600 / 600 / 32), not the
  # class defaults (1024).
  config.load([REPO / 'pipelines' / name for name in files], bindings)
  dynamics = gin.query_parameter('WorldModel.dynamics').scoped_configurable_fn()
  assert type(dynamics).__name__ == 'GaussianRSSM'
  assert (dynamics.deter, dynamics.hidden, dynamics.stoch) == (600, 600, 32)
  assert dynamics.min_std == 0.1


def test_misspelled_scope_is_reported(tmp_path):
  gin.clear_config()
  config.load([REPO / 'pipelines' / 'cartpole_dreamerv2.gin', REPO / 'pipelines' / 'debug.gin'],
              ['actr/heads.MLPHead.units = 8'], finalize=False)
  pipeline = gin.get_configurable(Pipeline)(logdir=tmp_path)
  env = envs.make(pipeline.task)
  gin.get_configurable(Agent)(env.obs_space, env.act_space, tf.Variable(0, tf.int64))
  env.close()
  assert 'actr/heads.MLPHead.units' in config.unused_bindings()
