"""One tiny trained run, shared by the tests of working with trained agents
(test_evaluate, test_dream, test_offline, test_run_logdir) through the session
fixture `trained_run` in conftest.py.

The fake env with a 16x16 image and a vector, at debug sizes (eager), 120 agent
steps: prefill 100, then an update every 10 steps; evaluations (one episode) at
steps 100 and 120, a checkpoint and videos at 120. It is a plugin run by both routes: its encoder comes
from a plugin file (plugins/impala_encoder.py's encoder as SmallImpalaEncoder, moved away after training
so that only the logdir's copy remains) and one of its outputs from an installed
package's entry point (a dist-info folder on PYTHONPATH), so rebuilding it needs the
run's record.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = 120

ENTRY_POINT_MODULE = '''
import dreamkit
from dreamkit.outputs.base import Output


@dreamkit.register('outputs')
class CountingSink(Output):
  """Counts the rows it is given (an output from an entry-point plugin)."""

  def __init__(self, logdir):
    self.rows = 0

  def write(self, step, metrics):
    self.rows += 1
'''


@dataclasses.dataclass
class TrainedRun:
  logdir: Path
  env: dict            # the environment a subprocess needs (the entry point installed)
  site: Path           # the folder that holds the entry-point package
  plugin_path: Path    # where the plugin file was when the run trained (gone now)


def dreamkit(*args, env=None, timeout=600):
  """Runs the dreamkit CLI in a fresh process."""
  return subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', *map(str, args)], capture_output=True,
      text=True, timeout=timeout, cwd=REPO, env=env)


def install_entry_point(site):
  """A package `trained_ep` (version 1.0) with a `dreamkit.plugins` entry point."""
  package = site / 'trained_ep'
  package.mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'sinks.py').write_text(ENTRY_POINT_MODULE)
  dist = site / 'trained_ep-1.0.dist-info'
  dist.mkdir()
  (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: trained-ep\nVersion: 1.0\n')
  (dist / 'entry_points.txt').write_text('[dreamkit.plugins]\ntrained_sinks = trained_ep.sinks\n')


def train(root):
  """Trains the run under `root`; returns a TrainedRun."""
  site = root / 'site'
  install_entry_point(site)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(site), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
  plugin = root / 'elsewhere' / 'small_impala.py'
  plugin.parent.mkdir()
  # Its encoder registered under a name of its own: tests that rebuild this run in
  # their process register it, and later tests still load plugins/impala_encoder.py.
  plugin.write_text((REPO / 'plugins' / 'impala_encoder.py').read_text().replace(
      'ImpalaEncoder', 'SmallImpalaEncoder'))
  pipeline = root / 'fake.gin'
  pipeline.write_text(textwrap.dedent(f'''\
      include '{REPO / 'pipelines' / 'dreamerv2_defaults.gin'}'
      Pipeline.task = 'fake:discrete'
      CNN_KEYS = 'image'
      MLP_KEYS = 'vector'
      heads.DreamerDecoder.cnn_kernels = (2, 2, 2, 2)   # 16x16 images
      WorldModel.encoder = @encoders.SmallImpalaEncoder
      encoders.SmallImpalaEncoder.depths = (4, 8)
      encoders.SmallImpalaEncoder.embed_size = 32
      Pipeline.outputs = [@outputs.JSONL, @outputs.TensorBoard, @outputs.VideoFiles,
                          @outputs.CountingSink]
      '''))
  logdir = root / 'run'
  result = dreamkit(
      'run', pipeline, REPO / 'pipelines' / 'debug.gin', '--plugin', plugin,
      '--logdir', logdir, '--steps', STEPS, '-b', 'Pipeline.eval_every = 20',
      '-b', 'Pipeline.checkpoint_every = 20', '-b', 'Pipeline.video_every = 20',
      '-b', 'Pipeline.log_every = 10', '-b', 'Pipeline.eval_eps = 1', env=env)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  plugin.rename(plugin.with_suffix('.moved'))  # Only the logdir's copy is left.
  return TrainedRun(logdir, env, site, plugin)


def files(directory, skip=('eval',)):
  """{relative path: bytes} of every file under `directory`, but in `skip` folders."""
  directory = Path(directory)
  return {str(path.relative_to(directory)): path.read_bytes()
          for path in sorted(directory.rglob('*'))
          if path.is_file() and path.relative_to(directory).parts[0] not in skip}
