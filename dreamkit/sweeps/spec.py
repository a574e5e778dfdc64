"""A sweep is a gin file: pipelines, tasks, seeds and named variants of bindings.

    # pipelines/sweeps/cartpole_latents.gin
    Sweep.pipelines = ['../cartpole_dreamerv2.gin']   # relative to this file
    Sweep.tasks = ['gym:CartPole-v1']
    Sweep.seeds = 3
    Sweep.variants = {
        'categorical': [],                                       # the baseline
        'gaussian': ['WorldModel.dynamics = @dynamics.GaussianRSSM'],
    }

`plan(...)` turns it (with the command line's extra files and bindings) into one
`Trial` per task x variant x seed, each an ordinary `dreamkit run` with its own logdir
`<sweepdir>/<task>/<variant>/seed<k>/`, and `check(...)` parses every config before the
first trial starts. A trial's config is, in order (later wins): the sweep's pipelines,
the command line's extra files, its -b bindings, the task, the variant's bindings and
the seed; the variant comes after the shared settings so that nothing shared (such as
pipelines/debug.gin) can undo the change a variant is about.
"""

import dataclasses
import json
import math
import re
from pathlib import Path

import gin

from dreamkit import config as config_lib
from dreamkit import gin_access
from dreamkit.errors import ConfigError, UserError

MANIFEST = 'sweep.json'  # In the sweep directory: the plan, for `dreamkit compare`.
BASELINE = 'baseline'     # The variant name of a sweep that names none.


@gin.configurable(module='dreamkit')
class Sweep:
  """The settings of a sweep; the one gin root of a sweep file.

  Args:
    pipelines: the .gin files every trial runs, paths relative to the sweep file.
    tasks: the tasks to run, e.g. ['atari:pong', 'atari:breakout']; empty: the one
      task the pipelines bind.
    seeds: how many seeds (0, 1, ..., seeds - 1), or a list of seeds.
    variants: {name: [binding, ...]}: one variant per name, each a list of gin
      bindings applied on top of the pipelines; a variant with no bindings is the
      baseline. Empty: one variant, 'baseline'.
    metric / mode: what a scheduler or search optimises ('eval_return', 'max').
    scheduler: a Tune trial scheduler factory, e.g. @tune.ASHAScheduler (`read` calls
      it with no arguments; bind its options in the sweep file, `time_attr = 'step'`).
    search: a Tune search algorithm factory, e.g. @tune.OptunaSearch, which samples
      `space` `samples` times (one task, one seed: each sample is one trial).
    space: {binding name: (distribution, arguments...)}: what `search` samples, with
      distributions uniform, loguniform, quniform, randint, choice, e.g.
      {'ActorCritic.actor_lr': ('loguniform', 1e-5, 1e-3)}.
    samples: how many configurations `search` tries.
    max_failures: how often Tune restarts a failed trial (it resumes from its
      checkpoint) before marking it failed.
  """

  def __init__(self, pipelines=gin.REQUIRED, tasks=(), seeds=1, variants=None,
               metric='eval_return', mode='max', scheduler=None, search=None,
               space=None, samples=1, max_failures=2):
    self.pipelines = list(pipelines)
    self.tasks = list(tasks)
    self.seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    self.variants = dict(variants) if variants else {BASELINE: []}
    self.metric, self.mode = metric, mode
    self.scheduler, self.search = scheduler, search
    self.space = dict(space or {})
    self.samples = int(samples)
    self.max_failures = int(max_failures)
    if not self.pipelines:
      raise ConfigError('Sweep.pipelines is empty: name the .gin files every trial runs.')
    if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
      raise ConfigError(f'Sweep.seeds must be a count >= 1 or a list of seeds >= 0, '
                        f'got {seeds!r}.')
    for name, bindings in self.variants.items():
      if not re.fullmatch(r'[A-Za-z0-9_.=+-]+', str(name)):
        raise ConfigError(f"Sweep.variants: '{name}' is not a usable variant name (it "
                          'names a folder): use letters, digits, _ . = + -.')
      if isinstance(bindings, str) or not all(isinstance(b, str) for b in bindings):
        raise ConfigError(f"Sweep.variants['{name}'] must be a list of binding strings, "
                          f"e.g. ['WorldModel.dynamics = @dynamics.GaussianRSSM'].")
    if mode not in ('max', 'min'):
      raise ConfigError(f"Sweep.mode must be 'max' or 'min', got {mode!r}.")
    if self.space and self.search is None:
      raise ConfigError('Sweep.space is set but Sweep.search is not: bind a search '
                        'algorithm, e.g. Sweep.search = @tune.OptunaSearch.')
    if self.search is not None:
      if not self.space:
        raise ConfigError('Sweep.search needs Sweep.space: the bindings to sample.')
      if len(self.tasks) > 1 or len(self.seeds) > 1 or len(self.variants) > 1:
        raise ConfigError('A search (Sweep.search) samples one task with one seed and no '
                          'variants: each sample is one trial. Use a grid for the rest.')


@dataclasses.dataclass
class Trial:
  """One run of a sweep: an ordinary `dreamkit run` of `files` and `bindings`."""
  task: str
  variant: str
  seed: int
  logdir: str      # Absolute.
  files: list      # Absolute paths.
  bindings: list
  plugins: list
  steps: int       # The run's step budget (Pipeline.steps), read when checked.
  variant_bindings: list = dataclasses.field(default_factory=list)  # Part of `bindings`.

  @property
  def name(self):
    return f'{self.task}/{self.variant}/seed{self.seed}'

  def command(self, executable):
    """The `dreamkit run` command line of this trial."""
    argv = [executable, '-m', 'dreamkit.cli', 'run', *self.files]
    for binding in self.bindings:
      argv += ['-b', binding]
    for plugin in self.plugins:
      argv += ['--plugin', plugin]
    return argv + ['--logdir', self.logdir]


def folder(task):
  """The folder name of a task: 'gym:CartPole-v1' -> 'gym_CartPole-v1'."""
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', str(task)).strip('_') or 'task'


def is_sweep_binding(binding):
  """Whether a command-line binding is about the sweep (`Sweep.seeds = 1`), not a run."""
  return bool(re.match(r'\s*(Sweep|tune\.\w+)\.\w+\s*=', binding))


def read(sweep_file, plugins=(), bindings=()):
  """The `Sweep` a sweep file binds, with `bindings` (`Sweep.seeds = 1`) applied after
  it (parsed alone; gin is cleared afterwards).

  A sweep file binds `Sweep.*` (and options of the Tune factories it names) only:
  settings of the runs belong in a pipeline file or in a variant.
  """
  path = Path(sweep_file)
  config_lib.check_files([path])
  _register_tune()
  gin.clear_config()
  try:
    config_lib.load([path], bindings, plugins, finalize=False)
    stray = sorted({
        config_lib.short_name(selector) for _, selector, _ in gin_access.bound()
        if not selector.endswith('.Sweep') and not selector.startswith('tune.')
        and not selector.startswith('gin.')})
    if stray:
      raise ConfigError(
          f"{path} is a sweep file: it binds Sweep (and the Tune factories it names), "
          f"not {', '.join(stray)}. Put run settings in a pipeline file or a variant's "
          'bindings.')
    try:
      sweep = Sweep()
    except (RuntimeError, TypeError) as error:
      if gin_access.error_facts(error).kind == 'required':
        raise ConfigError(f'{path} sets no Sweep.pipelines: name the .gin files every '
                          'trial runs, e.g. Sweep.pipelines = '
                          "['../cartpole_dreamerv2.gin'].") from None
      raise
    # Built while their bindings (`tune.ASHAScheduler.max_t`) are parsed.
    sweep.scheduler = _build(sweep.scheduler, 'Sweep.scheduler')
    sweep.search = _build(sweep.search, 'Sweep.search')
  finally:
    gin.clear_config()
  sweep.pipelines = [str((path.parent / p).resolve()) for p in sweep.pipelines]
  config_lib.check_files(sweep.pipelines)
  return sweep


def _build(factory, slot):
  """Calls a Tune factory of the sweep file; its mistakes are one-line ConfigErrors."""
  if factory is None:
    return None
  import optuna  # pylint: disable=import-outside-toplevel
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # Not a line per new study.
  try:
    return factory()
  except (TypeError, ValueError, ImportError, AssertionError) as error:
    message = ' '.join(str(error).split())
    raise ConfigError(f'{slot}: {message}') from None


def _register_tune():
  """Tune's schedulers and searchers as gin factories (`@tune.ASHAScheduler`)."""
  # pylint: disable=import-outside-toplevel
  from ray.tune import schedulers
  from ray.tune.search.basic_variant import BasicVariantGenerator
  from ray.tune.search.optuna import OptunaSearch
  wanted = {
      'ASHAScheduler': schedulers.ASHAScheduler,
      'MedianStoppingRule': schedulers.MedianStoppingRule,
      'HyperBandScheduler': schedulers.HyperBandScheduler,
      'FIFOScheduler': schedulers.FIFOScheduler,
      'OptunaSearch': OptunaSearch,
      'BasicVariantGenerator': BasicVariantGenerator,
  }
  for name, cls in wanted.items():
    if f'tune.{name}' not in _registered:
      gin.external_configurable(cls, name=name, module='tune')
      _registered.add(f'tune.{name}')


_registered = set()


def plan(sweep, sweepdir, files=(), bindings=(), plugins=()):
  """[Trial] for every task x variant x seed of `sweep` (grid sweeps)."""
  sweepdir = Path(sweepdir).resolve()
  files = [*sweep.pipelines, *[str(Path(f).resolve()) for f in files]]
  plugins = [str(Path(p).resolve()) for p in plugins]
  trials = []
  for task in sweep.tasks or [None]:
    for variant, variant_bindings in sweep.variants.items():
      for seed in sweep.seeds:
        task_binding = [f'Pipeline.task = {task!r}'] if task else []
        trials.append(Trial(
            task=task, variant=variant, seed=seed,
            logdir='', files=files, plugins=plugins, steps=0,
            bindings=[*bindings, *task_binding, *variant_bindings,
                      f'Pipeline.seed = {seed}'],
            variant_bindings=list(variant_bindings)))
  return trials


def check(trials, sweepdir):
  """Parses every trial's config and builds its `Pipeline` settings, before any runs.

  Fills in each trial's task (when the pipelines bind it), step budget and logdir.
  Raises UserError naming the variant (and task) whose config is refused.
  """
  from dreamkit import envs  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import pipeline  # pylint: disable=import-outside-toplevel
  sweepdir = Path(sweepdir).resolve()
  checked = {}
  for trial in trials:
    key = (trial.task, trial.variant)
    if key not in checked:
      where = f"Variant '{trial.variant}'" + (f' on {trial.task}' if trial.task else '')
      gin.clear_config()
      try:
        loaded = config_lib.load(trial.files, trial.bindings, trial.plugins)
        settings = pipeline.Pipeline(loaded=loaded, logdir=str(sweepdir / 'unused'))
        envs.parse_task(settings.task, source='Pipeline.task')
        checked[key] = settings.task, settings.steps
      except UserError as error:
        raise type(error)(f'{where}: {_variant_words(error, trial)}') from None
      except (RuntimeError, TypeError) as error:
        if gin_access.error_facts(error).kind not in ('required', 'called_without_arguments'):
          raise
        raise ConfigError(
            f'{where}: {_variant_words(config_lib.explain(error), trial)}') from None
      finally:
        gin.clear_config()
    task, trial.steps = checked[key]
    if trial.task is None:
      trial.task = task
    trial.logdir = str(sweepdir / folder(trial.task) / trial.variant / f'seed{trial.seed}')
  return trials


def _variant_words(error, trial):
  """The error on one line, a variant's binding called that instead of a -b binding."""
  message = ' '.join(line.strip() for line in str(error).splitlines() if line.strip())
  for binding in trial.variant_bindings:
    message = message.replace(f"binding -b '{binding}'", f"the variant's binding '{binding}'")
  return message


def write_manifest(sweepdir, sweep_file, trials, extra_files, bindings):
  """`<sweepdir>/sweep.json`: what the sweep runs, for reruns and `dreamkit compare`."""
  sweepdir = Path(sweepdir)
  sweepdir.mkdir(parents=True, exist_ok=True)
  manifest = {
      'sweep': str(Path(sweep_file).resolve()),
      'files': [str(Path(f).resolve()) for f in extra_files],
      'bindings': list(bindings),
      'trials': [{'task': t.task, 'variant': t.variant, 'seed': t.seed,
                  'logdir': str(Path(t.logdir).relative_to(sweepdir.resolve())),
                  'steps': t.steps} for t in trials],
  }
  tmp = sweepdir / (MANIFEST + '.tmp')
  tmp.write_text(json.dumps(manifest, indent=1))
  tmp.replace(sweepdir / MANIFEST)


def read_manifest(sweepdir):
  """The trials a sweep directory was planned with, or None without a sweep.json."""
  path = Path(sweepdir) / MANIFEST
  if not path.is_file():
    return None
  try:
    return json.loads(path.read_text())['trials']
  except (ValueError, KeyError) as error:
    raise UserError(f'{path} is not a sweep manifest ({error}).') from error


def sample_space(space):
  """{binding name: Tune domain} for `Sweep.space` (checked: names and arguments)."""
  from ray import tune  # pylint: disable=import-outside-toplevel
  distributions = {'uniform': tune.uniform, 'loguniform': tune.loguniform,
                   'quniform': tune.quniform, 'randint': tune.randint,
                   'choice': tune.choice}
  domains = {}
  for name, value in space.items():
    if not isinstance(value, (list, tuple)) or not value or value[0] not in distributions:
      raise ConfigError(
          f"Sweep.space['{name}'] must be (distribution, arguments...) with a "
          f"distribution of {', '.join(distributions)}, got {value!r}.")
    try:
      domains[name] = distributions[value[0]](*value[1:])
    except (TypeError, ValueError) as error:
      raise ConfigError(f"Sweep.space['{name}'] = {value!r}: {error}") from None
  return domains


def sampled_variant(values):
  """The variant name of a searched trial: 'actor_lr=0.000123,units=64'."""
  parts = []
  for name, value in sorted(values.items()):
    short = name.rsplit('.', 1)[-1]
    shown = f'{value:.3g}' if isinstance(value, float) and math.isfinite(value) else str(value)
    parts.append(f'{short}={shown}')
  return ','.join(parts)


def sampled_bindings(values):
  """The gin bindings of a searched trial's sampled values."""
  return [f'{name} = {value!r}' for name, value in sorted(values.items())]
