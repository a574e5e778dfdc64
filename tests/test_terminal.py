"""The terminal output: the status line (what it shows first, how it fits a terminal,
the prefill's progress), other output on lines of its own, plain rows off a terminal,
and a run's last lines; checked in-process and under a pseudo-terminal."""

import fcntl
import io
import logging
import os
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from dreamkit import outputs
from dreamkit.outputs import terminal as terminal_lib

REPO = Path(__file__).resolve().parents[1]
ROW = {
    'train_return': 12.5, 'train_length': 180, 'model_loss': np.float32(3.25),
    'kl_loss': np.float64(1.5), 'actor_ent': np.float16(0.5), 'fps': 81.0,
    'frames': 4000, 'updates': np.int64(20), 'steps_budget': 50000}
STATUS_LINE = re.compile(r'\r([^\r\n]*?)\x1b\[K')  # A status line as drawn on a TTY.


class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class FakeTty(io.StringIO):

  def isatty(self):
    return True


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
  """The TTY status line is cut to the terminal width: make it the same everywhere."""
  monkeypatch.setenv('COLUMNS', '200')


def make_terminal(tty, **kwargs):
  stream = io.StringIO()
  terminal = outputs.Terminal(None, stream=stream, tty=tty, **kwargs)
  clock = FakeClock()
  terminal._clock = clock
  return terminal, stream, clock


def drawn(text):
  """The status lines a TTY stream drew, in order."""
  return STATUS_LINE.findall(text)


def train(terminal, clock, steps, seconds, budget=10000, start=(0.0, 0), **extra):
  """Rows of training progress: `steps` agent steps every `seconds`, 4 times."""
  for index in range(4):
    clock.now = start[0] + seconds * index
    terminal.write(start[1] + steps * index, dict(
        {'steps_budget': budget, 'updates': 1 + index, 'frames': 4 * steps * index},
        **extra))


# ------------------------------------------------------------------ status line


def test_status_leads_with_step_rate_and_eta():
  terminal, stream, clock = make_terminal(tty=True)
  train(terminal, clock, steps=1000, seconds=10.0)
  text = stream.getvalue()
  assert '\n' not in text  # Progress rows only redraw the status line.
  last = drawn(text)[-1]
  assert last.startswith('3,000/10,000 steps 30.0% | 100.0 steps/s | ETA 1m10s | ')
  assert last.endswith('12,000 frames')  # 7000 steps left at 100 steps/s.
  terminal.close()
  assert stream.getvalue().endswith('\n')


def rich_terminal(monkeypatch, columns):
  """A terminal `columns` wide that has seen rates, returns and losses."""
  monkeypatch.setenv('COLUMNS', str(columns))
  terminal, stream, clock = make_terminal(tty=True)
  train(terminal, clock, steps=1000, seconds=10.0, budget=1000000)
  clock.now = 40.0
  terminal.write(4000, dict(ROW, eval_return=15.5, actor_loss=-0.25, critic_loss=0.75,
                            steps_budget=1000000, updates=5))
  return drawn(stream.getvalue())[-1]


@pytest.mark.parametrize('columns', [60, 80, 200])
def test_status_fits_the_width_and_never_loses_the_eta(monkeypatch, columns):
  status = rich_terminal(monkeypatch, columns)
  assert len(status) <= columns - 1  # The last column would wrap the line.
  assert status.startswith('4,000/1M steps 0.4% | 100.0 steps/s | ETA 2h46m')
  # Whole parts only, in their usual order: a part that does not fit is left out.
  every = ('4,000/1M steps 0.4%', '100.0 steps/s', 'ETA 2h46m', 'return 12.5',
           'eval 15.5', 'model_loss 3.25', 'actor_loss -0.25', 'critic_loss 0.75',
           '0.1 train/s', '4,000 frames')
  parts = status.split(' | ')
  assert parts == [part for part in every if part in parts]
  if columns >= 80:
    assert 'return 12.5' in parts and 'eval 15.5' in parts
  if columns == 200:
    assert parts == list(every)


def test_status_at_a_very_narrow_terminal_keeps_the_eta(monkeypatch):
  status = rich_terminal(monkeypatch, 21)
  assert status == 'ETA 2h46m'


def test_status_shows_the_prefill_progress_and_its_own_eta():
  terminal, stream, clock = make_terminal(tty=True)
  for index in range(3):  # 50 steps/s of random prefill towards step 500.
    clock.now = float(index)
    terminal.progress(50 * index, {'steps_budget': 100000, 'updates': 0,
                                   'prefill_until': 500, 'frames': 200 * index})
  assert drawn(stream.getvalue())[-1] == (
      '100/100,000 steps 0.1% | prefill 100/500 | 50.0 steps/s | prefill ETA 8s | '
      '400 frames')
  clock.now = 2.01  # The prefill's last step is drawn at once, never throttled.
  terminal.progress(500, {'steps_budget': 100000, 'updates': 0, 'prefill_until': 500})
  assert 'prefill 500/500' in drawn(stream.getvalue())[-1]
  assert drawn(stream.getvalue())[-1].endswith('prefill done | 400 frames')
  # Training: 10 steps/s. The ETA follows the new rate, not the prefill's.
  train(terminal, clock, steps=100, seconds=10.0, budget=100000, start=(30.0, 600))
  last = drawn(stream.getvalue())[-1]
  assert 'prefill' not in last
  assert last.startswith('900/100,000 steps 0.9% | 10.0 steps/s | ETA 2h45m | ')


def test_status_before_any_rate_says_eta_unknown():
  terminal, stream, _ = make_terminal(tty=True)
  terminal.progress(10, {'steps_budget': 1000, 'updates': 0})
  assert drawn(stream.getvalue())[-1] == '10/1,000 steps 1.0% | ETA ?'


def test_results_print_above_the_status_line():
  terminal, stream, clock = make_terminal(tty=True)
  terminal.write(1000, {'steps_budget': 10000})
  clock.now = 5.0
  terminal.write(2000, dict(ROW, eval_return=15.5))
  lines = stream.getvalue().split('\n')
  assert len(lines) == 2
  result = lines[0].split('\r')[-1].replace('\x1b[K', '')
  assert result.startswith('[2,000] train_return 12.5 / train_length 180 / '
                           'eval_return 15.5 / model_loss 3.25 / kl_loss 1.5')
  assert 'fps' not in result  # Progress counters stay on the status line.
  status = drawn(lines[1])[-1]
  assert 'return 12.5' in status and 'eval 15.5' in status
  assert 'model_loss 3.25' in status


def test_redraws_are_limited_and_the_last_step_shows_on_close():
  terminal, stream, clock = make_terminal(tty=True)
  for step in range(1, 11):
    clock.now = step * 0.01
    terminal.write(step, {})
  assert len(drawn(stream.getvalue())) == 1
  terminal.close()
  assert drawn(stream.getvalue())[-1].startswith('10 steps')
  assert stream.getvalue().endswith('\n')


# ------------------------------------------------------------ other output


def tty_stdout(monkeypatch):
  """sys.stdout and sys.stderr as one fake terminal; a Terminal drawing on it.

  Called in the test itself: pytest sets its own sys.stdout again between a
  fixture and the test.
  """
  screen = FakeTty()
  monkeypatch.setattr(sys, 'stdout', screen)
  monkeypatch.setattr(sys, 'stderr', screen)
  terminal = outputs.Terminal(None)
  terminal._clock = FakeClock()
  return terminal, screen


def test_prints_and_warnings_get_lines_of_their_own(monkeypatch):
  terminal, screen = tty_stdout(monkeypatch)
  terminal.progress(10, {'steps_budget': 1000, 'updates': 0})
  print('DreamerEncoder inputs: CNN [], MLP', ['vector'])
  # As Python shows a warning (pytest records them instead): on sys.stderr.
  sys.stderr.write(warnings.formatwarning('a component warns', UserWarning, 'x.py', 3))
  print('half a line', end='')
  terminal._clock.now = 1.0
  terminal.progress(20, {'steps_budget': 1000, 'updates': 0})
  text = screen.getvalue()
  # The status line is erased before each message and drawn again after it.
  assert "\r\x1b[KDreamerEncoder inputs: CNN [], MLP ['vector']\n\r10/1,000" in text
  assert re.search(r"\r\x1b\[K[^\r\n]*UserWarning: a component warns\n", text)
  # A line left open is ended before the status line comes back.
  assert 'half a line\n\r20/1,000 steps' in text
  lines = render(text)
  assert lines[0] == "DreamerEncoder inputs: CNN [], MLP ['vector']"
  assert lines[-1].startswith('20/1,000 steps 2.0% | ')
  terminal.close()
  assert sys.stdout is screen and sys.stderr is screen


def test_logging_handlers_are_routed_and_put_back(monkeypatch):
  terminal, screen = tty_stdout(monkeypatch)
  handler = logging.StreamHandler(sys.stderr)  # Holds the stream, as TF's does.
  logger = logging.getLogger('dreamkit.test_terminal')
  logger.addHandler(handler)
  try:
    terminal.progress(10, {'steps_budget': 1000, 'updates': 0})
    logger.warning('a log line')
    assert '\r\x1b[Ka log line\n\r10/1,000 steps' in screen.getvalue()
    terminal.close()
    assert sys.stdout is screen and sys.stderr is screen and handler.stream is screen
  finally:
    logger.removeHandler(handler)


def test_a_given_stream_leaves_sys_stdout_alone():
  terminal, _, _ = make_terminal(tty=True)
  before = sys.stdout
  terminal.write(10, {})
  assert sys.stdout is before
  terminal.close()


# ---------------------------------------------------------------- plain rows


def test_plain_mode_has_no_control_characters_and_rate_limits():
  terminal, stream, clock = make_terminal(tty=False, interval=30.0)
  terminal.write(1000, {'steps_budget': 10000})
  clock.now = 10.0
  terminal.write(2000, {'steps_budget': 10000})  # Progress only, too soon: dropped.
  clock.now = 15.0
  terminal.write(2500, ROW)  # Results always print.
  clock.now = 50.0
  terminal.write(3000, {'steps_budget': 10000})
  clock.now = 55.0
  terminal.write(3100, {'eval_return': 9.0, 'model_loss': 1.0})
  terminal.close()
  text = stream.getvalue()
  assert '\r' not in text and '\x1b' not in text
  lines = text.splitlines()
  assert len(lines) == 4, lines
  assert lines[0].startswith('1,000/10,000 steps 10.0%')
  assert lines[1].startswith('2,500/50,000 steps 5.0% | 100.0 steps/s | ETA ')
  assert 'train_return 12.5 / train_length 180 / model_loss 3.25' in lines[1]
  assert lines[1].count('12.5') == 1  # The return is not repeated in the status.
  assert lines[2].startswith('3,000/10,000 steps 30.0%') and 'return 12.5' in lines[2]
  assert 'model_loss 3.25' in lines[2] and 'ETA' in lines[2]
  # The last train return stays in the status of a row that does not hold one.
  assert 'return 12.5 |' in lines[3] and 'eval 9' not in lines[3]
  assert lines[3].endswith('| eval_return 9 / model_loss 1')


def test_detects_a_tty_from_the_stream():
  stream = FakeTty()
  terminal = outputs.Terminal(None, stream=stream)
  terminal.write(10, {})
  assert stream.getvalue().startswith('\r')
  plain = io.StringIO()
  outputs.Terminal(None, stream=plain).write(10, {})
  assert plain.getvalue() == '10 steps\n'


def test_format_number_and_duration():
  fmt = terminal_lib.format_number
  values = [0.0, 12.3456, 3.0, 1.2e-5, 1e6, np.int64(12345)]
  assert [fmt(value) for value in values] == [
      '0', '12.35', '3', '1.2e-05', '1e+06', '12,345']
  assert fmt(float('nan')) == 'nan' and fmt(np.float32(0.5)) == '0.5'
  duration = terminal_lib.format_duration
  assert [duration(42), duration(307), duration(11520), duration(187200)] == [
      '42s', '5m07s', '3h12m', '2d04h']
  budget = terminal_lib.format_budget
  assert [budget(50000), budget(10**6), budget(12500000), budget(1234567890)] == [
      '50,000', '1M', '12.5M', '1.23G']


def test_step_rate_is_smoothed_over_wall_time():
  rate = terminal_lib._Rate(horizon=60.0)
  rate.update(0.0, 0)
  rate.update(10.0, 1000)
  assert rate.value == pytest.approx(100.0)
  rate.update(10.5, 1500)  # A short burst at 1000/s moves the estimate only a little.
  assert 100.0 < rate.value < 110.0


# ------------------------------------------------- the runner's side of it


def test_rows_name_the_prefill_end_while_it_runs():
  from dreamkit.runner import rows as rows_lib

  class Recorder(outputs.Output):
    def __init__(self):
      self.calls = []

    def write(self, step, metrics):
      pass

    def progress(self, step, counters):
      self.calls.append((step, counters))

  recorder = Recorder()
  counters = rows_lib.Counters.create()
  rows = rows_lib.Rows([recorder], counters, action_repeat=4, budget=1000)
  counters.step.assign(30)
  with rows.prefilling(70):
    rows.progress()
    counters.step.assign(100)
    rows.progress()  # Within a second of the last: throttled.
  # Leaving the prefill shows its last step at once.
  assert recorder.calls == [
      (30, {'frames': 120, 'updates': 0, 'steps_budget': 1000, 'prefill_until': 100}),
      (100, {'frames': 400, 'updates': 0, 'steps_budget': 1000, 'prefill_until': 100})]
  rows.progress(force=True)
  assert 'prefill_until' not in recorder.calls[-1][1]


def test_saved_report_names_the_checkpoint_and_the_metrics(tmp_path):
  from dreamkit.runner import train
  assert train.saved_report(tmp_path, []) == (
      'Checkpoint: none written (stopped before training began).')
  (tmp_path / 'metrics.jsonl').write_text('{}\n')
  (tmp_path / 'events.out.tfevents.1.host').write_text('')
  checkpoint = tmp_path / 'checkpoints' / 'ckpt-3'
  lines = train.saved_report(tmp_path, [(str(checkpoint), 1500)]).splitlines()
  assert lines == [
      f'Checkpoint: {checkpoint} (step 1,500); run again with --logdir {tmp_path} '
      'to resume.',
      f'Metrics: {tmp_path / "metrics.jsonl"} (dreamkit plot {tmp_path})',
      f'TensorBoard: tensorboard --logdir {tmp_path}']


# ---------------------------------------------------------- pseudo-terminal


def render(text, columns=None):
  """The lines a terminal shows after `text` (handles \\r, \\n and erase-line).

  With `columns`, a line written past the last column is an error: it would wrap.
  """
  lines, line, column = [], [], 0
  for token in re.findall(r'\x1b\[K|\r|\n|[^\r\n\x1b]+|\x1b', text):
    if token == '\n':
      lines.append(''.join(line).rstrip())
      line, column = [], 0
    elif token == '\r':
      column = 0
    elif token == '\x1b[K':
      del line[column:]
    else:
      for char in token:
        if columns is not None:
          assert column < columns, f'wraps past column {columns}: {"".join(line)!r}'
        line[column:column + 1] = [char]
        column += 1
  if line:
    lines.append(''.join(line).rstrip())
  return lines


def run_in_pty(command, columns=80, timeout=600, env=None):
  """Runs `command` with stdin, stdout and stderr on a pseudo-terminal `columns`
  wide; returns its exit code and everything it wrote (newlines as \\n)."""
  controller, child_end = os.openpty()
  fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack('HHHH', 24, columns, 0, 0))
  environ = dict(os.environ if env is None else env)
  for name in ('COLUMNS', 'LINES'):
    environ.pop(name, None)  # The size must come from the terminal itself.
  process = subprocess.Popen(
      command, stdin=child_end, stdout=child_end, stderr=child_end, cwd=REPO,
      env=environ, start_new_session=True)
  os.close(child_end)
  chunks, deadline = [], time.monotonic() + timeout
  try:
    while time.monotonic() < deadline:
      if select.select([controller], [], [], 1.0)[0]:
        try:
          chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: every writer of the terminal has closed it.
          break
        if not chunk:
          break
        chunks.append(chunk)
      elif process.poll() is not None and not select.select([controller], [], [], 0.5)[0]:
        break
    else:
      pytest.fail('the command did not finish in time')
  finally:
    if process.poll() is None:
      process.kill()
    code = process.wait()
    os.close(controller)
  return code, b''.join(chunks).decode('utf-8', 'replace').replace('\r\n', '\n')


SCRIPTED = textwrap.dedent('''
    import sys
    from dreamkit import outputs

    class Clock:
      now = 0.0
      def __call__(self):
        return self.now

    terminal = outputs.Terminal(None)
    terminal._clock = clock = Clock()
    budget = 1000000
    for index in range(6):
      clock.now = 10.0 * index
      terminal.progress(200 * index, {'steps_budget': budget, 'updates': 0,
                                      'prefill_until': 1000, 'frames': 800 * index})
    print('Optimizer model: 20518 parameters in 36 variables.')
    for index in range(1, 6):
      clock.now = 60.0 + 10.0 * index
      terminal.write(1000 + 150 * index, {
          'steps_budget': budget, 'updates': 10 * index, 'frames': 4000 + 600 * index,
          **({'train_return': 21.5, 'model_loss': 3.25} if index == 3 else {})})
    print('a warning from a component', file=sys.stderr)
    clock.now = 120.0
    terminal.progress(1900, {'steps_budget': budget, 'updates': 60, 'frames': 7600})
    terminal.close()
''')


def test_status_line_under_a_pseudo_terminal_80_columns():
  code, text = run_in_pty([sys.executable, '-c', SCRIPTED])
  assert code == 0, text
  lines = render(text, columns=80)  # Nothing is drawn past the 80th column.
  statuses = drawn(text)
  assert all(len(status) <= 79 for status in statuses)
  # The prefill: its progress and its own ETA (200 steps / 10 s -> 20 steps/s).
  assert '600/1M steps 0.1% | prefill 600/1,000 | 20.0 steps/s | ' \
         'prefill ETA 20s' in statuses
  # Training: the rate and the ETA lead the line.
  assert statuses[-1].startswith(
      '1,900/1M steps 0.2% | 15.0 steps/s | ETA 18h29m | ')
  assert 'return 21.5' in statuses[-1]
  assert lines == [
      'Optimizer model: 20518 parameters in 36 variables.',
      '[1,450] train_return 21.5 / model_loss 3.25',
      'a warning from a component',
      statuses[-1]]


def test_a_tiny_run_under_a_pseudo_terminal_is_quiet_and_says_what_it_saved(tmp_path):
  """The CLI end to end at 80 columns: no TensorFlow start-up noise, a status line
  with rate and ETA that other lines never glue to, and the last lines."""
  logdir = tmp_path / 'run'
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # As a user's shell: the CLI sets it.
  code, text = run_in_pty([
      sys.executable, '-m', 'dreamkit.cli', 'run', 'pipelines/cartpole_dreamerv2.gin',
      'pipelines/debug.gin', '--steps', '160', '--logdir', str(logdir),
      '-b', 'Pipeline.eval_eps = 0', '-b', 'Pipeline.video_every = 0'], env=env)
  assert code == 0, text[-3000:]
  lines = render(text)  # The last lines are long paths: those may wrap.
  noise = [line for line in lines if re.match(r'[EWI]\d{4} |WARNING: All log', line)]
  assert not noise, noise
  assert not any('run_functions_eagerly' in line for line in lines), lines
  statuses = drawn(text)
  assert any(re.search(r'\| prefill \d+/100 \| [\d.]+ steps/s \| prefill ETA \d+s', s)
             for s in statuses), statuses
  assert any(re.match(r'\d+/160 steps [\d.]+% \| [\d.]+ steps/s \| ETA \d+s', s)
             for s in statuses), statuses
  # Messages printed while the status line is up start lines of their own.
  assert any(line.startswith('DreamerEncoder inputs:') for line in lines), lines
  assert any(line.startswith('Optimizer model:') for line in lines), lines
  assert all(len(status) <= 79 for status in statuses)  # Never wraps at 80.
  # The last status stays; below it, how the run ended and what it saved where.
  end = lines.index('Finished at step 160.')
  assert lines[end - 1].startswith('160/160 steps 100.0% | ') and 'done' in lines[end - 1]
  checkpoint = logdir / 'checkpoints' / 'ckpt-1'
  assert lines[end + 1:] == [
      f'Checkpoint: {checkpoint} (step 160); run again with --logdir {logdir} to resume.',
      f'Metrics: {logdir / "metrics.jsonl"} (dreamkit plot {logdir})',
      f'TensorBoard: tensorboard --logdir {logdir}']
