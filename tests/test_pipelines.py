"""Every shipped pipeline builds, and every binding in it is read by what it builds."""

from pathlib import Path

import gin
import pytest
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import config
from dreamkit import envs
from dreamkit import plugins
from dreamkit.errors import ConfigError
from dreamkit.runner.pipeline import Pipeline
from dreamkit.world_model import WorldModel

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted(
    path.name for path in (REPO / 'pipelines').glob('*.gin')
    if path.name not in ('debug.gin', 'dreamerv2_defaults.gin'))


@pytest.fixture(autouse=True)
def eager():
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


def build_agent(pipeline, env):
  """The agent as the training loop builds it: each slot's factory, called."""
  return agent_lib.build(
      env.obs_space, env.act_space, tf.Variable(0, tf.int64), pipeline.world_model,
      pipeline.actor_critic, pipeline.explorer, pipeline.agent)


def build_everything(files, tmp_path):
  """What `Pipeline.run` builds before training, without training."""
  config.load(files, ['Pipeline.precision = 32'])
  pipeline = gin.get_configurable(Pipeline)(logdir=tmp_path)
  env = envs.make(pipeline.task)
  try:
    agent = build_agent(pipeline, env)
    for make in pipeline.outputs:
      make(tmp_path).close()
    pipeline.replay(tmp_path / 'replay').close()
  finally:
    env.close()
  return agent


@pytest.mark.parametrize('name', PIPELINES)
def test_pipeline_has_no_dead_bindings(name, tmp_path):
  agent = build_everything(
      [REPO / 'pipelines' / name, REPO / 'pipelines' / 'debug.gin'], tmp_path)
  assert config.unused_bindings() == []
  # The reference's output distributions, whatever the heads' gin defaults say.
  heads = agent.world_model.heads
  assert heads['reward'].dist == 'mse'
  if 'discount' in heads:
    assert heads['discount'].dist == 'binary'
  behavior = agent.actor_critic
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
    (['atari_dreamerv2.gin'], ['WorldModel.dynamics = @dynamics.GaussianRSSM']),
])
def test_gaussian_swap_is_one_line_with_the_suite_sizes(files, bindings):
  # Both ways of the ablation build the Atari sizes (600 / 600 / 32), not the
  # shared defaults' (1024).
  config.load([REPO / 'pipelines' / name for name in files], bindings)
  # The slot holds a factory (no parentheses); the world model calls it as `()`.
  factory = gin.query_parameter('WorldModel.dynamics')
  assert not factory.evaluate
  dynamics = factory.scoped_configurable_fn()
  assert type(dynamics).__name__ == 'GaussianRSSM'
  assert (dynamics.deter, dynamics.hidden, dynamics.stoch) == (600, 600, 32)
  assert dynamics.min_std == 0.1


@pytest.mark.parametrize('binding,slot', [
    ('WorldModel.dynamics = @dynamics.GaussianRSSM()', 'WorldModel.dynamics'),
    ('WorldModel.encoder = @encoders.DreamerEncoder()', 'WorldModel.encoder'),
])
def test_a_slot_bound_with_parentheses_is_refused(binding, slot):
  # The old form (an instance built by gin) is a ConfigError that says how to fix it.
  config.load([REPO / 'pipelines' / 'atari_dreamerv2.gin', REPO / 'pipelines' / 'debug.gin'],
              [binding])
  env = envs.make('fake:discrete')
  try:
    with pytest.raises(ConfigError, match='bound without parentheses') as refused:
      gin.get_configurable(WorldModel)(env.obs_space, env.act_space)
  finally:
    env.close()
  assert f'{slot} must be a factory' in str(refused.value)


def test_misspelled_scope_is_reported(tmp_path):
  gin.clear_config()
  config.load([REPO / 'pipelines' / 'cartpole_dreamerv2.gin', REPO / 'pipelines' / 'debug.gin'],
              ['actr/heads.MLPHead.units = 8'], finalize=False)
  pipeline = gin.get_configurable(Pipeline)(logdir=tmp_path)
  env = envs.make(pipeline.task)
  build_agent(pipeline, env)
  env.close()
  assert 'actr/heads.MLPHead.units' in config.unused_bindings()
