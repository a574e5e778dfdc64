"""The `dreamkit` command line: run, config, components, plot.

User errors (a missing file, a gin mistake, an unknown component, a broken plugin)
print one message and exit with code 2; `--debug` shows the traceback instead.
"""

import functools
import inspect
import os
import re
import sys

import click

import dreamkit
from dreamkit.errors import UserError

USER_ERROR_EXIT = 2


def _handle_errors(fn):
  """Turns UserError (and gin's required-value error) into message + exit 2."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    debug = click.get_current_context().find_root().params.get('debug', False)
    try:
      return fn(*args, **kwargs)
    except UserError as e:
      if debug:
        raise
      click.echo(f'Error: {one_line(e)}', err=True)
      sys.exit(USER_ERROR_EXIT)
    except RuntimeError as e:
      if 'Required bindings for' not in str(e) or debug:
        raise
      from dreamkit import config
      click.echo(f'Error: {config.explain(e)}', err=True)
      sys.exit(USER_ERROR_EXIT)

  return wrapper


def one_line(error):
  """The message on one line; gin's "In call to configurable 'X'" notes become a path."""
  lines = str(error).splitlines()
  calls = re.findall(r"In call to configurable '([\w.]+)'", str(error))
  message = ' '.join(
      line.strip() for line in lines if not line.strip().startswith('In call to'))
  if calls:
    message += f" (building {' <- '.join(calls)})"
  return message


_PIPELINES = click.argument(
    'pipelines', nargs=-1, required=True, type=click.Path(dir_okay=False))
_BINDINGS = click.option(
    '-b', '--binding', 'bindings', multiple=True, metavar='BINDING',
    help="A gin binding applied after the files, e.g. -b 'Pipeline.steps = 1e5'.")
_PLUGINS = click.option(
    '--plugin', 'plugins', multiple=True, metavar='PATH', type=click.Path(dir_okay=False),
    help='A Python file that registers components; loaded before parsing. Repeatable.')
_TASK = click.option(
    '--task', default=None, metavar='TASK',
    help='The environment: atari:pong, dmc:walker_walk, gym:CartPole-v1, ...')
_STEPS = click.option(
    '--steps', default=None, type=float, metavar='N', help='Agent-step budget.')


def _run_bindings(bindings, task, steps):
  """Command-line shortcuts become ordinary bindings, applied last."""
  bindings = list(bindings)
  if task is not None:
    bindings.append(f'Pipeline.task = {task!r}')
  if steps is not None:
    bindings.append(f'Pipeline.steps = {int(steps)}')
  return bindings


@click.group(context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(dreamkit.__version__, prog_name='dreamkit')
@click.option('--debug', is_flag=True, help='Show tracebacks for user errors.')
def cli(debug):
  """dreamkit: DreamerV2-family world-model RL assembled from gin components."""
  del debug  # Read by _handle_errors through the click context.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@cli.command()
@_PIPELINES
@_BINDINGS
@_PLUGINS
@_TASK
@_STEPS
@click.option('--logdir', default=None, type=click.Path(file_okay=False),
              help='Where the run writes; an existing logdir resumes. '
                   'Default: ./logdir/<task>-<time>.')
@_handle_errors
def run(pipelines, bindings, plugins, task, steps, logdir):
  """Train: parse PIPELINES (later files override earlier ones) and run."""
  from dreamkit import config
  from dreamkit.runner import pipeline
  loaded = config.load(pipelines, _run_bindings(bindings, task, steps), plugins)
  # Passed only when given, so a `Pipeline.logdir` binding can set it too.
  where = {'logdir': logdir} if logdir else {}
  pipeline.Pipeline(loaded=loaded, **where).run()


@cli.command(name='config')
@_PIPELINES
@_BINDINGS
@_PLUGINS
@_TASK
@_STEPS
@_handle_errors
def config_command(pipelines, bindings, plugins, task, steps):
  """Print the resolved configuration of PIPELINES without running."""
  from dreamkit import config
  config.load(pipelines, _run_bindings(bindings, task, steps), plugins)
  click.echo(config.resolved_str())


@cli.command()
@click.argument('kind', required=False)
@_PLUGINS
@click.option('--markdown', is_flag=True,
              help='Print the reference page docs/components.md is generated from.')
@_handle_errors
def components(kind, plugins, markdown):
  """List registered components of KIND (all kinds by default)."""
  from dreamkit import plugins as plugins_lib
  from dreamkit import registry
  plugins_lib.load(plugins)
  plugins_lib.load_entry_points()
  registries = registry.load_builtins()
  kinds = [kind] if kind else list(registries)
  if markdown:
    click.echo(registry.markdown(kinds), nl=False)
    return
  for name in kinds:
    reg = registry.get_registry(name)
    click.echo(f'{name}:')
    for entry in reg.entries():
      click.echo(f'  {entry.gin_name:<28} {entry.description}')
      params = ', '.join(_format_parameter(p, d) for p, d in entry.parameters)
      if params:
        click.echo(f'      ({params})')
    if not reg.entries():
      click.echo('  (none)')


def _format_parameter(name, default):
  if default is inspect.Parameter.empty:
    return name
  return f'{name}={default!r}'


@cli.command()
@click.argument('logdirs', nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option('--key', default='eval_return', show_default=True, help='Metric to plot.')
@click.option('--x', 'x_key', default='step', show_default=True, help='Metric on the x axis.')
@click.option('--smooth', default=0, show_default=True, type=int,
              help='Moving-average window in rows (0: none).')
@click.option('-o', '--output', default='curves.png', show_default=True,
              type=click.Path(dir_okay=False), help='The PNG to write.')
@_handle_errors
def plot(logdirs, key, x_key, smooth, output):
  """Plot KEY against steps from each LOGDIR's metrics.jsonl into a PNG."""
  from dreamkit.outputs import plot as plot_lib
  path = plot_lib.plot(list(logdirs), key=key, x=x_key, output=output, smooth=smooth)
  click.echo(f'Wrote {path}')


def main():
  cli(prog_name='dreamkit')  # pylint: disable=no-value-for-parameter


if __name__ == '__main__':
  main()
