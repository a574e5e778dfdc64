"""The registry mechanism: one decorator, interface checks, unique names, gin refs."""

import gin
import pytest

import dreamkit
from dreamkit import envs
from dreamkit import registry
from dreamkit.errors import ConfigError
from dreamkit.outputs import Output


class _Sink(Output):
  """A sink for the tests."""

  def __init__(self, logdir, level=1):
    self.logdir = logdir
    self.level = level

  def write(self, step, metrics):
    pass


@pytest.fixture(scope='module')
def registered_sink():
  return dreamkit.register('outputs', name='TestRegistrySink')(_Sink)


def test_every_kind_has_a_registry_with_builtins():
  registries = registry.load_builtins()
  assert set(registries) == {
      'envs', 'encoders', 'dynamics', 'heads', 'replays', 'objectives', 'explorers',
      'outputs'}
  for kind, reg in registries.items():
    assert reg.names(), f'no built-in {kind}'


def test_exploration_is_its_own_registry():
  explorers = registry.get_registry('explorers')
  assert explorers.names(builtin_only=True) == ['Greedy', 'Plan2Explore', 'Random']
  objectives = registry.get_registry('objectives')
  assert not set(explorers.names()) & set(objectives.names())


def test_build_calls_the_factory_with_the_runtime_args(registered_sink):
  gin.parse_config(['outputs.TestRegistrySink.level = 3'])
  factory = registry.get_registry('outputs').configured('TestRegistrySink')
  sink = registry.get_registry('outputs').build(factory, 'Pipeline.outputs', '/tmp/x')
  assert isinstance(sink, registered_sink)
  assert (sink.logdir, sink.level) == ('/tmp/x', 3)


@pytest.mark.parametrize('bound', ['instance', None, 'not callable'])
def test_build_refuses_what_is_not_a_factory(registered_sink, bound):
  # What gin gives for `@outputs.TestRegistrySink()` (parentheses): an instance.
  factory = registered_sink('/tmp/x') if bound == 'instance' else bound
  with pytest.raises(ConfigError, match='bound without parentheses') as refused:
    registry.get_registry('outputs').build(factory, 'Pipeline.outputs', '/tmp/x')
  assert '@outputs.<Name>' in str(refused.value)


def test_build_refuses_a_factory_of_another_kind():
  with pytest.raises(ConfigError, match=r'built .* which is not an? Output: bind a '
                     r'component of the `outputs` registry'):
    registry.get_registry('outputs').build(lambda logdir: object(), 'Pipeline.outputs', '/x')
  # A class of another kind is refused before it is called.
  with pytest.raises(ConfigError, match=r'Pipeline.outputs is bound to dict, which is not '
                     r'an? Output: bind a component of the `outputs` registry'):
    registry.get_registry('outputs').build(dict, 'Pipeline.outputs', '/x')


def test_registered_component_is_a_gin_reference(registered_sink):
  gin.parse_config(['outputs.TestRegistrySink.level = 3'])
  build = registry.get_registry('outputs').configured('TestRegistrySink')
  sink = build('/tmp/x')
  assert isinstance(sink, registered_sink) and sink.level == 3


def test_wrong_interface_is_rejected():
  class NotASink:
    pass
  with pytest.raises(TypeError, match='must subclass'):
    dreamkit.register('outputs')(NotASink)


def test_missing_required_method_is_rejected():
  class Half(Output):
    pass
  with pytest.raises(TypeError, match='does not implement write'):
    dreamkit.register('outputs')(Half)


def test_taken_name_is_rejected(registered_sink):
  class Other(_Sink):
    pass
  with pytest.raises(ValueError, match='is taken'):
    dreamkit.register('outputs', name='TestRegistrySink')(Other)
  assert registry.get_registry('outputs').get('TestRegistrySink') is registered_sink


def test_unknown_name_lists_closest():
  with pytest.raises(ConfigError, match=r"Did you mean: JSONL"):
    registry.get_registry('outputs').get('JSONl')


def test_unknown_kind():
  with pytest.raises(ConfigError, match='Available: .*encoders'):
    registry.get_registry('encoder')


def test_registering_after_parse_is_an_error():
  gin.finalize()

  class Late(_Sink):
    pass
  with pytest.raises(ConfigError, match='Load plugins before parsing'):
    dreamkit.register('outputs', name='LateSink')(Late)


def test_components_page_lists_builtins_only(registered_sink):
  page = registry.markdown()
  assert 'outputs.TestRegistrySink' not in page
  assert 'outputs.JSONL' in page


def test_duplicate_env_prefix_is_rejected():
  class ShadowGym(envs.Env):
    """An env that claims the built-in gym prefix."""
    prefix = 'gym'

    def reset(self):
      pass

    def step(self, action):
      pass

  with pytest.raises(ValueError, match=r"prefix 'gym' is taken by envs\.Gym "
                     r"\(dreamkit\.envs\.gym\.Gym\)") as caught:
    dreamkit.register('envs')(ShadowGym)
  assert 'ShadowGym' in str(caught.value)
  assert 'ShadowGym' not in envs.registry
  assert envs.prefixes()['gym'] == 'Gym'
