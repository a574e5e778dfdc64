"""A quiet start for the command line: TensorFlow's known-harmless noise is dropped.

TensorFlow's C++ runtime writes to file descriptor 2 before absl's logging is set up,
so `TF_CPP_MIN_LOG_LEVEL` does not silence it all (each of its shared libraries
prints `WARNING: All log messages before absl::InitializeLog() ...`, `I0000 ...
Could not find cuda drivers`), and some lines it writes as errors are expected on a
CPU machine (`E0000 ... failed call to cuInit`, `oneDNN supports DT_BOOL only on
platforms with AVX-512`). They read as failures. The CLI (never the library, which
must not touch the process's descriptors) routes descriptor 2 through a small filter
process that drops exactly those lines and passes every other byte on:

    restore = quiet.filter_stderr()   # before TensorFlow is imported
    ...
    restore()                         # also registered with atexit

A process, not a thread: if the main process dies (a segfault, SIGKILL), the filter
still reads what it wrote last and prints it. It ignores SIGINT and SIGTERM, so a
Ctrl-C meant for training cannot cut off the messages that follow it; it ends when
every writer of the pipe (the CLI and the workers it started) has closed it.

`ignore_harmless_warnings()` drops the Python warnings known to be noise.
This file imports only the standard library: it also runs as the filter's script.
"""

import atexit
import os
import re
import select
import signal
import subprocess
import sys
import warnings

# Lines (without their newline) that are dropped. INFO and WARNING records of TF's
# C++ logging are what TF_CPP_MIN_LOG_LEVEL=2 asks to hide; an ERROR record is
# dropped only when it is one of the known-harmless ones.
_GLOG = r'[IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.\-]+:\d+\] '
HARMLESS_LINES = tuple(re.compile(pattern) for pattern in (
    r'WARNING: All log messages before absl::InitializeLog\(\) is called are written '
    r'to STDERR$',
    r'[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.\-]+:\d+\] ',
    _GLOG + r'failed call to cuInit: ',  # No GPU: expected on a CPU machine.
    _GLOG + r'oneDNN supports DT_BOOL only on platforms with AVX-512',
    _GLOG + r'Unable to register cu(DNN|FFT|BLAS) factory',
    _GLOG + r'computation placer already registered',
    # The second line of cpu_feature_guard's INFO record.
    r'To enable the following instructions: .*rebuild TensorFlow with the '
    r'appropriate compiler flags\.$',
    # ale-py's banner, written by the emulator each time an Atari env is made.
    r'A\.L\.E: Arcade Learning Environment \(version [^)]*\)$',
    r'\[Powered by Stella\]$',
))

# Python warnings (message regex, category) that say nothing to a dreamkit user.
HARMLESS_WARNINGS = (
    # tf.data traces its functions even under run_functions_eagerly (Pipeline.eager,
    # the debug pipeline): expected, and nothing to act on.
    (r'Even though the `tf\.config\.experimental_run_functions_eagerly` option is set',
     UserWarning),
)

# Erases the terminal line the cursor is on: a kept line never glues onto the
# training status line that the terminal output redraws in place on stdout.
_CLEAR_LINE = b'\r\x1b[K'
# A partial line (no newline yet) is passed on after this many seconds of quiet.
_PARTIAL_LINE_SECONDS = 0.05


def is_harmless(line):
  """Whether one line of stderr (bytes or str, no newline) is known-harmless noise."""
  if isinstance(line, bytes):
    line = line.decode('utf-8', 'replace')
  line = line.rstrip('\r')
  return any(pattern.match(line) for pattern in HARMLESS_LINES)


def ignore_harmless_warnings():
  """Adds `warnings` filters for HARMLESS_WARNINGS (this process only)."""
  for message, category in HARMLESS_WARNINGS:
    warnings.filterwarnings('ignore', message=message, category=category)


def filter_stderr():
  """Routes file descriptor 2 through a filter process; returns `restore()`.

  `restore` (also run at exit) puts the original descriptor back and waits briefly
  for the filter to print what is left. If the filter cannot start, stderr is left
  as it was and `restore` does nothing.
  """
  sys.stderr.flush()
  read_end, write_end = os.pipe()
  original = os.dup(2)
  # The filter starts with SIGINT and SIGTERM ignored (an ignored signal stays
  # ignored across exec): a Ctrl-C in its first milliseconds cannot end it either.
  previous = {number: signal.signal(number, signal.SIG_IGN)
              for number in (signal.SIGINT, signal.SIGTERM)}
  try:
    # -I -S: a bare interpreter; this file needs only the standard library.
    process = subprocess.Popen(
        [sys.executable, '-I', '-S', os.path.abspath(__file__)],
        stdin=read_end, stdout=original, stderr=original, close_fds=True)
  except OSError:
    for fd in (read_end, write_end, original):
      os.close(fd)
    return lambda: None
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)
  os.close(read_end)
  os.dup2(write_end, 2)
  os.close(write_end)
  restored = []

  def restore():
    if restored:
      return
    restored.append(True)
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(original, 2)  # Our last handle on the pipe closes: the filter sees EOF.
    os.close(original)
    try:
      process.wait(timeout=2)  # Workers that still hold the pipe keep it open.
    except subprocess.TimeoutExpired:
      pass

  atexit.register(restore)
  return restore


def _run_filter(source, sink):
  """Copies `source` to `sink` line by line, without the harmless lines."""
  clear = _CLEAR_LINE if os.isatty(sink) else b''
  at_line_start = True
  pending = b''

  def write(data):
    nonlocal at_line_start
    if not data:
      return
    if clear and at_line_start:
      data = clear + data
    try:
      os.write(sink, data)
    except OSError:
      pass
    at_line_start = data.endswith(b'\n')

  while True:
    timeout = _PARTIAL_LINE_SECONDS if pending else None
    if not select.select([source], [], [], timeout)[0]:
      write(pending)  # A prompt or a progress bar: do not hold it back.
      pending = b''
      continue
    chunk = os.read(source, 1 << 16)
    if not chunk:
      break
    *lines, pending = (pending + chunk).split(b'\n')
    for line in lines:
      if not is_harmless(line):
        write(line + b'\n')
  write(pending)


if __name__ == '__main__':
  # The filter must outlive a Ctrl-C or SIGTERM sent to the whole process group:
  # the CLI's last words ("Stopped: saved ...") come after it.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  _run_filter(sys.stdin.fileno(), sys.stdout.fileno())
