"""Envs in `spawn` worker processes: one `Worker` per env, `ParallelEnvs` for N copies.

    envs = ParallelEnvs('gym:CartPole-v1', num=4)   # 4 workers, current gin bindings
    obs = envs.reset_all()                          # list of 4 step dicts
    obs = envs.step(actions)                        # actions [4, A]; all step at once
    obs[i] = envs.reset([i])[0]                     # when obs[i]['is_last']

Workers are started with `spawn`, never `fork`: a fork after TensorFlow has started
its threads hangs, and MuJoCo rendering cannot share a process with TensorFlow. A
spawned worker starts empty, so it loads the plugins and parses the gin config again
before it builds its env (STYLE.md, gin note 11). Every wait on a worker is bounded:
a worker that dies or stops answering raises an error naming it, never a hang.
"""

import importlib
import multiprocessing
import multiprocessing.util
import re
import time
import traceback

import gin

from dreamkit import errors
from dreamkit.envs.batched import BatchedEnvs
from dreamkit.errors import UserError

_CONTEXT = multiprocessing.get_context('spawn')
_POLL_SECONDS = 0.5


class WorkerError(RuntimeError):
  """A worker process died, timed out, or raised a programming error."""


def _import(name):
  module, attribute = name.rsplit('.', 1)
  return getattr(importlib.import_module(module), attribute)


def _serve(conn, builder, kwargs):
  """Worker main loop: build the env, then answer (method, args) until 'close'."""
  try:
    env = _import(builder)(**kwargs)
  except BaseException as e:  # Reported to the parent, which raises it there.
    conn.send(_failure(e))
    conn.close()
    return
  conn.send(('ok', None))
  while True:
    try:
      method, args = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt):
      break  # The parent is gone.
    if method == 'close':
      break
    try:
      result = getattr(env, method)
      if callable(result):
        result = result(*args)  # Methods are called; attributes are read.
      conn.send(('ok', result))
    except BaseException as e:
      conn.send(_failure(e))
  try:
    env.close()
  finally:
    conn.close()


def _failure(error):
  kind = 'user' if isinstance(error, UserError) else 'error'
  return (kind, (type(error).__name__, str(error), traceback.format_exc()))


def _shutdown(conn, process):
  """Asks the worker to stop, then makes sure it has (also runs at exit)."""
  try:
    conn.send(('close', ()))
  except (OSError, ValueError, BrokenPipeError):
    pass
  process.join(5)
  if process.is_alive():
    process.terminate()
    process.join(5)
  conn.close()


class Worker:
  """One env living in a spawned process, driven over a Pipe.

  Args:
    builder: dotted name of a callable that returns an Env in the worker, e.g.
      'dreamkit.envs.parallel.build_env'. Its keyword arguments must be picklable.
    kwargs: keyword arguments for `builder`.
    name: how errors refer to this worker.
    timeout: seconds to wait for any one answer (building included).
    daemon: a daemon worker cannot start processes of its own (DM Control's renderer
      does); daemon workers are killed when the parent exits.
    wait: wait for the env to be built; with False, the first `receive()` does
      (so several workers can build at once).
  """

  def __init__(self, builder, kwargs, name, timeout=300.0, daemon=False, wait=True):
    self.name = name
    self.timeout = timeout
    self._conn, child = _CONTEXT.Pipe()
    self._process = _CONTEXT.Process(
        target=_serve, args=(child, builder, kwargs), name=name, daemon=daemon)
    self._process.start()
    child.close()
    # Runs when this object is collected, on close(), or at interpreter exit. At exit
    # multiprocessing joins non-daemon children without a timeout, after running the
    # finalizers that have an exit priority: a plain weakref.finalize may come too
    # late there (it depends on import order), and the parent would hang forever.
    self._finalizer = multiprocessing.util.Finalize(
        self, _shutdown, args=(self._conn, self._process), exitpriority=10)
    self._pending = True  # The build's answer.
    if wait:
      self.receive()  # Raises here if the env could not be built.

  def send(self, method, *args):
    if not self._finalizer.still_active():
      raise WorkerError(f'{self.name} is closed.')
    if self._pending:
      raise WorkerError(f'{self.name} has an unanswered call; receive() it first.')
    try:
      self._conn.send((method, args))
    except (OSError, BrokenPipeError):
      raise self._died() from None
    self._pending = True

  def receive(self):
    deadline = time.monotonic() + self.timeout
    while not self._conn.poll(_POLL_SECONDS):
      if not self._process.is_alive() and not self._conn.poll(0):
        raise self._died()
      if time.monotonic() > deadline:
        self.close()
        raise WorkerError(
            f'{self.name} gave no answer within {self.timeout:.0f} s and was stopped. '
            'A worker that hangs at start is often one created with fork after '
            'TensorFlow started, or a renderer waiting for a display.')
    try:
      status, payload = self._conn.recv()
    except (EOFError, OSError):
      raise self._died() from None
    self._pending = False
    if status == 'ok':
      return payload
    error_type, message, trace = payload
    if status == 'user':
      error_class = getattr(errors, error_type, UserError)
      raise (error_class if issubclass(error_class, UserError) else UserError)(message)
    raise WorkerError(f'{self.name} raised {error_type}: {message}\n{trace}')

  def call(self, method, *args):
    self.send(method, *args)
    return self.receive()

  @property
  def pid(self):
    return self._process.pid

  def close(self):
    self._finalizer()

  def _died(self):
    self._process.join(1)
    code = self._process.exitcode
    signal = f' (signal {-code})' if code is not None and code < 0 else ''
    self._finalizer.cancel()
    self._conn.close()
    return WorkerError(
        f'{self.name} (pid {self._process.pid}) died with exit code {code}{signal}. '
        'A segfault (signal 11) in an env that renders with MuJoCo usually means '
        'TensorFlow was imported in that process.')


def build_env(task, gin_config, plugins, overrides):
  """Runs in a worker: reload plugins, re-parse gin, then `dreamkit.envs.make(task)`."""
  from dreamkit import envs
  from dreamkit import plugins as plugins_lib
  plugins_lib.load_entry_points()
  plugins_lib.load(list(plugins))
  if gin_config:
    # The parent parsed this same text with every registry loaded, so misspellings
    # were caught there. Here only the envs (and plugins) are imported, and bindings
    # of other kinds (networks, ...) are skipped rather than importing TensorFlow.
    gin.parse_config(worker_config(gin_config), skip_unknown=True)
  return envs.make(task, **overrides)


# `import dreamkit.<kind>` lines of a .gin file, except the envs' own.
_OTHER_DREAMKIT_IMPORT = re.compile(r'^\s*import\s+dreamkit\.(?!envs\b)\S+.*$', re.M)


def worker_config(gin_config):
  """The gin text for an env worker: without imports of dreamkit's other kinds.

  Those imports (networks, agent, ...) would load TensorFlow in every worker, ~0.5 GB
  each, for bindings the worker skips anyway. Imports of other packages stay: they
  may register a plugin's env.
  """
  return _OTHER_DREAMKIT_IMPORT.sub('', gin_config)


class ParallelEnvs(BatchedEnvs):
  """`num` copies of the env for `task`, each stepped in its own spawn worker.

  Args:
    task: 'prefix:name', as for `dreamkit.envs.make`.
    num: number of copies.
    gin_config: gin text to parse in every worker; None takes the parent's current
      bindings (`gin.config_str()`).
    plugins: plugin file paths to load in every worker before parsing.
    seed: copy i gets `seed=seed + i` (the env class must take `seed`); None leaves
      seeding to each env (random per process).
    timeout: seconds to wait for any one answer of a worker.

  Results are lists of step dicts, one per copy, in copy order.
  """

  def __init__(self, task, num, gin_config=None, plugins=(), seed=None, timeout=300.0):
    if int(num) < 1:
      raise UserError(f'ParallelEnvs needs at least one copy; got num={num}.')
    if gin_config is None:
      gin_config = gin.config_str()
    self.task = task
    self.num = int(num)
    self.workers = []
    try:
      # Start every worker before waiting for any, so they build concurrently.
      for index in range(int(num)):
        overrides = {} if seed is None else {'seed': int(seed) + index}
        kwargs = dict(task=task, gin_config=gin_config, plugins=tuple(plugins),
                      overrides=overrides)
        self.workers.append(Worker(
            'dreamkit.envs.parallel.build_env', kwargs, f'env worker {index} ({task})',
            timeout=timeout, wait=False))
      _gather(self.workers)
      self.obs_space = self.workers[0].call('obs_space')
      self.act_space = self.workers[0].call('act_space')
      self.action_repeat = self.workers[0].call('action_repeat')
    except BaseException:
      self.close()
      raise

  def reset_all(self):
    """Resets every copy; returns their first step dicts."""
    return self.reset(range(self.num))

  def reset(self, indices):
    """Resets the copies in `indices` concurrently; returns their step dicts in order."""
    workers = [self.workers[index] for index in indices]
    for worker in workers:
      worker.send('reset')
    return _gather(workers)

  def step(self, actions):
    """Steps every copy with its action (actions[i] for copy i) concurrently."""
    if len(actions) != self.num:
      raise ValueError(f'Got {len(actions)} actions for {self.num} envs.')
    for worker, action in zip(self.workers, actions):
      worker.send('step', action)
    return _gather(self.workers)

  def close(self):
    for worker in self.workers:
      worker.close()


def _gather(workers):
  """Every worker's answer, in order; raises the first error after all have answered.

  Waiting for all keeps the healthy workers in step with the parent when one fails.
  """
  results, error = [], None
  for worker in workers:
    try:
      results.append(worker.receive())
    except Exception as e:  # Re-raised below, once every worker has answered.
      results.append(None)
      error = error or e
  if error is not None:
    raise error
  return results
