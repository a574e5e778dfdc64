"""Replay store that keeps episodes in RAM (tests, debugging, small runs)."""

import itertools

from dreamkit.replay import dataset as dataset_lib
from dreamkit.replay import registry
from dreamkit.replay import sampling
from dreamkit.replay.store import IndexedReplay


@registry.register
class MemoryReplay(IndexedReplay):
  """Episodes held in RAM; same interface and sampling as `HDF5Replay`.

  Nothing is written to disk, so a restarted run starts empty.

  Args:
    directory: ignored (accepted so the pipeline can call every store with it).
    capacity: steps to keep; adding beyond it evicts the oldest episodes.
    minlen: shortest sequence drawn; shorter episodes are not stored.
    maxlen: longest sequence drawn from one episode (0: the whole episode).
    prioritize_ends: give sequences that end at an episode's end more probability.
    ongoing: also sample unfinished episodes (at least `minlen` steps long).
    seed: seed of the sampling random generator (None: fresh entropy).
  """

  def __init__(
      self, directory=None, capacity=2e6, minlen=50, maxlen=50,
      prioritize_ends=True, ongoing=False, seed=None):
    del directory
    self._setup_index(capacity, minlen, maxlen, prioritize_ends, ongoing, seed)
    self._episodes = {}
    self._counter = itertools.count()
    self._sampler = self.sampler()

  def _store(self, episode, length):
    key = next(self._counter)
    with self._index.lock:
      self._episodes[key] = episode
      for old in self._index.add(key, length):
        del self._episodes[old]

  def signature(self):
    """{key: (dtype, step shape)} of the sampled keys, from the oldest episode."""
    if self._signature is None:
      with self._index.lock:
        for key in self._index.keys():
          self._signature = sampling.signature_of(self._episodes[key])
          break
        else:
          raise dataset_lib.empty_error()
    return self._signature

  def _read(self, key, start, stop, out, row, pos):
    episode = self._episodes.get(key)
    if episode is None:
      raise sampling.EpisodeUnavailable()
    for name, target in out.items():
      if name != 'is_first':
        target[row, pos:pos + stop - start] = episode[name][start:stop]
