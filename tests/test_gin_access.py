"""What dreamkit reads of gin-config beyond its public API, pinned for gin 0.5.0.

dreamkit/gin_access.py is the one place that reads gin's internals (what was bound,
what was read, every registered selector) and its error messages. Each test here
produces the real thing with gin (a parse, a call, an error) and checks what
gin_access makes of it, so an upgrade of gin that changes one of them fails here, by
name, rather than as a wrong message or a missed unused binding somewhere else.
"""

import importlib.metadata
from pathlib import Path

import gin
import pytest

from dreamkit import config
from dreamkit import gin_access
from dreamkit import registry
from dreamkit.gin_access import ErrorFacts

REPO = Path(__file__).resolve().parents[1]
PARSE_ERROR = "Couldn't parse statement, expected ':' or '='."


@pytest.fixture(scope='module', autouse=True)
def builtins():
  """Every built-in configurable registered, as after `config.load`."""
  return registry.load_builtins()


def raised(kind, fn):
  """The exception of type `kind` that `fn` raises (gin's own, unchanged)."""
  with pytest.raises(kind) as caught:
    fn()
  return caught.value


def parse_file(path, text):
  path.write_text(text)
  return lambda: gin.parse_config_file(str(path))


def test_the_installed_gin_is_the_pinned_one():
  assert importlib.metadata.version('gin-config') == gin_access.GIN_VERSION == '0.5.0'
  assert f"'gin-config=={gin_access.GIN_VERSION}'" in (REPO / 'setup.py').read_text()


# --- bound(), read(), selectors() ---------------------------------------------------

BINDINGS = """
SIZE = 3
heads.MLPHead.layers = 2
reward/heads.MLPHead.units = %SIZE
Pipeline.steps = 10
WorldModel.dynamics = @dynamics.GaussianRSSM
"""


def test_bound_lists_every_parsed_binding_with_its_scope_and_full_selector():
  assert gin_access.bound() == []
  gin.parse_config(BINDINGS)
  bound = {(scope, selector): params for scope, selector, params in gin_access.bound()}
  assert set(bound) == {
      ('SIZE', 'gin.macro'), ('', 'dreamkit.heads.MLPHead'),
      ('reward', 'dreamkit.heads.MLPHead'), ('', 'dreamkit.runner.pipeline.Pipeline'),
      ('', 'dreamkit.WorldModel')}
  # A macro is a binding of gin.macro in the macro's name as scope.
  assert bound[('SIZE', 'gin.macro')] == {'value': 3}
  assert bound[('', 'dreamkit.heads.MLPHead')] == {'layers': 2}
  assert bound[('', 'dreamkit.runner.pipeline.Pipeline')] == {'steps': 10}
  # Values as parsed: references are not evaluated, a factory stays a factory.
  (units,) = bound[('reward', 'dreamkit.heads.MLPHead')].values()
  assert repr(units) == '%SIZE'
  dynamics = bound[('', 'dreamkit.WorldModel')]['dynamics']
  assert isinstance(dynamics, gin.config.ConfigurableReference) and not dynamics.evaluate
  # A later binding replaces the earlier one; the result is a copy, not gin's own.
  gin.parse_config('heads.MLPHead.layers = 5')
  layers = [params for scope, selector, params in gin_access.bound()
            if (scope, selector) == ('', 'dreamkit.heads.MLPHead')]
  assert layers == [{'layers': 5}]
  layers[0]['layers'] = 7
  assert gin.query_parameter('heads.MLPHead.layers') == 5
  gin.clear_config()
  assert gin_access.bound() == []


def test_read_records_each_call_under_the_scope_it_was_made_in():
  gin.parse_config(BINDINGS)
  assert gin_access.read() == {}  # Parsing reads nothing.
  head = gin.get_configurable('heads.MLPHead')
  with gin.config_scope('reward'):
    head(())
  read = gin_access.read()
  # The root binding `layers` is read through the scoped call, and recorded under the
  # call's scope: config._was_read relies on it.
  assert {'layers', 'units'} <= read[('reward', 'dreamkit.heads.MLPHead')]
  assert ('', 'dreamkit.heads.MLPHead') not in read
  assert read[('SIZE', 'gin.macro')] == {'value'}  # The macro, read through `units`.
  assert ('', 'dreamkit.WorldModel') not in read  # Bound, never called.
  assert all(isinstance(params, set) for params in read.values())
  head((), units=4)  # An unscoped call is recorded apart.
  assert 'layers' in gin_access.read()[('', 'dreamkit.heads.MLPHead')]
  gin.clear_config()
  assert gin_access.read() == {}


def test_selectors_are_the_full_selectors_of_every_configurable(builtins):
  selectors = gin_access.selectors()
  assert selectors == sorted(set(selectors))
  # The roots, and every registry entry as dreamkit.<kind>.<Name> (what config's
  # short_name and _kind parse).
  assert {'dreamkit.runner.pipeline.Pipeline', 'dreamkit.WorldModel',
          'dreamkit.ActorCritic', 'dreamkit.Agent', 'gin.macro'} <= set(selectors)
  for kind, reg in builtins.items():
    for name in reg.names():
      assert f'dreamkit.{kind}.{name}' in selectors, (kind, name)


# --- error_facts(): one real gin error of each kind ------------------------------------

def test_unknown_configurable_in_a_file(tmp_path):
  path = tmp_path / 'x.gin'
  error = raised(ValueError, parse_file(
      path, 'Pipeline.steps = 10\nWorldModel.encoder = @encoders.DreamerEncodr\n'))
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_configurable', name='encoders.DreamerEncodr', file=str(path), line=2)


def test_unknown_configurable_in_a_binding():
  # A reference written with parentheses: the name comes without them.
  binding = 'WorldModel.dynamics = @dynamics.GausianRSSM()'
  error = raised(ValueError, lambda: gin.parse_config(binding))
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_configurable', name='dynamics.GausianRSSM', binding=binding)
  # Not a reference: the configurable a binding names, in a scope.
  binding = 'reward/heads.MLPHaed.units = 3'
  error = raised(ValueError, lambda: gin.parse_config(binding))
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_configurable', name='heads.MLPHaed', binding=binding)


def test_unknown_parameter_in_a_file_and_in_a_binding(tmp_path):
  path = tmp_path / 'y.gin'
  error = raised(ValueError, parse_file(path, '# steps\nPipeline.stepz = 10\n'))
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_parameter', name='Pipeline', parameter='stepz', file=str(path), line=2)
  error = raised(ValueError, lambda: gin.parse_config('heads.MLPHead.unitz = 3'))
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_parameter', name='heads.MLPHead', parameter='unitz',
      binding='heads.MLPHead.unitz = 3')


def test_an_error_in_an_included_file_names_that_file(tmp_path):
  inner = tmp_path / 'inner.gin'
  inner.write_text('# inner\n\nPipeline.stepz = 3\n')
  outer = tmp_path / 'outer.gin'
  error = raised(ValueError, parse_file(outer, f"Pipeline.steps = 1\ninclude '{inner}'\n"))
  # gin lists the include chain innermost first: the facts are the innermost place.
  assert gin_access.error_facts(error) == ErrorFacts(
      'unknown_parameter', name='Pipeline', parameter='stepz', file=str(inner), line=3)


def test_missing_include_file(tmp_path):
  path = tmp_path / 'includes.gin'
  error = raised(OSError, parse_file(
      path, "Pipeline.steps = 10\ninclude 'nowhere/missing.gin'\n"))
  assert gin_access.error_facts(error) == ErrorFacts(
      'missing_file', path='nowhere/missing.gin', file=str(path), line=2)


def test_required_binding(tmp_path):
  from dreamkit.runner.pipeline import Pipeline  # pylint: disable=import-outside-toplevel
  # Pipeline.task defaults to gin.REQUIRED: gin refuses the call before making it.
  error = raised(RuntimeError, lambda: Pipeline(None, [], None, None, None, None,
                                                logdir=tmp_path))
  assert gin_access.error_facts(error) == ErrorFacts(
      'required', name='Pipeline', parameters=('task',))
  # Several at once, as a caller's gin.REQUIRED: in the order of the signature.
  head = gin.get_configurable('heads.MLPHead')
  error = raised(RuntimeError, lambda: head((), units=gin.REQUIRED, layers=gin.REQUIRED))
  assert gin_access.error_facts(error) == ErrorFacts(
      'required', name='MLPHead', parameters=('layers', 'units'))


def test_syntax_error_in_a_file_has_its_file_line_and_text(tmp_path):
  path = tmp_path / 'broken.gin'
  error = raised(SyntaxError, parse_file(
      path, '# fine\nPipeline.steps = 10\nPipeline.prefill == 3\n'))
  assert gin_access.error_facts(error) == ErrorFacts(
      'syntax', message=PARSE_ERROR, file=str(path), line=3, text='Pipeline.prefill == 3')


def test_syntax_error_in_a_binding_has_no_file():
  error = raised(SyntaxError, lambda: gin.parse_config('Pipeline.prefill == 3'))
  # No file name: config names the -b binding instead.
  assert gin_access.error_facts(error) == ErrorFacts(
      'syntax', message=PARSE_ERROR, file='', line=1, text='Pipeline.prefill == 3')


def test_any_other_gin_error_keeps_its_first_line_and_location():
  binding = 'import dk_test_no_such_gin_module'
  error = raised(ModuleNotFoundError, lambda: gin.parse_config(binding))
  assert gin_access.error_facts(error) == ErrorFacts(
      'other', message="No module named 'dk_test_no_such_gin_module'", binding=binding)


def test_a_factory_called_without_its_arguments():
  # `@objectives.Both()` on a slot: gin calls Both with no arguments.
  from dreamkit.behavior import objectives  # pylint: disable=unused-import
  both = gin.get_configurable('dreamkit.objectives.Both')
  error = raised(TypeError, both)
  assert gin_access.error_facts(error) == ErrorFacts(
      'called_without_arguments', name='Both',
      parameters=('act_space',))
  # Named as a binding writes it, with its kind.
  assert config.explain(error).startswith('@objectives.Both() was called without')


# --- reference(), statements(), config_str() --------------------------------------------

def test_reference_tells_factories_calls_and_macros_from_literals():
  gin.parse_config(BINDINGS + 'WorldModel.encoder = @encoders.DreamerEncoder()\n'
                   'Pipeline.outputs = [@outputs.JSONL]\n')
  bound = {(scope, selector): params for scope, selector, params in gin_access.bound()}
  world_model = bound[('', 'dreamkit.WorldModel')]
  assert gin_access.reference(world_model['dynamics']) == gin_access.Reference(
      'factory', (), 'dreamkit.dynamics.GaussianRSSM')
  assert gin_access.reference(world_model['encoder']) == gin_access.Reference(
      'call', (), 'dreamkit.encoders.DreamerEncoder')
  (units,) = bound[('reward', 'dreamkit.heads.MLPHead')].values()
  assert gin_access.reference(units) == gin_access.Reference('macro', (), 'SIZE')
  (jsonl,) = bound[('', 'dreamkit.runner.pipeline.Pipeline')]['outputs']
  assert gin_access.reference(jsonl).selector == 'dreamkit.outputs.JSONL'
  assert gin_access.reference(10) is None and gin_access.reference('@x') is None
  gin.parse_config('Pipeline.world_model = @wm/WorldModel')
  value = gin.query_parameter('Pipeline.world_model')
  assert gin_access.reference(value) == gin_access.Reference(
      'factory', ('wm',), 'dreamkit.WorldModel')


def test_statements_have_their_lines_in_order():
  text = ("import dreamkit.envs\n# a comment\nSIZE = 3\ninclude 'other.gin'\n\n"
          "reward/heads.MLPHead.units = %SIZE\nPipeline.outputs = [\n    @outputs.JSONL]\n"
          "inner/SCOPED = 1\nPipeline.steps = 10\n")
  Statement = gin_access.Statement
  assert gin_access.statements(text) == [
      Statement('import', 1, path='dreamkit.envs'),
      Statement('macro', 3, selector='SIZE'),
      Statement('include', 4, path='other.gin'),
      Statement('binding', 6, 'reward', 'heads.MLPHead', 'units'),
      Statement('binding', 7, '', 'Pipeline', 'outputs'),
      Statement('macro', 9, selector='inner/SCOPED'),
      Statement('binding', 10, '', 'Pipeline', 'steps')]
  # Unknown names are not looked up: only the places are wanted.
  assert gin_access.statements('nothing.here = @no.such.Thing') == [
      Statement('binding', 1, '', 'nothing', 'here')]
  with pytest.raises(SyntaxError):
    gin_access.statements('Pipeline.steps == 3')


def test_config_str_imports_without_gins_aliases(tmp_path):
  path = tmp_path / 'p.gin'
  path.write_text('import dreamkit.envs\nimport dreamkit.replay\nPipeline.steps = 10\n')
  gin.parse_config_file(str(path))
  # gin's own text aliases every module after the first that shares 'dreamkit'.
  assert 'import dreamkit.replay as dreamkit2' in gin.config_str()
  text = gin_access.config_str()
  assert 'import dreamkit.envs\nimport dreamkit.replay\n' in text
  assert ' as ' not in text and 'Pipeline.steps = 10' in text
  gin.clear_config()
  gin.parse_config(text)  # The text without aliases parses back.
  assert gin.query_parameter('Pipeline.steps') == 10
