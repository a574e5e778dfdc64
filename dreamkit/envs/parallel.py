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
from dreamkit.envs.batched import DEFAULT_MAX_RESTARTS, BatchedEnvs, copy_seed
from dreamkit import validate
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
    timeout: seconds to wait for any one answer.
    start_timeout: seconds to wait for the env to be built; None: `timeout`.
    daemon: a daemon worker cannot start processes of its own (DM Control's renderer
      does); daemon workers are killed when the parent exits.
    wait: wait for the env to be built; with False, the first `receive()` does
      (so several workers can build at once).
  """

  def __init__(self, builder, kwargs, name, timeout=300.0, daemon=False, wait=True,
               start_timeout=None):
    self.name = name
    self.timeout = timeout
    self.start_timeout = timeout if start_timeout is None else start_timeout
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
    self._built = False
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
    if not self._finalizer.still_active():
      raise WorkerError(f'{self.name} is closed.')
    timeout = self.timeout if self._built else self.start_timeout
    deadline = time.monotonic() + timeout
    while not self._conn.poll(min(_POLL_SECONDS, timeout)):
      if not self._process.is_alive() and not self._conn.poll(0):
        raise self._died()
      if time.monotonic() > deadline:
        self.kill()  # It does not answer, so it would not read a request to close.
        hint = (' A worker that hangs at start is often one created with fork after '
                'TensorFlow started, or a renderer waiting for a display.'
                if not self._built else '')
        raise WorkerError(
            f'{self.name} gave no answer within {timeout:g} s and was killed.{hint}')
    try:
      status, payload = self._conn.recv()
    except (EOFError, OSError):
      raise self._died() from None
    self._pending = False
    self._built = True
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

  def kill(self):
    """Stops the process at once (SIGKILL), for a worker that hangs or has failed."""
    if not self._finalizer.still_active():
      return
    self._finalizer.cancel()
    if self._process.is_alive():
      self._process.kill()
    self._process.join(5)
    self._conn.close()

  def _died(self):
    self._process.join(1)
    code = self._process.exitcode
    signal = f' (signal {-code})' if code is not None and code < 0 else ''
    self._finalizer.cancel()
    self._conn.close()
    hint = (' A segfault in an env that renders with MuJoCo usually means TensorFlow '
            'was imported in that process.' if code == -11 else '')
    return WorkerError(
        f'{self.name} (pid {self._process.pid}) died with exit code {code}{signal}.'
        + hint)


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
    seed: copy i gets `seed=seed + i` (the env class must take `seed`), a restarted
      copy a fresh seed (`copy_seed`); None leaves seeding to each env.
    timeout: seconds a worker may take to answer one `reset` or `step`; one that
      takes longer is killed and restarted.
    start_timeout: seconds a worker may take to start and build its env.
    max_restarts: restarts of one copy in a row (no finished episode in between)
      before its next failure raises `EnvFailed`.

  Results are lists of step dicts, one per copy, in copy order. A worker that dies,
  raises (other than a `UserError`, which is raised here) or passes `timeout` is
  killed and started again; its answer is then its fresh episode's first step.
  """

  def __init__(self, task, num, gin_config=None, plugins=(), seed=None, timeout=60.0,
               start_timeout=300.0, max_restarts=DEFAULT_MAX_RESTARTS):
    args = validate.Arguments(self)
    num = args.positive_int(num, 'num')
    timeout = args.positive(timeout, 'timeout')
    start_timeout = args.positive(start_timeout, 'start_timeout')
    if gin_config is None:
      gin_config = gin.config_str()
    self.task = task
    self.num = int(num)
    self.timeout = float(timeout)
    self.start_timeout = float(start_timeout)
    self._setup_restarts(max_restarts)
    self._seed = seed
    self._kwargs = dict(task=task, gin_config=gin_config, plugins=tuple(plugins))
    self.workers = []
    try:
      # Start every worker before waiting for any, so they build concurrently.
      for index in range(self.num):
        self.workers.append(self._start(index))
      _gather(self.workers)
      self.obs_space = self.workers[0].call('obs_space')
      self.act_space = self.workers[0].call('act_space')
      self.action_repeat = self.workers[0].call('action_repeat')
    except BaseException:
      self.close()
      raise

  def _start(self, index):
    seed = copy_seed(self._seed, index, self._copy_restarts[index])
    kwargs = dict(self._kwargs, overrides={} if seed is None else {'seed': seed})
    return Worker('dreamkit.envs.parallel.build_env', kwargs, self._name(index),
                  timeout=self.timeout, start_timeout=self.start_timeout, wait=False)

  def _name(self, index):
    return f'env worker {index} ({self.task})'

  def reset_all(self):
    """Resets every copy; returns their first step dicts."""
    return self.reset(range(self.num))

  def reset(self, indices):
    """Resets the copies in `indices` concurrently; returns their step dicts in order."""
    indices = list(indices)
    return self._call(indices, 'reset', [()] * len(indices))

  def step(self, actions):
    """Steps every copy with its action (actions[i] for copy i) concurrently."""
    if len(actions) != self.num:
      raise ValueError(f'Got {len(actions)} actions for {self.num} envs.')
    return self._call(list(range(self.num)), 'step', [(action,) for action in actions])

  def _call(self, indices, method, args):
    """Sends `method(*args[i])` to each copy, then gathers; restarts the copies that
    failed (their answer: a fresh first step). A UserError is raised once all have
    answered, as is EnvFailed."""
    failures = {}
    for index, arguments in zip(indices, args):
      try:
        self.workers[index].send(method, *arguments)
      except WorkerError as error:  # Died since its last answer.
        failures[index] = error
    results, user_error = [], None
    for index in indices:
      if index in failures:
        results.append(None)
        continue
      try:
        results.append(self.workers[index].receive())
      except UserError as error:
        results.append(None)
        user_error = user_error or error
      except WorkerError as error:
        results.append(None)
        failures[index] = error
    if user_error is not None:
      raise user_error
    for position, index in enumerate(indices):
      if index in failures:
        results[position] = self._restart(index, failures[index])
    self._answered(indices, results)
    return results

  def _restart(self, index, error):
    """Kills copy `index`, starts it again and resets it; returns the first step."""
    what = self._name(index)
    reason = str(error)
    while True:
      self._failed(index, what, reason)  # Raises EnvFailed when one too many.
      self.workers[index].kill()
      try:
        self.workers[index] = self._start(index)
        self.workers[index].receive()  # Built.
        obs = self.workers[index].call('reset')
      except (WorkerError, UserError) as restart_error:
        reason = f'while restarting: {restart_error}'
        continue
      self._restarted(index, what, reason)
      return obs

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


# Settings in gin: `envs.ParallelEnvs.timeout = 30`, `envs.ParallelEnvs.max_restarts = 3`.
gin.register(ParallelEnvs, module='dreamkit.envs')
