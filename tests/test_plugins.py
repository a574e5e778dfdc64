"""Plugins: the three loading routes, and the shipped example encoder training."""

import sys
import textwrap
from pathlib import Path

import gin
import gymnasium as gym
import numpy as np
import pytest

from dreamkit import config
from dreamkit import plugins
from dreamkit import registry
from dreamkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

OUTPUT_PLUGIN = '''
import dreamkit
from dreamkit.outputs.base import Output

@dreamkit.register('outputs')
class {name}(Output):
  """A sink registered by a test plugin."""

  def __init__(self, logdir):
    self.logdir = logdir

  def write(self, step, metrics):
    pass
'''


def test_file_plugin_loads_once_under_a_stable_name(tmp_path):
  path = tmp_path / 'file_route.py'
  path.write_text(OUTPUT_PLUGIN.format(name='FileRouteSink'))
  assert plugins.load([path]) == [str(path.resolve())]
  assert plugins.load([path]) == [str(path.resolve())]  # Second load is a no-op.
  assert 'dreamkit_plugins.file_route' in sys.modules
  assert 'FileRouteSink' in registry.get_registry('outputs')


def test_a_file_passed_twice_is_listed_once(tmp_path, monkeypatch):
  path = tmp_path / 'twice.py'
  path.write_text(OUTPUT_PLUGIN.format(name='TwiceSink'))
  monkeypatch.chdir(tmp_path)
  expected = [str(path.resolve())]
  assert plugins.load([path, 'twice.py', path]) == expected
  pipeline = tmp_path / 'p.gin'
  pipeline.write_text('Pipeline.steps = 10\n')
  # What a run writes to plugins.json and hands its workers.
  assert config.load([pipeline], plugins=[path, path]).plugins == expected


def test_two_files_with_one_name_are_refused(tmp_path):
  first, second = tmp_path / 'a' / 'same.py', tmp_path / 'b' / 'same.py'
  for index, path in enumerate((first, second)):
    path.parent.mkdir()
    path.write_text(OUTPUT_PLUGIN.format(name=f'SameSink{index}'))
  plugins.load([first])
  with pytest.raises(ConfigError, match='share the name same'):
    plugins.load([second])


def test_missing_plugin_file(tmp_path):
  with pytest.raises(ConfigError, match='Plugin file not found'):
    plugins.load([tmp_path / 'nope.py'])


def test_entry_point_route(tmp_path, monkeypatch):
  package = tmp_path / 'ep_pkg'
  package.mkdir()
  (package / '__init__.py').write_text('')
  (package / 'components.py').write_text(OUTPUT_PLUGIN.format(name='EntryPointSink'))
  dist = tmp_path / 'ep_pkg-1.0.dist-info'
  dist.mkdir()
  (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: ep-pkg\nVersion: 1.0\n')
  (dist / 'entry_points.txt').write_text(
      '[dreamkit.plugins]\nep_components = ep_pkg.components\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  assert 'ep_components' in plugins.load_entry_points()
  assert 'EntryPointSink' in registry.get_registry('outputs')


def test_broken_entry_point_names_it(tmp_path, monkeypatch):
  dist = tmp_path / 'bad_pkg-1.0.dist-info'
  dist.mkdir()
  (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: bad-pkg\nVersion: 1.0\n')
  (dist / 'entry_points.txt').write_text('[dreamkit.plugins]\nbroken = no_such_pkg_xyz\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(ConfigError, match="'broken = no_such_pkg_xyz'"):
    plugins.load_entry_points()


def test_gin_import_route(tmp_path, monkeypatch):
  (tmp_path / 'gin_route_components.py').write_text(
      OUTPUT_PLUGIN.format(name='GinImportSink'))
  monkeypatch.syspath_prepend(str(tmp_path))
  pipeline = tmp_path / 'p.gin'
  pipeline.write_text(textwrap.dedent('''
      import gin_route_components
      Pipeline.outputs = [@outputs.GinImportSink]
  '''))
  config.load([pipeline])
  assert 'GinImportSink' in registry.get_registry('outputs')
  assert 'GinImportSink' in gin.config_str()


# The example encoder in a tiny world model: every slot bound to a factory, without
# parentheses, and the sizes the pipelines' macros bind given here.
EXAMPLE_GIN = [
    'WorldModel.encoder = @encoders.ImpalaEncoder',
    'encoders.ImpalaEncoder.depths = (4, 8)',
    'encoders.ImpalaEncoder.embed_size = 16',
    'WorldModel.dynamics = @dynamics.CategoricalRSSM',
    'dynamics.CategoricalRSSM.deter = 16', 'dynamics.CategoricalRSSM.hidden = 16',
    'dynamics.CategoricalRSSM.stoch = 4', 'dynamics.CategoricalRSSM.discrete = 4',
    'WorldModel.decoder = @heads.DreamerDecoder',
    "heads.DreamerDecoder.cnn_keys = 'image'", "heads.DreamerDecoder.mlp_keys = '$^'",
    'heads.DreamerDecoder.cnn_depth = 2', 'heads.DreamerDecoder.mlp_layers = 1',
    'heads.DreamerDecoder.mlp_units = 16',
    'WorldModel.reward_head = @heads.MLPHead',
    'WorldModel.discount_head = @heads.MLPHead',
    'heads.MLPHead.layers = 1', 'heads.MLPHead.units = 16',
    'WorldModel.discount = 0.99',
]
EXAMPLE_SPACES = {'image': gym.spaces.Box(0, 255, (64, 64, 1), np.uint8),
                  'reward': gym.spaces.Box(-np.inf, np.inf, (), np.float32)}


def test_example_encoder_bound_with_parentheses_is_refused():
  """A plugin's component follows the one binding rule: a factory, no parentheses."""
  from dreamkit.world_model import WorldModel
  plugins.load([REPO / 'plugins' / 'impala_encoder.py'])
  registry.load_builtins()
  gin.parse_config(EXAMPLE_GIN + ['WorldModel.encoder = @encoders.ImpalaEncoder()'])
  with pytest.raises(ConfigError, match=(
      r'WorldModel.encoder must be a factory of Encoder, bound without parentheses '
      r'\(e.g. WorldModel.encoder = @encoders.<Name>\); got .*ImpalaEncoder')):
    gin.get_configurable(WorldModel)(EXAMPLE_SPACES, gym.spaces.Discrete(3))


def test_example_encoder_trains_every_variable():
  """The shipped example: gin selects it, and every variable it has gets a gradient."""
  import tensorflow as tf
  from dreamkit.world_model import WorldModel
  plugins.load([REPO / 'plugins' / 'impala_encoder.py'])
  registry.load_builtins()
  gin.parse_config(EXAMPLE_GIN)
  model = gin.get_configurable(WorldModel)(EXAMPLE_SPACES, gym.spaces.Discrete(3))
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 255, (2, 3, 64, 64, 1)).astype(np.uint8),
           'reward': rng.normal(size=(2, 3)).astype(np.float32),
           'action': np.eye(3, dtype=np.float32)[rng.integers(0, 3, (2, 3))],
           'is_first': np.array([[True, False, False]] * 2),
           'is_last': np.zeros((2, 3), bool), 'is_terminal': np.zeros((2, 3), bool)}
  assert type(model.encoder).__name__ == 'ImpalaEncoder'
  with tf.GradientTape() as tape:
    loss, _, _, _ = model.compute_loss(model.preprocess(batch))
  variables = model.encoder.trainable_variables
  assert len(variables) == 2 * 2 + 2 * 2 * 4 + 2  # stem convs, residual convs, dense
  grads = tape.gradient(loss, variables)
  assert all(g is not None and np.any(g.numpy()) for g in grads)
  _, _, metrics = model.train(batch)
  assert np.isfinite(metrics['model_loss'].numpy())
