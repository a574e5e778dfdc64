"""A quiet start: the CLI drops TensorFlow's known-harmless noise and nothing else;
`--verbose` shows it all."""

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

from dreamkit import quiet

REPO = Path(__file__).resolve().parents[1]
# Lines as TensorFlow 2.21 writes them on this CPU machine.
NOISE = [
    'WARNING: All log messages before absl::InitializeLog() is called are written to '
    'STDERR',
    'I0000 00:00:1796247587.872960   24108 port.cc:153] oneDNN custom operations are on. '
    'You may see slightly different numerical results.',
    'I0000 00:00:1796247587.873392   24108 cudart_stub.cc:31] Could not find cuda '
    'drivers on your machine, GPU will not be used.',
    'To enable the following instructions: AVX2 AVX512F FMA, in other operations, '
    'rebuild TensorFlow with the appropriate compiler flags.',
    'E0000 00:00:1796247529.346393   23534 cuda_platform.cc:52] failed call to cuInit: '
    'INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)',
    'E0000 00:00:1796247530.078242   23534 util.cc:131] oneDNN supports DT_BOOL only on '
    'platforms with AVX-512. Falling back to the default Eigen-based implementation.',
    'W0000 00:00:1796247530.078242   23534 op_kernel.cc:1857] a C++ warning record',
    'A.L.E: Arcade Learning Environment (version 0.12.1+8a8fafb)',
    '[Powered by Stella]',
]
REAL = [
    'E0000 00:00:1796247530.078242   23534 bfc_allocator.cc:485] Allocator ran out of '
    'memory trying to allocate 1.2GiB',
    'Traceback (most recent call last):',
    'Error: Pipeline.steps: a user error',
    'F0000 00:00:1796247530.078242   23534 check.cc:12] Check failed: shape',
    'Fatal Python error: Segmentation fault',
    '  I0000 an indented line is not a log record',
    'A.L.E: Arcade Learning Environment (version 0.12.1) failed to load the ROM',
]


def test_known_noise_is_dropped_and_real_errors_are_kept():
  assert [line for line in NOISE if not quiet.is_harmless(line)] == []
  assert [line for line in REAL if quiet.is_harmless(line)] == []
  assert quiet.is_harmless(NOISE[4].encode() + b'\r')


def test_harmless_warnings_are_ignored_and_others_still_show():
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    quiet.ignore_harmless_warnings()
    warnings.warn(
        'Even though the `tf.config.experimental_run_functions_eagerly` option is set, '
        'this option does not apply to tf.data functions.', UserWarning)
    warnings.warn('a real warning', UserWarning)
  assert [str(warning.message) for warning in caught] == ['a real warning']


def filtered(script):
  """Runs `script` after quiet.filter_stderr(); returns (exit code, stdout, stderr)."""
  code = 'import os, sys\nfrom dreamkit import quiet\nquiet.filter_stderr()\n' + script
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=60)
  return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_the_filter_drops_noise_written_by_any_code_on_descriptor_2():
  lines = [NOISE[0], REAL[0], NOISE[4], REAL[1], NOISE[5]]
  code, _, stderr = filtered(textwrap.dedent(f'''
      for line in {lines!r}:
        os.write(2, (line + '\\n').encode())   # As TensorFlow's C++ writes.
      print('a Python line', file=sys.stderr)
      sys.stderr.write('a prompt without a newline')
  '''))
  assert code == 0
  assert stderr == f'{REAL[0]}\n{REAL[1]}\na Python line\na prompt without a newline'


def test_what_a_crashing_process_wrote_last_still_shows():
  # The filter is a process of its own: a segfault or SIGKILL does not lose it.
  code, _, stderr = filtered(textwrap.dedent(f'''
      import signal
      os.write(2, ({NOISE[4]!r} + '\\n').encode())
      os.write(2, b'Fatal Python error: the last words\\n')
      os.kill(os.getpid(), signal.SIGKILL)
  '''))
  assert code == -9
  assert stderr == 'Fatal Python error: the last words\n'


def test_a_ctrl_c_to_the_process_group_does_not_cut_off_later_errors():
  # Ctrl-C and a scheduler's SIGTERM reach every process of the group; the filter
  # ignores them, so the CLI's last words after a stop still get through.
  code, stdout, stderr = filtered(textwrap.dedent('''
      import signal, time
      pid = os.getpid()
      with open(f'/proc/{pid}/task/{pid}/children') as children:
        filters = children.read().split()
      for child in filters:
        os.kill(int(child), signal.SIGINT)
        os.kill(int(child), signal.SIGTERM)
      time.sleep(0.5)
      print(len(filters))
      os.write(2, b'Stopped (Ctrl-C): written after the signal\\n')
  '''))
  assert code == 0 and stdout.strip() == '1'
  assert stderr == 'Stopped (Ctrl-C): written after the signal\n'


def cli(*args):
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # As a user's shell: the CLI sets it.
  return subprocess.run(
      [sys.executable, '-m', 'dreamkit.cli', *args], capture_output=True, text=True,
      cwd=REPO, env=env, timeout=300)


def test_the_cli_starts_quietly_and_verbose_shows_everything():
  quiet_run = cli('config', 'pipelines/cartpole_dreamerv2.gin', 'pipelines/debug.gin')
  assert quiet_run.returncode == 0, quiet_run.stderr
  assert quiet_run.stderr == ''
  assert 'Pipeline.steps = 1000' in quiet_run.stdout
  verbose = cli('--verbose', 'config', 'pipelines/cartpole_dreamerv2.gin',
                'pipelines/debug.gin')
  assert verbose.returncode == 0, verbose.stderr
  assert re.search(r'^[IWE]0000 |^WARNING: All log messages', verbose.stderr, re.M), \
      verbose.stderr
  assert verbose.stdout == quiet_run.stdout
  # --verbose also works after the command, as --traceback does.
  after = cli('config', 'pipelines/cartpole_dreamerv2.gin', '--verbose')
  assert re.search(r'^[IWE]0000 |^WARNING: All log messages', after.stderr, re.M)


def test_a_user_error_still_reaches_stderr_through_the_filter(tmp_path):
  bad = tmp_path / 'bad.gin'
  bad.write_text("Pipeline.task = 'fake:discrete'\nPipeline.stepz = 10\n")
  result = cli('config', str(bad))
  assert result.returncode == 2
  assert result.stderr.startswith('Error: ') and 'stepz' in result.stderr
  assert len(result.stderr.splitlines()) == 1, result.stderr
