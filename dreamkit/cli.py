"""The `dreamkit` command line: run, eval, dream, config, components, plot.

User errors (a missing file, a gin mistake, an unknown component, a broken plugin)
print one message and exit with code 2; `--traceback` shows the traceback instead.
"""

import contextlib
import functools
import inspect
import math
import os
import re
import sys

import click

import dreamkit
from dreamkit.errors import UserError

USER_ERROR_EXIT = 2
_TRACEBACK_KEY = 'dreamkit.traceback'


def _set_traceback(ctx, param, value):
  del param
  if value:
    ctx.meta[_TRACEBACK_KEY] = True  # ctx.meta is shared by the group and its commands.


def _renamed_debug(ctx, param, value):
  del ctx
  if value:
    raise click.BadParameter(
        'it is called --traceback now (show tracebacks of user errors); for a quick '
        'debug run, add pipelines/debug.gin after your pipeline.', param=param)


def _traceback_options(command):
  """--traceback, and the old --debug (hidden) that says it was renamed."""
  command = click.option('--debug', is_flag=True, expose_value=False, hidden=True,
                         callback=_renamed_debug)(command)
  return click.option('--traceback', is_flag=True, expose_value=False,
                      callback=_set_traceback,
                      help='Show tracebacks for user errors.')(command)


# On the group and on every command: `dreamkit --traceback config x.gin` and
# `dreamkit config x.gin --traceback` both work.
_TRACEBACK = _traceback_options

_VERBOSE_KEY = 'dreamkit.verbose'
# Set by main(): the process is the CLI's own, so it may filter file descriptor 2.
_OWNS_STDERR = False


def _set_verbose(ctx, param, value):
  del param
  if value:
    ctx.meta[_VERBOSE_KEY] = True


# On the group and on every command, as --traceback.
_VERBOSE = click.option(
    '--verbose', is_flag=True, expose_value=False, callback=_set_verbose,
    help="Show everything TensorFlow prints (C++ start-up log lines, known-harmless "
         "warnings), which is filtered by default.")


def _handle_errors(fn):
  """Turns UserError (and gin's required-value error) into message + exit 2."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    show_traceback = click.get_current_context().meta.get(_TRACEBACK_KEY, False)
    try:
      return fn(*args, **kwargs)
    except UserError as e:
      if show_traceback:
        raise
      click.echo(f'Error: {one_line(e)}', err=True)
      sys.exit(USER_ERROR_EXIT)
    except (RuntimeError, TypeError) as e:
      # gin's errors for a config mistake found while building: a required value not
      # set, or a slot's factory bound with parentheses (called without arguments).
      from dreamkit import gin_access
      if show_traceback or gin_access.error_facts(e).kind not in (
          'required', 'called_without_arguments'):
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


def _import_tensorflow_quietly():
  """Imports TensorFlow without its known-harmless start-up noise (`--verbose`: all).

  TensorFlow's C++ runtime writes lines to file descriptor 2 that
  TF_CPP_MIN_LOG_LEVEL does not silence (absl's 'All log messages before
  absl::InitializeLog()', 'Could not find cuda drivers'), and expected ones as
  errors on a CPU machine ('failed call to cuInit', 'oneDNN supports DT_BOOL only
  on platforms with AVX-512'), some long after the import. When the CLI owns the
  process (`main()`), descriptor 2 goes through `dreamkit.quiet`'s filter, which
  drops exactly those lines: real errors still show. Called from Python (tests with
  click's CliRunner), only the import is silenced, with descriptor 2 on /dev/null.
  The CLI does this, never the library, which must not touch the process's
  descriptors.
  """
  if 'tensorflow' in sys.modules:
    return
  context = click.get_current_context(silent=True)
  if context is not None and context.meta.get(_VERBOSE_KEY):
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return
  from dreamkit import quiet
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # C++ INFO and WARNING records.
  quiet.ignore_harmless_warnings()
  if _OWNS_STDERR:
    quiet.filter_stderr()
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'w') as devnull:
      os.dup2(devnull.fileno(), 2)
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)


class _Group(click.Group):
  """A click group whose usage errors (a bad --steps, an unknown option) are one line.

  click prints the usage and a hint on lines of their own before its 'Error:' line.
  """

  def make_context(self, *args, **kwargs):  # Parses the group's own options.
    with _one_line_usage_errors():
      return super().make_context(*args, **kwargs)

  def invoke(self, ctx):  # Parses the command's options, then runs it.
    with _one_line_usage_errors():
      return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors():
  try:
    yield
  except click.UsageError as e:
    if e.ctx is None or isinstance(e, click.exceptions.NoArgsIsHelpError):
      raise  # No context to name, or plain `dreamkit`: click prints the help.
    message = e.format_message().rstrip('.')
    error = click.UsageError(f"{message}. See '{e.ctx.command_path} --help'.")
    error.exit_code = e.exit_code
    raise error from None


def _check_steps(ctx, param, value):
  del ctx, param
  if value is None:
    return None
  if not math.isfinite(value) or value < 1:
    raise click.BadParameter(
        f'{value:g} is not a step budget: pass a whole number of agent steps >= 1, '
        'e.g. --steps 1e5.')
  return int(value)


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
    '--steps', default=None, type=float, metavar='N', callback=_check_steps,
    help='Agent-step budget.')
_SEED = click.option(
    '--seed', default=None, type=int, metavar='N',
    help='Seeds TF, NumPy and the envs (Pipeline.seed); part of the default logdir name.')


def _run_bindings(bindings, task, steps, seed=None):
  """Command-line shortcuts become ordinary bindings, applied last."""
  bindings = list(bindings)
  if task is not None:
    bindings.append(f'Pipeline.task = {task!r}')
  if steps is not None:
    bindings.append(f'Pipeline.steps = {steps}')
  if seed is not None:
    bindings.append(f'Pipeline.seed = {seed}')
  return bindings


def _load(pipelines, bindings, plugins, task, steps, seed=None):
  """config.load for `run` and `config`, with TensorFlow imported quietly first."""
  from dreamkit import config
  config.check_files(pipelines)  # A missing file should not wait for TensorFlow.
  _import_tensorflow_quietly()
  loaded = config.load(pipelines, _run_bindings(bindings, task, steps, seed), plugins)
  if task is not None:  # After the plugins, whose envs add prefixes.
    from dreamkit import envs
    envs.parse_task(task, source='--task')
  return loaded


@click.group(cls=_Group, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(dreamkit.__version__, prog_name='dreamkit')
@_VERBOSE
@_TRACEBACK
def cli():
  """dreamkit: DreamerV2-family world-model RL assembled from gin components."""


@cli.command()
@click.argument('pipelines', nargs=-1, required=True, type=click.Path())
@_BINDINGS
@_PLUGINS
@_TASK
@_STEPS
@_SEED
@click.option('--logdir', default=None, type=click.Path(file_okay=False),
              help='Where the run writes; an existing logdir resumes. '
                   'Default: ./logdir/<task>-seed<seed>-<time>.')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def run(pipelines, bindings, plugins, task, steps, seed, logdir):
  """Train: parse PIPELINES (later files override earlier ones) and run.

  Or resume a run by its logdir alone: `dreamkit run LOGDIR` parses the run's
  recorded config.gin with its recorded plugins; -b, --steps and the other options
  still apply on top.
  """
  if any(os.path.isdir(path) for path in pipelines):
    from dreamkit.runner import record
    if len(pipelines) > 1 or logdir:
      raise UserError(
          'dreamkit run LOGDIR resumes the run in that folder by itself: pass no '
          '.gin file and no --logdir beside it.')
    record.check(pipelines[0])  # Not a logdir: one line before TensorFlow starts.
    _import_tensorflow_quietly()
    loaded = record.load(pipelines[0], _run_bindings(bindings, task, steps, seed), plugins)
    from dreamkit.runner import pipeline
    with _located(loaded):
      pipeline.Pipeline(loaded=loaded, logdir=pipelines[0]).run()
    return
  loaded = _load(pipelines, bindings, plugins, task, steps, seed)
  from dreamkit.runner import pipeline
  # Passed only when given, so a `Pipeline.logdir` binding can set it too.
  where = {'logdir': logdir} if logdir else {}
  with _located(loaded):
    pipeline.Pipeline(loaded=loaded, **where).run()


@contextlib.contextmanager
def _located(loaded):
  """A UserError (or gin's error for a slot bound with parentheses) raised while
  building names where the value it is about was bound: file:line or the -b binding."""
  from dreamkit import config
  from dreamkit import gin_access
  from dreamkit.runner import check
  try:
    yield
  except UserError as e:
    raise check.located(e, loaded) from e
  except (RuntimeError, TypeError) as e:
    if gin_access.error_facts(e).kind not in ('required', 'called_without_arguments'):
      raise
    raise check.located(config.explain(e), loaded) from e


@cli.command(name='eval')
@click.argument('logdir', type=click.Path(file_okay=False))
@click.option('--checkpoint', default='latest', show_default=True, metavar='latest|STEP',
              help='The checkpoint to evaluate: the latest, or the agent step of a kept one.')
@click.option('--episodes', default=None, type=int, metavar='N',
              help="Episodes to play.  [default: the run's Pipeline.eval_eps]")
@click.option('--envs', default=None, type=int, metavar='K',
              help="Env copies in lock step, in parallel worker processes.  "
                   "[default: the run's Pipeline.eval_envs]")
@click.option('--task', default=None, metavar='TASK',
              help='Evaluate on another task (transfer); env options go in -b, e.g. '
                   "-b 'envs.Atari.sticky = False'.")
@click.option('--video', default=None, type=click.Path(dir_okay=False),
              help='Write the first episode as a .gif or .mp4.')
@click.option('--mode', default='eval', show_default=True,
              type=click.Choice(['eval', 'train']),
              help="eval: the actor's mode, as the runner evaluates; train: sampled actions.")
@click.option('--out', default=None, type=click.Path(dir_okay=False),
              help='The JSONL file for the rows.  [default: LOGDIR/eval/<step>.jsonl]')
@_BINDINGS
@_PLUGINS
@_VERBOSE
@_TRACEBACK
@_handle_errors
def eval_command(logdir, checkpoint, episodes, envs, task, video, mode, out, bindings,
                 plugins):
  """Play a trained run's checkpoint and print its returns.

  The run is rebuilt from LOGDIR alone and its checkpoint restored read-only: no file
  of the run changes. With the run's own --episodes and --envs (the defaults), the
  mean return is the runner's own eval_return at that step. Atari adds the
  gamer-normalised score and the paper's DreamerV2 score at the same frames.
  """
  from dreamkit import evaluate
  from dreamkit.runner import record
  record.check(logdir)  # Not a logdir: one line before TensorFlow starts.
  _import_tensorflow_quietly()
  result = evaluate.evaluate(logdir, checkpoint, episodes, envs, task, video, mode, out,
                             bindings, plugins)
  click.echo(evaluate.table(result))


@cli.command()
@click.argument('logdir', type=click.Path(file_okay=False))
@click.option('--context', default=5, show_default=True, type=int,
              help='Real steps fed to the posterior first.')
@click.option('--horizon', default=45, show_default=True, type=int,
              help='Steps imagined after them.')
@click.option('--samples', default=6, show_default=True, type=int,
              help='Sequences from the replay, side by side.')
@click.option('--actions', default='actor', show_default=True,
              type=click.Choice(['actor', 'real']),
              help="Who acts in imagination: the actor, or the recorded actions (the "
                   "model alone, open loop).")
@click.option('--checkpoint', default='latest', show_default=True, metavar='latest|STEP')
@click.option('--seed', default=0, show_default=True, type=int,
              help='Seeds the choice of sequences and the imagination.')
@click.option('-o', '--output', default='dream.gif', show_default=True,
              type=click.Path(dir_okay=False), help='The .gif or .mp4 to write.')
@_BINDINGS
@_PLUGINS
@_VERBOSE
@_TRACEBACK
@_handle_errors
def dream(logdir, context, horizon, samples, actions, checkpoint, seed, output,
          bindings, plugins):
  """Show what the world model imagines from real sequences of the run's replay.

  Writes OUTPUT (truth | model | difference per sample), a PNG contact sheet, a plot
  of imagined against real rewards and discounts, and the per-step errors as JSON.
  """
  from dreamkit import dream as dream_lib
  from dreamkit.runner import record
  record.check(logdir)
  _import_tensorflow_quietly()
  report = dream_lib.dream(logdir, context, horizon, samples, output, checkpoint,
                           actions, seed, bindings, plugins)
  click.echo(report.text())


@cli.command(name='config')
@_PIPELINES
@_BINDINGS
@_PLUGINS
@_TASK
@_STEPS
@_SEED
@click.option('--all', 'show_all', is_flag=True,
              help='Every parameter of every component the run builds, bound or '
                   'default, each with where its value comes from (file:line, -b, '
                   'default).')
@click.option('--check', 'check_only', is_flag=True,
              help='Build what the run builds (its env and its agent, from the '
                   'spaces) without running or writing anything: one OK line, or '
                   'the first bad value and where it was set.')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def config_command(pipelines, bindings, plugins, task, steps, seed, show_all, check_only):
  """Print the resolved configuration of PIPELINES without running.

  Without --all: the bindings, as gin text (what the run saves as config.gin).
  With --check: build the run's env and agent, print one OK line (exit 0) or the
  error (exit 2).
  """
  from dreamkit import config
  loaded = _load(pipelines, bindings, plugins, task, steps, seed)
  if check_only:
    from dreamkit.runner import check
    from dreamkit.runner import pipeline
    with _located(loaded):
      click.echo(check.check(pipeline.Pipeline(loaded=loaded)))
    return
  if show_all:
    from dreamkit import settings
    click.echo(settings.text(loaded.files, loaded.bindings), nl=False)
    return
  click.echo(config.resolved_str())


@cli.command()
@click.argument('name', required=False)
@_PLUGINS
@click.option('--markdown', is_flag=True,
              help='Print the reference page docs/components.md is generated from '
                   '(built-in components only).')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def components(name, plugins, markdown):
  """List the components and their parameters (defaults); NAME narrows it.

  NAME is a kind (core, encoders, heads, ...) or one component (Pipeline, WorldModel,
  encoders.DreamerEncoder), shown in full. `core` holds the Pipeline root and the
  classes it assembles (WorldModel, ActorCritic, Agent), which gin names bare.
  """
  _import_tensorflow_quietly()
  from dreamkit import plugins as plugins_lib
  from dreamkit import registry
  plugins_lib.load(plugins)
  plugins_lib.load_entry_points()
  kinds = [registry.CORE, *registry.load_builtins()]
  if markdown:
    click.echo(registry.markdown([name] if name else None), nl=False)
    return
  if name is None or name in kinds:
    for kind in [name] if name else kinds:
      _list_kind(kind)
    return
  _show_component(_find_component(name, kinds))


def _kind_entries(kind):
  from dreamkit import registry
  if kind == registry.CORE:
    return registry.core_entries()
  return registry.get_registry(kind).entries()


def _list_kind(kind):
  from dreamkit import registry
  click.echo(f'{kind}:')
  entries = _kind_entries(kind)
  for entry in entries:
    click.echo(f'  {entry.gin_name:<28} {entry.description}')
    params = ', '.join(registry.format_parameter(*p) for p in entry.parameters)
    if params:
      click.echo(f'      ({params})')
  if not entries:
    click.echo('  (none)')


def _find_component(name, kinds):
  """The entry NAME names (`encoders.DreamerEncoder`, or unique `DreamerEncoder`)."""
  import difflib
  from dreamkit.errors import ConfigError
  entries = [entry for kind in kinds for entry in _kind_entries(kind)]
  found = [entry for entry in entries if name in (entry.gin_name, entry.name)]
  if len(found) == 1:
    return found[0]
  if found:
    raise ConfigError(
        f"'{name}' names {len(found)} components: "
        f"{', '.join(entry.gin_name for entry in found)}. Pass one of those names.")
  close = difflib.get_close_matches(
      name, kinds + [entry.gin_name for entry in entries], n=3, cutoff=0.6)
  hint = f" Did you mean: {', '.join(close)}?" if close else ''
  raise ConfigError(
      f"Unknown kind or component '{name}'.{hint} Kinds: {', '.join(kinds)}; "
      '`dreamkit components` lists every component.')


def _show_component(entry):
  """One component in full: its docstring, then each parameter and its default."""
  from dreamkit import registry
  cls = entry.cls
  click.echo(f'{entry.gin_name}  ({entry.kind}; {cls.__module__}.{cls.__qualname__})')
  click.echo()
  click.echo(inspect.getdoc(cls) or '(no description)')
  click.echo()
  click.echo(f'Parameters (bind as {entry.gin_name}.<parameter> = value; a bare name '
             'has no default: a pipeline binds it, or its owner passes it):')
  for parameter in entry.parameters:
    click.echo(f'  {registry.format_parameter(*parameter)}')


@cli.command()
@click.argument('logdirs', nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option('--key', 'keys', multiple=True, default=('eval_return',), show_default=True,
              help='Metric to plot; repeat it for one panel per metric.')
@click.option('--x', 'x_key', default=None,
              help='Metric on the x axis, such as frames or wall_time.  '
                   '[default: step; frames with --compare]')
@click.option('--smooth', default=0, show_default=True, type=int,
              help='Moving-average window in rows (0: none).')
@click.option('--compare', metavar='FILE', type=click.Path(dir_okay=False),
              help='Reference scores drawn on the return panels: a CSV (or .csv.gz) '
                   'of task, method, seed, frames, return, such as the published '
                   'DreamerV2 scores, or their JSON list of {task, method, seed, xs, ys}.')
@click.option('--task', 'reference_task', metavar='TASK',
              help='The task of --compare to draw, such as atari_pong; needed when '
                   'FILE holds several.')
@click.option('--paper', is_flag=True,
              help="Add the published DreamerV2 curve of the runs' task (Atari or DM "
                   'Control, read from their config.gin) to the panels of returns.')
@click.option('--title', help='Title above the plot.  [default: the key]')
@click.option('-o', '--output', default='curves.png', show_default=True,
              type=click.Path(dir_okay=False), help='The PNG to write.')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def plot(logdirs, keys, x_key, smooth, compare, reference_task, paper, title, output):
  """Plot each --key from every LOGDIR's metrics.jsonl into a PNG, one panel per key.

  A marker shows every logged point. --paper adds the paper's curve for the runs'
  task, --compare FILE --task T the curves of a scores file (each: mean over seeds,
  min-max shaded, against frames) to the panels of returns.
  """
  from dreamkit.outputs import plot as plot_lib
  path = plot_lib.plot(
      list(logdirs), key=list(keys), x=x_key, output=output, smooth=smooth,
      compare=compare, task=reference_task, title=title, paper=paper)
  click.echo(f'Wrote {path}')


@cli.command()
@click.argument('sweep_file', metavar='SWEEP.gin', type=click.Path(dir_okay=False))
@click.argument('files', nargs=-1, metavar='[MORE.gin ...]', type=click.Path(dir_okay=False))
@_BINDINGS
@_PLUGINS
@click.option('--logdir', default=None, type=click.Path(file_okay=False),
              help='The sweep directory: trials write <logdir>/<task>/<variant>/seed<k>/; '
                   'running the same sweep on it again skips finished trials and resumes '
                   'the others.  [default: ./logdir/<sweep file name>]')
@click.option('--address', default=None, metavar='HOST:PORT',
              help='Join the Ray cluster there (`ray start --head` prints it); '
                   'default: a local Ray started inside this command.')
@click.option('--cpus-per-trial', default=1.0, show_default=True, type=float,
              help='CPUs Ray reserves for each trial.')
@click.option('--gpus-per-trial', default=0.0, show_default=True, type=float,
              help='GPUs Ray reserves for each trial (fractions share one).')
@click.option('--max-concurrent', default=None, type=int, metavar='K',
              help='Run at most K trials at once.  [default: as many as the resources allow]')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def sweep(sweep_file, files, bindings, plugins, logdir, address, cpus_per_trial,
          gpus_per_trial, max_concurrent):
  """Run a sweep: every task x variant x seed of SWEEP.gin, each an ordinary run, on Ray.

  Later files and -b bindings apply to every trial (pipelines/debug.gin makes any
  sweep tiny). Every trial's config is checked before the first one starts. Exit code
  1 if a trial failed (its <logdir>/run.log says why).
  """
  from dreamkit import config
  config.check_files([sweep_file, *files])
  _import_tensorflow_quietly()
  from dreamkit.sweeps import driver
  result = driver.sweep(
      sweep_file, list(files), list(bindings), list(plugins), logdir=logdir,
      address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
      max_concurrent=max_concurrent)
  stopped = f'{len(result.stopped)} stopped early, ' if result.stopped else ''
  click.echo(f'Sweep {result.sweepdir}: {len(result.finished)} of {len(result.trials)} '
             f'trials finished ({len(result.skipped)} before this run), {stopped}'
             f'{len(result.failed)} failed.')
  if result.failed:
    click.echo(f"Failed: {', '.join(result.failed)} (see run.log in their logdirs).",
               err=True)
    sys.exit(1)
  click.echo(f'Compare them: dreamkit compare {result.sweepdir}')


@cli.command()
@click.argument('sweepdir', type=click.Path(file_okay=False))
@click.option('-o', '--output', default=None, type=click.Path(dir_okay=False),
              help='The PNG to write.  [default: <sweepdir>/compare.png]')
@click.option('--key', default='eval_return', show_default=True,
              help='The metric compared (final and best value per trial).')
@click.option('--x', 'x_key', default='frames', show_default=True,
              help='The x axis of the curves: frames, step or wall_time.')
@click.option('--reps', default=2000, show_default=True, type=int,
              help='Bootstrap resamples for the confidence intervals.')
@_VERBOSE
@_TRACEBACK
@_handle_errors
def compare(sweepdir, output, key, x_key, reps):
  """Compare the variants of a sweep: a table per task x variant, aggregates, a PNG.

  Prints Markdown (final and best KEY: mean, 95% bootstrap CI, seeds done; IQM and
  median across tasks with stratified bootstrap CIs) and writes <sweepdir>/compare.csv,
  compare_aggregate.csv and the PNG (one panel per task, the aggregate panel).
  """
  from dreamkit import compare as compare_lib
  report = compare_lib.compare(sweepdir, key=key, x=x_key, output=output, reps=reps)
  click.echo(report.markdown, nl=False)
  for path in report.files:
    click.echo(f'Wrote {path}')


def main():
  global _OWNS_STDERR  # pylint: disable=global-statement
  _OWNS_STDERR = True
  cli(prog_name='dreamkit')  # pylint: disable=no-value-for-parameter


if __name__ == '__main__':
  main()
