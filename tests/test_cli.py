"""The command line: help, components, config, plugins and every user error."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gin
import pytest
from click.testing import CliRunner

from dreamkit import cli
from dreamkit import config
from dreamkit.errors import ConfigError

DEFAULTS = Path(__file__).resolve().parents[1] / 'pipelines' / 'dreamerv2_defaults.gin'
PLUGIN = textwrap.dedent('''
    """A plugin that lives outside the repository."""
    import dreamkit
    from dreamkit.networks import Encoder

    @dreamkit.register('encoders')
    class OutsideEncoder(Encoder):
      """Sums every input key into one feature (a test plugin)."""

      def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

      def call(self, obs):
        import tensorflow as tf
        return self.scale * tf.concat([tf.reshape(v, tf.concat([tf.shape(v)[:2], [-1]], 0))
                                       for v in obs.values()], -1)
''')


def invoke(*args):
  result = CliRunner().invoke(cli.cli, list(args))
  return result


def assert_user_error(result, *fragments):
  assert result.exit_code == 2, (result.exit_code, result.output)
  message = result.stderr.strip()
  assert message.startswith('Error: '), message
  assert len(message.splitlines()) == 1, message
  assert 'Traceback' not in result.output
  for fragment in fragments:
    assert fragment in message, (fragment, message)


@pytest.fixture
def pipeline(tmp_path):
  """A user's pipeline: the shared defaults bind every slot, it binds the task."""
  path = tmp_path / 'p.gin'
  path.write_text(
      f"include '{DEFAULTS}'\nPipeline.task = 'fake:discrete'\nPipeline.steps = 10\n")
  return path


def test_help_on_every_command():
  assert invoke('--help').exit_code == 0
  for command in ('run', 'config', 'components', 'plot'):
    result = invoke(command, '--help')
    assert result.exit_code == 0 and 'Usage' in result.output, command
  result = invoke('--version')
  assert result.exit_code == 0 and 'version' in result.output


def test_console_script_help_and_components():
  # What a user runs right after the install command.
  result = subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', '--help'], capture_output=True, text=True)
  assert result.returncode == 0 and 'components' in result.stdout
  result = subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', 'components'], capture_output=True,
      text=True, timeout=240)
  assert result.returncode == 0, result.stderr
  for kind in ('envs:', 'encoders:', 'dynamics:', 'heads:', 'replays:', 'objectives:',
               'explorers:', 'outputs:'):
    assert kind in result.stdout


def test_components_lists_parameters_and_descriptions():
  result = invoke('components', 'encoders')
  assert result.exit_code == 0
  assert 'encoders.DreamerEncoder' in result.output
  # Defaults live in the constructors and are listed with them; the sizes the
  # decoder shares have none (pipelines bind them through macros): a bare name.
  assert 'cnn_kernels=(4, 4, 4, 4)' in result.output
  assert '(cnn_keys, mlp_keys, cnn_depth, mlp_layers, mlp_units, ' in result.output


def test_outside_plugin_is_listed_and_selectable(tmp_path, pipeline):
  plugin = tmp_path / 'outside' / 'my_encoder.py'
  plugin.parent.mkdir()
  plugin.write_text(PLUGIN)
  result = invoke('components', 'encoders', '--plugin', str(plugin))
  assert result.exit_code == 0, result.output
  assert 'encoders.OutsideEncoder' in result.output and 'scale=1.0' in result.output
  gin.clear_config()
  result = invoke('config', str(pipeline), '--plugin', str(plugin),
                  '-b', 'WorldModel.encoder = @encoders.OutsideEncoder',
                  '-b', 'encoders.OutsideEncoder.scale = 2.0')
  assert result.exit_code == 0, result.output
  assert 'OutsideEncoder.scale = 2.0' in result.output


def test_config_prints_resolved_values_later_wins(tmp_path, pipeline):
  override = tmp_path / 'more.gin'
  override.write_text('Pipeline.steps = 20\n')
  result = invoke('config', str(pipeline), str(override), '-b', 'Pipeline.prefill = 7',
                  '--task', 'gym:CartPole-v1')
  assert result.exit_code == 0, result.output
  assert 'Pipeline.steps = 20' in result.output
  assert 'Pipeline.prefill = 7' in result.output
  assert "Pipeline.task = 'gym:CartPole-v1'" in result.output


def test_missing_file():
  assert_user_error(invoke('config', 'no/such/pipeline.gin'), 'No such pipeline file',
                    'no/such/pipeline.gin')


def test_gin_syntax_error_names_file_and_line(tmp_path):
  path = tmp_path / 'broken.gin'
  path.write_text('# fine\nPipeline.steps = 10\nPipeline.prefill == 3\n')
  assert_user_error(invoke('config', str(path)), 'broken.gin', 'line 3')


def test_unclosed_bracket_names_file_and_line(tmp_path):
  path = tmp_path / 'open.gin'
  path.write_text('Pipeline.steps = 10\nPipeline.outputs = [\n')
  assert_user_error(invoke('config', str(path)), 'open.gin', 'line')


def test_unknown_component_lists_available_and_closest(pipeline):
  result = invoke('config', str(pipeline), '-b', 'WorldModel.dynamics = @dynamics.GausianRSSM')
  assert_user_error(result, "Unknown component 'dynamics.GausianRSSM'",
                    'Did you mean: dynamics.GaussianRSSM', 'Available dynamics:')


def test_unknown_component_in_file_names_line(tmp_path):
  path = tmp_path / 'x.gin'
  path.write_text("Pipeline.steps = 10\nWorldModel.encoder = @encoders.DreamerEncodr\n")
  assert_user_error(invoke('config', str(path)), 'x.gin, line 2',
                    'Did you mean: encoders.DreamerEncoder')


def test_misspelled_parameter(tmp_path):
  path = tmp_path / 'y.gin'
  path.write_text('Pipeline.stepz = 10\n')
  assert_user_error(invoke('config', str(path)), "has no parameter 'stepz'", 'y.gin, line 1',
                    'Did you mean: steps')


def test_required_value_not_set(tmp_path):
  path = tmp_path / 'z.gin'
  path.write_text('Pipeline.steps = 10\n')
  result = invoke('run', str(path), '--logdir', str(tmp_path / 'log'))
  assert_user_error(result, 'Required value not set: Pipeline.task', 'Pipeline.task = ...')


def test_plugin_that_fails_to_import_names_the_file(tmp_path, pipeline):
  plugin = tmp_path / 'broken_plugin.py'
  plugin.write_text('import dreamkit\n\nx = 1 / 0\n')
  result = invoke('config', str(pipeline), '--plugin', str(plugin))
  assert_user_error(result, 'broken_plugin.py', 'ZeroDivisionError', 'line 3')


def test_unknown_kind_for_components():
  assert_user_error(invoke('components', 'encoder'), 'Did you mean: encoders')


def test_traceback_shows_traceback():
  result = CliRunner().invoke(cli.cli, ['--traceback', 'config', 'no/such.gin'])
  assert isinstance(result.exception, ConfigError), result.output


def test_traceback_after_the_command(pipeline):
  result = invoke('config', 'no/such.gin', '--traceback')
  assert isinstance(result.exception, ConfigError), result.output
  result = invoke('run', str(pipeline), '-b', 'Pipeline.stepz = 1', '--traceback')
  assert isinstance(result.exception, ConfigError), result.output


@pytest.mark.parametrize('args', [['--debug', 'config', 'x.gin'], ['config', 'x.gin', '--debug']])
def test_old_debug_flag_names_its_new_name_and_the_debug_pipeline(args):
  # "debug" means pipelines/debug.gin only; the flag that shows tracebacks is --traceback.
  assert_user_error(invoke(*args), '--traceback', 'pipelines/debug.gin')
  assert '--debug' not in invoke('config', '--help').output


def test_misspelled_name_that_is_not_kind_dot_name(tmp_path, pipeline):
  result = invoke('config', str(pipeline), '-b', 'WorldModl.kl_free = 1.0')
  assert_user_error(result, "Unknown component 'WorldModl'", 'Did you mean: WorldModel',
                    "binding -b 'WorldModl.kl_free = 1.0'")
  path = tmp_path / 'singular.gin'
  path.write_text('Pipeline.steps = 10\nWorldModel.encoder = @encoder.DreamerEncoder\n')
  assert_user_error(invoke('config', str(path)), "Unknown component 'encoder.DreamerEncoder'",
                    'singular.gin, line 2', 'Did you mean: encoders.DreamerEncoder')


def test_gin_import_of_a_module_that_raises(tmp_path, monkeypatch):
  (tmp_path / 'dk_test_raising_module.py').write_text('import os\n\nx = 1 / 0\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  path = tmp_path / 'imports.gin'
  path.write_text('Pipeline.steps = 10\nimport dk_test_raising_module\n')
  assert_user_error(invoke('config', str(path)), "Module 'dk_test_raising_module'",
                    'imports.gin, line 2', 'ZeroDivisionError: division by zero',
                    'dk_test_raising_module.py, line 3')


def test_gin_import_of_a_missing_module(tmp_path):
  path = tmp_path / 'missing_import.gin'
  path.write_text('import dk_test_no_such_module\n')
  assert_user_error(invoke('config', str(path)), 'missing_import.gin, line 1',
                    "No module named 'dk_test_no_such_module'", 'Install the package')


def test_syntax_error_in_a_binding_names_the_binding(pipeline):
  result = invoke('config', str(pipeline), '-b', 'Pipeline.prefill == 3')
  assert_user_error(result, "Syntax error in binding -b 'Pipeline.prefill == 3'")
  assert 'None' not in result.stderr


@pytest.mark.parametrize('steps', ['nan', 'inf', '-inf', '0', '-5'])
def test_steps_must_be_a_finite_count(pipeline, steps):
  result = invoke('run', str(pipeline), '--steps', steps)
  assert_user_error(result, "Invalid value for '--steps'", '>= 1')


def test_steps_shortcut_becomes_an_int_binding(pipeline):
  result = invoke('config', str(pipeline), '--steps', '1e3')
  assert result.exit_code == 0, result.output
  assert 'Pipeline.steps = 1000' in result.output


def test_task_prefix_is_checked(pipeline):
  result = invoke('config', str(pipeline), '--task', 'gymm:CartPole-v1')
  assert_user_error(result, "Unknown env prefix 'gymm' in --task 'gymm:CartPole-v1'",
                    "Did you mean 'gym:CartPole-v1'",
                    'Available prefixes: atari, dmc, fake, gym')


def _console(*args, cwd):
  # As a user runs it: no TF_CPP_MIN_LOG_LEVEL set (it does not silence TF's C++
  # start-up lines anyway).
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run([sys.executable, '-m', 'dreamkit.cli', *args], capture_output=True,
                        text=True, cwd=cwd, env=env, timeout=240)


def assert_one_stderr_line(result, fragment):
  assert result.returncode == 2, (result.returncode, result.stderr)
  assert len(result.stderr.splitlines()) == 1, result.stderr
  assert result.stderr.startswith('Error') and fragment in result.stderr, result.stderr


def test_console_error_is_one_line_for_a_missing_file(tmp_path):
  assert_one_stderr_line(_console('config', 'missing.gin', cwd=tmp_path), 'missing.gin')


def test_console_error_is_one_line_with_tensorflow_loaded(tmp_path, pipeline):
  # TensorFlow's C++ start-up lines would come before the message.
  result = _console('config', str(pipeline), '-b', 'WorldModl.kl_free = 1.0', cwd=tmp_path)
  assert_one_stderr_line(result, 'Did you mean: WorldModel')


def test_unused_binding_is_reported(pipeline):
  config.load([str(pipeline)], ['WorldModel.kl_free = 1.0'])
  from dreamkit.runner.pipeline import Pipeline
  Pipeline(logdir=str(pipeline.parent / 'log'))  # Reads the Pipeline bindings only.
  unused = config.unused_bindings()
  assert 'WorldModel.kl_free' in unused
  assert not [name for name in unused if name.startswith('Pipeline.')]


def test_logdir_comes_from_the_flag_or_from_a_binding(tmp_path, pipeline, monkeypatch):
  from dreamkit.runner.pipeline import Pipeline
  seen = []
  monkeypatch.setattr(Pipeline, 'run', lambda self: seen.append(self.logdir))
  assert invoke('run', str(pipeline), '--logdir', str(tmp_path / 'flag')).exit_code == 0
  gin.clear_config()
  result = invoke('run', str(pipeline), '-b', f"Pipeline.logdir = '{tmp_path / 'bound'}'")
  assert result.exit_code == 0, result.output
  assert seen == [tmp_path / 'flag', tmp_path / 'bound']


# --- Discoverable settings: components, config --all -------------------------------------

def test_components_lists_the_core_classes_with_their_defaults():
  result = invoke('components')
  assert result.exit_code == 0, result.output
  core = result.output.split('core:\n', 1)[1].split('\nenvs:', 1)[0]
  names = [line.split()[0] for line in core.splitlines() if not line.startswith('      ')]
  assert names[:4] == ['Pipeline', 'WorldModel', 'ActorCritic', 'Agent']
  assert 'task=%gin.REQUIRED' in core and 'seed=0' in core and 'kl_free=0.0' in core
  assert invoke('components', 'core').output.startswith('core:\n  Pipeline ')


@pytest.mark.parametrize('name, fragments', [
    ('Pipeline', ['Pipeline  (core; dreamkit.runner.pipeline.Pipeline)',
                  'The settings of one training run', '\n  seed=0\n', '\n  replay\n']),
    ('WorldModel', ['WorldModel  (core;', '\n  kl_free=0.0\n']),
    ('encoders.DreamerEncoder', ['encoders.DreamerEncoder  (encoders;',
                                 '\n  cnn_kernels=(4, 4, 4, 4)\n']),
    ('MLPHead', ['heads.MLPHead  (heads;', "\n  dist='mse'\n"]),  # Unique without kind.
])
def test_components_shows_one_component_in_full(name, fragments):
  result = invoke('components', name)
  assert result.exit_code == 0, result.output
  for fragment in fragments:
    assert fragment in result.output, (fragment, result.output)


def test_components_unknown_name_suggests_the_closest():
  assert_user_error(invoke('components', 'Pipelin'), "Unknown kind or component 'Pipelin'",
                    'Did you mean: Pipeline', 'Kinds: core, envs')
  assert_user_error(invoke('components', 'heads.MLPHed'), 'Did you mean: heads.MLPHead')


def test_config_header_imports_without_aliases(pipeline):
  result = invoke('config', str(pipeline))
  assert result.exit_code == 0, result.output
  imports = [line for line in result.output.splitlines() if line.startswith('import ')]
  assert 'import dreamkit.envs' in imports and 'import dreamkit.runner.pipeline' in imports
  assert not [line for line in imports if ' as ' in line], imports


def _sourced(output):
  """{'name = value': source} of `config --all` output."""
  rows = {}
  for line in output.splitlines():
    if line and not line.startswith('#'):
      binding, source = line.split('  # ', 1)
      rows[binding.rstrip()] = source
  return rows


def test_config_all_shows_every_parameter_and_where_it_came_from(tmp_path, pipeline):
  override = tmp_path / 'more.gin'
  override.write_text('# more\nPipeline.steps = 20\nMLP_UNITS = 8\n')
  result = invoke('config', '--all', str(pipeline), str(override),
                  '-b', 'critic/heads.MLPHead.units = 7', '--seed', '3',
                  '--task', 'fake:continuous')
  assert result.exit_code == 0, result.output
  rows = _sourced(result.output)
  # A binding with quotes is shown quoted as a shell would take it.
  assert rows["Pipeline.task = 'fake:continuous'"] == '''-b "Pipeline.task = 'fake:continuous'"'''
  defaults = str(DEFAULTS.relative_to(Path.cwd())) if DEFAULTS.is_relative_to(
      Path.cwd()) else str(DEFAULTS)
  # Bound in a file (the later file wins), on the command line, or a default.
  assert rows['Pipeline.steps = 20'] == f'{override}:2'
  assert rows['Pipeline.seed = 3'] == "-b 'Pipeline.seed = 3'"
  assert rows['Pipeline.batch_size = 16'] == 'default'
  assert rows['Pipeline.world_model = @WorldModel'].startswith(f'{defaults}:')
  # A macro: its value, where the macro was set and where the binding reads it.
  assert rows['actor/heads.MLPHead.units = 8'].startswith(f'%MLP_UNITS = {override}:3; read at '
                                                          f'{defaults}:')
  # A scoped binding wins over the root one for that scope only.
  assert rows['critic/heads.MLPHead.units = 7'] == "-b 'critic/heads.MLPHead.units = 7'"
  assert rows['reward/heads.MLPHead.init_std = 0.0'] == 'default'
  # Every component the run builds, reached through its slot; the env from the task.
  for header in ('# Pipeline\n', '# Pipeline.world_model.encoder: encoders.DreamerEncoder\n',
                 '# Pipeline.actor_critic.critic: critic/heads.MLPHead\n',
                 '# Pipeline.outputs: outputs.JSONL\n', '# Pipeline.task: envs.Fake\n'):
    assert header in result.output, header
  assert 'passed by its owner: shape, dist (\'binary\')' in result.output
  # A component bound but not built (the swapped-out RSSM) is not listed.
  assert 'dynamics.CategoricalRSSM.deter' in result.output
  assert 'GaussianRSSM' not in result.output


def test_config_all_follows_a_swapped_component(pipeline):
  result = invoke('config', '--all', str(pipeline),
                  '-b', 'Pipeline.explorer = @explorers.Plan2Explore')
  assert result.exit_code == 0, result.output
  assert '# Pipeline.explorer.behavior: ActorCritic\n' in result.output
  assert '# Pipeline.explorer.head: expl_head/heads.MLPHead\n' in result.output


# --- run --seed ----------------------------------------------------------------------------

def test_seed_sets_the_pipeline_seed_and_names_the_default_logdir(pipeline, monkeypatch):
  from dreamkit.runner.pipeline import Pipeline
  seen = []
  monkeypatch.setattr(Pipeline, 'run', lambda self: seen.append((self.seed, self.logdir)))
  result = invoke('run', str(pipeline), '--seed', '3')
  assert result.exit_code == 0, result.output
  ((seed, logdir),) = seen
  assert seed == 3
  assert logdir.parent == Path('logdir') and logdir.name.startswith('fake_discrete-seed3-')
  assert_user_error(invoke('run', str(pipeline), '--seed', 'x'), "'--seed'", 'x')


# --- Small errors ---------------------------------------------------------------------------

def test_python_file_given_as_pipeline_suggests_plugin(tmp_path, pipeline):
  plugin = tmp_path / 'my_encoder.py'
  plugin.write_text(PLUGIN)
  result = invoke('run', str(pipeline), str(plugin))
  assert_user_error(result, 'my_encoder.py is Python, not a .gin pipeline',
                    f'did you mean --plugin {plugin}?')
  assert 'Syntax' not in result.stderr
