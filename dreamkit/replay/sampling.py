"""What every replay store shares: the episode index and the chunk sampler.

A store keeps episodes somewhere (files, RAM) and gives the sampler one function,
`read(key, start, stop, out, row, pos)`, which copies steps `[start, stop)` of
episode `key` into `out[name][row, pos:pos + stop - start]` for every key of `out`
except `is_first`. Everything else (which episode, which steps, how rows of a batch
are filled, where `is_first` goes) lives here, once.

How a batch row of `length` steps is filled (the reference's statistics):

    episode e1 (uniform over stored episodes)       episode e2
    |----[===== sequence 1 =====]-----|    |--[=== sequence 2 ===]------|
              \                                  \
    row:       [===== sequence 1 =====][=== seq 2 (first part) ===]
               ^ is_first               ^ is_first
    next row:  [= seq 2 (rest) =][====== sequence 3 ======] ...
               ^ is_first (every chunk start)

A sequence is drawn by `draw_sequence`: its length is `min(total, maxlen)` minus a
random 0..minlen-1, at least `minlen`; its start is uniform over the valid starts,
and with `prioritize_ends` the draw range is extended by the sequence's length past
the last valid start and clipped to it, so the sequence that ends at the episode end
gets `length` extra shares of probability.

The reference extends by `minlen`, which is the same number in all its configs
(minlen = maxlen = 50, so every sequence is 50 long). Tying the priority to minlen
silently switches it off when minlen is lowered to keep short episodes (CartPole's
minlen 1 gave the end of a 300-step episode 2 shares in 252 instead of 51 in 301, and
the world model almost never saw the terminal step of the agent's own long episodes).
"""

import logging
import threading

import numpy as np

from dreamkit import validate
from dreamkit.errors import ConfigError, UserError

# Keys carried for logging only; the sampler never returns them.
LOG_PREFIX = 'log_'


class EpisodeUnavailable(Exception):
  """The episode was evicted (or became unreadable) between choosing and reading."""


def convert(value):
  """Step or episode values to the stored dtypes: float32, int32, uint8, bool."""
  value = np.asarray(value)
  if value.dtype == np.uint8 or value.dtype == bool:
    return value
  if np.issubdtype(value.dtype, np.floating):
    return value.astype(np.float32)
  if np.issubdtype(value.dtype, np.signedinteger):
    return value.astype(np.int32)
  if np.issubdtype(value.dtype, np.unsignedinteger):
    return value.astype(np.int32)
  raise TypeError(
      f'Replay stores numeric and bool arrays only, got dtype {value.dtype}. '
      'Convert the value (or drop the key) in the environment wrapper.')


def episode_length(episode):
  """Number of steps T of an episode dict {key: [T, ...]}."""
  lengths = {len(value) for value in episode.values()}
  if len(lengths) != 1:
    shapes = {key: np.shape(value) for key, value in episode.items()}
    raise ValueError(f'Episode keys differ in length: {shapes}')
  return lengths.pop()


def check_sampling_options(minlen, maxlen, where='Replay'):
  """(minlen, maxlen) as ints: minlen >= 1, maxlen 0 (no limit) or >= minlen; a
  ConfigError names `where` ('replays.HDF5Replay') otherwise."""
  minlen = validate.positive_int(minlen, f'{where}.minlen')
  maxlen = validate.non_negative_int(maxlen or 0, f'{where}.maxlen')
  if maxlen and maxlen < minlen:
    raise ConfigError(
        f'{where}.maxlen must be 0 (no limit) or a whole number >= minlen ({minlen}), '
        f'got {maxlen!r}.')
  return minlen, maxlen


def draw_sequence(rng, total, minlen, maxlen, prioritize_ends):
  """(start, length) of one sequence inside an episode of `total` >= minlen steps."""
  length = min(total, maxlen) if maxlen else total
  # Randomised so chunks do not all end together when episodes share one length.
  length -= int(rng.integers(minlen))
  length = max(minlen, length)
  upper = total - length + 1
  if prioritize_ends:
    upper += length  # the reference's `+= minlen` where minlen == length; see above
  start = min(int(rng.integers(upper)), total - length)
  return start, length


class OngoingEpisode:
  """Steps of one worker's unfinished episode, appended one at a time."""

  def __init__(self):
    self.steps = {}
    self.length = 0

  def append(self, step):
    for key, value in step.items():
      self.steps.setdefault(key, []).append(convert(value))
    self.length += 1

  def episode(self):
    return {key: np.stack(values) for key, values in self.steps.items()}

  def read(self, start, stop, out, row, pos):
    for key, target in out.items():
      if key == 'is_first':
        continue
      target[row, pos:pos + stop - start] = np.stack(self.steps[key][start:stop])


class EpisodeIndex:
  """Thread-safe, oldest-first list of stored episodes `(key, length)`.

  The driver thread adds and evicts while the dataset thread chooses; all of it goes
  through `lock`. Also holds each worker's ongoing episode.

  Args:
    capacity: steps to keep; adding beyond it evicts the oldest episodes (always
      keeping the newest one). 0 or None keeps everything.
    minlen: episodes shorter than this are never stored or sampled.
    ongoing: whether `choose` may return unfinished episodes (>= minlen steps).
  """

  def __init__(self, capacity, minlen, ongoing):
    self.capacity = int(capacity or 0)
    self.minlen = minlen
    self.ongoing = ongoing
    self.lock = threading.RLock()
    self._keys = []  # self._keys[self._head:] are stored, oldest first.
    self._head = 0
    self._lengths = {}
    self._workers = {}
    self.steps = 0
    self.total_steps = 0
    self.total_episodes = 0

  @property
  def episodes(self):
    return len(self._lengths)

  def __contains__(self, key):
    return key in self._lengths

  def keys(self):
    """Stored keys, oldest first (a copy)."""
    with self.lock:
      return self._keys[self._head:]

  def add(self, key, length):
    """Store `key` as the newest episode; returns the keys it evicted, oldest first."""
    with self.lock:
      self._keys.append(key)
      self._lengths[key] = length
      self.steps += length
      self.total_steps += length
      self.total_episodes += 1
      evicted = []
      while self.capacity and self.episodes > 1 and self.steps > self.capacity:
        oldest = self._keys[self._head]
        self._head += 1
        self.steps -= self._lengths.pop(oldest)
        evicted.append(oldest)
      if self._head > 1024 and self._head * 2 > len(self._keys):
        del self._keys[:self._head]
        self._head = 0
      return evicted

  def remove(self, key):
    """Forget one episode (e.g. a file found unreadable); False if not stored."""
    with self.lock:
      if key not in self._lengths:
        return False
      self.steps -= self._lengths.pop(key)
      self._keys.remove(key)
      return True

  def add_step(self, step, worker):
    """Append to `worker`'s ongoing episode; returns the episode dict when finished.

    An `is_first` step always starts a new episode: the unfinished steps before it
    (an env reset mid-episode, as after prefill) are dropped, never joined to it.
    """
    with self.lock:
      buffer = self._workers.get(worker)
      if buffer is None or (buffer.length and step['is_first']):
        buffer = self._workers[worker] = OngoingEpisode()
      buffer.append(step)
      if not step['is_last']:
        return None
      # A new buffer object: a sampler still reading the old one keeps valid data.
      self._workers[worker] = OngoingEpisode()
    return buffer.episode()

  def choose(self, rng):
    """A uniformly chosen episode `(key, length)`; raises UserError when empty."""
    with self.lock:
      count = self.episodes
      ongoing = []
      if self.ongoing:
        ongoing = [
            buffer for buffer in self._workers.values()
            if buffer.length >= self.minlen]
      if count + len(ongoing) == 0:
        raise UserError(
            'The replay store holds no episodes to sample from: add episodes '
            '(prefill) before sampling, or lower minlen.')
      index = int(rng.integers(count + len(ongoing)))
      if index < count:
        key = self._keys[self._head + index]
        return key, self._lengths[key]
      buffer = ongoing[index - count]
      return buffer, buffer.length


class ChunkSampler:
  """Fills `[batch, length]` chunks from a store's episodes (see module doc).

  Leftover steps of a sequence continue in the next row (and next batch), as in the
  reference, so consecutive rows share the random stream of sequences.

  Args:
    index: the store's `EpisodeIndex`.
    read: `read(key, start, stop, out, row, pos)`; raises `EpisodeUnavailable`.
    minlen, maxlen, prioritize_ends: see `draw_sequence`.
    rng: a `numpy.random.Generator`.
  """

  def __init__(self, index, read, minlen, maxlen, prioritize_ends, rng):
    self._index = index
    self._read = read
    self._minlen = minlen
    self._maxlen = maxlen
    self._prioritize_ends = prioritize_ends
    self._rng = rng
    self._current = None  # [key, next step, steps left] of the current sequence.

  def sample(self, batch, length, signature):
    """A dict of numpy arrays `[batch, length, ...]` for the keys of `signature`.

    Args:
      signature: {key: (dtype, step shape)} as returned by the store's `signature()`.
    """
    out = {
        key: np.empty((batch, length) + tuple(shape), dtype)
        for key, (dtype, shape) in signature.items()}
    out['is_first'] = np.zeros((batch, length), bool)
    for row in range(batch):
      self._fill_row(out, row, length)
      out['is_first'][row, 0] = True
    return out

  def _fill_row(self, out, row, length):
    pos = 0
    while pos < length:
      if self._current is None:
        key, total = self._index.choose(self._rng)
        start, count = draw_sequence(
            self._rng, total, self._minlen, self._maxlen, self._prioritize_ends)
        self._current = [key, start, count]
        out['is_first'][row, pos] = True
      key, start, left = self._current
      take = min(left, length - pos)
      try:
        if isinstance(key, OngoingEpisode):
          key.read(start, start + take, out, row, pos)
        else:
          self._read(key, start, start + take, out, row, pos)
      except EpisodeUnavailable as error:
        # Evicted between choosing and reading, or unreadable: draw a new sequence
        # for the same positions.
        if str(error):
          logging.warning('Replay: %s', error)
        self._current = None
        continue
      pos += take
      if take == left:
        self._current = None
      else:
        self._current = [key, start + take, left - take]


def signature_of(episode):
  """{key: (dtype, step shape)} of the sampled keys of an episode dict."""
  signature = {
      key: (np.dtype(value.dtype), tuple(value.shape[1:]))
      for key, value in episode.items() if not key.startswith(LOG_PREFIX)}
  signature['is_first'] = (np.dtype(bool), ())
  return signature
