"""The replay store interface."""


class Replay:
  """Stores finished episodes and samples fixed-length training chunks.

      replay = replays.HDF5Replay(directory)        # reloads complete episodes
      replay.add_step(step, worker=0)               # step dict incl. action, reward
      dataset = replay.dataset(batch=16, length=50) # tf.data.Dataset of dicts
      chunk = next(iter(dataset))                   # each value [16, 50, ...]

  A step dict is what the env returned plus the `action` that led to it (zeros on
  `is_first`). `add_step` buffers steps per worker and stores the episode when a
  step has `is_last`. A chunk is filled from sequences of one or more episodes;
  `is_first` is True at the chunk's first step and wherever a new sequence starts
  (docs/replay.md). Stores are bound in gin as factories called with `(directory)`.
  """

  required_methods = ('add_step', 'add_episode', 'dataset', 'stats')

  def add_step(self, step, worker=0):
    raise NotImplementedError

  def add_episode(self, episode):
    """Store a whole episode: dict of arrays [T, ...]."""
    raise NotImplementedError

  def dataset(self, batch, length):
    """A tf.data.Dataset yielding dicts of [batch, length, ...] tensors forever."""
    raise NotImplementedError

  @property
  def stats(self):
    """dict with at least `steps` and `episodes` currently stored."""
    raise NotImplementedError

  def sample(self, batch, length):
    """One batch as numpy arrays `{key: [batch, length, ...]}` (what `dataset` yields).

    Optional: the built-in stores implement it; benchmarks and tests use it to
    sample without TensorFlow.
    """
    raise NotImplementedError

  def close(self):
    """Release open files; the store must not be used afterwards."""
